import Foundation
import GenTCP
import GenTCPAT
import GenTCPCore
import GenTCPModem
import GenTCPPOSIX
import GenTCPSerial
import GenTCPTLS
import ModemSimulator
import Synchronization
import Testing
import TLSTestSupport

// Issue 12: TLS run by the module. The at driver talks to the modem simulator over a fast memory
// line; the simulator terminates TLS for real (a client engine over a loopback socket) against
// `openssl s_server` or GenTCP's own TLS server on 127.0.0.1. What each dialect's module does is
// docs/modem-behaviour.md, ESP-T, SIM-T and BG-T.

/// `openssl s_server` on 127.0.0.1, killed at the end. Its output is read on a thread of its
/// own (a blocking pipe read must not hold a thread of the cooperative pool).
final class SServer: @unchecked Sendable {
    private let process = Foundation.Process()
    private let output = Pipe()
    private let input = Pipe()
    private let collected = Mutex<Data>(Data())

    init(_ pki: TestPKI, certificate: String = "localhost", _ extra: [String]) throws {
        guard let openssl = opensslPath else { throw OffloadTestError("no openssl") }
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = ["s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-cert", pki.pem(certificate),
                             "-key", pki.key(certificate)] + extra
        process.standardOutput = output
        process.standardError = output
        process.standardInput = input
        try process.run()
    }

    private static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    /// The port from s_server's `ACCEPT 127.0.0.1:PORT` line.
    func port() async throws -> Int {
        try await SServer.offPool { [self] in
            while true {
                let text = collected.withLock { String(decoding: $0, as: UTF8.self) }
                if let line = text.split(separator: "\n").first(where: { $0.contains("ACCEPT") }),
                   let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
                    return port
                }
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { throw OffloadTestError("s_server ended before ACCEPT: \(text)") }
                collected.withLock { $0.append(chunk) }
            }
        }
    }

    /// Everything s_server printed, once it has exited (it serves one connection).
    func outputToEnd() async throws -> String {
        try await SServer.offPool { [self] in
            let rest = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return collected.withLock { d in
                d.append(rest)
                return String(decoding: d, as: UTF8.self)
            }
        }
    }

    func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }

    deinit { kill() }
}

struct OffloadTestError: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}

/// The module's store for the test PKI: CA slot 0 and file `UFS:ca.pem` hold the test CA,
/// slot 1 and `UFS:rogue.pem` an unrelated one; PKI slot 0 the client certificate.
func offloadStore(_ pki: TestPKI) -> ModemTLSStore {
    ModemTLSStore(
        caSlots: [0: pki.pem("ca"), 1: pki.pem("rogue-ca")],
        clientSlots: [0: ModemClientCertificate(certificateChainFile: pki.pem("client"), privateKeyFile: pki.key("client"))],
        files: ["UFS:ca.pem": pki.pem("ca"), "UFS:rogue.pem": pki.pem("rogue-ca")])
}

/// Runs `body` as a process with an at driver whose simulated module (links on the posix driver,
/// loopback only) has `store`.
func withOffloadModule(
    _ dialect: ATDialect, store: ModemTLSStore, _ body: @escaping @Sendable (ATDriver) async throws -> Void
) async throws {
    let (host, module) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 4_000_000), bufferSize: 16_384)
    var simulator = ModemSimulatorConfiguration(dialect: dialect, firmware: dialect == .espAT ? "3.3.0.0" : nil, seed: 12)
    simulator.tlsStore = store
    let bridge = ModemLinkBridge(link: module, configuration: simulator, driver: POSIXDriver.shared)
    bridge.modem.powerOn()
    let at = ATDriver(link: host, configuration: ATConfiguration(dialect: dialect, apn: "internet"))
    at.start()
    defer {
        at.stop()
        bridge.close()
    }
    try await GenTCP.Process.run { try await body(at) }
}

