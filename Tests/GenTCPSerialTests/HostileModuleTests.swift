import GenTCP
import GenTCPModem
import GenTCPCore
import GenTCPSerial
import GenTCPAT
import GenTCPSim
import Testing
#if canImport(Glibc)
import Glibc
#endif

// Issue 9, cases 1-6, against a scripted hostile module (ScriptedModule.swift) on a pty (real
// clock) and on a MemoryLink pair (virtual clock). Each test states the rule after the fix:
// an end of stream only for the peer's close after every announced byte was read; a restart is
// econnaborted, silence etimedout, a hang-up eio, a framing violation eproto; active mode gets
// tcp_error then tcp_closed; `lastIncident` says what happened on the line.

/// Where the scripted module sits.
enum HostileLine: String, Sendable, CaseIterable, CustomTestStringConvertible {
    /// The master of a pty, driven from its own thread; the driver opens the slave with PTYLink.
    case pty
    /// The far end of a MemoryLink pair inside a simulated network (virtual time).
    case memory

    var testDescription: String { rawValue }
}

@Suite("hostile module (issue 9)", .serialized, .timeLimit(.minutes(3)))
struct HostileModuleTests {
    // MARK: Case 1: module reset mid-transfer

    @Test("ESP-AT restarts (ready) mid-transfer: recv gives the bytes delivered, then econnaborted",
          arguments: HostileLine.allCases)
    func resetMidTransfer(line: HostileLine) async throws {
        let data = pattern(3000, seed: 11)
        let model = ModuleModel(.espAT, data: data)
        var script = model.script()
        script.answerInit(model)
        script.acceptConnect(model)
        script.announce(model, total: data.count)
        script.serveReads(model, upTo: data.count)
        script.restart(model)
        script.answerInit(model)
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.espAT)) { b in
            let s = try await Socket.connect(hostileServer, port: 7000, options: passive, timeout: 20_000, driver: b.at)
            let r = await drainAll(s, timeout: 15_000)
            let exact = r.bytes == data
            #expect(exact, "got \(r.bytes.count) of \(data.count) bytes")
            #expect(r.error.reason == .connectionAborted, "after `ready` recv failed with \(atom(r.error))")
            #expect(b.at.lastIncident != nil, "no incident recorded for a module restart")
            s.close()
        }
    }

    @Test("ESP-AT restarts mid-transfer in active mode: tcp messages, then tcp_error econnaborted, tcp_closed",
          arguments: HostileLine.allCases)
    func resetMidTransferActive(line: HostileLine) async throws {
        let data = pattern(3000, seed: 12)
        let model = ModuleModel(.espAT, data: data)
        var script = model.script()
        script.answerInit(model)
        script.acceptConnect(model)
        script.announce(model, total: data.count)
        script.serveReads(model, upTo: data.count)
        script.restart(model)
        script.answerInit(model)
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.espAT)) { b in
            let s = try await Socket.connect(hostileServer, port: 7000, options: [.binary, .active(.active)],
                                             timeout: 20_000, driver: b.at)
            let r = await collectActive(timeout: 15_000)
            let exact = r.bytes == data
            #expect(exact, "got \(r.bytes.count) of \(data.count) bytes")
            #expect(r.ends == ["tcp_error econnaborted", "tcp_closed"])
            #expect(b.at.lastIncident != nil, "no incident recorded for a module restart")
            s.close()
        }
    }

    @Test("SIM800 and BG96 restart (RDY) mid-transfer: the bytes delivered, then econnaborted",
          arguments: [ATDialect.sim800, .bg96], HostileLine.allCases)
    func resetMidTransferCellular(dialect: ATDialect, line: HostileLine) async throws {
        let data = pattern(3000, seed: 13)
        let model = ModuleModel(dialect, data: data)
        var script = model.script()
        script.answerInit(model)
        script.acceptConnect(model)
        script.announce(model, total: data.count)
        script.serveReads(model, upTo: data.count)
        script.restart(model)
        script.answerInit(model)
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(dialect)) { b in
            let s = try await Socket.connect(hostileServer, port: 7000, options: passive, timeout: 20_000, driver: b.at)
            let r = await drainAll(s, timeout: 15_000)
            let exact = r.bytes == data
            #expect(exact, "got \(r.bytes.count) of \(data.count) bytes")
            #expect(r.error.reason == .connectionAborted, "after RDY recv failed with \(atom(r.error))")
            #expect(b.at.lastIncident != nil, "no incident recorded for a module restart")
            s.close()
        }
    }

    // MARK: Case 1: silence and hang-up

    @Test("ESP-AT goes silent after CIPSTART (reads unanswered after 0 or 1460 bytes): recv gives what came, then etimedout within a bounded time",
          arguments: [0, 1460], HostileLine.allCases)
    func silentAfterConnect(served: Int, line: HostileLine) async throws {
        let data = pattern(2000, seed: 14)
        let model = ModuleModel(.espAT, data: data)
        var script = model.script()
        script.answerInit(model)
        script.acceptConnect(model)
        script.announce(model, total: data.count)
        script.serveReads(model, upTo: served)
        script.silence()
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.espAT)) { b in
            let s = try await Socket.connect(hostileServer, port: 7000, options: passive, timeout: 20_000, driver: b.at)
            let since = b.now
            let r = await drainAll(s, timeout: 40_000)
            let exact = r.bytes == Array(data[0..<served])
            #expect(exact, "got \(r.bytes.count) bytes, expected the first \(served)")
            #expect(r.error.reason == .connectionTimedOut, "a silent module ended recv with \(atom(r.error))")
            #expect(b.seconds(since: since) < 30, "the failure took \(b.seconds(since: since)) s")
            #expect(b.at.lastIncident != nil, "no incident recorded for a silent module")
            s.close()
        }
    }

    @Test("the serial line hangs up mid-transfer: recv gives what came, then eio", arguments: HostileLine.allCases)
    func lineHangsUp(line: HostileLine) async throws {
        let data = pattern(3000, seed: 15)
        let model = ModuleModel(.espAT, data: data)
        var script = model.script()
        script.answerInit(model)
        script.acceptConnect(model)
        script.announce(model, total: data.count)
        script.serveReads(model, upTo: 1460)
        // The next read: half an answer, then the line is gone (pty master closed).
        script.expect(model.readPrefix) { _ in
            [.send(Array("+CIPRECVDATA:1540,".utf8) + Array(data[1460..<1560]))]
        }
        script.pause(300)
        script.hangUp()
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.espAT)) { b in
            let s = try await Socket.connect(hostileServer, port: 7000, options: passive, timeout: 20_000, driver: b.at)
            let r = await drainAll(s, timeout: 15_000)
            #expect(r.bytes.count >= 1460 && r.bytes.count <= 1560, "got \(r.bytes.count) bytes")
            let prefix = r.bytes == Array(data.prefix(r.bytes.count))
            #expect(prefix, "the bytes delivered are not the stream's start")
            #expect(r.error.reason == .ioError, "a hung-up line ended recv with \(atom(r.error))")
            #expect(b.at.lastIncident != nil, "no incident recorded for a hung-up line")
            s.close()
        }
    }

    // MARK: Case 2: ESP-AT at 9600 baud

    @Test("ESP-AT at 9600 baud: an 8,000-byte +IPD read in answers of 5,000 and 3,000 bytes arrives whole",
          arguments: HostileLine.allCases)
    func slowLine(line: HostileLine) async throws {
        let data = pattern(8000, seed: 16)
        let model = ModuleModel(.espAT, data: data)
        var script = model.script()
        script.answerInit(model)
        script.acceptConnect(model)
        script.announce(model, total: data.count)
        // 5,000 bytes take 5.2 s at 9600 baud (longer than a flat 5 s read timeout), then the
        // module announces the 3,000 left (esp-at #994) and serves them (3.1 s).
        script.serveReads(model, upTo: data.count, maxPerAnswer: 5000, within: 30_000)
        script.send(model.closedNotice)
        script.respond("closing") { model.closeAnswer($0) }
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.espAT), baud: 9600) { b in
            let s = try await Socket.connect(hostileServer, port: 7000, options: passive + [.buffer(8192)],
                                             timeout: 20_000, driver: b.at)
            let start = b.now
            let r = await drainAll(s, timeout: 30_000)
            let exact = r.bytes == data
            #expect(exact, "got \(r.bytes.count) of \(data.count) bytes in \(b.seconds(since: start)) s")
            #expect(r.error.reason == .closed, "the stream ended with \(atom(r.error)), not the peer's close")
            s.close()
        }
    }

    // MARK: Case 3: SIM800, a server that sends and closes

    @Test("SIM800: CLOSED while bytes are pending; the module keeps answering CIPRXGET=2: every byte, then closed",
          arguments: HostileLine.allCases)
    func sim800ClosedWithPendingData(line: HostileLine) async throws {
        let data = pattern(4000, seed: 17)
        let model = ModuleModel(.sim800, data: data)
        var script = model.script()
        script.answerInit(model)
        script.acceptConnect(model)
        script.announce(model, total: data.count)
        // The first answer says 2,540 bytes remain; the close notice comes with it.
        script.serveReads(model, upTo: 1460, trailer: model.closedNotice)
        script.serveReads(model, upTo: data.count)
        script.respond("closing") { model.closeAnswer($0) }
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.sim800)) { b in
            let s = try await Socket.connect(hostileServer, port: 7000, options: passive, timeout: 20_000, driver: b.at)
            let r = await drainAll(s, timeout: 15_000)
            let exact = r.bytes == data
            #expect(exact, "got \(r.bytes.count) of \(data.count) bytes")
            #expect(r.error.reason == .closed, "the stream ended with \(atom(r.error))")
            s.close()
        }
    }

    @Test("SIM800: CLOSED while bytes are pending; the module refuses them (ERROR): eproto, not closed",
          arguments: HostileLine.allCases)
    func sim800ClosedRefusesPendingData(line: HostileLine) async throws {
        let data = pattern(4000, seed: 18)
        let model = ModuleModel(.sim800, data: data)
        var script = model.script()
        script.answerInit(model)
        script.acceptConnect(model)
        script.announce(model, total: data.count)
        script.serveReads(model, upTo: 1460, trailer: model.closedNotice)
        script.expect(model.readPrefix) { _ in [.send(Array("\r\nERROR\r\n".utf8))] }
        script.respond("refusing") { line in
            line.hasPrefix("AT+CIPRXGET=") ? [.send(Array("\r\nERROR\r\n".utf8))] : model.closeAnswer(line)
        }
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.sim800)) { b in
            let s = try await Socket.connect(hostileServer, port: 7000, options: passive, timeout: 20_000, driver: b.at)
            let r = await drainAll(s, timeout: 15_000)
            let exact = r.bytes == Array(data[0..<1460])
            #expect(exact, "got \(r.bytes.count) bytes, expected the 1460 delivered before CLOSED")
            #expect(r.error.reason == .protocolError, "announced bytes never delivered ended recv with \(atom(r.error))")
            #expect(b.at.lastIncident != nil, "no incident recorded for bytes announced and not delivered")
            s.close()
        }
    }

    // MARK: Case 5: pushed +IPD in passive mode

    @Test("ESP-AT pushes +IPD,0,<len>:<data> in passive mode: the bytes arrive in order, or eproto; never dropped",
          arguments: HostileLine.allCases)
    func pushedIPDInPassiveMode(line: HostileLine) async throws {
        let data = pattern(3000, seed: 19)
        let model = ModuleModel(.espAT, data: Array(data[0..<1000]))
        var script = model.script()
        script.answerInit(model)
        script.acceptConnect(model)
        script.announce(model, total: 1000)
        script.serveReads(model, upTo: 1000)
        // As if CIPRECVMODE had reverted: 500 bytes pushed with the active-mode header; then
        // passive again, 1,500 more bytes buffered and announced.
        script.send(Array("\r\n+IPD,0,500:".utf8) + Array(data[1000..<1500]))
        script.append([.perform("1,500 more bytes arrive in the module") {
            model.feed.append(Array(data[1500..<3000]))
            return []
        }])
        script.announce(model, total: 1500)
        script.serveReads(model, upTo: 2500)
        script.send(model.closedNotice)
        script.respond("closing") { model.closeAnswer($0) }
        let report = try await withScriptedModule(line, script: script, driver: hostileConfiguration(.espAT),
                                                  checkScript: false) { b in
            let s = try await Socket.connect(hostileServer, port: 7000, options: passive, timeout: 20_000, driver: b.at)
            let r = await drainAll(s, timeout: 15_000)
            let whole = r.bytes == data && r.error.reason == .closed
            let failed = r.error.reason == .protocolError && r.bytes == Array(data[0..<r.bytes.count])
            #expect(whole || failed,
                    "got \(r.bytes.count) of \(data.count) bytes (a prefix: \(r.bytes == Array(data.prefix(r.bytes.count)))), then \(atom(r.error))")
            if failed { #expect(b.at.lastIncident != nil) }
            s.close()
        }
        _ = report
    }

    // MARK: Case 6: an over-long +CIPRECVDATA header

    @Test("ESP-AT answers a read with a 300-digit +CIPRECVDATA length: eproto or every byte, within a bounded time",
          arguments: HostileLine.allCases)
    func overlongReadHeader(line: HostileLine) async throws {
        let data = Array("the quick brown fox jumps over the lazy dog; 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklm".utf8)
        let model = ModuleModel(.espAT, data: data)
        var script = model.script()
        script.answerInit(model)
        script.acceptConnect(model)
        script.announce(model, total: data.count)
        script.expect(model.readPrefix) { _ in
            let digits = String(repeating: "0", count: 300 - String(data.count).count) + String(data.count)
            return [.send(Array("+CIPRECVDATA:\(digits),".utf8) + data + Array("\r\nOK\r\n".utf8))]
        }
        // Whatever comes next: reads are served properly (a driver that resynchronises and
        // asks again gets everything, then the close), closes are answered.
        script.respond("after the bad header") { line in
            if let answer = model.readAnswerAnyTime(line) {
                return answer + (model.feed.left == 0 ? [.send(model.closedNotice)] : [])
            }
            return model.closeAnswer(line) ?? model.standingAnswer(line)
        }
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.espAT), checkScript: false) { b in
            let s = try await Socket.connect(hostileServer, port: 7000, options: passive, timeout: 20_000, driver: b.at)
            let start = b.now
            let r = await drainAll(s, timeout: 20_000)
            let whole = r.bytes == data && r.error.reason == .closed
            let failed = r.error.reason == .protocolError && r.bytes == Array(data.prefix(r.bytes.count))
            #expect(whole || failed, "got \(r.bytes.count) of \(data.count) bytes, then \(atom(r.error)) after \(b.seconds(since: start)) s")
            if failed { #expect(b.at.lastIncident != nil) }
            s.close()
        }
    }

    // MARK: Case 4: SIM800 bring-up

    @Test("SIM800 without an APN: AT+CIICR answers ERROR; connect fails within seconds naming the step",
          arguments: HostileLine.allCases)
    func sim800BringUpWithoutAPN(line: HostileLine) async throws {
        let model = ModuleModel(.sim800, refuseBearer: true)
        var script = model.script()
        script.answerInit(model)
        var driver = ATConfiguration(dialect: .sim800)
        driver.connectTimeout = 20_000
        try await withScriptedModule(line, script: script, driver: driver) { b in
            let start = b.now
            do throws(SocketError) {
                let s = try await Socket.connect(hostileServer, port: 7000, options: passive, driver: b.at)
                Issue.record("connected through a module without a bearer")
                s.close()
            } catch {
                let elapsed = b.seconds(since: start)
                let incident = b.at.lastIncident ?? ""
                #expect(elapsed < 10, "connect failed after \(elapsed) s with \(atom(error))")
                #expect(error.reason != .connectionTimedOut && error.reason != .timeout,
                        "a refused bring-up step ended as \(atom(error))")
                #expect("\(error)".contains("CIICR") || incident.contains("CIICR"),
                        "neither the error (\(error)) nor the incident (\(incident)) names AT+CIICR")
            }
        }
    }

    @Test("SIM800 that never answers AT: connect fails with etimedout within a bounded time, blaming the module",
          arguments: HostileLine.allCases)
    func sim800NeverAnswers(line: HostileLine) async throws {
        let model = ModuleModel(.sim800)
        var script = model.script()
        script.silence()
        var driver = hostileConfiguration(.sim800)
        driver.connectTimeout = 45_000
        try await withScriptedModule(line, script: script, driver: driver) { b in
            let start = b.now
            do throws(SocketError) {
                let s = try await Socket.connect(hostileServer, port: 7000, options: passive, driver: b.at)
                Issue.record("connected through a silent module")
                s.close()
            } catch {
                let elapsed = b.seconds(since: start)
                #expect(error.reason == .connectionTimedOut, "a silent module failed connect with \(atom(error))")
                #expect(elapsed < 30, "connect failed after \(elapsed) s")
                #expect(b.at.lastIncident != nil, "no incident recorded for a module that does not answer")
                #expect(!"\(error)".contains("10.0.0.1") && !(b.at.lastIncident ?? "").contains("10.0.0.1"),
                        "the failure blames the remote host")
            }
        }
    }
}

