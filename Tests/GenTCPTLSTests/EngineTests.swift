import GenTCPTLS
import Testing
import TLSTestSupport

@Suite("TLS engine to engine, in memory", .enabled(if: skipReason == nil, "\(skipReason ?? "")"))
struct EngineTests {
    @Test("handshake: version, cipher, SNI, peer certificate, data both ways", arguments: [TLSVersion.v1_3, .v1_2])
    func handshake(version: TLSVersion) throws {
        let pki = try TestPKI.get()
        var pair = try EnginePair(
            client: .testClient(pki, maximum: version), server: .testServer(pki))
        pair.handshake()
        #expect(pair.clientError == nil && pair.serverError == nil)
        #expect(pair.client.state == .established && pair.server.state == .established)
        #expect(pair.client.protocolVersion == version && pair.server.protocolVersion == version)
        #expect(version.otpName == (version == .v1_3 ? "tlsv1.3" : "tlsv1.2"))
        if version == .v1_3 {
            #expect(pair.client.cipherSuite == "TLS_AES_256_GCM_SHA384")
        } else {
            #expect(pair.client.cipherSuite == "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")
        }
        #expect(pair.server.serverName == "localhost")
        #expect(pair.client.peerCertificate?.first == 0x30)  // a DER SEQUENCE
        #expect(pair.server.peerCertificate == nil)  // OTP's no_peercert
        #expect(pair.client.negotiatedProtocol == nil && pair.server.negotiatedProtocol == nil)
        #expect(try pair.client.writePlaintext(Array("ping".utf8)) == 4)
        #expect(try pair.server.writePlaintext(Array("pong".utf8)) == 4)
        pair.transfer()
        let (atClient, atServer) = pair.settle()
        #expect(atClient == Array("pong".utf8) && atServer == Array("ping".utf8))
    }

    @Test("an IP address host: no SNI, the address checked against the IP SANs")
    func ipAddressHost() throws {
        let pki = try TestPKI.get()
        var good = try EnginePair(client: .testClient(pki), server: .testServer(pki), host: "127.0.0.1")
        good.handshake()
        #expect(good.clientError == nil && good.client.state == .established)
        #expect(good.server.serverName == nil)
        var bad = try EnginePair(client: .testClient(pki), server: .testServer(pki, certificate: "wrong"), host: "127.0.0.1")
        bad.handshake()
        #expect(bad.clientError == .alert(.handshakeFailure, .generated))
        #expect(bad.serverError == .alert(.handshakeFailure, .received))
    }

    @Test("ALPN: the server's order wins; none configured on one side: not negotiated")
    func alpn() throws {
        let pki = try TestPKI.get()
        var pair = try EnginePair(
            client: .testClient(pki, alpn: ["http/1.1", "h2"]), server: .testServer(pki, alpn: ["h2", "http/1.1"]))
        pair.handshake()
        #expect(pair.client.negotiatedProtocol == "h2" && pair.server.negotiatedProtocol == "h2")
        var clientOnly = try EnginePair(client: .testClient(pki, alpn: ["h2"]), server: .testServer(pki))
        clientOnly.handshake()
        #expect(clientOnly.client.state == .established)
        #expect(clientOnly.client.negotiatedProtocol == nil && clientOnly.server.negotiatedProtocol == nil)
        var serverOnly = try EnginePair(client: .testClient(pki), server: .testServer(pki, alpn: ["h2"]))
        serverOnly.handshake()
        #expect(serverOnly.client.state == .established)
        #expect(serverOnly.client.negotiatedProtocol == nil && serverOnly.server.negotiatedProtocol == nil)
    }

    /// One row of the reference's §3 table: what the client and the server see.
    struct FailureRow: Sendable, CustomTestStringConvertible {
        let name: String
        let client: @Sendable (TestPKI) -> TLSConfiguration
        let server: @Sendable (TestPKI) -> TLSConfiguration
        let host: String
        let clientError: TLSError
        let serverError: TLSError
        var testDescription: String { name }
    }