/// How each dialect is asked to check the test server: ESP-AT CA slot 0, BG96 file
/// `UFS:ca.pem`; SIM800 cannot be asked (SIM-T2), so it checks nothing.
func offloadTrust(_ dialect: ATDialect) -> OffloadedTLS {
    switch dialect {
    case .espAT: OffloadedTLS(verification: .peer(.slot(0)))
    case .bg96: OffloadedTLS(verification: .peer(.file("UFS:ca.pem")))
    case .sim800: OffloadedTLS(verification: .none)
    }
}

/// The reason `body` failed with, or nil when it succeeded.
func failureReason(_ body: () async throws(SocketError) -> Void) async -> SocketError.Reason? {
    do {
        try await body()
        return nil
    } catch {
        return error.reason
    }
}

/// Reads exactly `count` bytes with `recv(0)`.
func recvExactly(_ s: Socket, _ count: Int, timeout: Timeout = 30_000) async throws -> [UInt8] {
    var got: [UInt8] = []
    while got.count < count { got += try await s.recv(0, timeout: timeout).bytes }
    return got
}

/// Lines of printable text, `count` of them, each `width` bytes plus a newline.
func textLines(_ count: Int, width: Int, seed: Int) -> [[UInt8]] {
    (0..<count).map { i in
        (0..<width).map { j in UInt8(ascii: "a") + UInt8((i &* 7 &+ j &* 13 &+ seed) % 26) } + [10]
    }
}

@Suite("offloaded TLS through the simulated module (issue 12)", .serialized, .timeLimit(.minutes(3)),
       .enabled(if: skipReason == nil, "\(skipReason ?? "")"))
struct OffloadedTLSTests {
    @Test("to openssl s_server -rev: passive and active exchange both ways (6.5 KB each way), peer close; upgrade refused",
          arguments: [ATDialect.espAT, .bg96, .sim800])
    func roundTripSServer(_ dialect: ATDialect) async throws {
        let pki = try TestPKI.get()
        let server = try SServer(pki, ["-rev"])
        let port = try await server.port()
        // A name for the dialects that check it; SIM800 checks nothing and gets the address.
        let host: GenTCP.Host = dialect == .sim800 ? "127.0.0.1" : "localhost"
        try await withOffloadModule(dialect, store: offloadStore(pki)) { at in
            let s = try await Socket.connect(host, port: port, options: [.binary, .active(.passive)],
                                             offloadedTLS: offloadTrust(dialect), timeout: 60_000, driver: at)
            #expect(s.security == .offloaded && s.isSecure)
            #expect(try s.connectionInformation().offloaded)
            // The peer's address is known when the module was given one; a name it resolved itself.
            if dialect == .sim800 {
                #expect(try s.peername() == SocketAddress(.loopbackV4, port: port))
            } else {
                #expect(throws: SocketError.notConnected) { _ = try s.peername() }
            }
            let context = try TLSContext(.client(verify: .none))
            let upgrade = await failureReason { () async throws(SocketError) in
                _ = try await s.upgrade(tls: context)
            }
            #expect(upgrade == .unsupportedUpgrade)
            // Passive: lines out, reversed lines back.
            let lines = textLines(100, width: 64, seed: 1)
            try await s.send(Array(lines.joined()))
            let back = try await recvExactly(s, 100 * 65)
            let expected: [UInt8] = lines.flatMap { line -> [UInt8] in Array(line.dropLast().reversed()) + [10] }
            let same = back == expected
            #expect(same, "got \(back.count) bytes back, equal: \(back == expected)")
            // Active once: one .ssl message.
            try s.setopts(.active(.once))
            try await s.send(Array("offload\n".utf8))
            var active: [UInt8] = []
            while active.count < 8 {
                let m = try await GenTCP.Process.receive(timeout: 30_000)
                guard case .ssl(_, let p) = m else {
                    Issue.record("expected an ssl message, got \(String(describing: m))")
                    break
                }
                active += p.bytes
                if active.count < 8 { try s.setopts(.active(.once)) }
            }
            #expect(active == Array("daolffo\n".utf8))
            // s_server -rev ends the session on CLOSE: the module reports the link closed.
            try s.setopts(.active(.passive))
            try await s.send(Array("CLOSE\n".utf8))
            await #expect(throws: SocketError.closed) { _ = try await s.recv(0, timeout: 30_000) }
            s.close()
        }
        let log = try await server.outputToEnd()
        #expect(!log.contains("error"), "s_server said: \(log)")
    }

