import Foundation
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import GenTCPSerial
import Synchronization
import Testing
@testable import gentcp

#if canImport(Glibc)
import Glibc
#endif

/// gentcp's failure lines, without running anything: what the user reads when a link fails.
@Suite("gentcp failure lines")
struct FailureLineTests {
    @Test("a count with thousands separators", arguments: [
        (0, "0"), (7, "7"), (999, "999"), (1000, "1,000"), (107_776, "107,776"), (1_048_576, "1,048,576"), (-1234, "-1,234"),
    ])
    func grouped(value: Int, expected: String) {
        #expect(groupedCount(value) == expected)
    }

    @Test("a link failure says what happened on the link and how many bytes arrived, on one line")
    func linkFailure() {
        let aborted = transferFailureLine(SocketError(.connectionAborted), incident: "the modem restarted (ready)",
                                          received: 107_776, hint: nil)
        #expect(aborted == "gentcp: econnaborted: the modem restarted (ready) after 107,776 bytes received")
        let hinted = transferFailureLine(SocketError(.ioError), incident: "the serial line hung up", received: 12,
                                         hint: "the serial line /dev/pts/9 went away")
        #expect(hinted == "gentcp: eio: the serial line hung up after 12 bytes received; the serial line /dev/pts/9 went away")
        // Without an incident the reason's own words stand in.
        let bare = transferFailureLine(SocketError(.protocolError), incident: nil, received: 0, hint: "h")
        #expect(bare == "gentcp: eproto: protocol error after 0 bytes received; h")
        let silent = transferFailureLine(SocketError(.connectionTimedOut), incident: "the modem stopped answering",
                                         received: 1_000, hint: nil)
        #expect(silent == "gentcp: etimedout: the modem stopped answering after 1,000 bytes received")
    }

    @Test("every serial-link reason has a hint naming the line; the transfer's says the output is incomplete", arguments: [
        SocketError.Reason.connectionAborted, .connectionTimedOut, .ioError, .protocolError,
    ])
    func serialHints(reason: SocketError.Reason) throws {
        for connecting in [true, false] {
            let hint = try #require(ConnectSession.serialHint(for: reason, path: "/dev/ttyUSB0", baud: 9600,
                                                              connecting: connecting, target: "10.0.0.1:80"))
            #expect(!hint.isEmpty && !hint.contains("\n"))
            if reason != .connectionAborted { #expect(hint.contains("/dev/ttyUSB0"), "hint: \(hint)") }
            #expect(hint.contains("incomplete") == !connecting, "hint: \(hint)")
        }
        // Reasons that mean the same on every driver keep the general hints.
        #expect(ConnectSession.serialHint(for: .connectionRefused, path: "/dev/ttyUSB0", baud: 9600, connecting: true,
                                          target: "10.0.0.1:80") == nil)
    }

    @Test("stdin/stdout failures name an atom for every errno, never errnoN")
    func noBareErrno() {
        for code in Int32(1)...133 {
            let line = fileFailureLine(code, what: "writing stdout")
            #expect(line.hasPrefix("gentcp: e") || line.hasPrefix("gentcp: system_limit"), "errno \(code): \(line)")
            #expect(!line.contains("errno"), "errno \(code): \(line)")
            let atom = line.dropFirst("gentcp: ".count).prefix { $0 != ":" }
            #expect(atom.allSatisfy { $0.isLetter || $0 == "_" }, "errno \(code): \(line)")
        }
        #expect(fileFailureLine(EPIPE, what: "writing stdout") == "gentcp: epipe: broken pipe (writing stdout)")
    }

    @Test("serial open failures: enoent says no such device, enotty says not a serial port, both with a hint")
    func serialOpenLines() {
        let missing = failureLine(SerialLinkError(.noSuchFile, path: "/dev/ttyUSB9", operation: "realpath(3)", message: "no such device"))
        #expect(missing == "gentcp: enoent: /dev/ttyUSB9: no such device (is the board plugged in? `gentcp ports` lists serial ports)")
        let file = failureLine(SerialLinkError(.notATerminal, path: "/tmp/x", operation: "stat(2)",
                                               message: "not a serial port: a regular file"))
        #expect(file.hasPrefix("gentcp: enotty: /tmp/x is not a serial port (a regular file; "), "line: \(file)")
        #expect(file.contains("gentcp ports"))
    }

    @Test("strings for AT commands: quotes, commas, backslashes and control bytes are refused; shown escaped")
    func atStrings() {
        for bad in ["a\"b", "a,b", "a\\b", "in\r\nternet", "tab\there", "\u{7F}"] {
            #expect(Connect.atStringProblem(bad) != nil, "\(bad.debugDescription)")
        }
        for good in ["internet", "web.gprs.mtnnigeria.net", "", "ünïcode"] {
            #expect(Connect.atStringProblem(good) == nil, "\(good.debugDescription)")
        }
        #expect(Connect.quoted("in\r\n\"x\",\u{1}") == #""in\r\n\"x\",\x01""#)
    }

    @Test("seconds as people write them", arguments: [(5.0, "5"), (0, "0"), (0.25, "0.25"), (1.5, "1.5")])
    func seconds(value: Double, expected: String) {
        #expect(secondsText(value) == expected)
    }
}

