import Foundation
import GenTCPTLS
import Testing
import TLSTestSupport

@Suite("TLS engine against openssl s_server and s_client on 127.0.0.1", .enabled(if: skipReason == nil, "\(skipReason ?? "")"))
struct RealPeerTests {
    func startServer(_ pki: TestPKI, certificate: String = "localhost", _ extra: [String]) throws -> (OpenSSLPeer, UInt16) {
        let server = try OpenSSLPeer(arguments: [
            "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-cert", pki.pem(certificate),
            "-key", pki.key(certificate),
        ] + extra)
        return (server, try server.acceptPort())
    }

    @Test("client engine to s_server -rev: version, ALPN (server order), data, clean close", arguments: [TLSVersion.v1_3, .v1_2])
    func clientToServer(version: TLSVersion) throws {
        let pki = try TestPKI.get()
        let (server, port) = try startServer(pki, ["-rev", "-alpn", "h2,http/1.1", version == .v1_3 ? "-tls1_3" : "-tls1_2"])
        let engine = try TLSEngine(configuration: .testClient(pki, alpn: ["http/1.1", "h2"]), host: "localhost")
        var pump = SocketPump(engine: engine, socket: try LoopbackSocket.connect(port: port))
        try pump.handshake()
        #expect(engine.protocolVersion == version)
        #expect(engine.negotiatedProtocol == "h2")
        #expect(engine.cipherSuite != nil)
        #expect(engine.peerCertificate?.first == 0x30)
        try pump.write(Array("hello tls\n".utf8))
        let (reply, end) = try pump.read(count: 10)
        #expect(String(decoding: reply, as: UTF8.self) == "slt olleh\n" && end == nil)
        try pump.write(Array("CLOSE\n".utf8))
        let (_, ending) = try pump.readToEnd()
        #expect(ending == .closed)
        engine.close()
        try pump.flush()
        pump.socket.shutdownWrite()
        let log = server.outputToEnd()
        #expect(log.contains("ALPN protocols selected: h2"))
    }

    @Test("s_server killed mid-connection: truncated, not closed")
    func serverKilled() throws {
        let pki = try TestPKI.get()
        let (server, port) = try startServer(pki, ["-rev"])
        let engine = try TLSEngine(configuration: .testClient(pki), host: "127.0.0.1")
        var pump = SocketPump(engine: engine, socket: try LoopbackSocket.connect(port: port))
        try pump.handshake()
        try pump.write(Array("abc\n".utf8))
        #expect(try pump.read(count: 4).0 == Array("cba\n".utf8))
        server.kill()
        let (_, end) = try pump.readToEnd()
        #expect(end == .truncated)
        #expect(engine.state == .truncated)
    }

    @Test("s_server -Verify: a client certificate from the CA is accepted", arguments: [TLSVersion.v1_3, .v1_2])
    func mutualTLS(version: TLSVersion) throws {
        let pki = try TestPKI.get()
        let (server, port) = try startServer(pki, ["-rev", "-Verify", "1", "-CAfile", pki.pem("ca"), "-verify_return_error"])
        let engine = try TLSEngine(
            configuration: .testClient(pki, maximum: version, certificate: "client"), host: "localhost")
        var pump = SocketPump(engine: engine, socket: try LoopbackSocket.connect(port: port))
        try pump.handshake()
        try pump.write(Array("mutual\n".utf8))
        #expect(try pump.read(count: 7).0 == Array("lautum\n".utf8))
        engine.close()
        try pump.flush()
        pump.socket.shutdownWrite()
        server.kill()
    }