    @Test("ESP-AT offers ALPN (AT+CIPSSLCALPN): s_server selects h2, the exchange works, the module names no protocol")
    func espALPN() async throws {
        let pki = try TestPKI.get()
        let server = try SServer(pki, ["-rev", "-alpn", "h2"])
        let port = try await server.port()
        try await withOffloadModule(.espAT, store: offloadStore(pki)) { at in
            let tls = OffloadedTLS(verification: .peer(.slot(0)), applicationProtocols: ["http/1.1", "h2"])
            let s = try await Socket.connect("localhost", port: port, options: [.binary, .active(.passive)],
                                             offloadedTLS: tls, timeout: 60_000, driver: at)
            try await s.send(Array("alpn\n".utf8))
            #expect(try await recvExactly(s, 5) == Array("npla\n".utf8))
            #expect(throws: SocketError(.protocolNotNegotiated)) { _ = try s.negotiatedProtocol() }
            try await s.send(Array("CLOSE\n".utf8))
            await #expect(throws: SocketError.closed) { _ = try await s.recv(0, timeout: 30_000) }
            s.close()
        }
        let log = try await server.outputToEnd()
        #expect(log.contains("ALPN protocols selected: h2"), "s_server said: \(log)")
    }

    @Test("an untrusted server certificate: ESP-AT econnrefused (ERROR, ESP-T5), BG96 eproto (+QSSLOPEN: 0,-1, BG-T7); an empty CA slot the same",
          arguments: [(ATDialect.espAT, OffloadedTLS(verification: .peer(.slot(1))), SocketError.Reason.connectionRefused),
                      (.espAT, OffloadedTLS(verification: .peer(.slot(7))), .connectionRefused),
                      (.bg96, OffloadedTLS(verification: .peer(.file("UFS:rogue.pem"))), .protocolError),
                      (.bg96, OffloadedTLS(verification: .peer(.file("UFS:none.pem"))), .protocolError)])
    func untrusted(_ dialect: ATDialect, _ tls: OffloadedTLS, _ reason: SocketError.Reason) async throws {
        let pki = try TestPKI.get()
        let server = try SServer(pki, ["-rev"])
        let port = try await server.port()
        try await withOffloadModule(dialect, store: offloadStore(pki)) { at in
            let start = ContinuousClock.now
            do {
                let s = try await Socket.connect("localhost", port: port, options: [.binary, .active(.passive)],
                                                 offloadedTLS: tls, timeout: 60_000, driver: at)
                s.close()
                Issue.record("an untrusted server was accepted")
            } catch let error as SocketError {
                #expect(error.reason == reason, "got \(error.reason.atom)")
            }
            #expect(ContinuousClock.now - start < .seconds(30))
            // The link id is free again: a plain socket opens on the same module.
            let l = try ListenSocket.listen(port: 0, options: [.localAddress(.loopbackV4)], driver: POSIXDriver.shared)
            defer { l.close() }
            let plain = try await Socket.connect("127.0.0.1", port: try l.port(), timeout: 30_000, driver: at)
            plain.close()
        }
        server.kill()
    }