/// `gentcp` on serial paths, at the end of stdin without half-close, with closed standard
/// streams, and when the serial line dies: the built binary, as a user runs it.
@Suite(.enabled(if: GentcpBinary.url != nil, "gentcp is not built: run `swift build` first (or set GENTCP_BIN)"),
       .timeLimit(.minutes(4)))
struct SerialCLITests {
    /// A fresh scratch directory; the caller removes it.
    static func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gentcp-serialcli-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs `/bin/sh -c script BINARY arguments...` (so the script can close descriptors before
    /// exec'ing gentcp: `exec "$0" "$@" >&-`), with the given stdin bytes from a file.
    static func runInShell(_ script: String, _ arguments: [String], stdin: [UInt8] = [], limit: Double = 120)
        async throws -> CLITests.Outcome {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inPath = dir + "/stdin", outPath = dir + "/stdout", errPath = dir + "/stderr"
        try Data(stdin).write(to: URL(fileURLWithPath: inPath))
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let inHandle = try FileHandle(forReadingFrom: URL(fileURLWithPath: inPath))
        let outHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        defer {
            try? inHandle.close()
            try? outHandle.close()
            try? errHandle.close()
        }
        let child = Foundation.Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sh")
        child.arguments = ["-c", script, GentcpBinary.url!.path] + arguments
        child.standardInput = inHandle
        child.standardOutput = outHandle
        child.standardError = errHandle
        let status = try await CLITests.waitForExit(child, limit: limit)
        return CLITests.Outcome(status: status, stdout: Array(try Data(contentsOf: URL(fileURLWithPath: outPath))),
                                stderr: String(decoding: try Data(contentsOf: URL(fileURLWithPath: errPath)), as: UTF8.self))
    }

    /// A loopback echo server that never closes by itself: it echoes until the client closes,
    /// counting what it got.
    final class EchoServer: Sendable {
        let listener: ListenSocket
        let port: Int
        private struct State {
            var received = 0
            var clientClosed = false
            var finished = false
            /// Waiters of ``waitUntilReceived(_:)``: how many bytes each waits for.
            var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

            /// Takes the waiters that are satisfied now (all of them once serving has finished).
            mutating func ready() -> [CheckedContinuation<Void, Never>] {
                let done = waiters.filter { finished || received >= $0.count }.map(\.continuation)
                waiters.removeAll { finished || received >= $0.count }
                return done
            }
        }
        private let state = Mutex(State())

        init() throws {
            listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
            port = try listener.port()
        }

        var received: Int { state.withLock { $0.received } }
        var clientClosed: Bool { state.withLock { $0.clientClosed } }

        /// Serves one connection (call as a GenTCP process).
        func serve() async throws {
            // However serving ends (an accept that failed too), waiters are woken.
            defer { for w in state.withLock({ $0.finished = true; return $0.ready() }) { w.resume() } }
            let s = try await listener.accept(timeout: 60_000)
            while true {
                do throws(SocketError) {
                    let data = try await s.recv(0, timeout: 60_000).bytes
                    for w in state.withLock({ $0.received += data.count; return $0.ready() }) { w.resume() }
                    try await s.send(data)
                } catch {
                    if error.reason == .closed { state.withLock { $0.clientClosed = true } }
                    break
                }
            }
            s.close()
        }

        /// Returns once `count` bytes have arrived, or serving has ended (an event, not a poll).
        func waitUntilReceived(_ count: Int) async {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s in
                    if s.finished || s.received >= count { return true }
                    s.waiters.append((count, c))
                    return false
                }
                if now { c.resume() }
            }
        }
    }

    // MARK: Serial paths

    @Test("connect and capture on a regular file, a directory, /dev/null: exit 1, one `enotty: PATH is not a serial port` line")
    func notSerialPorts() async throws {
        let dir = try SerialCLITests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/notes.txt"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("AT\r\n".utf8)))
        for path in [file, dir, "/dev/null"] {
            for arguments in [["connect", "--driver", "at", "--dialect", "esp-at", "--serial", path, "127.0.0.1", "80"],
                              ["connect", "--driver", "slip", "--serial", path, "--local-ip", "10.9.9.1", "--peer-ip", "10.9.9.2",
                               "10.9.9.2", "7"],
                              ["capture", "--serial", path, "--link", "at", "--output", dir + "/capture.txt"]] {
                let outcome = try await CLITests.run(arguments, limit: 20)
                #expect(outcome.status == 1, "\(arguments): \(outcome.stderr)")
                #expect(outcome.errorLines.count == 1, "\(arguments): \(outcome.stderr)")
                #expect(outcome.stderr.hasPrefix("gentcp: enotty: \(path) is not a serial port"), "\(arguments): \(outcome.stderr)")
                #expect(!outcome.stderr.contains("errno"))
            }
        }
    }

    @Test("connect and capture on a missing device or a link to nothing: exit 1, `enoent ... no such device` and where to look")
    func missingDevice() async throws {
        let dir = try SerialCLITests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(symlink(dir + "/unplugged", dir + "/usb-FTDI-if00") == 0)
        for path in ["/dev/ttyUSB-gentcp-missing", dir + "/usb-FTDI-if00"] {
            for arguments in [["connect", "--driver", "at", "--dialect", "sim800", "--serial", path, "127.0.0.1", "80"],
                              ["capture", "--serial", path, "--link", "slip", "--output", dir + "/capture.pcap"]] {
                let outcome = try await CLITests.run(arguments, limit: 20)
                #expect(outcome.status == 1, "\(arguments): \(outcome.stderr)")
                #expect(outcome.errorLines.count == 1, "\(arguments): \(outcome.stderr)")
                #expect(outcome.stderr.hasPrefix("gentcp: enoent: \(path): no such device"), "\(arguments): \(outcome.stderr)")
                #expect(outcome.stderr.contains("gentcp ports"))
                #expect(!outcome.stderr.contains("errno"))
            }
        }
    }

    // MARK: Strings for AT commands

    @Test("--apn and a host name with a quote, comma, CR or LF: exit 64 and `badarg` at once, not a modem timeout", arguments: [
        (["--apn", "inter\"net"], "--apn"), (["--apn", "a,b"], "--apn"), (["--apn", "internet\r\n"], "--apn"),
        (["--apn", "x\ny"], "--apn"), (["--apn-user", "me,you"], "--apn-user"), (["--apn-password", "p\"w"], "--apn-password"),
        (["--wifi-ssid", "home\r\nAT+RST"], "--wifi-ssid"), (["--wifi-ssid", "home", "--wifi-password", "a,b"], "--wifi-password"),
    ])
    func atStrings(extra: [String], mentions: String) async throws {
        let outcome = try await CLITests.run(
            ["connect", "--driver", "at", "--dialect", "sim800", "--serial", "/dev/null"] + extra + ["127.0.0.1", "80"], limit: 20)
        #expect(outcome.status == 64)
        #expect(outcome.errorLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.hasPrefix("gentcp: badarg: "), "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.contains(mentions) && outcome.stderr.contains("AT command"), "stderr: \(outcome.stderr)")
        // A password is never echoed.
        if let i = extra.firstIndex(where: { $0.hasSuffix("password") }) {
            #expect(!outcome.stderr.contains(extra[i + 1]), "stderr: \(outcome.stderr)")
        }
    }

    @Test("a host name the modem would be given with a quote and CR LF: exit 64 and `badarg` naming HOST")
    func atHostName() async throws {
        let outcome = try await CLITests.run(["connect", "--driver", "at", "--dialect", "esp-at", "--serial", "/dev/null",
                                              "example.com\",80\r\nAT+RST", "80"], limit: 20)
        #expect(outcome.status == 64)
        #expect(outcome.errorLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.hasPrefix("gentcp: badarg: ") && outcome.stderr.contains("HOST"), "stderr: \(outcome.stderr)")
    }

    @Test("-q with a bad value: exit 64 and one badarg line", arguments: ["soon", "-2", "1e9", "nan"])
    func badQuit(value: String) async throws {
        let outcome = try await CLITests.run(["connect", "-q", value, "127.0.0.1", "80"], limit: 20)
        #expect(outcome.status == 64)
        #expect(outcome.errorLines.count == 1 && outcome.stderr.hasPrefix("gentcp: badarg: "), "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.contains("--quit-after"))
    }

    // MARK: Closed standard streams

    @Test("stdout closed at start: exit 1 with `ebadf: stdout is closed` before connecting")
    func stdoutClosed() async throws {
        try await GenTCP.Process.run {
            let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
            let port = try listener.port()
            let outcome = try await SerialCLITests.runInShell(#"exec "$0" "$@" >&-"#, ["connect", "127.0.0.1", "\(port)"],
                                                              stdin: Array("x".utf8))
            #expect(outcome.status == 1)
            #expect(outcome.errorLines.count == 1, "stderr: \(outcome.stderr)")
            #expect(outcome.stderr.hasPrefix("gentcp: ebadf: stdout is closed"), "stderr: \(outcome.stderr)")
            // Nothing connected.
            await #expect(throws: SocketError.self) { try await listener.accept(timeout: 300) }
            listener.close()
        }
    }

    @Test("stdin closed at start is empty input: the FIN goes out at once, the reply arrives, exit 0")
    func stdinClosed() async throws {
        let reply = Array("reply to nothing\n".utf8)
        try await GenTCP.Process.run {
            let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
            let port = try listener.port()
            async let served = CLITests.serveOnce(listener, reply: reply)
            let outcome = try await SerialCLITests.runInShell(#"exec "$0" "$@" <&-"#, ["connect", "127.0.0.1", "\(port)"])
            #expect(try await served.isEmpty)
            #expect(outcome.stdout == reply)
            #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
            #expect(outcome.stderr.isEmpty)
        }
    }

    // MARK: The end of stdin without half-close

    @Test("at through a symbolic link to the simulated modem's pty: `printf hello | connect ... -q 8` prints hello and exits 0 against an echo server that never closes")
    func quitAfterSilence() async throws {
        try await SimulateCLITests.withBoard("sim-esp-at") { board in
            try #require(board.fd >= 0, "cannot open \(board.path)")
            _ = await board.read(until: "ready\r\n")
            let dir = try SerialCLITests.scratch()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            // Named like a USB adapter: the device, not the name, says it is a pty.
            let link = dir + "/ttyUSB0"
            #expect(symlink(board.path, link) == 0)
            try await GenTCP.Process.run {
                let server = try EchoServer()
                let serving = Process.spawn { try await server.serve() }
                let started = ContinuousClock.now
                let outcome = try await CLITests.run(
                    ["connect", "--board", "sim-esp-at", "--boards", SimulateCLITests.boards, "--serial", link,
                     // 8 s of silence, not 1: the echo server shares this busy test process, and on a
                     // loaded machine its answer can take longer than a second.
                     "--timeout", "20000", "127.0.0.1", "\(server.port)", "-q", "8"], stdin: Array("hello".utf8), limit: 90)
                let elapsed = ContinuousClock.now - started
                #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
                #expect(outcome.stdout == Array("hello".utf8))
                #expect(outcome.stderr.isEmpty, "stderr: \(outcome.stderr)")
                #expect(elapsed >= .seconds(8), "the -q wait was not kept: \(elapsed)")
                // gentcp closed the connection, not the server.
                #expect(await serving.waitForExit() == .normal)
                #expect(server.received == 5 && server.clientClosed)
                server.listener.close()
            }
        }
    }

    @Test("at: the peer's close before the -q wait ends the run at once; -q -1 waits for it", arguments: ["30", "-1"])
    func peerClosesBeforeQuit(quit: String) async throws {
        try await SimulateCLITests.withBoard("sim-esp-at") { board in
            try #require(board.fd >= 0, "cannot open \(board.path)")
            _ = await board.read(until: "ready\r\n")
            let path = board.path
            try await GenTCP.Process.run {
                let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
                let port = try listener.port()
                // Echo five bytes, then close (the modem cannot half-close, so the server decides).
                let server = Process.spawn {
                    let s = try await listener.accept(timeout: 60_000)
                    let got = try await s.recv(5, timeout: 60_000)
                    try await s.send(got.bytes)
                    s.close()
                }
                let started = ContinuousClock.now
                let outcome = try await CLITests.run(
                    ["connect", "--board", "sim-esp-at", "--boards", SimulateCLITests.boards, "--serial", path,
                     "--timeout", "20000", "-q", quit, "127.0.0.1", "\(port)"], stdin: Array("hello".utf8), limit: 60)
                #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
                #expect(outcome.stdout == Array("hello".utf8))
                #expect(ContinuousClock.now - started < .seconds(25), "the peer's close did not end the run")
                #expect(await server.waitForExit() == .normal)
                listener.close()
            }
        }
    }

    // MARK: A serial line that dies

    @Test("the modem's pty vanishes mid-transfer: exit non-zero with one line saying what happened and how many bytes arrived")
    func lineVanishes() async throws {
        try await SimulateCLITests.withBoard("sim-esp-at") { board in
            try #require(board.fd >= 0, "cannot open \(board.path)")
            _ = await board.read(until: "ready\r\n")
            let path = board.path
            let input = CLITests.payload(8 << 20, seed: 99)
            try await GenTCP.Process.run {
                let server = try EchoServer()
                Process.spawn { try? await server.serve() }
                // Kill the simulator (and with it the pty's master) once the transfer is under way.
                let killer = Task {
                    await server.waitUntilReceived(16_384)
                    board.exit.signal(SIGKILL)
                }
                let outcome = try await CLITests.run(
                    ["connect", "--board", "sim-esp-at", "--boards", SimulateCLITests.boards, "--serial", path,
                     "--timeout", "20000", "127.0.0.1", "\(server.port)"], stdin: input, limit: 90)
                await killer.value
                #expect(outcome.stdout.count < input.count)
                #expect(!outcome.stderr.contains("errno"))
                // The line hung up: eio, never the peer's close.
                #expect(outcome.status == 1, "stderr: \(outcome.stderr)")
                #expect(outcome.errorLines.count == 1, "stderr: \(outcome.stderr)")
                #expect(outcome.stderr.hasPrefix("gentcp: eio: the serial line hung up"), "stderr: \(outcome.stderr)")
                #expect(outcome.stderr.contains(" received"), "stderr: \(outcome.stderr)")
                server.listener.close()
            }
        }
    }

    @Test("the SLIP board's pty vanishes mid-download: exit non-zero with one line saying what happened and how many bytes arrived")
    func slipLineVanishes() async throws {
        try await SimulateCLITests.withBoard("sim-slip") { board in
            let child = Foundation.Process()
            child.executableURL = GentcpBinary.url!
            // The source service (19) sends 1 MiB and closes; stdin is empty.
            child.arguments = ["connect", "--board", "sim-slip", "--boards", SimulateCLITests.boards, "--serial", board.path,
                               "--timeout", "20000", "10.10.0.2", "19"]
            let output = Pipe(), errors = Pipe()
            child.standardInput = FileHandle.nullDevice
            child.standardOutput = output
            child.standardError = errors
            async let status = CLITests.waitForExit(child, limit: 90)
            // Read 64 KiB, then stop reading: gentcp blocks on stdout and the download pauses (the
            // window closes), so the board is killed mid-transfer whatever the machine's speed.
            let first = await CLITests.readExactly(64 << 10, from: output.fileHandleForReading)
            board.exit.signal(SIGKILL)
            let rest = await CLITests.readExactly(Int.max, from: output.fileHandleForReading)
            let stderr = String(decoding: await CLITests.readExactly(Int.max, from: errors.fileHandleForReading), as: UTF8.self)
            let code = try await status
            #expect(first.count >= 64 << 10)
            #expect(first.count + rest.count < 1 << 20, "the whole download arrived before the board was killed")
            #expect(!stderr.contains("errno"))
            // The line hung up: eio, never the peer's close.
            #expect(code == 1, "stderr: \(stderr)")
            #expect(stderr.split(separator: "\n").count == 1, "stderr: \(stderr)")
            #expect(stderr.hasPrefix("gentcp: eio: the serial line hung up"), "stderr: \(stderr)")
            #expect(stderr.contains(" received"), "stderr: \(stderr)")
        }
    }
}
