import GenTCP
import GenTCPAT
import GenTCPModem
import GenTCPPOSIX
import GenTCPSerial
import GenTCPTLS
import ModemSimulator
import TLSTestSupport
import Testing

/// Host TLS over a modem's plain TCP link (tls-semantics.md §10, "at, any modem, plain TCP
/// link"): our OpenSSL engine on the host, the at driver underneath, the simulated module in each
/// dialect opening a real loopback socket to `openssl s_server` on 127.0.0.1. The serial line is
/// a fast memory line on the real clock.
@Suite("TLS through each AT dialect to openssl s_server on 127.0.0.1", .enabled(if: skipReason == nil, "\(skipReason ?? "")"),
       .timeLimit(.minutes(3)))
struct ATTLSTests {
    /// The module (`dialect`, fragmented output with URC noise) on a memory line, its links
    /// real loopback sockets, and our at driver on the other end; stopped after `body`.
    static func withModem(_ dialect: ATDialect, _ body: @escaping @Sendable (ATDriver) async throws -> Void) async throws {
        let (host, module) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 921_600), bufferSize: 16_384)
        let simulator = ModemSimulatorConfiguration(
            dialect: dialect, firmware: dialect == .espAT ? "3.3.0.0" : nil, seed: 11,
            faults: ModemFaults(maxFragmentLength: 64, noiseProbability: 0.05))
        let bridge = ModemLinkBridge(link: module, configuration: simulator, driver: POSIXDriver.shared)
        bridge.modem.powerOn()
        let at = ATDriver(link: host, configuration: ATConfiguration(dialect: dialect, apn: "internet"))
        at.start()
        defer {
            at.stop()
            bridge.close()
        }
        try await Process.run { try await body(at) }
    }

    static func client(_ pki: TestPKI, ca: String = "ca") throws -> TLSContext {
        try TLSContext(.client(trustRoots: .file(pki.pem(ca)), serverNameIndication: .name("localhost"),
                               applicationProtocols: ["http/1.1", "h2"]))
    }

    static let dialects: [ATDialect] = [.espAT, .sim800, .bg96]

    @Test("handshake, ALPN by the server's order, data both ways (s_server -rev), its close_notify is a clean closed",
          arguments: dialects)
    func serverCloses(dialect: ATDialect) async throws {
        let pki = try TestPKI.get()
        let server = try await OpenSSLServer.start(pki, ["-rev", "-alpn", "h2,http/1.1"])
        defer { server.process.kill() }
        try await Self.withModem(dialect) { at in
            let s = try await Socket.connect("127.0.0.1", port: server.port, options: [.binary, .active(.passive)],
                                             tls: try Self.client(pki), timeout: 120_000, driver: at)
            defer { s.close() }
            #expect(try s.negotiatedProtocol() == "h2")
            #expect(try s.connectionInformation().protocolVersion == .v1_3)
            try await s.send("hello through the modem\n")
            #expect(try await s.recv(24, timeout: 120_000).bytes == Array("medom eht hguorht olleh\n".utf8))
            // `CLOSE` makes s_server -rev end the connection with close_notify.
            try await s.send("CLOSE\n")
            let (rest, end) = await readToEnd(s)
            #expect(rest.isEmpty, "after CLOSE: \(rest)")
            #expect(end == SocketError.closed, "got \(end)")
        }
        try await server.process.line(containing: "ALPN protocols selected: h2")
    }

    /// s_server's `q` closes its socket without close_notify (`openssl s_client` reports
    /// "unexpected eof while reading" for it): over the modem too, GenTCP says `truncated`.
    @Test("s_server's q (its socket closed without close_notify) after data: the data, then truncated", arguments: dialects)
    func serverCutsConnection(dialect: ATDialect) async throws {
        let pki = try TestPKI.get()
        let server = try await OpenSSLServer.start(pki, [])
        defer { server.process.kill() }
        try await Self.withModem(dialect) { at in
            let s = try await Socket.connect("127.0.0.1", port: server.port, options: [.binary, .active(.passive)],
                                             tls: try Self.client(pki), timeout: 120_000, driver: at)
            defer { s.close() }
            try await server.process.line(containing: "CIPHER is")
            server.process.type("hello from s_server\n")
            #expect(try await s.recv(20, timeout: 120_000).bytes == Array("hello from s_server\n".utf8))
            server.process.type("q\n")
            let (rest, end) = await readToEnd(s)
            #expect(rest.isEmpty)
            #expect(end.reason == .truncated, "got \(end)")
        }
    }

    @Test("our close over the modem reaches s_server as close_notify (no unexpected EOF); a larger reply arrives whole",
          arguments: dialects)
    func clientCloses(dialect: ATDialect) async throws {
        let pki = try TestPKI.get()
        let server = try await OpenSSLServer.start(pki, ["-alpn", "h2,http/1.1"])
        defer { server.process.kill() }
        let reply = String(repeating: "0123456789abcdef", count: 256) + "\n"
        try await Self.withModem(dialect) { at in
            let s = try await Socket.connect("127.0.0.1", port: server.port, options: [.binary, .active(.passive)],
                                             tls: try Self.client(pki), timeout: 120_000, driver: at)
            try await server.process.line(containing: "CIPHER is")
            server.process.type(reply)
            #expect(try await s.recv(reply.utf8.count, timeout: 120_000).bytes == Array(reply.utf8))
            try await s.send("bye\n")
            try await server.process.line(containing: "bye")
            s.close()
            // Before the modem stops: the close_notify must have crossed it.
            try await server.process.line(containing: "CONNECTION CLOSED")
        }
        #expect(!server.process.transcript.contains("unexpected eof"), "s_server said:\n\(server.process.transcript)")
    }

    @Test("an untrusted s_server through the modem: unknown_ca generated by us, received by s_server", arguments: dialects)
    func untrusted(dialect: ATDialect) async throws {
        let pki = try TestPKI.get()
        let server = try await OpenSSLServer.start(pki, [])
        defer { server.process.kill() }
        try await Self.withModem(dialect) { at in
            let error = await #expect(throws: SocketError.self) {
                _ = try await Socket.connect("127.0.0.1", port: server.port, options: [.binary],
                                             tls: try Self.client(pki, ca: "rogue-ca"), timeout: 120_000, driver: at)
            }
            #expect(error?.alert == .unknownCA && error?.alertOrigin == .generated, "got \(String(describing: error))")
            // Before the modem stops: the alert must have crossed it.
            try await server.process.line(containing: "unknown ca")
        }
    }
}