    @Test("what the module cannot do is enotsup before any link opens: SIM800 ALPN, CA or SNI; BG96 ALPN or a CA slot; ESP-AT a CA file or an upload; SIM800 an upload",
          arguments: [(ATDialect.sim800, OffloadedTLS(verification: .none, applicationProtocols: ["h2"])),
                      (.sim800, OffloadedTLS(verification: .peer(.slot(0)))),
                      (.sim800, OffloadedTLS(verification: .none, serverName: "localhost")),
                      (.bg96, OffloadedTLS(verification: .none, applicationProtocols: ["h2"])),
                      (.bg96, OffloadedTLS(verification: .peer(.slot(0)))),
                      (.espAT, OffloadedTLS(verification: .peer(.file("UFS:ca.pem")))),
                      (.espAT, OffloadedTLS(verification: .peer(.upload(pem: [1, 2, 3], name: "ca.pem")))),
                      (.sim800, OffloadedTLS(verification: .peer(.upload(pem: [1, 2, 3], name: "ca.pem"))))])
    func notSupported(_ dialect: ATDialect, _ tls: OffloadedTLS) async throws {
        let pki = try TestPKI.get()
        try await withOffloadModule(dialect, store: offloadStore(pki)) { at in
            let reason = await failureReason { () async throws(SocketError) in
                _ = try await Socket.connect("127.0.0.1", port: 9, offloadedTLS: tls, timeout: 30_000, driver: at)
            }
            #expect(reason == .notSupported)
            // Nothing was left behind: a plain socket still opens on the same module.
            let l = try ListenSocket.listen(port: 0, options: [.localAddress(.loopbackV4)], driver: POSIXDriver.shared)
            defer { l.close() }
            let s = try await Socket.connect("127.0.0.1", port: try l.port(), timeout: 30_000, driver: at)
            s.close()
        }
    }

    @Test("hosts, SNI names and ALPN protocols that could inject AT are einval before any byte is written",
          arguments: [ATDialect.espAT, .bg96])
    func injection(_ dialect: ATDialect) async throws {
        let pki = try TestPKI.get()
        try await withOffloadModule(dialect, store: offloadStore(pki)) { at in
            for tls in [OffloadedTLS(verification: .none, serverName: "a\",\"b"),
                        OffloadedTLS(verification: .none, applicationProtocols: ["h2\r\nAT+RST"])] {
                let reason = await failureReason { () async throws(SocketError) in
                    _ = try await Socket.connect("localhost", port: 9, offloadedTLS: tls, timeout: 30_000, driver: at)
                }
                #expect(reason == .invalidArgument)
            }
            let reason = await failureReason { () async throws(SocketError) in
                _ = try await Socket.connect("evil\",443\r\nAT+RST", port: 9, offloadedTLS: OffloadedTLS(verification: .none),
                                             timeout: 30_000, driver: at)
            }
            #expect(reason == .invalidArgument)
        }
    }