    @Test("s_server with a refused certificate: our alert, and s_server receives it", arguments: [
        ("wrong", TLSAlert.handshakeFailure, "handshake failure"),
        ("selfsigned", .badCertificate, "bad certificate"),
        ("expired", .certificateExpired, "certificate expired"),
    ])
    func refusedServer(certificate: String, alert: TLSAlert, logged: String) throws {
        let pki = try TestPKI.get()
        let (server, port) = try startServer(pki, certificate: certificate, ["-rev"])
        let engine = try TLSEngine(configuration: .testClient(pki), host: "localhost")
        var pump = SocketPump(engine: engine, socket: try LoopbackSocket.connect(port: port))
        #expect(throws: TLSError.alert(alert, .generated)) { try pump.handshake() }
        try pump.flush()  // the alert
        pump.socket.shutdownWrite()
        let log = server.outputToEnd()
        #expect(log.contains(logged), "s_server said: \(log)")
    }

    @Test("s_client to a server engine: SNI, ALPN, data, close_notify", arguments: [TLSVersion.v1_3, .v1_2])
    func serverEngine(version: TLSVersion) throws {
        let pki = try TestPKI.get()
        let listener = try LoopbackListener()
        let client = try OpenSSLPeer(arguments: [
            "s_client", "-connect", "127.0.0.1:\(listener.port)", "-servername", "localhost", "-CAfile", pki.pem("ca"),
            "-verify_return_error", "-verify_hostname", "localhost", "-alpn", "http/1.1,h2", "-quiet",
            version == .v1_3 ? "-tls1_3" : "-tls1_2",
        ])
        client.input.fileHandleForWriting.write(Data("hello server\n".utf8))
        let engine = try TLSEngine(configuration: .testServer(pki, alpn: ["h2", "http/1.1"]))
        var pump = SocketPump(engine: engine, socket: try listener.accept())
        try pump.handshake()
        #expect(engine.serverName == "localhost")
        #expect(engine.negotiatedProtocol == "h2")
        #expect(engine.protocolVersion == version)
        let (request, _) = try pump.read(count: 13)
        #expect(String(decoding: request, as: UTF8.self) == "hello server\n")
        try pump.write(Array("hello client\n".utf8))
        engine.close()
        try pump.flush()
        pump.socket.shutdownWrite()
        let output = client.outputToEnd()
        #expect(output.contains("hello client"), "s_client said: \(output)")
    }

    @Test("s_client with a client certificate to a server engine that requires one")
    func serverEngineMutual() throws {
        let pki = try TestPKI.get()
        let listener = try LoopbackListener()
        let client = try OpenSSLPeer(arguments: [
            "s_client", "-connect", "127.0.0.1:\(listener.port)", "-CAfile", pki.pem("ca"), "-verify_return_error",
            "-cert", pki.pem("client"), "-key", pki.key("client"), "-quiet",
        ])
        client.input.fileHandleForWriting.write(Data("x\n".utf8))
        let engine = try TLSEngine(configuration: .testServer(pki, clientAuthentication: .required))
        var pump = SocketPump(engine: engine, socket: try listener.accept())
        try pump.handshake()
        #expect(try pump.read(count: 2).0 == Array("x\n".utf8))
        #expect(engine.peerCertificate?.first == 0x30)
        #expect(engine.serverName == nil)  // s_client sends no SNI for an IP address
        engine.close()
        try pump.flush()
        pump.socket.shutdownWrite()
        _ = client.outputToEnd()
    }

    @Test("s_client with an untrusted client certificate: unknown_ca generated by the server engine")
    func serverEngineRogueClient() throws {
        let pki = try TestPKI.get()
        let listener = try LoopbackListener()
        let client = try OpenSSLPeer(arguments: [
            "s_client", "-connect", "127.0.0.1:\(listener.port)", "-CAfile", pki.pem("ca"), "-verify_return_error",
            "-cert", pki.pem("rogue-client"), "-key", pki.key("rogue-client"), "-quiet", "-tls1_2",
        ])
        let engine = try TLSEngine(configuration: .testServer(pki, clientAuthentication: .required))
        var pump = SocketPump(engine: engine, socket: try listener.accept())
        #expect(throws: TLSError.alert(.unknownCA, .generated)) { try pump.handshake() }
        try pump.flush()
        pump.socket.shutdownWrite()
        let output = client.outputToEnd()
        #expect(output.contains("unknown ca"), "s_client said: \(output)")
    }
}