/// The harness itself: the machine's rules without I/O, and a clean transfer on both lines for
/// each dialect (which passes before the fix too, so a failing case above is the driver's).
@Suite("hostile module harness", .timeLimit(.minutes(2)))
struct HostileModuleHarnessTests {
    private static let ms: UInt64 = 1_000_000

    @Test("an unexpected command fails the script, naming the command and what was expected")
    func unexpectedCommand() {
        var script = ModuleScript()
        script.expect("AT+CIPSTART=")
        var m = ModuleMachine(script: script, now: 0)
        #expect(m.next(now: 0) == .wait(until: 10_000 * Self.ms))
        m.received(Array("AT+RST\r\n".utf8), now: 1 * Self.ms)
        #expect(m.next(now: 2 * Self.ms) == .wait(until: nil))
        let report = m.finish()
        #expect(report.failure?.contains("AT+RST") == true)
        #expect(report.failure?.contains("AT+CIPSTART=") == true)
        #expect(!report.completed)
        #expect(report.lines == ["AT+RST"])
    }

    @Test("every wait has a limit: no command in time fails the script")
    func limitPasses() {
        var script = ModuleScript()
        script.expect("AT", within: 100)
        var m = ModuleMachine(script: script, now: 0)
        #expect(m.next(now: 0) == .wait(until: 100 * Self.ms))
        #expect(m.next(now: 100 * Self.ms) == .wait(until: nil))
        #expect(m.finish().failure?.contains("within 100 ms") == true)
    }

