import Foundation
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Where the built `gentcp` is (see ``CLITests``).
enum GentcpBinary {
    static let url: URL? = {
        let fm = FileManager.default
        if let explicit = ProcessInfo.processInfo.environment["GENTCP_BIN"] {
            return fm.isExecutableFile(atPath: explicit) ? URL(fileURLWithPath: explicit) : nil
        }
        var candidates: [URL] = []
        // Next to the test bundle: .build/<triple>/debug/GenTCPPackageTests.xctest.
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(me.deletingLastPathComponent().appendingPathComponent("gentcp"))
        if let exe = Bundle.main.executableURL {
            candidates.append(exe.resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("gentcp"))
        }
        let build = URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent(".build")
        candidates.append(build.appendingPathComponent("debug/gentcp"))
        if let triples = try? fm.contentsOfDirectory(atPath: build.path) {
            for t in triples.sorted() { candidates.append(build.appendingPathComponent("\(t)/debug/gentcp")) }
        }
        return candidates.first { fm.isExecutableFile(atPath: $0.path) }
    }()
}

/// Tests of the built `gentcp` executable: `gentcp connect` against GenTCP listeners on loopback.
///
/// The binary is looked up next to the test bundle (`swift build` and `swift test` put both in
/// `.build/<triple>/debug`), then under `.build/*/debug` of the current directory; the
/// `GENTCP_BIN` environment variable overrides both. Without a binary the suite is skipped.
@Suite(.enabled(if: GentcpBinary.url != nil, "gentcp is not built: run `swift build` first (or set GENTCP_BIN)"),
       .timeLimit(.minutes(3)))
struct CLITests {
    // MARK: - Running the binary

    static var binary: URL? { GentcpBinary.url }


    struct Outcome {
        var status: Int32
        var stdout: [UInt8]
        var stderr: String
        /// The non-empty lines of stderr.
        var errorLines: [String] { stderr.split(separator: "\n").map(String.init) }
    }