    static let failureRows: [FailureRow] = [
        FailureRow(
            name: "server certificate from an untrusted CA", client: { .testClient($0, ca: "rogue-ca") },
            server: { .testServer($0) }, host: "localhost",
            clientError: .alert(.unknownCA, .generated), serverError: .alert(.unknownCA, .received)),
        FailureRow(
            name: "expired server certificate", client: { .testClient($0) },
            server: { .testServer($0, certificate: "expired") }, host: "localhost",
            clientError: .alert(.certificateExpired, .generated), serverError: .alert(.certificateExpired, .received)),
        FailureRow(
            name: "name mismatch", client: { .testClient($0) }, server: { .testServer($0, certificate: "wrong") },
            host: "localhost",
            clientError: .alert(.handshakeFailure, .generated), serverError: .alert(.handshakeFailure, .received)),
        FailureRow(
            name: "SNI option names another host", client: { .testClient($0, sni: .name("other.example")) },
            server: { .testServer($0) }, host: "localhost",
            clientError: .alert(.handshakeFailure, .generated), serverError: .alert(.handshakeFailure, .received)),
        FailureRow(
            name: "self-signed leaf", client: { .testClient($0) }, server: { .testServer($0, certificate: "selfsigned") },
            host: "localhost",
            clientError: .alert(.badCertificate, .generated), serverError: .alert(.badCertificate, .received)),
        FailureRow(
            name: "no common ALPN protocol", client: { .testClient($0, alpn: ["http/1.1"]) },
            server: { .testServer($0, alpn: ["h2"]) }, host: "localhost",
            clientError: .alert(.noApplicationProtocol, .received), serverError: .alert(.noApplicationProtocol, .generated)),
        FailureRow(
            name: "no common version", client: { .testClient($0, maximum: .v1_2) },
            server: { .testServer($0, minimum: .v1_3) }, host: "localhost",
            clientError: .alert(.protocolVersion, .received), serverError: .alert(.protocolVersion, .generated)),
        FailureRow(
            name: "client certificate missing, TLS 1.2", client: { .testClient($0, maximum: .v1_2) },
            server: { .testServer($0, clientAuthentication: .required) }, host: "localhost",
            clientError: .alert(.handshakeFailure, .received), serverError: .alert(.handshakeFailure, .generated)),
        FailureRow(
            name: "client certificate missing, TLS 1.3 (after the client's handshake)", client: { .testClient($0) },
            server: { .testServer($0, clientAuthentication: .required) }, host: "localhost",
            clientError: .alert(.certificateRequired, .received), serverError: .alert(.certificateRequired, .generated)),
        FailureRow(
            name: "client certificate untrusted, TLS 1.2", client: { .testClient($0, maximum: .v1_2, certificate: "rogue-client") },
            server: { .testServer($0, clientAuthentication: .required) }, host: "localhost",
            clientError: .alert(.unknownCA, .received), serverError: .alert(.unknownCA, .generated)),
        FailureRow(
            name: "client certificate untrusted, TLS 1.3 (after the client's handshake)",
            client: { .testClient($0, certificate: "rogue-client") },
            server: { .testServer($0, clientAuthentication: .optional) }, host: "localhost",
            clientError: .alert(.unknownCA, .received), serverError: .alert(.unknownCA, .generated)),
    ]

    @Test("handshake failures: the alert and the side that raised it (§3)", arguments: failureRows)
    func failure(row: FailureRow) throws {
        let pki = try TestPKI.get()
        var pair = try EnginePair(client: row.client(pki), server: row.server(pki), host: row.host)
        pair.handshake()
        _ = pair.settle()
        #expect(pair.clientError == row.clientError, "client: \(pair.client.failureDetail ?? "-")")
        #expect(pair.serverError == row.serverError, "server: \(pair.server.failureDetail ?? "-")")
        #expect(pair.client.state == .failed(row.clientError))
    }

