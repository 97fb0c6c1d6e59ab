import Foundation
import GenTCPTLS

/// `openssl s_server` as a test peer, started through ``PeerProcess`` (so waiting for its lines
/// never blocks the cooperative pool), serving one connection (`-naccept 1`) with a certificate
/// of the test PKI. `prefix` runs it elsewhere: `["ip", "netns", "exec", NS]` puts it in a
/// network namespace.
public struct OpenSSLServer: Sendable {
    public let process: PeerProcess
    /// The port from its `ACCEPT ADDRESS:PORT` line.
    public let port: Int

    public static func start(
        _ pki: TestPKI, certificate: String = "localhost", address: String = "127.0.0.1", prefix: [String] = [],
        _ arguments: [String]
    ) async throws -> OpenSSLServer {
        guard let openssl = opensslPath else { throw PeerProcessError("the openssl command is not installed") }
        let process = try PeerProcess(prefix + [
            openssl, "s_server", "-accept", "\(address):0", "-naccept", "1", "-cert", pki.pem(certificate),
            "-key", pki.key(certificate),
        ] + arguments, name: "openssl s_server")
        let line = try await process.line(containing: "ACCEPT")
        guard let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else {
            throw PeerProcessError("s_server printed no port: \(line)")
        }
        return OpenSSLServer(process: process, port: port)
    }
}