    @Test("a CIPSEND payload is taken by the length in the command, CR LF and all; then the answer")
    func payloadByLength() {
        let model = ModuleModel(.espAT)
        let sink = ByteSink()
        var script = model.script()
        script.acceptSend(model, into: sink)
        var m = ModuleMachine(script: script, now: 0)
        #expect(m.next(now: 0) == .wait(until: 10_000 * Self.ms))
        m.received(Array("AT+CIPSEND=0,6\r\n".utf8), now: 0)
        #expect(m.next(now: 0) == .write(Array("\r\nOK\r\n\r\n>".utf8)))
        m.received(Array("a\r\nOK".utf8), now: 0)
        #expect(m.next(now: 0) == .wait(until: 10_000 * Self.ms))
        m.received([0], now: 0)
        #expect(m.next(now: 0) == .write(Array("\r\nRecv 6 bytes\r\n\r\nSEND OK\r\n".utf8)))
        #expect(m.next(now: 0) == .wait(until: nil))
        #expect(sink.bytes == Array("a\r\nOK".utf8) + [0])
        let report = m.finish()
        #expect(report.completed && report.failure == nil)
    }

    @Test("respond answers what it knows and hands the first unknown command to the next step")
    func respondHandsOver() {
        let model = ModuleModel(.sim800)
        var script = model.script()
        script.answerInit(model)
        script.acceptConnect(model)
        var m = ModuleMachine(script: script, now: 0)
        m.received(Array("AT\rATE0\rAT+CIPSTART=0,\"TCP\",\"10.0.0.1\",\"7000\"\r".utf8), now: 0)
        #expect(m.next(now: 0) == .write(Array("AT\r\r\nOK\r\n".utf8)))  // echo on until ATE0
        #expect(m.next(now: 0) == .write(Array("ATE0\r\r\nOK\r\n".utf8)))
        #expect(m.next(now: 0) == .write(model.connectAnswer))
        #expect(m.next(now: 0) == .wait(until: nil))
        let report = m.finish()
        #expect(report.completed)
        #expect(report.lines.count == 3)
    }