    @Test("TLS 1.3 client authentication is asynchronous: the client's handshake completes first")
    func tls13ClientCertificateLate() throws {
        let pki = try TestPKI.get()
        var pair = try EnginePair(client: .testClient(pki), server: .testServer(pki, clientAuthentication: .required))
        pair.handshake()
        #expect(pair.clientError == nil)
        #expect(pair.client.state == .established)
        #expect(pair.serverError == .alert(.certificateRequired, .generated))
    }

    @Test("mutual TLS: each side sees the other's certificate", arguments: [TLSVersion.v1_3, .v1_2])
    func mutualTLS(version: TLSVersion) throws {
        let pki = try TestPKI.get()
        var pair = try EnginePair(
            client: .testClient(pki, maximum: version, certificate: "client"),
            server: .testServer(pki, clientAuthentication: .required))
        pair.handshake()
        #expect(try pair.client.writePlaintext(Array("hi".utf8)) == 2)
        pair.transfer()
        let (_, atServer) = pair.settle()
        #expect(pair.clientError == nil && pair.serverError == nil)
        #expect(atServer == Array("hi".utf8))
        #expect(pair.server.peerCertificate?.first == 0x30)
        #expect(pair.client.peerCertificate != pair.server.peerCertificate)
    }

    @Test("verify: .none accepts what verification refuses", arguments: ["selfsigned", "expired", "wrong"])
    func verifyNone(certificate: String) throws {
        let pki = try TestPKI.get()
        var pair = try EnginePair(
            client: .testClient(pki, verify: .none), server: .testServer(pki, certificate: certificate))
        pair.handshake()
        #expect(pair.clientError == nil && pair.client.state == .established)
    }

    @Test("the peer's close_notify is a clean end; a transport end without it is truncation")
    func closeNotifyAndTruncation() throws {
        let pki = try TestPKI.get()
        var clean = try EnginePair(client: .testClient(pki), server: .testServer(pki))
        clean.handshake()
        #expect(try clean.server.writePlaintext(Array("last words".utf8)) == 10)
        clean.server.close()
        #expect(clean.server.isCloseNotifySent)
        #expect(throws: TLSError.closed) { try clean.server.writePlaintext(Array("more".utf8)) }
        clean.transfer()
        clean.client.receiveEndOfStream()
        let (bytes, end) = try clean.client.readPlaintext()
        #expect(bytes == Array("last words".utf8) && end == nil)
        #expect(try clean.client.readPlaintext().end == .closed)
        #expect(clean.client.state == .closed)
        #expect(throws: TLSError.closed) { try clean.client.writePlaintext(Array("late".utf8)) }

        var cut = try EnginePair(client: .testClient(pki), server: .testServer(pki))
        cut.handshake()
        #expect(try cut.server.writePlaintext(Array("partial".utf8)) == 7)
        cut.transfer()
        cut.client.receiveEndOfStream()
        #expect(try cut.client.readPlaintext().bytes == Array("partial".utf8))
        #expect(try cut.client.readPlaintext().end == .truncated)
        #expect(cut.client.state == .truncated)
        #expect(throws: TLSError.truncated) { try cut.client.writePlaintext(Array("late".utf8)) }
    }

    @Test("the transport ending during the handshake: closed")
    func endDuringHandshake() throws {
        let pki = try TestPKI.get()
        let client = try TLSEngine(configuration: .testClient(pki), host: "localhost")
        #expect(try client.handshake() == false)
        #expect(!client.takeCiphertext().isEmpty)  // the ClientHello
        client.receiveEndOfStream()
        #expect(throws: TLSError.closed) { try client.handshake() }
        #expect(client.state == .failed(.closed))
    }

