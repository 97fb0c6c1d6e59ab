import BoardTestSupport
import Foundation
import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSLIP
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The firmware boards of `boards/firmware` under QEMU (`tools/firmware.sh`).
enum FirmwareBoard: String, CaseIterable, Sendable, CustomStringConvertible {
    case mps2 = "mps2-an386"
    case riscv = "riscv-virt"

    var description: String { rawValue }
    /// The board profile for `gentcp connect --board`.
    var profile: String { "qemu-\(rawValue)" }
    var qemu: String { self == .mps2 ? "qemu-system-arm" : "qemu-system-riscv32" }
    var crossCompiler: String { self == .mps2 ? "arm-none-eabi-gcc" : "riscv64-unknown-elf-gcc" }

    /// The package root (Tests/GenTCPTests/Firmware/<this file> → the root).
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The line's addresses, as in boards/qemu-*.json.
    static let hostAddress = IPAddress(10, 13, 0, 1)
    static let boardAddress = IPAddress(10, 13, 0, 2)

    /// Why this board's firmware cannot be built or booted here, or nil.
    var unavailable: String? {
        for tool in [qemu, crossCompiler, "swiftc"] where FirmwareTools.shell("command -v \(tool)").status != 0 {
            return "\(tool) is not installed (CI installs it: .ci/run)"
        }
        return nil
    }

    func elf(_ program: String) -> String { "\(Self.packageRoot)/.build/firmware/\(rawValue)/\(program).elf" }
}

