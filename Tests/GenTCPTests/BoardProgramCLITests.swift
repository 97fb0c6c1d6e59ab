import BoardTestSupport
import Foundation
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Testing

/// `gentcp simulate --program`: the firmware's own program sources on a pty, reached the way a
/// user reaches a board (`gentcp connect`), or reaching a simulated module on its pty.
@Suite(.enabled(if: GentcpBinary.url != nil, "gentcp is not built: run `swift build` first (or set GENTCP_BIN)"),
       .timeLimit(.minutes(5)))
struct BoardProgramCLITests {
    @Test("slip-echo on a pty: gentcp connect echoes 64 KiB byte-exact and exits 0 after the board's close")
    func slipEcho() async throws {
        // The test holds the pty open without reading it (so the line never hangs up between
        // programs); gentcp connect is its only reader.
        try await SimulateCLITests.withBoard("sim-slip", extra: ["--program", "slip-echo"]) { board in
            #expect(board.path.hasPrefix("/dev/pts/"))
            let data = CLITests.payload(64 << 10, seed: 13)
            let outcome = try await CLITests.run(
                ["connect", "--board", "sim-slip", "--boards", SimulateCLITests.boards, "--serial", board.path, "10.10.0.2", "7"],
                stdin: data, limit: 300)
            #expect(outcome.status == 0, "\(outcome.stderr)")
            #expect(outcome.stdout == data)
        }
    }

    @Test("esp-at-client through gentcp simulate sim-esp-at: every reading acknowledged, exit 0")
    func telemetry() async throws {
        // The module's sockets are real: the collector listens on loopback, on a port the kernel picks.
        let driver = POSIXDriver(lookup: .hostsFile())
        let listener = try ListenSocket.listen(port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)],
                                               driver: driver)
        defer { listener.close() }
        let port = try listener.sockname().port
        try await SimulateCLITests.withBoard("sim-esp-at") { module in
            async let lines = BoardChecks.collect(listener, count: 5, timeout: 120_000)
            let outcome = try await CLITests.run(
                ["simulate", "sim-esp-at", "--boards", SimulateCLITests.boards, "--program", "esp-at-client",
                 "--line", module.path, "--collector", "127.0.0.1:\(port)", "--count", "5"],
                limit: 300)
            #expect(outcome.status == 0, "\(outcome.stderr)")
            #expect(try await lines.count == 5)
        }
    }
}
