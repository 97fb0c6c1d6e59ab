import GenTCP
import GenTCPAT
import GenTCPCore
import GenTCPModem
import GenTCPSerial
import Testing

// Issue 12 against scripted hostile modules (ScriptedModule.swift): what a module's TLS commands
// can do wrong (an error answer to the open, silence during the handshake, the link closed in the
// middle of a transfer, lines too long to hold), on a pty (real clock) and a memory line
// (virtual clock). The module answers in the formats of docs/modem-behaviour.md ESP-T and BG-T.

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

extension ModuleScript {
    /// Answers the TLS setting commands (`AT+CIPSSLCCONF`..., `AT+QSSLCFG`...) with `OK` until
    /// another command comes; the next step takes it.
    mutating func answerTLSSettings(_ dialect: ATDialect) {
        respond("answer the TLS settings") { line in
            let settings = dialect == .bg96 ? ["AT+QSSLCFG="] : ["AT+CIPSSLCCONF=", "AT+CIPSSLCSNI=", "AT+CIPSSLCALPN="]
            return settings.contains(where: line.hasPrefix) ? [.send(bytes("\r\nOK\r\n"))] : nil
        }
    }

    /// Takes the secure open of link 0 and answers `answer`.
    mutating func secureOpen(_ dialect: ATDialect, answer: String) {
        expect(dialect == .bg96 ? "AT+QSSLOPEN=1,0,0," : "AT+CIPSTART=0,\"SSL\",") { _ in [.send(bytes(answer))] }
    }

    /// Serves `AT+QSSLRECV=0,<n>` reads from `model`'s feed until `target` bytes went out.
    mutating func serveSecureReads(_ model: ModuleModel, upTo target: Int) {
        append(secureReadSteps(model, upTo: target))
    }
}

/// One expected read at a time, each answered from the feed, until `target` bytes went out.
private func secureReadSteps(_ model: ModuleModel, upTo target: Int) -> [ModuleStep] {
    guard model.feed.offset < target else { return [] }
    return [.expect(.prefix("AT+QSSLRECV=0,"), within: 10_000, then: { line in
        let asked = commandLastInteger(line) ?? 0
        let (data, _) = model.feed.take(min(asked, target - model.feed.offset))
        return [.send(bytes("\r\n+QSSLRECV: \(data.count)\r\n") + data + bytes("\r\n\r\nOK\r\n"))]
            + secureReadSteps(model, upTo: target)
    })]
}

@Suite("hostile module: offloaded TLS (issue 12)", .serialized, .timeLimit(.minutes(3)))
struct HostileOffloadTests {
    static let insecure = OffloadedTLS(verification: .none)

