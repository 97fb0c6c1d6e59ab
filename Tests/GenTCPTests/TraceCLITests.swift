import Foundation
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `gentcp --verbose` traces of serial traffic, the progress line on a terminal, and one-line
/// argument errors, through the built binary.
@Suite(.enabled(if: GentcpBinary.url != nil, "gentcp is not built: run `swift build` first (or set GENTCP_BIN)"),
       .timeLimit(.minutes(3)))
struct TraceCLITests {
    /// One trace line taken apart: `  0.000812 >> 0000  41 54 0d 0a ...  |AT..|`.
    struct TraceRow {
        var seconds: Double
        var mark: String
        var text: String

        init?(_ line: String) {
            let fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            guard fields.count == 3, let seconds = Double(fields[0]), fields[0].contains("."),
                  fields[0].split(separator: ".").last?.count == 6,
                  fields[1] == ">>" || fields[1] == "<<" else { return nil }
            self.seconds = seconds
            mark = String(fields[1])
            let rest = Array(fields[2].utf8)
            // `OFFSET  ` + 16 hex columns and the gap (49) + ` |` + text + `|`.
            guard let space = rest.firstIndex(of: 0x20), space >= 4,
                  rest[..<space].allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
                  rest.count >= space + 2 + 49 + 3, rest[space + 2 + 49] == 0x20, rest[space + 2 + 50] == 0x7C,
                  rest.last == 0x7C else { return nil }
            text = String(decoding: rest[(space + 2 + 51)..<(rest.count - 1)], as: UTF8.self)
            guard text.utf8.count <= 16 else { return nil }
        }
    }

    /// The trace rows of stderr, and the text of each direction's rows joined in order.
    static func trace(_ stderr: String) -> (rows: [TraceRow], toBoard: String, fromBoard: String, other: [String]) {
        var rows: [TraceRow] = []
        var other: [String] = []
        for line in stderr.split(separator: "\n").map(String.init) {
            if let row = TraceRow(line) { rows.append(row) } else { other.append(line) }
        }
        return (rows, rows.filter { $0.mark == ">>" }.map(\.text).joined(),
                rows.filter { $0.mark == "<<" }.map(\.text).joined(), other)
    }

    @Test("connect --verbose to a simulated SLIP board: stdout is exactly the echo, stderr traces both directions in hex and text")
    func verboseSLIP() async throws {
        try await SimulateCLITests.withBoard("sim-slip") { board in
            let request = Array("hello through the trace".utf8) + CLITests.payload(3000, seed: 11)
            let outcome = try await CLITests.run(
                ["connect", "--board", "sim-slip", "--boards", SimulateCLITests.boards, "--serial", board.path,
                 "--timeout", "10000", "--verbose", "10.10.0.2", "7"], stdin: request)
            #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
            #expect(outcome.stdout == request)
            let trace = TraceCLITests.trace(outcome.stderr)
            // Every other line is one of gentcp's notes, the trace's header among them.
            #expect(trace.other.allSatisfy { $0.hasPrefix("gentcp: ") }, "\(trace.other)")
            #expect(trace.other.contains { $0.hasPrefix("gentcp: trace of pty \(board.path)") && $0.contains(">> host to board") })
            #expect(trace.rows.count > 10)
            #expect(trace.rows.allSatisfy { $0.seconds >= 0 && $0.seconds < 60 })
            // The payload went out in a SLIP frame and came back in one.
            #expect(trace.toBoard.contains("hello through the trace"))
            #expect(trace.fromBoard.contains("hello through the trace"))
            // The first frame out is the SYN: END, then an IPv4 header (0x45: `E`).
            #expect(trace.rows.first?.mark == ">>")
            #expect(trace.rows.first?.text.hasPrefix(".E") == true)
        }
    }

    @Test("connect --verbose to a simulated ESP-AT modem: the AT commands and the answers appear as text, stdout is exactly the reply")
    func verboseAT() async throws {
        try await SimulateCLITests.withBoard("sim-esp-at") { board in
            _ = await board.read(until: "ready\r\n")
            let request = Array("through the modem".utf8)
            let path = board.path
            try await GenTCP.Process.run {
                let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
                let port = try listener.port()
                let server = GenTCP.Process.spawn {
                    let s = try await listener.accept(timeout: 10_000)
                    let got = try await s.recv(request.count, timeout: 10_000)
                    try await s.send(Array("reply:".utf8) + got.bytes)
                    s.close()
                }
                let outcome = try await CLITests.run(
                    ["connect", "--board", "sim-esp-at", "--boards", SimulateCLITests.boards, "--serial", path,
                     "--timeout", "10000", "-v", "127.0.0.1", "\(port)"], stdin: request, limit: 30)
                #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
                #expect(outcome.stdout == Array("reply:".utf8) + request)
                let trace = TraceCLITests.trace(outcome.stderr)
                #expect(trace.other.allSatisfy { $0.hasPrefix("gentcp: ") }, "\(trace.other)")
                #expect(trace.toBoard.contains("AT+CIPSTART=0,\"TCP\",\"127.0.0.1\",\(port).."), "\(trace.toBoard)")
                #expect(trace.toBoard.contains("through the modem"))
                #expect(trace.fromBoard.contains("0,CONNECT"))
                #expect(trace.fromBoard.contains("reply:through the modem"))
                #expect(await server.waitForExit() == .normal)
                listener.close()
            }
        }
    }

