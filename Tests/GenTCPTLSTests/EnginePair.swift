import GenTCPTLS
import TLSTestSupport

/// Two engines joined in memory: whatever one writes for the transport, the other receives.
struct EnginePair {
    let client: TLSEngine
    let server: TLSEngine
    var clientError: TLSError?
    var serverError: TLSError?
    /// The most ciphertext either engine held for its transport at once.
    var largestPendingCiphertext = 0

    init(client: TLSConfiguration, server: TLSConfiguration, host: String? = "localhost") throws {
        self.client = try TLSEngine(configuration: client, host: host)
        self.server = try TLSEngine(configuration: server)
    }

    /// Moves ciphertext both ways, as much as each receiver takes. Returns how many bytes moved.
    @discardableResult
    mutating func transfer() -> Int {
        largestPendingCiphertext = max(largestPendingCiphertext, client.pendingCiphertextCount, server.pendingCiphertextCount)
        let toServer = client.takeCiphertext(maximumCount: server.inboundCapacity)
        let toClient = server.takeCiphertext(maximumCount: client.inboundCapacity)
        let a = server.receiveCiphertext(toServer)
        let b = client.receiveCiphertext(toClient)
        precondition(a == toServer.count && b == toClient.count, "a receiver took fewer bytes than its capacity")
        return a + b
    }

    /// Runs both handshakes until both are done or failed and nothing moves; errors are kept in
    /// `clientError`/`serverError`. Then lets each side read once, so that what comes after the
    /// handshake (TLS 1.3 tickets, a late alert) is processed.
    mutating func handshake() {
        for _ in 0..<200 {
            var done = true
            if clientError == nil {
                do { done = try client.handshake() && done } catch { clientError = error }
            }
            if serverError == nil {
                do { done = try server.handshake() && done } catch { serverError = error }
            }
            let moved = transfer()
            if moved == 0 && (done || clientError != nil || serverError != nil) { break }
        }
    }

    /// Reads on both sides until nothing moves, collecting what each side read; errors are kept.
    mutating func settle() -> (client: [UInt8], server: [UInt8]) {
        var fromServer: [UInt8] = []
        var fromClient: [UInt8] = []
        for _ in 0..<200 {
            var progress = false
            if clientError == nil {
                do {
                    let (bytes, _) = try client.readPlaintext()
                    fromServer += bytes
                    progress = progress || !bytes.isEmpty
                } catch { clientError = error }
            }
            if serverError == nil {
                do {
                    let (bytes, _) = try server.readPlaintext()
                    fromClient += bytes
                    progress = progress || !bytes.isEmpty
                } catch { serverError = error }
            }
            if transfer() == 0 && !progress { break }
        }
        return (fromServer, fromClient)
    }
}

extension TLSConfiguration {
    static func testClient(
        _ pki: TestPKI, ca: String = "ca", alpn: [String] = [], minimum: TLSVersion = .v1_2,
        maximum: TLSVersion = .v1_3, certificate: String? = nil, sni: ServerNameIndication = .host,
        verify: TLSPeerVerification = .peer
    ) -> TLSConfiguration {
        .client(
            verify: verify, trustRoots: .file(pki.pem(ca)), serverNameIndication: sni, applicationProtocols: alpn,
            minimumVersion: minimum, maximumVersion: maximum,
            certificateChainFile: certificate.map { pki.pem($0) }, privateKeyFile: certificate.map { pki.key($0) })
    }

    static func testServer(
        _ pki: TestPKI, certificate: String = "localhost", alpn: [String] = [], minimum: TLSVersion = .v1_2,
        maximum: TLSVersion = .v1_3, clientAuthentication: ClientAuthentication = .none
    ) -> TLSConfiguration {
        .server(
            certificateChainFile: pki.pem(certificate), privateKeyFile: pki.key(certificate),
            clientAuthentication: clientAuthentication, trustRoots: .file(pki.pem("ca")), applicationProtocols: alpn,
            minimumVersion: minimum, maximumVersion: maximum)
    }
}