    @Test("a plaintext answer to the ClientHello: a typed alert, generated")
    func plaintextPeer() throws {
        let pki = try TestPKI.get()
        let client = try TLSEngine(configuration: .testClient(pki), host: "localhost")
        _ = try client.handshake()
        _ = client.takeCiphertext()
        client.receiveCiphertext(Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".utf8))
        let error = #expect(throws: TLSError.self) { try client.handshake() }
        #expect(error == .alert(.unexpectedMessage, .generated), "\(client.failureDetail ?? "-")")
    }

    @Test("1 MiB each way, byte-exact, never more ciphertext buffered than the limits", arguments: [TLSVersion.v1_3, .v1_2])
    func bulk(version: TLSVersion) throws {
        let pki = try TestPKI.get()
        var pair = try EnginePair(client: .testClient(pki, maximum: version), server: .testServer(pki))
        pair.handshake()
        let size = 1 << 20
        let upload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        let download = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ 5) }
        var sentUp = 0, sentDown = 0
        var atServer: [UInt8] = [], atClient: [UInt8] = []
        var rounds = 0
        while (atServer.count < size || atClient.count < size) && rounds < 100_000 {
            rounds += 1
            if sentUp < size { sentUp += try upload[sentUp...].withUnsafeBytes { try pair.client.writePlaintext($0) } }
            if sentDown < size { sentDown += try download[sentDown...].withUnsafeBytes { try pair.server.writePlaintext($0) } }
            pair.transfer()
            atServer += try pair.server.readPlaintext().bytes
            atClient += try pair.client.readPlaintext().bytes
        }
        #expect(atServer == upload && atClient == download)
        let limits = TLSBufferLimits()
        #expect(pair.largestPendingCiphertext <= limits.outboundCiphertext + 2 * TLSBufferLimits.largestRecord)
    }

    @Test("garbage after the handshake: a typed alert, memory bounded", arguments: [0, 1, 2])
    func garbage(seed: UInt64) throws {
        let pki = try TestPKI.get()
        var pair = try EnginePair(client: .testClient(pki), server: .testServer(pki))
        pair.handshake()
        _ = pair.settle()
        var generator = SeededGenerator(seed: seed)
        var offered = 0
        var error: TLSError?
        while offered < 4 << 20 && error == nil {
            let chunk = (0..<8192).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let taken = pair.server.receiveCiphertext(chunk)
            #expect(taken <= TLSBufferLimits().inboundCiphertext)
            offered += chunk.count
            do { _ = try pair.server.readPlaintext() } catch let failure { error = failure }
            if taken == 0 && error == nil { break }
        }
        guard case .alert(_, .generated) = error else {
            Issue.record("expected a generated alert, got \(String(describing: error)) after \(offered) bytes")
            return
        }
        #expect(pair.server.receiveCiphertext(Array(repeating: 0, count: 10)) == 0)
    }

    @Test("a ClientHello announcing a 16 MiB handshake message: a typed alert, memory bounded")
    func oversizedHandshake() throws {
        let pki = try TestPKI.get()
        let server = try TLSEngine(configuration: .testServer(pki))
        // Handshake records (type 22, TLS 1.0 record version), the first carrying a ClientHello
        // header whose 24-bit length says 16 MiB - 1; then filler records, as a hostile client
        // would keep sending.
        func record(_ body: [UInt8]) -> [UInt8] {
            [22, 3, 1, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
        }
        var input = record([1, 0xFF, 0xFF, 0xFF] + Array(repeating: 0x41, count: 16_000))
        for _ in 0..<300 { input += record(Array(repeating: 0x41, count: 16_000)) }
        var offered = 0
        var error: TLSError?
        while offered < input.count && error == nil {
            let taken = server.receiveCiphertext(input[offered...])
            #expect(server.inboundCapacity <= TLSBufferLimits().inboundCiphertext)
            offered += taken
            do { _ = try server.handshake() } catch let failure { error = failure }
            _ = server.takeCiphertext()
            if taken == 0 && error == nil { break }
        }
        guard case .alert(_, .generated) = error else {
            Issue.record("expected a generated alert, got \(String(describing: error)) after \(offered) of \(input.count) bytes")
            return
        }
        #expect(offered < input.count, "the engine refused the message before taking all of it")
    }

    @Test("a corrupted record: bad_record_mac generated, and received by the sender")
    func corruptedRecord() throws {
        let pki = try TestPKI.get()
        var pair = try EnginePair(client: .testClient(pki), server: .testServer(pki))
        pair.handshake()
        _ = pair.settle()
        #expect(try pair.client.writePlaintext(Array(repeating: 0x61, count: 100)) == 100)
        var record = pair.client.takeCiphertext()
        record[record.count - 3] ^= 0x40
        pair.server.receiveCiphertext(record)
        #expect(throws: TLSError.alert(.badRecordMAC, .generated)) { try pair.server.readPlaintext() }
        pair.client.receiveCiphertext(pair.server.takeCiphertext())
        #expect(throws: TLSError.alert(.badRecordMAC, .received)) { try pair.client.readPlaintext() }
    }

    @Test("a truncated record at the transport's end: truncation, not data")
    func truncatedRecord() throws {
        let pki = try TestPKI.get()
        var pair = try EnginePair(client: .testClient(pki), server: .testServer(pki))
        pair.handshake()
        _ = pair.settle()
        #expect(try pair.client.writePlaintext(Array(repeating: 0x62, count: 100)) == 100)
        let record = pair.client.takeCiphertext()
        pair.server.receiveCiphertext(record.dropLast(10))
        pair.server.receiveEndOfStream()
        #expect(try pair.server.readPlaintext().end == .truncated)
    }
}

