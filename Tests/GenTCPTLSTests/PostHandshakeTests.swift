import Foundation
import GenTCPPOSIX
import GenTCPTLS
import TLSTestSupport
import Testing

/// The s_server of a test, for use from GenTCP processes: its blocking reads run on a thread of
/// their own, never on the cooperative pool.
final class ServerHandle: @unchecked Sendable {
    let peer: OpenSSLPeer
    private let lock = NSLock()

    init(_ peer: OpenSSLPeer) { self.peer = peer }

    /// Waits, off the pool, until s_server prints a line containing `marker`.
    func waitForLine(containing marker: String) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                self.lock.lock()
                defer { self.lock.unlock() }
                do {
                    _ = try self.peer.waitForLine(containing: marker)
                    c.resume()
                } catch {
                    c.resume(throwing: error)
                }
            }
        }
    }

    /// Types a command on s_server's stdin.
    func type(_ line: String) {
        peer.input.fileHandleForWriting.write(Data(line.utf8))
    }
}

/// What a peer may send after the handshake, through GenTCP TLS sockets on the posix driver:
/// `openssl s_server` commands typed on its stdin (`r` renegotiate, `K` key update with a
/// request for ours, `P` plaintext garbage).
@Suite("TLS sockets: post-handshake messages from openssl s_server", .enabled(if: skipReason == nil, "\(skipReason ?? "")"))
struct PostHandshakeTests {
    func startServer(_ pki: TestPKI, _ extra: [String]) throws -> (OpenSSLPeer, UInt16) {
        let server = try OpenSSLPeer(arguments: [
            "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-cert", pki.pem("localhost"),
            "-key", pki.key("localhost"),
        ] + extra)
        return (server, try server.acceptPort())
    }

    func client(_ pki: TestPKI, maximum: TLSVersion) throws -> TLSContext {
        try TLSContext(.client(trustRoots: .file(pki.pem("ca")), maximumVersion: maximum))
    }

    @Test("TLS 1.2 renegotiation asked by the server is refused (no_renegotiation); s_server gives up on the connection: a typed error, no hang")
    func renegotiationRefused() async throws {
        let pki = try TestPKI.get()
        let (peer, port) = try startServer(pki, ["-tls1_2"])
        let server = ServerHandle(peer)
        let context = try client(pki, maximum: .v1_2)
        try await GenTCP.Process.run {
            let s = try await Socket.connect("localhost", port: Int(port), options: [.binary, .active(.passive)],
                                             tls: context, timeout: 30_000, driver: .posix)
            try await server.waitForLine(containing: "CIPHER is")
            try await s.send("before\n")
            try await server.waitForLine(containing: "before")
            server.type("r\n")
            // GenTCP never renegotiates (a renegotiation can change the peer's identity mid-stream);
            // OpenSSL answers the HelloRequest with a no_renegotiation alert, which s_server takes
            // as the end of the connection.
            let error = await #expect(throws: SocketError.self) { _ = try await s.recv(0, timeout: 30_000) }
            #expect(error?.reason == .tlsAlert && error?.alert == .noRenegotiation && error?.alertOrigin == .generated,
                    "got \(String(describing: error))")
            await #expect(throws: SocketError.self) { try await s.send("after") }
            s.close()
        }
        peer.kill()
    }

    @Test("TLS 1.3 key update with a request for ours: answered, data flows both ways after it")
    func keyUpdate() async throws {
        let pki = try TestPKI.get()
        let (peer, port) = try startServer(pki, ["-tls1_3"])
        let server = ServerHandle(peer)
        let context = try client(pki, maximum: .v1_3)
        try await GenTCP.Process.run {
            let s = try await Socket.connect("localhost", port: Int(port), options: [.binary, .active(.passive)],
                                             tls: context, timeout: 30_000, driver: .posix)
            try await server.waitForLine(containing: "CIPHER is")
            server.type("K\n")
            await #expect(throws: SocketError.timeout) { _ = try await s.recv(0, timeout: 500) }
            // Our key update went out with the read that processed theirs; the server reads
            // this with its new keys only if it did.
            try await s.send("after the key update\n")
            try await server.waitForLine(containing: "after the key update")
            server.type("still here\n")
            #expect(try await s.recv(11, timeout: 30_000) == .binary(Array("still here\n".utf8)))
            s.close()
        }
        peer.kill()
    }

    @Test("plaintext garbage from the server after the handshake: a generated tls_alert, then the socket is dead", arguments: [TLSVersion.v1_3, .v1_2])
    func garbageAfterHandshake(version: TLSVersion) async throws {
        let pki = try TestPKI.get()
        let (peer, port) = try startServer(pki, [version == .v1_3 ? "-tls1_3" : "-tls1_2"])
        let server = ServerHandle(peer)
        let context = try client(pki, maximum: version)
        try await GenTCP.Process.run {
            let s = try await Socket.connect("localhost", port: Int(port), options: [.binary, .active(.once)],
                                             tls: context, timeout: 30_000, driver: .posix)
            try await server.waitForLine(containing: "CIPHER is")
            server.type("P\n")
            let message = try await GenTCP.Process.receive(timeout: 30_000)
            guard case .sslError(let socket, let error)? = message else {
                Issue.record("expected an ssl_error, got \(String(describing: message))")
                return
            }
            #expect(socket == s)
            #expect(error.reason == .tlsAlert && error.alertOrigin == .generated, "got \(error)")
            // Nothing follows an ssl_error (OTP's ssl), and the socket is dead for sends.
            #expect(try await GenTCP.Process.receive(timeout: 200) == nil)
            await #expect(throws: SocketError.self) { try await s.send("x") }
            s.close()
        }
        peer.kill()
    }
}