    /// Runs `gentcp` with `arguments`, stdin from a file holding `stdin`, and collects its output.
    /// Files rather than pipes: nothing can deadlock on a full pipe, whatever the binary does.
    /// Waits without blocking the cooperative pool; kills the binary after `limit` seconds (a
    /// limit for a hung binary only: an instrumented one on a loaded machine is slow).
    static func run(_ arguments: [String], stdin: [UInt8] = [], limit: Double = 120) async throws -> Outcome {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("gentcp-cli-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let inURL = dir.appendingPathComponent("stdin"), outURL = dir.appendingPathComponent("stdout"),
            errURL = dir.appendingPathComponent("stderr")
        try Data(stdin).write(to: inURL)
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let inHandle = try FileHandle(forReadingFrom: inURL)
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        defer {
            try? inHandle.close()
            try? outHandle.close()
            try? errHandle.close()
        }

        let child = Foundation.Process()
        child.executableURL = binary!
        child.arguments = arguments
        child.standardInput = inHandle
        child.standardOutput = outHandle
        child.standardError = errHandle
        let status = try await waitForExit(child, limit: limit)
        return Outcome(status: status,
                       stdout: Array(try Data(contentsOf: outURL)),
                       stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    /// Starts `child` and waits for its exit (an event: the termination handler); kills it
    /// after `limit` seconds, which only a hung binary reaches.
    static func waitForExit(_ child: Foundation.Process, limit: Double) async throws -> Int32 {
        await (try ChildExit(starting: child)).wait(limit: limit)
    }

    /// Deterministic bytes: every value 0...255 first, then a seeded pseudo-random stream.
    static func payload(_ count: Int, seed: UInt64) -> [UInt8] {
        var out = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var x = seed | 1
            for i in 0..<count {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17  // xorshift64
                buffer[i] = UInt8(truncatingIfNeeded: x >> 24)
            }
            initialized = count
        }
        for i in 0..<min(256, count) { out[i] = UInt8(i) }
        return out
    }

    /// A listener on loopback that accepts one connection, reads until the client's FIN, then
    /// sends `reply` and closes. Returns what it received.
    static func serveOnce(_ listener: ListenSocket, reply: [UInt8]) async throws -> [UInt8] {
        let s = try await listener.accept(timeout: 20_000)
        var received: [UInt8] = []
        while true {
            do throws(SocketError) {
                received += try await s.recv(0, timeout: 20_000).bytes
            } catch {
                guard error.reason == .closed else { throw error }
                break
            }
        }
        // The client only shut down its sending side: the reply still reaches it (half-close).
        try await s.send(reply)
        s.close()
        return received
    }

    static let listenOptions: [GenTCPCore.Option] = [
        .binary, .active(.passive), .exitOnClose(false), .buffer(65536), .localAddress(.loopbackV4),
    ]

    // MARK: - Copying

    @Test("bytes 0...255 and 1 MiB go out byte-exact; the reply comes back byte-exact", arguments: [
        (256, 4096), (1 << 20, 3 << 19),
    ])
    func roundTrip(sent: Int, replied: Int) async throws {
        let request = CLITests.payload(sent, seed: 0x9E37_79B9_7F4A_7C15)
        let reply = CLITests.payload(replied, seed: 0xC2B2_AE3D_27D4_EB4F)
        try await GenTCP.Process.run {
            let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
            let port = try listener.port()
            async let served = CLITests.serveOnce(listener, reply: reply)
            let outcome = try await CLITests.run(["connect", "127.0.0.1", "\(port)"], stdin: request)
            let received = try await served
            #expect(received.count == request.count)
            #expect(received == request, "the listener got different bytes")
            #expect(outcome.stdout.count == reply.count)
            #expect(outcome.stdout == reply, "stdout differs from the listener's reply")
            #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
            #expect(outcome.stderr.isEmpty)
        }
    }

    @Test("empty stdin: the FIN goes out at once and the reply still arrives")
    func emptyStdin() async throws {
        let reply = Array("hello from the listener\n".utf8)
        try await GenTCP.Process.run {
            let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
            let port = try listener.port()
            async let served = CLITests.serveOnce(listener, reply: reply)
            let outcome = try await CLITests.run(["connect", "localhost", "\(port)"])
            #expect(try await served.isEmpty)
            #expect(outcome.stdout == reply)
            #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        }
    }

    @Test("IPv6 loopback with -6 and --verbose progress on stderr only")
    func ipv6Verbose() async throws {
        let reply = CLITests.payload(1000, seed: 7)
        let request = CLITests.payload(5000, seed: 8)
        try await GenTCP.Process.run {
            var options = CLITests.listenOptions
            options[options.count - 1] = .localAddress(.loopbackV6)
            let listener: ListenSocket
            do {
                listener = try ListenSocket.listen(port: 0, options: options, driver: .posix)
            } catch {
                // No IPv6 on this host: nothing to test.
                return
            }
            let port = try listener.port()
            async let served = CLITests.serveOnce(listener, reply: reply)
            let outcome = try await CLITests.run(["connect", "-6", "-v", "::1", "\(port)"], stdin: request)
            #expect(try await served == request)
            #expect(outcome.stdout == reply)
            #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
            #expect(outcome.stderr.contains("connected to [::1]:\(port)"))
            #expect(outcome.errorLines.allSatisfy { $0.hasPrefix("gentcp: ") })
        }
    }

    @Test("stdin is copied while the peer answers: an echo dialogue over pipes does not deadlock")
    func interactiveDialogue() async throws {
        try await GenTCP.Process.run {
            let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
            let port = try listener.port()
            // Echo every chunk at once, until the client's FIN.
            async let echoed: Int = {
                let s = try await listener.accept(timeout: 20_000)
                var total = 0
                while true {
                    do throws(SocketError) {
                        let data = try await s.recv(0, timeout: 20_000).bytes
                        total += data.count
                        try await s.send(data)
                    } catch {
                        guard error.reason == .closed else { throw error }
                        break
                    }
                }
                s.close()
                return total
            }()

            let child = Foundation.Process()
            child.executableURL = CLITests.binary!
            child.arguments = ["connect", "127.0.0.1", "\(port)"]
            let input = Pipe(), output = Pipe()
            child.standardInput = input
            child.standardOutput = output
            child.standardError = FileHandle.nullDevice
            async let status = CLITests.waitForExit(child, limit: 30)
            // Each line must come back before the next is written: stdin is still open, so this
            // only works if gentcp copies both ways at once.
            for line in ["ping 1\n", "ping 2\n", "\u{0}\u{1}\u{FF} binary\n"] {
                let bytes = Array(line.utf8)
                try input.fileHandleForWriting.write(contentsOf: Data(bytes))
                let back = await CLITests.readExactly(bytes.count, from: output.fileHandleForReading)
                #expect(back == bytes)
            }
            try input.fileHandleForWriting.close()
            let rest = await CLITests.readExactly(Int.max, from: output.fileHandleForReading)
            #expect(rest.isEmpty)
            #expect(try await status == 0)
            #expect(try await echoed > 0)
        }
    }

    /// Reads `count` bytes (or up to end of file) on a thread of its own, never on the pool.
    static func readExactly(_ count: Int, from handle: FileHandle) async -> [UInt8] {
        await OffPool.read(handle.fileDescriptor) { $0.count >= count }
    }

    // MARK: - Failures

    @Test("connection refused: exit 1 and one stderr line starting with `gentcp: econnrefused`")
    func refused() async throws {
        // A port that was just free: listen, read the port, close.
        let port = try await GenTCP.Process.run {
            let l = try ListenSocket.listen(port: 0, options: [.localAddress(.loopbackV4)], driver: .posix)
            let p = try l.port()
            l.close()
            return p
        }
        let outcome = try await CLITests.run(["connect", "127.0.0.1", "\(port)"], stdin: Array("x".utf8))
        #expect(outcome.status != 0)
        #expect(outcome.status == 1)
        #expect(outcome.errorLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.hasPrefix("gentcp: econnrefused"))
        #expect(outcome.stderr.contains("is anything listening on 127.0.0.1:\(port)?"))
        #expect(outcome.stdout.isEmpty)
    }

    @Test("bad ports and arguments: exit 64 and one clear `gentcp: badarg` line", arguments: [
        (["connect", "127.0.0.1", "70000"], "70000"),
        (["connect", "127.0.0.1", "0"], "1...65535"),
        (["connect", "127.0.0.1", "http"], "http"),
        (["connect", "--timeout", "-5", "127.0.0.1", "80"], "--timeout"),
        (["connect", "--timeout", "soon", "127.0.0.1", "80"], "soon"),
        (["connect", "-6", "127.0.0.1", "80"], "IPv4 address"),
        (["connect", "--driver", "at", "127.0.0.1", "80"], "needs --serial"),
        (["connect", "--driver", "at", "--serial", "/dev/null", "--dialect", "hayes", "127.0.0.1", "80"], "esp-at, sim800 or bg96"),
        (["connect", "--serial", "/dev/null", "127.0.0.1", "80"], "go with --driver at"),
        (["connect", "--driver", "slip", "127.0.0.1", "80"], "needs --serial"),
        (["connect", "--driver", "slip", "--serial", "/dev/null", "--local-ip", "10.9.9.1", "127.0.0.1", "80"], "--peer-ip"),
        (["connect", "--driver", "slip", "--serial", "/dev/null", "--local-ip", "::1", "--peer-ip", "10.9.9.2", "127.0.0.1", "80"], "--local-ip"),
        (["connect", "--local-ip", "10.9.9.1", "127.0.0.1", "80"], "go with --driver slip"),
        (["connect", "--board", "no-such-board", "127.0.0.1", "80"], "no board named"),
    ])
    func badArguments(arguments: [String], mentions: String) async throws {
        let outcome = try await CLITests.run(arguments)
        #expect(outcome.status == 64)
        #expect(outcome.errorLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.hasPrefix("gentcp: badarg: "))
        #expect(outcome.stderr.contains(mentions))
    }

    @Test("a reset from the peer: exit 1 and `gentcp: econnreset`")
    func reset() async throws {
        try await GenTCP.Process.run {
            let listener = try ListenSocket.listen(port: 0, options: CLITests.listenOptions, driver: .posix)
            let port = try listener.port()
            async let closed: Void = {
                let s = try await listener.accept(timeout: 20_000)
                try s.setopts(.linger(0))
                s.close()
            }()
            // stdin stays open for a while (a FIN of ours must not race the reset).
            let child = Foundation.Process()
            child.executableURL = CLITests.binary!
            child.arguments = ["connect", "127.0.0.1", "\(port)"]
            let input = Pipe(), errors = Pipe()
            child.standardInput = input
            child.standardOutput = FileHandle.nullDevice
            child.standardError = errors
            async let status = CLITests.waitForExit(child, limit: 30)
            try await closed
            let stderr = await CLITests.readExactly(Int.max, from: errors.fileHandleForReading)
            #expect(try await status == 1)
            let text = String(decoding: stderr, as: UTF8.self)
            #expect(text.hasPrefix("gentcp: econnreset"), "stderr: \(text)")
            try? input.fileHandleForWriting.close()
        }
    }

    @Test("--timeout: a connect that cannot finish gives `gentcp: timeout` after about that long")
    func connectTimeout() async throws {
        // A listener whose accept queue is full drops further SYNs, so a connect hangs.
        let listenFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listenFD >= 0)
        defer { close(listenFD) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(listenFD, p, length) == 0 && listen(listenFD, 0) == 0 && getsockname(listenFD, p, &length) == 0
            }
        }
        #expect(bound)
        var fillers: [Int32] = []
        defer { for f in fillers { close(f) } }
        for _ in 0..<3 {
            let f = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(f, $0, length) }
            }
            fillers.append(f)
        }
        // The first filler's handshake completing is what fills the queue (a backlog of 0 holds
        // one connection); wait for it (writable: connected) instead of sleeping.
        let first = fillers[0]
        let connected = await OffPool.run {
            var p = pollfd(fd: first, events: Int16(POLLOUT), revents: 0)
            return poll(&p, 1, 60_000) == 1 && p.revents & Int16(POLLOUT) != 0
        }
        try #require(connected, "the first filler never connected")
        let port = Int(UInt16(bigEndian: address.sin_port))
        let started = ContinuousClock.now
        let outcome = try await CLITests.run(["connect", "--timeout", "300", "127.0.0.1", "\(port)"])
        let elapsed = ContinuousClock.now - started
        #expect(outcome.status == 1)
        #expect(outcome.errorLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.hasPrefix("gentcp: timeout"))
        #expect(elapsed >= .milliseconds(300))
        #expect(elapsed < .seconds(10))
    }

    @Test("ports: exit 0 and either a table with a header and absolute device paths, or the empty note")
    func ports() async throws {
        let outcome = try await CLITests.run(["ports"])
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        let lines = String(decoding: outcome.stdout, as: UTF8.self).split(separator: "\n").map(String.init)
        let first = try #require(lines.first)
        if first == "no serial ports found" {
            #expect(lines.count == 1)
        } else {
            #expect(first.hasPrefix("PATH") && first.contains("VID:PID") && first.contains("SERIAL"))
            for row in lines.dropFirst() { #expect(row.hasPrefix("/dev/"), "row: \(row)") }
        }
    }

    @Test("demo: echo and a transfer through sim, slip, at and posix, every SHA-256 matching, exit 0")
    func demo() async throws {
        let outcome = try await CLITests.run(["demo", "--bytes", "64k", "--seed", "7"], limit: 60)
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        let text = String(decoding: outcome.stdout, as: UTF8.self)
        let parts = text.components(separatedBy: "\ngen_udp:")
        #expect(parts.count == 2, "output: \(text)")
        let rows = parts[0].split(separator: "\n").filter {
            $0.hasPrefix("sim ") || $0.hasPrefix("slip ") || $0.hasPrefix("at ") || $0.hasPrefix("posix ")
        }
        #expect(rows.count == 4, "output: \(text)")
        for row in rows {
            #expect(row.contains(" ok ") && row.hasSuffix("match") && row.contains("65536"), "row: \(row)")
        }
        // The gen_udp rows: every datagram back, none lost, reordered, duplicated or altered.
        let udp = (parts.last ?? "").split(separator: "\n").filter { $0.hasPrefix("sim ") || $0.hasPrefix("slip ") || $0.hasPrefix("posix ") }
        #expect(udp.count == 3, "output: \(text)")
        for row in udp {
            // datagrams, received, lost, reordered, duplicated, altered, seconds, clock: the last 8.
            let fields = Array(row.split(separator: " ").map(String.init).suffix(8))
            #expect(fields.count == 8 && fields[0] == "500" && fields[1] == "500" && fields[2...5] == ["0", "0", "0", "0"], "row: \(row)")
        }
    }

    @Test("demo with a bad --bytes: exit 64 and one badarg line")
    func demoBadSize() async throws {
        let outcome = try await CLITests.run(["demo", "--bytes", "lots"])
        #expect(outcome.status == 64)
        #expect(outcome.errorLines.count == 1 && outcome.stderr.hasPrefix("gentcp: badarg"), "stderr: \(outcome.stderr)")
    }

    @Test("bench: passes its arguments to gentcp-bench (here --list)")
    func benchList() async throws {
        let outcome = try await CLITests.run(["bench", "--list"])
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        let text = String(decoding: outcome.stdout, as: UTF8.self)
        for name in ["bulk-passive-64k", "bulk-active-64k", "pingpong-passive", "pingpong-once", "pingpong-framed", "tls-passive-64k",
                     "tls-handshakes"] {
            #expect(text.contains(name), "output: \(text)")
        }
    }

    /// Whether `escript` (erlang-base) is on PATH: the bench's OTP side needs it.
    static var haveEscript: Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
            FileManager.default.isExecutableFile(atPath: "\($0)/escript")
        }
    }

    /// The rows ``benchOTP()`` runs.
    static let benchOTPRows = ["bulk, passive recv(0), buffer 1460", "bulk of 64 B frames, recv(4)+recv(60)",
                               "bulk, GenTCP both ends", "ping-pong 64 B, {active,once}",
                               "ping-pong 64 B framed, recv(4)+recv(60)"]

    @Test("bench: OTP's gen_tcp as a third side and a spinning raw receiver as a fourth, in every case that has them (tiny runs, a ratio per row, no timing asserted)")
    func benchOTP() async throws {
        let outcome = try await CLITests.run(
            ["bench", "--only", "bulk-passive-1460,bulk-framed-1460,bulk-both-64k,pingpong-once,pingpong-framed", "--bytes", "2M",
             "--round-trips", "200",
             "--repeat", "1"], limit: 240)
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        let text = String(decoding: outcome.stdout, as: UTF8.self)
        guard Self.haveEscript else {
            #expect(text.contains("OTP: skipped (escript is not installed"), "output: \(text)")
            return
        }
        #expect(text.contains("OTP 2") && text.contains("vs OTP"), "output: \(text)")
        let lines = text.split(separator: "\n").map(String.init)
        for title in Self.benchOTPRows {
            guard let row = lines.first(where: { $0.hasPrefix(title) }) else {
                Issue.record("no row \(title) in: \(text)")
                continue
            }
            // ... OTP rate, GenTCP/OTP ratio, range, goal: the ratio is a positive number.
            let cells = row.split(separator: " ").map(String.init)
            let goal = cells.lastIndex { $0.hasPrefix(">=1.00") } ?? 0
            #expect(goal >= 2 && (Double(cells[goal - 2]) ?? 0) > 0, "row: \(row)")
        }
        // The spinning raw reference, in the same rounds: GenTCP / spin (and OTP / spin) per row.
        guard let spinTable = lines.firstIndex(where: { $0.hasPrefix("Against raw spinning") }) else {
            Issue.record("no spinning reference in: \(text)")
            return
        }
        for title in Self.benchOTPRows {
            guard let row = lines[spinTable...].first(where: { $0.hasPrefix(title) }) else {
                Issue.record("no spinning row \(title) in: \(text)")
                continue
            }
            let ratios = row.split(separator: " ").suffix(2).compactMap { Double($0) }
            #expect(ratios.count == 2 && ratios.allSatisfy { $0 > 0 }, "row: \(row)")
        }
    }

    @Test("bench --scale: GenTCP on the pool and on the event loop, OTP and raw epoll servers at 1 and 3 connections, every connection served (no timing asserted)")
    func benchScale() async throws {
        let outcome = try await CLITests.run(
            ["bench", "--scale", "--quick", "--scale-connections", "1,3", "--repeat", "1"], limit: 240)
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        let text = String(decoding: outcome.stdout, as: UTF8.self)
        #expect(text.contains("Echo, 64 B request/response") && text.contains("Bulk, server to client"), "output: \(text)")
        #expect(!text.contains("Failed runs"), "output: \(text)")
        // The echo row at 3 connections: per server "rate rt/s p50 p99 max fair"; every server
        // served every connection (Jain's index 1 when alike, 1/3 when one got them all).
        let rows = text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("3 ") }
        #expect(!rows.isEmpty, "output: \(text)")
        if let echo = rows.first {
            let cells = echo.split(separator: " ").map(String.init)
            let fair = cells.indices.filter { cells[$0] == "rt/s" && $0 + 4 < cells.count }.compactMap { Double(cells[$0 + 4]) }
            #expect(fair.count == (Self.haveEscript ? 4 : 3) && fair.allSatisfy { $0 >= 0.6 }, "row: \(echo)")
        }
        // Both GenTCP servers get their ratios: to raw always, to OTP when it ran.
        #expect(text.contains("G/raw") && text.contains("L/raw") && (!Self.haveEscript || text.contains("L/OTP")), "output: \(text)")
        #expect(text.contains(Self.haveEscript ? "OTP 2" : "OTP: skipped"), "output: \(text)")
    }

    @Test("bench --tls: a tiny transfer per case against the OpenSSL reference, ratios printed, slip rows byte-exact (no timing asserted)")
    func benchTLS() async throws {
        let outcome = try await CLITests.run(["bench", "--tls", "--bytes", "256k", "--repeat", "1", "--handshakes", "3"], limit: 240)
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        let text = String(decoding: outcome.stdout, as: UTF8.self)
        let lines = text.split(separator: "\n").map(String.init)
        // One ratio per pair, a number, for every case.
        for name in ["tls-passive-64k", "tls-active-64k", "tls-send-64k", "tls-both-64k", "tls-handshakes"] {
            let row = lines.first { $0.hasPrefix("  \(name) ") }
            let ratio = row.map { $0.split(separator: " ").last.map(String.init) ?? "" } ?? ""
            #expect(Double(ratio) != nil, "no ratio for \(name) in: \(text)")
        }
        // Both sides agreed on one TLS 1.3 suite, and the slip transfers arrived intact.
        #expect(text.contains("Cipher suite: TLS_") && !text.contains("MISMATCH"), "output: \(text)")
        #expect(lines.contains { $0.hasPrefix("plain TCP") && $0.contains("match") }, "output: \(text)")
        #expect(lines.contains { $0.hasPrefix("TLS ") && $0.contains("match") }, "output: \(text)")
        #expect(text.contains("TLS / plain goodput"), "output: \(text)")
    }
}