    @Test("demo -v: the slip and at rows' lines traced with virtual time, the table unchanged")
    func demoVerbose() async throws {
        let outcome = try await CLITests.run(["demo", "--bytes", "1k", "--seed", "3", "-v"], limit: 60)
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        let rows = String(decoding: outcome.stdout, as: UTF8.self).split(separator: "\n").filter { $0.hasSuffix("match") }
        #expect(rows.count == 4)
        let trace = TraceCLITests.trace(outcome.stderr)
        #expect(trace.other.count == 2 && trace.other.allSatisfy { $0.hasPrefix("gentcp: trace of the ") && $0.contains("virtual seconds") },
                "\(trace.other)")
        #expect(trace.toBoard.contains("AT+CIPSTART"))
        #expect(trace.fromBoard.contains("ready"))
    }

    @Test("simulate -v: the board's side of the pty traced, >> still host to board")
    func simulateVerbose() async throws {
        let child = Foundation.Process()
        child.executableURL = CLITests.binary!
        child.arguments = ["simulate", "sim-esp-at", "--boards", SimulateCLITests.boards, "--no-pacing", "-v"]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        child.standardInput = input
        child.standardOutput = output
        child.standardError = errors
        let exit = try ChildExit(starting: child)
        let path = await OffPool.readLine(output.fileHandleForReading.fileDescriptor) ?? ""
        let fd = open(path, O_RDWR | O_NOCTTY)
        if fd < 0 { exit.signal(SIGKILL) }
        try #require(fd >= 0, "cannot open \(path)")
        var t = termios()
        tcgetattr(fd, &t)
        cfmakeraw(&t)
        tcsetattr(fd, TCSANOW, &t)
        // Like the real module, it ignores input until it has booted and said `ready`.
        let boot = await TraceCLITests.readText(errors.fileHandleForReading, until: "|..ready..|")
        _ = Array("AT\r\n".utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        // The module's answer is traced as it is written, so the trace is complete once it shows.
        let answer = await TraceCLITests.readText(errors.fileHandleForReading, until: "|AT....OK..|")
        let text = String(decoding: boot + answer, as: UTF8.self)
        close(fd)
        try input.fileHandleForWriting.close()
        #expect(await exit.wait(limit: 120) == 0)
        let trace = TraceCLITests.trace(text)
        #expect(trace.other.contains { $0.hasPrefix("gentcp: trace of \(path): >> host to board") }, "\(trace.other)")
        #expect(trace.fromBoard.hasPrefix("..ready.."), "\(trace.fromBoard)")
        #expect(trace.toBoard == "AT..")
        #expect(trace.fromBoard.hasSuffix("AT....OK.."))
    }

    /// Reads `handle` on a thread of its own until what came contains `marker` (or end of file).
    static func readText(_ handle: FileHandle, until marker: String) async -> [UInt8] {
        await OffPool.read(handle.fileDescriptor, untilText: marker)
    }

    // MARK: - Progress

    /// Set when the terminal's reader may stop once nothing is left.
    final class StopFlag: Sendable {
        let value = Atomic<Bool>(false)
    }

    /// Runs `gentcp` with stdin and stdout in files and stderr on a new pty (raw), and returns
    /// what appeared on the terminal.
    static func runOnTerminal(_ arguments: [String], stdin: [UInt8]) async throws
        -> (status: Int32, stdout: [UInt8], terminal: String) {
        var master: Int32 = -1, slave: Int32 = -1
        var raw = termios()
        cfmakeraw(&raw)
        try #require(openpty(&master, &slave, nil, &raw, nil) == 0)
        defer { close(master) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gentcp-tty-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let inURL = dir.appendingPathComponent("stdin"), outURL = dir.appendingPathComponent("stdout")
        try Data(stdin).write(to: inURL)
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        let inHandle = try FileHandle(forReadingFrom: inURL)
        let outHandle = try FileHandle(forWritingTo: outURL)
        defer { try? inHandle.close(); try? outHandle.close() }

        // The terminal is read all along (a full pty would block gentcp), until gentcp has
        // exited and nothing is left.
        let stop = StopFlag()
        let terminalFD = master
        async let terminal = TraceCLITests.readAll(terminalFD, until: stop)
        let child = Foundation.Process()
        child.executableURL = CLITests.binary!
        child.arguments = arguments
        child.standardInput = inHandle
        child.standardOutput = outHandle
        child.standardError = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
        let status = try await CLITests.waitForExit(child, limit: 30)
        close(slave)
        stop.value.store(true, ordering: .releasing)
        return (status, Array(try Data(contentsOf: outURL)), String(decoding: await terminal, as: UTF8.self))
    }

    /// Reads `fd` on a thread of its own until `stop` is set and nothing is left to read (or
    /// the read fails).
    static func readAll(_ fd: Int32, until stop: StopFlag) async -> [UInt8] {
        await withCheckedContinuation { (c: CheckedContinuation<[UInt8], Never>) in
            let thread = Thread {
                var got: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    if poll(&p, 1, 20) > 0 {
                        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                        if n > 0 { got += buffer[0..<n]; continue }
                        break
                    }
                    if stop.value.load(ordering: .acquiring) { break }
                }
                c.resume(returning: got)
            }
            thread.start()
        }
    }

    @Test("stderr on a terminal, stdout in a file: a self-overwriting progress line, finished with the totals")
    func progressOnTerminal() async throws {
        let request = CLITests.payload(300_000, seed: 21)
        let reply = CLITests.payload(200_000, seed: 22)
        try await GenTCP.Process.run {
            let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
            let port = try listener.port()
            async let served = CLITests.serveOnce(listener, reply: reply)
            let outcome = try await TraceCLITests.runOnTerminal(["connect", "127.0.0.1", "\(port)"], stdin: request)
            #expect(try await served == request)
            #expect(outcome.status == 0, "terminal: \(outcome.terminal)")
            #expect(outcome.stdout == reply)
            let terminal = outcome.terminal
            #expect(terminal.hasPrefix("\r"), "terminal: \(terminal.debugDescription)")
            #expect(terminal.hasSuffix("\n"))
            // The last drawing is the summary: stdin was a 300000-byte file, so its total is known.
            let last = terminal.split(separator: "\r").last.map(String.init) ?? ""
            #expect(last.hasPrefix("sent 300 kB of 300 kB 100% "), "last: \(last.debugDescription)")
            #expect(last.contains(", received 200 kB "), "last: \(last.debugDescription)")
            #expect(!terminal.contains("\u{1B}"))
            #expect(!terminal.contains("gentcp: "))
            listener.close()
        }
    }

    @Test("--no-progress: nothing on the terminal; --progress: the summary even when stderr is a file")
    func progressFlags() async throws {
        try await GenTCP.Process.run {
            let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
            let port = try listener.port()
            async let served = CLITests.serveOnce(listener, reply: Array("pong".utf8))
            let quiet = try await TraceCLITests.runOnTerminal(["connect", "--no-progress", "127.0.0.1", "\(port)"],
                                                              stdin: Array("ping".utf8))
            #expect(try await served == Array("ping".utf8))
            #expect(quiet.status == 0)
            #expect(quiet.stdout == Array("pong".utf8))
            #expect(quiet.terminal.isEmpty, "terminal: \(quiet.terminal.debugDescription)")

            async let servedAgain = CLITests.serveOnce(listener, reply: Array("pong".utf8))
            let forced = try await CLITests.run(["connect", "--progress", "127.0.0.1", "\(port)"], stdin: Array("ping".utf8))
            #expect(try await servedAgain == Array("ping".utf8))
            #expect(forced.status == 0)
            #expect(forced.stdout == Array("pong".utf8))
            // Redrawn in place (more than once if the run took over 0.1 s); the last drawing has the totals.
            let last = forced.stderr.split(separator: "\r").last.map(String.init) ?? ""
            #expect(forced.stderr.hasPrefix("\r"))
            #expect(last.hasPrefix("sent 4 B of 4 B 100% ") && last.contains(", received 4 B "),
                    "stderr: \(forced.stderr.debugDescription)")
            #expect(forced.stderr.hasSuffix("\n") && forced.errorLines.count == 1)
            listener.close()
        }
    }

    // MARK: - One-line errors

    @Test("the argument parser's errors are one `gentcp: badarg` line with a hint, exit 64", arguments: [
        (["connect"], "missing expected argument '<host>'; see gentcp connect --help"),
        (["connect", "--no-such-flag", "h", "1"], "see gentcp connect --help"),
        (["demo", "--seed", "x"], "'x' is invalid for '--seed <seed>'; see gentcp demo --help"),
        (["frobnicate"], "see gentcp --help"),
    ])
    func parserErrors(arguments: [String], mentions: String) async throws {
        let outcome = try await CLITests.run(arguments)
        #expect(outcome.status == 64)
        #expect(outcome.errorLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.hasPrefix("gentcp: badarg: bad argument ("), "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.contains(mentions), "stderr: \(outcome.stderr)")
        #expect(outcome.stdout.isEmpty)
    }

    @Test("a serial device that is not there: one line with the reason and a hint")
    func missingDevice() async throws {
        let outcome = try await CLITests.run(["connect", "--driver", "at", "--dialect", "esp-at", "--serial",
                                              "/dev/pts/no-such-pty", "127.0.0.1", "80"])
        #expect(outcome.status == 1)
        #expect(outcome.errorLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.hasPrefix("gentcp: enoent: "), "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.contains("gentcp ports"))
    }
}
