import Foundation
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `gentcp simulate` as a user runs it: start it, read the pty path it prints, talk AT to the pty.
@Suite(.enabled(if: GentcpBinary.url != nil, "gentcp is not built: run `swift build` first (or set GENTCP_BIN)"),
       .timeLimit(.minutes(5)))
struct SimulateCLITests {
    static let boards: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("boards").path
    }()

    /// A running `gentcp simulate`, its pty opened raw and non-blocking. Its fields are set
    /// when it starts and only read afterwards; the pty is used by one task at a time.
    final class Running: Sendable {
        let input: Pipe
        let output: Pipe
        let exit: ChildExit
        let fd: Int32
        let path: String

        /// Starts `gentcp simulate board` and reads the pty's path, the first line on stdout.
        static func start(_ board: String, extra: [String] = []) async throws -> Running {
            let child = Foundation.Process()
            child.executableURL = GentcpBinary.url!
            child.arguments = ["simulate", board, "--boards", SimulateCLITests.boards, "--no-pacing"] + extra
            let input = Pipe(), output = Pipe()
            child.standardInput = input
            child.standardOutput = output
            child.standardError = FileHandle.nullDevice
            let exit = try ChildExit(starting: child)
            let path = await OffPool.readLine(output.fileHandleForReading.fileDescriptor) ?? ""
            return Running(input: input, output: output, exit: exit, path: path)
        }

        private init(input: Pipe, output: Pipe, exit: ChildExit, path: String) {
            self.input = input
            self.output = output
            self.exit = exit
            self.path = path
            let fd = path.isEmpty ? -1 : open(path, O_RDWR | O_NOCTTY | O_NONBLOCK)
            if fd >= 0 {
                var t = termios()
                tcgetattr(fd, &t)
                cfmakeraw(&t)
                tcsetattr(fd, TCSANOW, &t)
            }
            self.fd = fd
        }

        func send(_ text: String) {
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        }

        /// Reads until `marker` appears in what came since the last call (on a thread of its
        /// own; the limit is for a board that never answers, see ``OffPool/readLimit``).
        func read(until marker: String) async -> String {
            String(decoding: await OffPool.read(fd, untilText: marker), as: UTF8.self)
        }

        /// Ends the board (the end of its stdin stops it) and waits for it to exit.
        func stop() async {
            try? input.fileHandleForWriting.close()
            _ = await exit.wait(limit: 60)
            if fd >= 0 { close(fd) }
        }
    }

    /// Runs `body` with a started `gentcp simulate board`, then stops the board and waits for
    /// it to exit, also when `body` throws (an async `defer`).
    static func withBoard<T>(_ board: String, extra: [String] = [], _ body: (Running) async throws -> T) async throws -> T {
        let running = try await Running.start(board, extra: extra)
        do {
            let value = try await body(running)
            await running.stop()
            return value
        } catch {
            await running.stop()
            throw error
        }
    }

    @Test("simulate sim-esp-at: a pty that answers AT, and whose CIPSTART reaches a loopback listener")
    func espATOnAPty() async throws {
        try await SimulateCLITests.withBoard("sim-esp-at") { board in
            #expect(board.path.hasPrefix("/dev/pts/"), "printed: \(board.path)")
            try #require(board.fd >= 0, "cannot open \(board.path)")

            // Like the real module, it ignores input until it has booted and said `ready`.
            #expect(await board.read(until: "ready\r\n").contains("ready"))
            board.send("AT\r\n")
            #expect(await board.read(until: "OK\r\n").contains("OK\r\n"))
            board.send("ATE0\r\n")
            _ = await board.read(until: "OK\r\n")
            board.send("AT+CIPMUX=1\r\n")
            #expect(await board.read(until: "OK\r\n").contains("OK"))

            try await Process.run {
                let listener = try ListenSocket.listen(port: 0, options: [.binary, .active(.passive)], driver: .posix)
                let port = try listener.port()
                board.send("AT+CIPSTART=0,\"TCP\",\"127.0.0.1\",\(port)\r\n")
                let peer = try await listener.accept(timeout: 5000)
                let answer = await board.read(until: "OK\r\n")
                #expect(answer.contains("0,CONNECT"), "answer: \(answer)")
                try await peer.send("hi from the far side")
                let ipd = await board.read(until: "side")
                #expect(ipd.contains("+IPD,0,20:hi from the far side"), "got: \(ipd)")
                peer.close()
                listener.close()
            }
        }
    }

    @Test("connect --board sim-esp-at --serial PTY: stdin reaches a loopback server through the simulated modem, its reply reaches stdout")
    func connectThroughTheSimulatedModem() async throws {
        try await SimulateCLITests.withBoard("sim-esp-at") { board in
            try #require(board.fd >= 0, "cannot open \(board.path)")
            // The test only reads the banner; gentcp opens the same pty for the driver.
            _ = await board.read(until: "ready\r\n")
            let request = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            let path = board.path
            try await Process.run {
                let listener = try ListenSocket.listen(port: 0, options: [.binary, .active(.passive)], driver: .posix)
                let port = try listener.port()
                let server = Process.spawn {
                    let s = try await listener.accept(timeout: 10_000)
                    let got = try await s.recv(request.count, timeout: 10_000)
                    try await s.send(Array("reply:".utf8) + got.bytes)
                    s.close()
                }
                let outcome = try await CLITests.run(
                    ["connect", "--board", "sim-esp-at", "--boards", SimulateCLITests.boards, "--serial", path,
                     "--timeout", "10000", "127.0.0.1", "\(port)"], stdin: request, limit: 30)
                #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
                #expect(outcome.stdout == Array("reply:".utf8) + request)
                #expect(await server.waitForExit() == .normal)
                listener.close()
            }
        }
    }

    @Test("simulate sim-slip, then connect --board sim-slip: echo over SLIP and 1 MiB from the source service, byte-exact")
    func slipBoardOnAPty() async throws {
        try await SimulateCLITests.withBoard("sim-slip") { board in
            #expect(board.path.hasPrefix("/dev/pts/"), "printed: \(board.path)")
            let common = ["connect", "--board", "sim-slip", "--boards", SimulateCLITests.boards, "--serial", board.path,
                          "--timeout", "10000", "10.10.0.2"]
            let request = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
            let echo = try await CLITests.run(common + ["7"], stdin: request, limit: 30)
            #expect(echo.status == 0, "stderr: \(echo.stderr)")
            #expect(echo.stdout == request)

            let source = try await CLITests.run(common + ["19"], limit: 60)
            #expect(source.status == 0, "stderr: \(source.stderr)")
            var x: UInt32 = 0x1234_5678
            let expected = (0..<(1 << 20)).map { _ -> UInt8 in
                x ^= x << 13; x ^= x >> 17; x ^= x << 5
                return UInt8(truncatingIfNeeded: x)
            }
            #expect(source.stdout.count == expected.count)
            #expect(source.stdout == expected)
        }
    }

    /// A running `gentcp capture` tapping `device`; its pty path is read from stdout.
    final class Tap: Sendable {
        let input = Pipe()
        let exit: ChildExit
        let path: String

        init(device: String, link: String, file: String) async throws {
            let child = Foundation.Process()
            child.executableURL = GentcpBinary.url!
            child.arguments = ["capture", "--serial", device, "--link", link, "--output", file]
            let output = Pipe()
            child.standardInput = input
            child.standardOutput = output
            child.standardError = FileHandle.nullDevice
            exit = try ChildExit(starting: child)
            path = await OffPool.readLine(output.fileHandleForReading.fileDescriptor) ?? ""
        }

        /// Ends the capture (the end of its stdin) and waits for it to exit, so the file is complete.
        func stop() async {
            try? input.fileHandleForWriting.close()
            _ = await exit.wait(limit: 60)
        }
    }

    @Test("capture between connect and a SLIP board: the echo goes through and the pcap holds both directions")
    func captureSLIP() async throws {
        try await SimulateCLITests.withBoard("sim-slip") { board in
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("gentcp-capture-\(getpid()).pcap").path
            defer { try? FileManager.default.removeItem(atPath: file) }
            let tap = try await Tap(device: board.path, link: "slip", file: file)
            let request = Array("through the tap".utf8)
            let echo = try await CLITests.run(["connect", "--board", "sim-slip", "--boards", SimulateCLITests.boards,
                                               "--serial", tap.path, "--timeout", "10000", "10.10.0.2", "7"], stdin: request)
            await tap.stop()
            #expect(echo.status == 0, "stderr: \(echo.stderr)")
            #expect(echo.stdout == request)
            let pcap = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
            try #require(pcap.count > 24)
            #expect(Array(pcap[0..<4]) == [0xD4, 0xC3, 0xB2, 0xA1])         // little-endian magic, microseconds
            #expect(Array(pcap[20..<24]) == [101, 0, 0, 0])                  // LINKTYPE_RAW
            var offset = 24, packets = 0, fromBoard = 0
            while offset + 16 <= pcap.count {
                let length = Int(pcap[offset + 8]) | Int(pcap[offset + 9]) << 8
                let packet = pcap[(offset + 16)...].prefix(length)
                #expect(packet.first == 0x45)                                 // IPv4, 20-byte header
                if packet.count >= 16, Array(packet.dropFirst(12).prefix(4)) == [10, 10, 0, 2] { fromBoard += 1 }
                packets += 1
                offset += 16 + length
            }
            #expect(offset == pcap.count)
            #expect(packets >= 6 && fromBoard >= 3, "packets \(packets), from the board \(fromBoard)")
        }
    }

    @Test("capture of an AT session: a timestamped transcript of both directions")
    func captureAT() async throws {
        try await SimulateCLITests.withBoard("sim-esp-at") { board in
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("gentcp-capture-\(getpid()).txt").path
            defer { try? FileManager.default.removeItem(atPath: file) }
            _ = await board.read(until: "ready\r\n")
            let tap = try await Tap(device: board.path, link: "at", file: file)
            let fd = open(tap.path, O_RDWR | O_NOCTTY | O_NONBLOCK)
            try #require(fd >= 0)
            var t = termios()
            tcgetattr(fd, &t); cfmakeraw(&t); tcsetattr(fd, TCSANOW, &t)
            _ = Array("AT\r\n".utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            let answer = await OffPool.read(fd, untilText: "OK")
            close(fd)
            await tap.stop()
            #expect(String(decoding: answer, as: UTF8.self).contains("OK"))
            let transcript = try String(contentsOfFile: file, encoding: .utf8)
            let lines = transcript.split(separator: "\n")
            #expect(lines.contains { $0.hasSuffix("host> AT\\r\\n") && $0.hasPrefix("+") }, "transcript: \(transcript)")
            #expect(lines.contains { $0.contains("device< ") && $0.contains("OK\\r\\n") }, "transcript: \(transcript)")
        }
    }

    @Test("simulate refuses a real board and an unknown one, with a one-line error", arguments: [
        ("esp32-esp-at", "not a simulated board"), ("no-such-board", "no board named"),
    ])
    func refuses(board: String, mentions: String) async throws {
        let outcome = try await CLITests.run(["simulate", board, "--boards", SimulateCLITests.boards])
        #expect(outcome.status == 64)
        #expect(outcome.errorLines.count == 1 && outcome.stderr.contains(mentions), "stderr: \(outcome.stderr)")
    }
}