    @Test("a command the last respond step does not know fails the script")
    func respondAtTheEnd() {
        let model = ModuleModel(.espAT)
        var script = model.script()
        script.answerInit(model)
        var m = ModuleMachine(script: script, now: 0)
        m.received(Array("AT+CWLAP\r\n".utf8), now: 0)
        #expect(m.next(now: 0) == .wait(until: nil))
        let report = m.finish()
        #expect(report.failure?.contains("AT+CWLAP") == true)
        #expect(!report.completed)
    }

    @Test("a documented module, clean transfer: the request arrives byte-exact, every byte back, then closed",
          arguments: ATDialect.allCases, HostileLine.allCases)
    func cleanTransfer(dialect: ATDialect, line: HostileLine) async throws {
        let request = trickyBytes(300, seed: 31)
        let response = trickyBytes(5000, seed: 32)
        let model = ModuleModel(dialect, data: response)
        let sink = ByteSink()
        var script = model.script()
        script.answerInit(model)
        script.acceptConnect(model)
        script.acceptSend(model, into: sink)
        script.announce(model, total: response.count)
        script.serveReads(model, upTo: response.count, trailer: model.closedNotice)
        script.respond("closing") { model.closeAnswer($0) }
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(dialect)) { b in
            let s = try await Socket.connect(hostileServer, port: 7000, options: passive, timeout: 20_000, driver: b.at)
            try await s.send(request)
            let r = await drainAll(s, timeout: 15_000)
            let exact = r.bytes == response
            #expect(exact, "got \(r.bytes.count) of \(response.count) bytes")
            #expect(r.error.reason == .closed, "the stream ended with \(atom(r.error))")
            s.close()
        }
        let sent = sink.bytes == request
        #expect(sent, "the module got \(sink.bytes.count) of \(request.count) request bytes")
    }
}