enum FirmwareTools {
    /// `/bin/sh -c command` in the package root, its output (stdout and stderr) and status.
    static func shell(_ command: String) -> (status: Int32, output: String) {
        let p = Foundation.Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        p.currentDirectoryURL = URL(fileURLWithPath: FirmwareBoard.packageRoot)
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = "/opt/swift/usr/bin:" + (environment["PATH"] ?? "/usr/bin:/bin")
        p.environment = environment
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return (127, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Builds the board's firmware (`tools/firmware.sh build BOARD`) unless every program's ELF
    /// is there. Blocking: on a thread of its own.
    static func ensureBuilt(_ board: FirmwareBoard, _ programs: [String]) async throws {
        if programs.allSatisfy({ FileManager.default.fileExists(atPath: board.elf($0)) }) { return }
        let result = await OffPool.run { shell("tools/firmware.sh build \(board.rawValue) \(programs.joined(separator: " ")) 2>&1") }
        guard result.status == 0 else {
            throw FirmwareFailure("tools/firmware.sh build \(board) failed (\(result.status)):\n\(result.output)")
        }
    }
}

struct FirmwareFailure: Error, CustomStringConvertible {
    var description: String
    init(_ text: String) { description = text }
}

/// One QEMU boot of a firmware (`tools/firmware.sh boot`): the line UART's pty (held open, raw,
/// for the whole run: QEMU's pty backend drops or delays the line while no one holds the slave),
/// and the debug console's file.
final class QEMUBoot: @unchecked Sendable {
    let board: FirmwareBoard
    let program: String
    let child: ChildExit
    let directory: String
    let consolePath: String
    /// The line's pty (when the line is a pty QEMU made).
    let ptyPath: String?
    private let holder: Int32
    private let output: Pipe

    /// Boots `program`; `line` is QEMU's chardev for the line UART (`pty`, or a device path such
    /// as a simulator's pty). Returns once the board printed "board: ready" on its console (its
    /// UARTs are set up: nothing sent to the line from then on is lost).
    static func boot(_ board: FirmwareBoard, _ program: String, line: String = "pty") async throws -> QEMUBoot {
        let directory = NSTemporaryDirectory() + "gentcp-qemu-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let consolePath = directory + "/console.log"
        let p = Foundation.Process()
        p.executableURL = URL(fileURLWithPath: FirmwareBoard.packageRoot + "/tools/firmware.sh")
        p.arguments = ["boot", board.rawValue, program,
                       "--line", line, "--console", consolePath]
        let output = Pipe()
        p.standardOutput = output
        p.standardError = output
        p.standardInput = FileHandle.nullDevice
        let child = try ChildExit(starting: p)
        var ptyPath: String?
        var seen: [String] = []
        if line == "pty" {
            while ptyPath == nil {
                guard let text = await OffPool.readLine(output.fileHandleForReading.fileDescriptor, limit: 60) else {
                    child.signal(SIGKILL)
                    throw FirmwareFailure("QEMU printed no pty for \(board) \(program): \(seen.joined(separator: "\n"))")
                }
                seen.append(text)
                if let range = text.range(of: "/dev/pts/[0-9]+", options: .regularExpression) {
                    ptyPath = String(text[range])
                }
            }
        }
        var holder: Int32 = -1
        if let ptyPath {
            holder = open(ptyPath, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
            if holder >= 0 {
                var t = termios()
                tcgetattr(holder, &t)
                cfmakeraw(&t)
                tcsetattr(holder, TCSANOW, &t)
            }
        }
        let run = QEMUBoot(board: board, program: program, child: child, directory: directory, consolePath: consolePath,
                           ptyPath: ptyPath, holder: holder, output: output)
        do {
            _ = try await run.waitForConsole("board: ready")
        } catch {
            await run.stop()
            throw error
        }
        return run
    }

    private init(board: FirmwareBoard, program: String, child: ChildExit, directory: String, consolePath: String,
                 ptyPath: String?, holder: Int32, output: Pipe) {
        self.board = board
        self.program = program
        self.child = child
        self.directory = directory
        self.consolePath = consolePath
        self.ptyPath = ptyPath
        self.holder = holder
        self.output = output
    }

    /// What the firmware printed on its debug console so far.
    var console: String { (try? String(contentsOfFile: consolePath, encoding: .utf8)) ?? "" }

    /// Waits until the console holds `marker` (checked every 50 ms; the limit is for a firmware
    /// that never gets there) and returns the console.
    @discardableResult
    func waitForConsole(_ marker: String, limit: Double = 120) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(limit)
        while ContinuousClock.now < deadline {
            let text = console
            if text.contains(marker) { return text }
            if child.hasExited { throw FirmwareFailure("QEMU exited before \"\(marker)\"; console:\n\(text)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw FirmwareFailure("no \"\(marker)\" on \(board) \(program)'s console within \(limit) s; console:\n\(console)")
    }

    /// Stops QEMU (SIGKILL: the console file is written as it goes; a SIGTERM from the test
    /// process was not acted on) and removes the directory.
    func stop() async {
        child.signal(SIGKILL)
        _ = await child.wait(limit: 60)
        if holder >= 0 { close(holder) }
        try? output.fileHandleForReading.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Every "stats LABEL key=value ..." line of the console (QEMUBoard prints one whenever the
    /// number of live heap blocks changes), as dictionaries.
    var stats: [[String: Int]] {
        console.split(separator: "\n").filter { $0.hasPrefix("stats ") }.map { line in
            var result: [String: Int] = [:]
            for field in line.split(separator: " ") {
                let parts = field.split(separator: "=")
                if parts.count == 2, let value = Int(parts[1]) { result[String(parts[0])] = value }
            }
            return result
        }
    }

    /// Waits for a stats line printed after the console had `offset` bytes (QEMUBoard prints
    /// one at least every 2 s) and returns it: heap peak and stack high-water so far.
    func stats(after offset: Int, limit: Double = 120) async throws -> [String: Int] {
        let deadline = ContinuousClock.now + .seconds(limit)
        while ContinuousClock.now < deadline {
            let text = console
            if text.utf8.count > offset {
                let later = String(decoding: Array(text.utf8)[offset...], as: UTF8.self)
                if let line = later.split(separator: "\n").first(where: { $0.hasPrefix("stats ") && later.contains("\($0)\n") }) {
                    var result: [String: Int] = [:]
                    for field in line.split(separator: " ") {
                        let parts = field.split(separator: "=")
                        if parts.count == 2, let value = Int(parts[1]) { result[String(parts[0])] = value }
                    }
                    return result
                }
            }
            if child.hasExited { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw FirmwareFailure("\(board) \(program) printed no stats line; console:\n\(console)")
    }
}

/// The sequence number of the first SYN-ACK in a pcap file of raw IPv4 packets (LINKTYPE_RAW),
/// or nil.
func firstSYNACKSequence(pcap path: String) -> UInt32? {
    guard let data = FileManager.default.contents(atPath: path), data.count >= 24 else { return nil }
    let bytes = [UInt8](data)
    let littleEndian = bytes[0] == 0xD4 || bytes[0] == 0x4D
    func u32(_ at: Int) -> UInt32 {
        let b = bytes[at..<(at + 4)].map(UInt32.init)
        return littleEndian ? b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24 : b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]
    }
    var at = 24
    while at + 16 <= bytes.count {
        let length = Int(u32(at + 8))
        let packet = at + 16
        at = packet + length
        guard at <= bytes.count, length >= 40, bytes[packet] >> 4 == 4, bytes[packet + 9] == 6 else { continue }
        let tcp = packet + Int(bytes[packet] & 0x0F) * 4
        guard tcp + 20 <= packet + length else { continue }
        if bytes[tcp + 13] & 0x12 == 0x12 {
            return UInt32(bytes[tcp + 4]) << 24 | UInt32(bytes[tcp + 5]) << 16 | UInt32(bytes[tcp + 6]) << 8 | UInt32(bytes[tcp + 7])
        }
    }
    return nil
}

/// The firmware of `boards/firmware` under QEMU on both boards. slip-echo: the board programs'
/// checks (`BoardChecks`, as in the simulation and pty runs) through our slip driver, 64 KiB
/// echoed byte-exact through the built `gentcp connect --board qemu-BOARD`, RAM (heap peak +
/// stack high-water) within 16 KiB, and initial sequence numbers that differ from boot to boot.
/// esp-at-client: through `gentcp simulate sim-esp-at` to a loopback collector.
@Suite("firmware under QEMU (tools/firmware.sh)", .serialized, .timeLimit(.minutes(15)))
struct QEMUFirmwareTests {
    static let size = 64 << 10
    /// Issue 13's RAM budget for one connection with 1,460-byte buffers (the slip-echo firmware
    /// serves one at a time). Measured: heap peak 11,816 B, stack high-water 3,188 (M4) / 3,272
    /// (RV32).
    static let ramBudget = 16 << 10
    /// The firmware's stack (the boards' link.ld).
    static let stackSize = 16 << 10

    @Test("slip-echo: BoardChecks (5 pings, 64 KiB echo, 64 KiB discard), 64 KiB through gentcp connect, RAM within 16 KiB, ISNs differ per boot",
          arguments: FirmwareBoard.allCases)
    func slipEcho(board: FirmwareBoard) async throws {
        if let reason = board.unavailable {
            print("skipping the \(board) firmware: \(reason)")
            return
        }
        try await FirmwareTools.ensureBuilt(board, ["slip-echo"])
        let data = CLITests.payload(Self.size, seed: 13)

        // Boot 1: our slip driver on the pty.
        let first = try await QEMUBoot.boot(board, "slip-echo")
        let capture1 = first.directory + "/driver.pcap"
        var isn1: UInt32?
        do {
            let link = try PTYLink(path: try #require(first.ptyPath), configuration: SerialConfiguration(baudRate: 115_200))
            let configuration = SLIPConfiguration(
                local: FirmwareBoard.hostAddress, peer: FirmwareBoard.boardAddress, mtu: 1006, capturePath: capture1)
            let driver = try SLIPDriver(link: link, configuration: configuration)
            defer { driver.close() }
            // The board programs' checks, the same as in the simulation and pty runs.
            try await Process.run {
                try await BoardChecks.ping(driver, board: FirmwareBoard.boardAddress, count: 5, timeout: .seconds(20))
                #expect(driver.statistics.stack.echoRepliesReceived == 5)
                let seconds = try await BoardChecks.echo(driver, board: FirmwareBoard.boardAddress, size: Self.size,
                                                         runtime: RealRuntime.shared)
                print("firmware \(board) slip-echo: 64 KiB echoed through the slip driver in \(seconds) s")
            }
            // RAM for one connection: the peaks after the echo (the next stats line).
            let stats = try await first.stats(after: first.console.utf8.count)
            let heap = try #require(stats["heap-peak"]), stack = try #require(stats["stack-high-water"])
            print("firmware \(board) slip-echo: heap peak \(heap) B, stack high-water \(stack) B, RAM \(heap + stack) B")
            #expect(stack < Self.stackSize - 64, "\(board): the stack high-water \(stack) reaches the end of the stack")
            // Issue 13's budget: 16 KiB (heap + stack) for one connection with 1,460-byte buffers.
            #expect(heap + stack <= Self.ramBudget,
                    "\(board): heap peak \(heap) + stack high-water \(stack) over the budget \(Self.ramBudget)")
            // Discard too. The source check (1 MiB) is left out under QEMU for now: the firmware's
            // source service moved 2.2 kB/s on the M4 and 10 kB/s on RV32 here (echo: 20 and 70),
            // so 1 MiB would take 2 to 8 minutes.
            try await Process.run {
                let start = ContinuousClock.now
                try await BoardChecks.discard(driver, board: FirmwareBoard.boardAddress, size: Self.size)
                print("firmware \(board) slip-echo: 64 KiB to the discard service in \(ContinuousClock.now - start)")
            }
            driver.flushCapture()
            isn1 = firstSYNACKSequence(pcap: capture1)
        } catch {
            print("console of \(board) slip-echo:\n\(first.console)")
            await first.stop()
            throw error
        }
        await first.stop()

        // Boot 2: the built gentcp, as a user runs it, with a capture for the ISN.
        guard GentcpBinary.url != nil else {
            print("skipping gentcp connect on \(board): gentcp is not built")
            return
        }
        let second = try await QEMUBoot.boot(board, "slip-echo")
        let capture2 = second.directory + "/gentcp.pcap"
        do {
            let outcome = try await CLITests.run(
                ["connect", "--board", board.profile, "--boards", FirmwareBoard.packageRoot + "/boards",
                 "--serial", try #require(second.ptyPath), "--capture", capture2, "10.13.0.2", "7"],
                stdin: data, limit: 600)
            #expect(outcome.status == 0, "gentcp connect: \(outcome.stderr)")
            #expect(outcome.stdout.count == data.count && outcome.stdout == data,
                    "gentcp connect echoed \(outcome.stdout.count) of \(data.count) bytes; stderr: \(outcome.stderr)")
            let isn2 = firstSYNACKSequence(pcap: capture2)
            #expect(isn1 != nil && isn2 != nil, "a SYN-ACK in each boot's capture")
            #expect(isn1 != isn2, "the board's ISN must differ between boots: \(String(describing: isn1)) and \(String(describing: isn2))")
            print("firmware \(board) slip-echo: SYN-ACK ISNs of two boots \(String(describing: isn1)), \(String(describing: isn2))")
        } catch {
            print("console of \(board) slip-echo:\n\(second.console)")
            await second.stop()
            throw error
        }
        await second.stop()
    }

    @Test("esp-at-client: the telemetry client through gentcp simulate sim-esp-at to a loopback collector, every reading acknowledged, exit status 0",
          arguments: FirmwareBoard.allCases)
    func espATClient(board: FirmwareBoard) async throws {
        if let reason = board.unavailable {
            print("skipping the \(board) firmware: \(reason)")
            return
        }
        guard GentcpBinary.url != nil else {
            print("skipping esp-at-client on \(board): gentcp is not built (gentcp simulate plays the module)")
            return
        }
        try await FirmwareTools.ensureBuilt(board, ["esp-at-client"])
        try await SimulateCLITests.withBoard("sim-esp-at") { modem in
            try #require(modem.fd >= 0, "cannot open \(modem.path)")
            try await Process.run {
                // The firmware's collector is 127.0.0.1:7007 (programs/esp-at-client); the
                // suite is serialized, so one board at a time binds it.
                let listener = try ListenSocket.listen(
                    port: 7007, options: [.binary, .active(.passive), .reuseaddr(true), .localAddress(.loopbackV4)],
                    driver: .posix)
                defer { listener.close() }
                let collected = Mutex<[String]>([])
                let collector = Process.spawn {
                    let lines = try await BoardChecks.collect(listener, count: 5)
                    collected.withLock { $0 = lines }
                }
                // QEMU opens the simulator's pty as the module's UART; the test holds it too
                // (modem.fd), so that the simulator never sees the line hang up.
                let run = try await QEMUBoot.boot(board, "esp-at-client", line: modem.path)
                let status = await run.child.wait(limit: 300)
                let console = run.console
                let stats = run.stats.last
                await run.stop()
                #expect(status == 0, "esp-at-client on \(board) exited \(status); console:\n\(console)")
                #expect(await collector.waitForExit() == .normal, "the collector: console:\n\(console)")
                #expect(collected.withLock { $0.count } == 5, "what the collector got from \(board)")
                let heap = try #require(stats?["heap-peak"]), stack = try #require(stats?["stack-high-water"])
                print("firmware \(board) esp-at-client: heap peak \(heap) B, stack high-water \(stack) B")
                #expect(stack < Self.stackSize - 64, "\(board): the stack high-water \(stack) reaches the end of the stack")
            }
        }
    }
}