    @Test("BG96 answers AT+QSSLOPEN with ERROR (or +CME ERROR: 552): econnrefused (einval), at once, and the link id is free again",
          arguments: [("\r\nERROR\r\n", SocketError.Reason.connectionRefused), ("\r\n+CME ERROR: 552\r\n", .invalidArgument)],
          HostileLine.allCases)
    func bg96OpenError(_ case_: (answer: String, expected: SocketError.Reason), line: HostileLine) async throws {
        let (answer, expected) = case_
        let model = ModuleModel(.bg96)
        var script = model.script()
        script.answerInit(model)
        script.answerTLSSettings(.bg96)
        script.secureOpen(.bg96, answer: answer)
        // The second attempt gets the same id: nothing was left open.
        script.answerTLSSettings(.bg96)
        script.secureOpen(.bg96, answer: "\r\nOK\r\n\r\n+QSSLOPEN: 0,-1\r\n")
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.bg96)) { b in
            let since = b.now
            let first = await failureReason { () async throws(SocketError) in
                _ = try await Socket.connect(hostileServer, port: 443, offloadedTLS: Self.insecure, timeout: 60_000, driver: b.at)
            }
            #expect(first == expected, "got \(first.map { "\($0.atom)" } ?? "success")")
            // The answer ended the connect, not the clock: well inside the 60 s limit (a real
            // clock on a pty: the margin is for a loaded machine).
            #expect(b.seconds(since: since) < 30)
            let second = await failureReason { () async throws(SocketError) in
                _ = try await Socket.connect(hostileServer, port: 443, offloadedTLS: Self.insecure, timeout: 20_000, driver: b.at)
            }
            #expect(second == .protocolError, "+QSSLOPEN: 0,-1 gave \(second.map { "\($0.atom)" } ?? "success")")
        }
    }

    @Test("the module goes silent during the SSL open (ESP-AT: no answer to CIPSTART \"SSL\"; BG96: OK, then no +QSSLOPEN): timeout within the caller's limit, no hang",
          arguments: [ATDialect.espAT, .bg96], HostileLine.allCases)
    func silentDuringOpen(_ dialect: ATDialect, line: HostileLine) async throws {
        let model = ModuleModel(dialect)
        var script = model.script()
        script.answerInit(model)
        script.answerTLSSettings(dialect)
        script.secureOpen(dialect, answer: dialect == .bg96 ? "\r\nOK\r\n" : "")
        script.silence()
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(dialect)) { b in
            let since = b.now
            let reason = await failureReason { () async throws(SocketError) in
                _ = try await Socket.connect(hostileServer, port: 443, offloadedTLS: Self.insecure, timeout: 3_000, driver: b.at)
            }
            #expect(reason == .timeout, "got \(reason.map { "\($0.atom)" } ?? "success")")
            let took = b.seconds(since: since)
            // Not before the caller's limit; the upper bound only says "no hang" (a real clock on
            // a pty, so it leaves room for a loaded machine).
            #expect(took >= 2.9 && took < 30, "the connect gave up after \(took) s")
        }
    }

    @Test("BG96: +QSSLURC \"closed\" in the middle of a transfer: the bytes the module still holds, then closed; a send after it fails",
          arguments: HostileLine.allCases)
    func bg96ClosedMidTransfer(line: HostileLine) async throws {
        let data = pattern(3000, seed: 41)
        let model = ModuleModel(.bg96, data: Array(data[0..<1000]))
        var script = model.script()
        script.answerInit(model)
        script.answerTLSSettings(.bg96)
        script.secureOpen(.bg96, answer: "\r\nOK\r\n\r\n+QSSLOPEN: 0,0\r\n")
        script.send(bytes("\r\n+QSSLURC: \"recv\",0\r\n"))
        script.serveSecureReads(model, upTo: 1000)
        // More data arrives, then the peer closes: the module says both, and keeps the data
        // readable after the close (BG-T5).
        let rest = Array(data[1000...])
        script.append([.perform("2000 more bytes, then closed") {
            model.feed.append(rest)
            return [.send(bytes("\r\n+QSSLURC: \"recv\",0\r\n\r\n+QSSLURC: \"closed\",0\r\n"))]
        }])
        script.respond("serve the rest, then empty reads; close") { line in
            if line.hasPrefix("AT+QSSLRECV=0,") {
                let (rest, _) = model.feed.take(commandLastInteger(line) ?? 0)
                return [.send(bytes("\r\n+QSSLRECV: \(rest.count)\r\n") + rest + bytes(rest.isEmpty ? "\r\nOK\r\n" : "\r\n\r\nOK\r\n"))]
            }
            if line.hasPrefix("AT+QSSLCLOSE=0") { return [.send(bytes("\r\nOK\r\n"))] }
            if line.hasPrefix("AT+QSSLSTATE=0") { return [.send(bytes("\r\nOK\r\n"))] }
            return nil
        }
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.bg96), checkScript: false) { b in
            let s = try await Socket.connect(hostileServer, port: 443, options: passive, offloadedTLS: Self.insecure,
                                             timeout: 20_000, driver: b.at)
            let r = await drainAll(s, timeout: 15_000)
            let exact = r.bytes == data
            #expect(exact, "got \(r.bytes.count) of \(data.count) bytes")
            #expect(r.error.reason == .closed, "ended with \(atom(r.error))")
            let send = await failureReason { () async throws(SocketError) in try await s.send([1, 2, 3]) }
            #expect(send == .closed)
            s.close()
        }
    }

    @Test("ESP-AT: <id>,CLOSED with announced SSL bytes unread, reads refused: eproto, never a clean close",
          arguments: HostileLine.allCases)
    func espClosedWithBytesAnnounced(line: HostileLine) async throws {
        let data = pattern(3000, seed: 42)
        let model = ModuleModel(.espAT, data: data)
        var script = model.script()
        script.answerInit(model)
        script.answerTLSSettings(.espAT)
        script.secureOpen(.espAT, answer: "0,CONNECT\r\n\r\nOK\r\n")
        script.announce(model, total: data.count)
        script.serveReads(model, upTo: 1000, trailer: bytes("0,CLOSED\r\n"))
        script.respond("refuse reads of the closed link") { line in
            if line.hasPrefix("AT+CIPRECVDATA=0,") || line.hasPrefix("AT+CIPCLOSE=0") {
                return [.send(bytes("link is not valid\r\n\r\nERROR\r\n"))]
            }
            return nil
        }
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.espAT), checkScript: false) { b in
            let s = try await Socket.connect(hostileServer, port: 443, options: passive, offloadedTLS: Self.insecure,
                                             timeout: 20_000, driver: b.at)
            let r = await drainAll(s, timeout: 15_000)
            let exact = r.bytes == Array(data[0..<1000])
            #expect(exact, "got \(r.bytes.count) bytes, expected the first 1000")
            #expect(r.error.reason == .protocolError, "a stream cut short ended with \(atom(r.error))")
            s.close()
        }
    }

    @Test("BG96: over-long lines during the SSL open: one before +QSSLOPEN is dropped (the open succeeds); one in its place is lost (timeout, no hang)",
          arguments: [false, true], HostileLine.allCases)
    func bg96OverlongLines(replacesAnswer: Bool, line: HostileLine) async throws {
        let model = ModuleModel(.bg96)
        var script = model.script()
        script.answerInit(model)
        script.answerTLSSettings(.bg96)
        let junk = "\r\n+QSSLURC: \"" + String(repeating: "A", count: 5000) + "\"\r\n"
        let padded = "\r\n+QSSLOPEN: 0," + String(repeating: "0", count: 2000) + "\r\n"
        script.secureOpen(.bg96, answer: "\r\nOK\r\n" + (replacesAnswer ? padded : junk + "\r\n+QSSLOPEN: 0,0\r\n"))
        script.respond("close, state") { line in
            line.hasPrefix("AT+QSSLCLOSE=0") || line.hasPrefix("AT+QSSLSTATE=0") || line == "AT" ? [.send(bytes("\r\nOK\r\n"))] : nil
        }
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.bg96), checkScript: false) { b in
            let since = b.now
            do {
                let s = try await Socket.connect(hostileServer, port: 443, offloadedTLS: Self.insecure, timeout: 4_000, driver: b.at)
                #expect(!replacesAnswer, "a connect answered only by a 2,000-byte line succeeded")
                s.close()
            } catch let error as SocketError {
                #expect(replacesAnswer, "the open failed with \(atom(error)) although +QSSLOPEN: 0,0 followed the long line")
                #expect(error.reason == .timeout, "got \(atom(error))")
            }
            // No hang: the 4 s connect limit ends it (the bound leaves room for a loaded machine).
            #expect(b.seconds(since: since) < 30)
        }
    }
}