@Suite("TLS configuration errors, before any I/O", .enabled(if: skipReason == nil, "\(skipReason ?? "")"))
struct ConfigurationTests {
    @Test func missingFiles() throws {
        let pki = try TestPKI.get()
        #expect(throws: TLSError.configuration(.missingFile(option: "cacertfile", path: "/nonexistent/ca.pem"))) {
            try TLSContext(.client(trustRoots: .file("/nonexistent/ca.pem")))
        }
        #expect(throws: TLSError.configuration(.missingFile(option: "keyfile", path: "/nonexistent/key.pem"))) {
            try TLSContext(.server(certificateChainFile: pki.pem("localhost"), privateKeyFile: "/nonexistent/key.pem"))
        }
        #expect(throws: TLSError.configuration(.keyDoesNotMatchCertificate(
            certificateFile: pki.pem("localhost"), keyFile: pki.key("wrong")))) {
            try TLSContext(.server(certificateChainFile: pki.pem("localhost"), privateKeyFile: pki.key("wrong")))
        }
        let notPEM = #expect(throws: TLSError.self) {
            try TLSContext(.server(certificateChainFile: pki.key("ca"), privateKeyFile: pki.key("ca")))
        }
        guard case .configuration(.invalidFile(option: "certfile", _, _)) = notPEM else {
            Issue.record("a key given as the certificate: \(String(describing: notPEM))")
            return
        }
    }

    @Test func badOptions() throws {
        #expect(throws: TLSError.configuration(.invalidApplicationProtocol(""))) {
            try TLSContext(.client(applicationProtocols: ["h2", ""]))
        }
        #expect(throws: TLSError.configuration(.invalidVersionRange(minimum: .v1_3, maximum: .v1_2))) {
            try TLSContext(.client(minimumVersion: .v1_3, maximumVersion: .v1_2))
        }
        #expect(throws: TLSError.configuration(.missingCertificate)) {
            try TLSContext(TLSConfiguration(role: .server))
        }
        #expect(throws: TLSError.configuration(.missingServerName)) {
            try TLSEngine(configuration: .client(), host: nil)
        }
        #expect(try TLSEngine(configuration: .client(verify: .none), host: nil).state == .handshaking)
        #expect(TLSError.alert(.unknownCA, .generated).description == "{tls_alert,{unknown_ca,generated}}")
    }
}

/// SplitMix64: a seeded generator so a failing garbage stream replays.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
