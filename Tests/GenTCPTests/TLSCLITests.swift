import Foundation
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import GenTCPTLS
import TLSTestSupport
import Testing

/// `gentcp connect --tls` against GenTCP TLS listeners on loopback (the built binary, as
/// ``CLITests``).
@Suite(.enabled(if: GentcpBinary.url != nil, "gentcp is not built: run `swift build` first (or set GENTCP_BIN)"),
       .enabled(if: skipReason == nil, "\(skipReason ?? "")"),
       .timeLimit(.minutes(3)))
struct TLSCLITests {
    /// Accepts one TLS client and echoes everything until the client's close_notify (or, with
    /// `closeAfter`, until that many bytes went back), then closes.
    static func echoOnce(_ listener: ListenSocket, _ context: TLSContext, closeAfter: Int? = nil) async throws -> Int {
        let s = try await listener.accept(tls: context, timeout: 20_000)
        var echoed = 0
        while echoed < closeAfter ?? .max {
            let chunk: Payload
            do throws(SocketError) {
                chunk = try await s.recv(0, timeout: 20_000)
            } catch {
                guard error.reason == .closed else { throw error }
                break
            }
            try await s.send(chunk.bytes)
            echoed += chunk.count
        }
        s.close()
        return echoed
    }

    @Test("--tls with --cacert: 256 KiB echoed byte-exact, exit 0; -v names version, cipher and ALPN")
    func echo() async throws {
        let pki = try TestPKI.get()
        let request = CLITests.payload(256 * 1024, seed: 7)
        try await GenTCP.Process.run {
            let server = try TLSContext(.server(
                certificateChainFile: pki.pem("localhost"), privateKeyFile: pki.key("localhost"),
                applicationProtocols: ["h2", "http/1.1"]))
            let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
            async let echoed = TLSCLITests.echoOnce(listener, server)
            let outcome = try await CLITests.run(
                ["connect", "-v", "--tls", "--cacert", pki.pem("ca"), "--alpn", "http/1.1,h2", "localhost",
                 "\(try listener.port())"], stdin: request)
            #expect(try await echoed == request.count)
            #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
            #expect(outcome.stdout == request, "stdout differs from what was sent")
            #expect(outcome.stderr.contains("TLS 1.3, "), "stderr: \(outcome.stderr)")
            #expect(outcome.stderr.contains("ALPN h2"), "the server's preference wins; stderr: \(outcome.stderr)")
        }
    }

    @Test("an untrusted server: exit 1 and one line naming unknown_ca, generated")
    func untrusted() async throws {
        let pki = try TestPKI.get()
        try await GenTCP.Process.run {
            let server = try TLSContext(.server(certificateChainFile: pki.pem("localhost"), privateKeyFile: pki.key("localhost")))
            let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
            async let refused: SocketError? = {
                do {
                    _ = try await listener.accept(tls: server, timeout: 20_000)
                    return nil
                } catch { return error as? SocketError }
            }()
            let outcome = try await CLITests.run(
                ["connect", "--tls", "--cacert", pki.pem("rogue-ca"), "localhost", "\(try listener.port())"])
            #expect(outcome.status == 1)
            #expect(outcome.errorLines.count == 1, "stderr: \(outcome.stderr)")
            #expect(outcome.stderr.hasPrefix("gentcp: tls_alert: unknown_ca, generated"), "stderr: \(outcome.stderr)")
            let serverSide = await refused
            #expect(serverSide?.alert == .unknownCA && serverSide?.alertOrigin == .received)
        }
    }

    @Test("a server that ends the TCP stream without close_notify: the data reaches stdout, exit 1, `truncated`")
    func truncated() async throws {
        let pki = try TestPKI.get()
        let reply = CLITests.payload(5000, seed: 9)
        try await GenTCP.Process.run {
            let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
            let context = try TLSContext(.server(certificateChainFile: pki.pem("localhost"), privateKeyFile: pki.key("localhost")))
            async let served: Void = TLSCLITests.serveThenCut(listener, context, reply: reply)
            let outcome = try await CLITests.run(
                ["connect", "--tls", "--cacert", pki.pem("ca"), "-q", "-1", "localhost", "\(try listener.port())"])
            try await served
            #expect(outcome.stdout == reply)
            #expect(outcome.status == 1)
            #expect(outcome.stderr.hasPrefix("gentcp: truncated: "), "stderr: \(outcome.stderr)")
        }
    }

    /// A TLS server pumped by hand over a plain GenTCP socket: handshake, `reply`, then the
    /// plain socket's FIN with no close_notify (after reading the client's own end, so the kernel
    /// sends a FIN, not a reset).
    static func serveThenCut(_ listener: ListenSocket, _ context: TLSContext, reply: [UInt8]) async throws {
        let plain = try await listener.accept(timeout: 20_000)
        let engine = try TLSEngine(context: context)
        func flush() async throws {
            let out = engine.takeCiphertext()
            if !out.isEmpty { try await plain.send(out) }
        }
        while try !engine.handshake() {
            try await flush()
            let input = try await plain.recv(0, timeout: 20_000).bytes
            #expect(engine.receiveCiphertext(input) == input.count)
        }
        try await flush()
        var offset = 0
        while offset < reply.count {
            offset += try engine.writePlaintext(reply[offset...])
            try await flush()
        }
        // Read until the client's FIN (its close_notify comes first and is dropped).
        while true {
            do throws(SocketError) {
                _ = try await plain.recv(0, timeout: 20_000)
            } catch {
                guard error.reason == .closed else { throw error }
                break
            }
        }
        plain.close()
    }

    @Test("TLS arguments: exit 64 and one clear badarg line", arguments: [
        (["connect", "--cacert", "/x", "localhost", "1"], "--cacert goes with --tls"),
        (["connect", "--tls", "--cert", "/x", "localhost", "1"], "--cert and --key go together"),
        (["connect", "--tls", "--tls-version", "1.1", "localhost", "1"], "--tls-version must be 1.2 or 1.3"),
        (["connect", "--tls", "--cacert", "/nonexistent/ca.pem", "localhost", "1"], "cacertfile"),
        (["connect", "--tls", "module", "localhost", "1"], "--tls module needs --driver at"),
        (["connect", "--tls", "--alpn", "h2,,x", "localhost", "1"], "empty protocol name"),
    ])
    func badArguments(arguments: [String], mentions: String) async throws {
        let outcome = try await CLITests.run(arguments)
        #expect(outcome.status == 64)
        #expect(outcome.errorLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.hasPrefix("gentcp: badarg: "), "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.contains(mentions), "stderr: \(outcome.stderr)")
    }
}
