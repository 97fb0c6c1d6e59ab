import Foundation
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import GenTCPTLS
import TLSTestSupport
import Testing

/// `gentcp connect --driver at --tls module` against `gentcp simulate` (issue 12): the simulated
/// module runs the TLS (docs/modem-behaviour.md ESP-T, BG-T) to a GenTCP TLS echo server on
/// loopback.
@Suite(.enabled(if: GentcpBinary.url != nil, "gentcp is not built: run `swift build` first (or set GENTCP_BIN)"),
       .enabled(if: skipReason == nil, "\(skipReason ?? "")"),
       .serialized, .timeLimit(.minutes(3)))
struct ModuleTLSCLITests {
    /// The board, what `gentcp simulate` is given for the store, and what `connect` says the CA is.
    static func setup(_ board: String, _ pki: TestPKI, ca: String = "ca") -> (simulate: [String], moduleCA: String) {
        board == "sim-esp-at" ? (["--module-ca-slot", "0=\(pki.pem(ca))"], "0")
            : (["--module-file", "UFS:ca.pem=\(pki.pem(ca))"], "UFS:ca.pem")
    }

    @Test("--tls module --module-ca: 20 KB echoed byte-exact through the module's TLS, exit 0; -v says the module runs it",
          arguments: ["sim-esp-at", "sim-bg96"])
    func echo(_ board: String) async throws {
        let pki = try TestPKI.get()
        let (extra, moduleCA) = ModuleTLSCLITests.setup(board, pki)
        let request = CLITests.payload(20 * 1024, seed: 12)
        try await SimulateCLITests.withBoard(board, extra: extra) { running in
            try #require(running.fd >= 0, "cannot open \(running.path)")
            try await GenTCP.Process.run {
                let server = try TLSContext(.server(certificateChainFile: pki.pem("localhost"), privateKeyFile: pki.key("localhost")))
                let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
                defer { listener.close() }
                // The server closes once it echoed everything, which ends the run: a module has no
                // half-close, so the client would otherwise wait for -q seconds of silence, and a
                // short -q on a loaded machine closed the link while the echo was still coming.
                async let echoed = TLSCLITests.echoOnce(listener, server, closeAfter: request.count)
                let outcome = try await CLITests.run(
                    ["connect", "-v", "--board", board, "--boards", SimulateCLITests.boards, "--serial", running.path,
                     "--tls", "module", "--module-ca", moduleCA, "--timeout", "30000", "-q", "60",
                     "localhost", "\(try listener.port())"], stdin: request, limit: 90)
                #expect(try await echoed == request.count)
                #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
                let same = outcome.stdout == request
                #expect(same, "stdout: \(outcome.stdout.count) of \(request.count) bytes")
                #expect(outcome.stderr.contains("TLS run by the module"), "stderr: \(outcome.stderr)")
            }
        }
    }

    @Test("a server the module's CA did not sign: exit 1, one line naming the module's answer (ESP-AT econnrefused, BG96 eproto)",
          arguments: [("sim-esp-at", "econnrefused"), ("sim-bg96", "eproto")])
    func untrusted(_ case_: (board: String, atom: String)) async throws {
        let pki = try TestPKI.get()
        let (extra, moduleCA) = ModuleTLSCLITests.setup(case_.board, pki, ca: "rogue-ca")
        try await SimulateCLITests.withBoard(case_.board, extra: extra) { running in
            try #require(running.fd >= 0, "cannot open \(running.path)")
            try await GenTCP.Process.run {
                let server = try TLSContext(.server(certificateChainFile: pki.pem("localhost"), privateKeyFile: pki.key("localhost")))
                let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
                defer { listener.close() }
                let serving = GenTCP.Process.spawn { _ = try? await listener.accept(tls: server, timeout: 30_000) }
                let outcome = try await CLITests.run(
                    ["connect", "--board", case_.board, "--boards", SimulateCLITests.boards, "--serial", running.path,
                     "--tls", "module", "--module-ca", moduleCA, "--timeout", "30000", "localhost", "\(try listener.port())"],
                    stdin: Array("hello".utf8), limit: 90)
                #expect(outcome.status == 1, "stderr: \(outcome.stderr)")
                #expect(outcome.stdout.isEmpty)
                #expect(outcome.stderr.contains(case_.atom), "stderr: \(outcome.stderr)")
                #expect(outcome.stderr.contains("handshake"), "no hint about the module's handshake: \(outcome.stderr)")
                serving.kill()
            }
        }
    }

    @Test("--tls module asking for ALPN on a SIM800: exit 1 with enotsup, nothing sent")
    func sim800ALPN() async throws {
        try await SimulateCLITests.withBoard("sim-sim800") { running in
            try #require(running.fd >= 0, "cannot open \(running.path)")
            let outcome = try await CLITests.run(
                ["connect", "--board", "sim-sim800", "--boards", SimulateCLITests.boards, "--serial", running.path,
                 "--tls", "module", "--insecure", "--alpn", "h2", "--timeout", "30000", "127.0.0.1", "9"],
                stdin: [], limit: 90)
            #expect(outcome.status == 1, "stderr: \(outcome.stderr)")
            #expect(outcome.stderr.contains("enotsup"), "stderr: \(outcome.stderr)")
            #expect(outcome.stderr.contains("SIM800: --insecure only"), "stderr: \(outcome.stderr)")
        }
    }
}