    @Test("to GenTCP's own TLS server (ListenSocket.accept(tls:) on posix): bytes both ways, each side closes",
          arguments: [ATDialect.espAT, .bg96, .sim800])
    func ownServer(_ dialect: ATDialect) async throws {
        let pki = try TestPKI.get()
        let serverContext = try TLSContext(.server(certificateChainFile: pki.pem("localhost"), privateKeyFile: pki.key("localhost")))
        try await withOffloadModule(dialect, store: offloadStore(pki)) { at in
            let l = try ListenSocket.listen(port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)],
                                            driver: POSIXDriver.shared)
            defer { l.close() }
            let port = try l.port()
            let upload = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
            let download = (0..<30_000).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ 5) }
            let serverResult = Mutex<String?>(nil)
            let serverDone = GenTCP.Process.spawn {
                do {
                    let p = try await l.accept(tls: serverContext, timeout: 60_000, handshakeTimeout: 60_000)
                    let got = try await recvExactly(p, upload.count)
                    guard got == upload else {
                        serverResult.withLock { $0 = "upload differs (\(got.count) bytes)" }
                        return
                    }
                    try await p.send(download)
                    // The client closes next: a clean end (the module's close sends close_notify).
                    do {
                        let extra = try await p.recv(0, timeout: 60_000)
                        serverResult.withLock { $0 = "unexpected \(extra.count) bytes after the upload" }
                    } catch let error as SocketError {
                        serverResult.withLock { $0 = error.reason == .closed ? "ok" : "ended with \(error.reason.atom)" }
                    }
                    p.close()
                } catch let error as SocketError {
                    serverResult.withLock { $0 = "server failed: \(error.reason.atom)" }
                } catch {
                    serverResult.withLock { $0 = "server failed: \(error)" }
                }
            }
            let host: GenTCP.Host = dialect == .sim800 ? "127.0.0.1" : "localhost"
            let s = try await Socket.connect(host, port: port, options: [.binary, .active(.passive)],
                                             offloadedTLS: offloadTrust(dialect), timeout: 60_000, driver: at)
            try await s.send(upload)
            let got = try await recvExactly(s, download.count, timeout: 60_000)
            let same = got == download
            #expect(same, "download: \(got.count) bytes")
            s.close()
            _ = await serverDone.waitForExit()
            #expect(serverResult.withLock { $0 } == "ok")
        }
    }

    @Test("the server closes with bytes in flight: every byte, then closed (BG96 +QSSLURC: \"closed\" keeps data readable)",
          arguments: [ATDialect.espAT, .bg96])
    func serverClosesAfterData(_ dialect: ATDialect) async throws {
        let pki = try TestPKI.get()
        let serverContext = try TLSContext(.server(certificateChainFile: pki.pem("localhost"), privateKeyFile: pki.key("localhost")))
        try await withOffloadModule(dialect, store: offloadStore(pki)) { at in
            let l = try ListenSocket.listen(port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)],
                                            driver: POSIXDriver.shared)
            defer { l.close() }
            let port = try l.port()
            let data = (0..<12_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
            GenTCP.Process.spawn {
                let p = try await l.accept(tls: serverContext, timeout: 60_000, handshakeTimeout: 60_000)
                try await p.send(data)
                p.close()
            }
            let s = try await Socket.connect("localhost", port: port, options: [.binary, .active(.passive)],
                                             offloadedTLS: offloadTrust(dialect), timeout: 60_000, driver: at)
            let r = await drainAll(s, timeout: 60_000)
            let exact = r.bytes == data
            #expect(exact, "got \(r.bytes.count) of \(data.count) bytes")
            #expect(r.error.reason == .closed, "ended with \(r.error.reason.atom)")
            s.close()
        }
    }

    @Test("SIM800: AT+CIPSSL is module-wide, so a plain connect after a TLS one turns it off first: the plain link carries cleartext (SIM-T1)")
    func sim800PlainAfterTLS() async throws {
        let pki = try TestPKI.get()
        let server = try SServer(pki, ["-rev"])
        let port = try await server.port()
        try await withOffloadModule(.sim800, store: offloadStore(pki)) { at in
            let secure = try await Socket.connect("127.0.0.1", port: port, options: [.binary, .active(.passive)],
                                                  offloadedTLS: offloadTrust(.sim800), timeout: 60_000, driver: at)
            try await secure.send(Array("tls\n".utf8))
            #expect(try await recvExactly(secure, 4) == Array("slt\n".utf8))
            // A plain echo peer on the kernel: it must see cleartext, not a ClientHello.
            let l = try ListenSocket.listen(port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)],
                                            driver: POSIXDriver.shared)
            defer { l.close() }
            let seen = Mutex<[UInt8]>([])
            let peer = GenTCP.Process.spawn {
                let p = try await l.accept(timeout: 30_000)
                let got = try await p.recv(5, timeout: 30_000)
                seen.withLock { $0 = got.bytes }
                try await p.send(got.bytes)
                p.close()
            }
            let plain = try await Socket.connect("127.0.0.1", port: try l.port(), options: [.binary, .active(.passive)],
                                                 timeout: 30_000, driver: at)
            #expect(plain.security == .plain)
            try await plain.send(Array("plain".utf8))
            #expect(try await recvExactly(plain, 5) == Array("plain".utf8))
            _ = await peer.waitForExit()
            #expect(seen.withLock { $0 } == Array("plain".utf8))
            plain.close()
            // The TLS link is still TLS.
            try await secure.send(Array("CLOSE\n".utf8))
            await #expect(throws: SocketError.closed) { _ = try await secure.recv(0, timeout: 30_000) }
            secure.close()
        }
        server.kill()
    }

    @Test("active true and active N on an offloaded socket: .ssl messages in order, .sslPassive after N, .sslClosed at the end",
          arguments: [ATDialect.espAT, .bg96])
    func activeModes(_ dialect: ATDialect) async throws {
        let pki = try TestPKI.get()
        let serverContext = try TLSContext(.server(certificateChainFile: pki.pem("localhost"), privateKeyFile: pki.key("localhost")))
        try await withOffloadModule(dialect, store: offloadStore(pki)) { at in
            let l = try ListenSocket.listen(port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)],
                                            driver: POSIXDriver.shared)
            defer { l.close() }
            let port = try l.port()
            let data = (0..<9_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 3) }
            GenTCP.Process.spawn {
                let p = try await l.accept(tls: serverContext, timeout: 60_000, handshakeTimeout: 60_000)
                _ = try await p.recv(1, timeout: 60_000)  // the client's go
                try await p.send(data)
                p.close()
            }
            let s = try await Socket.connect("localhost", port: port, options: [.binary, .active(.count(2))],
                                             offloadedTLS: offloadTrust(dialect), timeout: 60_000, driver: at)
            try await s.send([1])
            var got: [UInt8] = []
            var events: [String] = []
            while events.last != "ssl_closed" {
                guard let m = try? await GenTCP.Process.receive(timeout: 30_000) else {
                    events.append("(nothing within 30 s)")
                    break
                }
                switch m {
                case .ssl(_, let p): got += p.bytes
                case .sslPassive:
                    events.append("ssl_passive")
                    try s.setopts(.active(.active))
                case .sslClosed: events.append("ssl_closed")
                case .sslError(_, let e): events.append("ssl_error \(e.reason.atom)")
                case .tcp, .tcpClosed, .tcpError, .tcpPassive: events.append("a tcp message on a secure socket")
                default: break
                }
            }
            let exact = got == data
            #expect(exact, "got \(got.count) of \(data.count) bytes")
            #expect(events == ["ssl_passive", "ssl_closed"], "events: \(events)")
            s.close()
        }
    }

    @Test("BG96 uploads the CA (AT+QFDEL, AT+QFUPL, BG-T8) and checks s_server against it; twice on one module (the file is replaced); a rogue CA upload is eproto")
    func bg96Upload() async throws {
        let pki = try TestPKI.get()
        let ca = Array(try String(contentsOfFile: pki.pem("ca"), encoding: .utf8).utf8)
        let rogue = Array(try String(contentsOfFile: pki.pem("rogue-ca"), encoding: .utf8).utf8)
        // An empty store: the module trusts only what the driver uploads.
        try await withOffloadModule(.bg96, store: ModemTLSStore()) { at in
            for round in 0..<2 {
                let server = try SServer(pki, ["-rev"])
                let port = try await server.port()
                let tls = OffloadedTLS(verification: .peer(.upload(pem: ca, name: "UFS:uploaded.pem")))
                let s = try await Socket.connect("localhost", port: port, options: [.binary, .active(.passive)],
                                                 offloadedTLS: tls, timeout: 60_000, driver: at)
                try await s.send(Array("upload \(round)\n".utf8))
                #expect(try await recvExactly(s, 9) == Array("\(round) daolpu\n".utf8))
                try await s.send(Array("CLOSE\n".utf8))
                await #expect(throws: SocketError.closed) { _ = try await s.recv(0, timeout: 30_000) }
                s.close()
                server.kill()
            }
            let server = try SServer(pki, ["-rev"])
            let port = try await server.port()
            let reason = await failureReason { () async throws(SocketError) in
                _ = try await Socket.connect("localhost", port: port,
                                             offloadedTLS: OffloadedTLS(verification: .peer(.upload(pem: rogue, name: "UFS:uploaded.pem"))),
                                             timeout: 60_000, driver: at)
            }
            #expect(reason == .protocolError)
            server.kill()
        }
    }
}
