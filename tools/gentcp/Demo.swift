import ArgumentParser
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import GenTCPSerial
import GenTCPAT
import GenTCPSLIP
import GenTCPSim
import GenTCPWire
import ModemSimulator
#if canImport(Glibc)
import Glibc
#endif

/// `gentcp demo`: the main job with no hardware. Starts simulated boards, connects through each
/// driver, runs an echo and a bulk transfer, and prints one table.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an echo and a bulk transfer through each driver, no hardware needed.",
        discussion: """
            Rows: `sim` talks to a simulated board over a simulated 115200-baud serial line on \
            the virtual clock (seconds of line time take milliseconds of wall time; the same \
            --seed gives the same trace); `at` drives a simulated ESP32 with ESP-AT over a \
            simulated 115200-baud UART, whose sockets reach a simulated server; `posix` talks to \
            a server on 127.0.0.1 through the kernel. Every transfer is checked byte for byte \
            with SHA-256.

            On a terminal a progress line shows each row's transfer (--progress, --no-progress). \
            -v traces the slip and at rows' serial lines on stderr in hex and text, stamped with \
            virtual time (use a small --bytes: a 1 MiB row is about 70000 lines).
            """)

    @ArgumentParser.Option(help: "Bytes in each bulk transfer (suffix k or M).")
    var bytes: String = "1M"

    @ArgumentParser.Option(help: "Seed of the simulated network (faults, jitter).")
    var seed: UInt64 = 1

    @Flag(help: "Add seeded faults (jitter and stalls) to the simulated line.")
    var faults = false

    @Flag(name: .shortAndLong, help: "Trace the slip and at rows' serial lines on stderr (hex and text, virtual time).")
    var verbose = false

    @Flag(inversion: .prefixedNo, help: "Show a progress line on stderr (default: when stderr is a terminal).")
    var progress: Bool?

    /// What every row needs besides its size.
    struct Options: Sendable {
        var seed: UInt64
        var faults: Bool
        var verbose: Bool
        var progress: Bool
    }

    mutating func run() async throws {
        guard let size = Demo.parseSize(bytes), size > 0, size <= 1 << 30 else {
            printError(failureLine(atom: "badarg", summary: "bad argument", notes: ["--bytes must be 1...1G, got \"\(bytes)\""]))
            throw ExitCode(Status.usage)
        }
        print("gentcp demo: echo and \(size) bytes through each driver (seed \(seed))")
        var rows: [Row] = []
        let options = Options(seed: seed, faults: faults, verbose: verbose, progress: progress ?? (isatty(2) == 1))
        do {
            rows.append(try await Demo.simRow(size: size, options))
            rows.append(try await Demo.slipRow(size: size, options))
            rows.append(try await Demo.atRow(size: size, options))
            rows.append(try await Demo.posixRow(size: size, options))
        } catch let error as SocketError {
            printError(failureLine(error, hint: "demo step failed; rerun with --seed \(seed) to reproduce"))
            throw ExitCode(Status.failed)
        }
        print(Row.table(rows))
        let udp: [UDPRow]
        do {
            udp = try await Demo.udpRows(options)
        } catch let error as SocketError {
            printError(failureLine(error, hint: "demo's gen_udp step failed; rerun with --seed \(seed) to reproduce"))
            throw ExitCode(Status.failed)
        }
        print("\ngen_udp: \(Demo.udpCount) datagrams of \(Demo.udpSize) bytes to a UDP echo on each board, 8 at a time")
        print(UDPRow.table(udp))
        if rows.contains(where: { !$0.ok }) {
            printError("gentcp: demo: a transfer did not arrive intact (seed \(seed))")
            throw ExitCode(Status.failed)
        }
        // Loss is what --faults asks for; an altered datagram, or loss on a clean run, is a failure.
        if udp.contains(where: { $0.altered > 0 || (!faults && $0.lost > 0) }) {
            printError("gentcp: demo: gen_udp datagrams were altered or lost on a clean link (seed \(seed))")
            throw ExitCode(Status.failed)
        }
    }

    static func parseSize(_ text: String) -> Int? {
        var t = text
        var scale = 1
        if t.hasSuffix("k") || t.hasSuffix("K") { scale = 1 << 10; t.removeLast() }
        else if t.hasSuffix("M") || t.hasSuffix("m") { scale = 1 << 20; t.removeLast() }
        guard let n = Int(t) else { return nil }
        return n.multipliedReportingOverflow(by: scale).overflow ? nil : n * scale
    }

    // MARK: Rows

    struct Row {
        var driver: String
        var link: String
        var echo: Bool
        var bytes: Int
        var seconds: Double
        var clock: String
        var goodput: Double        // bytes/s
        var limit: Double?         // the link's payload limit, bytes/s
        var digestMatch: Bool
        var ok: Bool { echo && digestMatch }

        static func table(_ rows: [Row]) -> String {
            var lines = ["driver  link                   echo  bytes      seconds    clock    goodput       of limit  sha-256"]
            for r in rows {
                let goodput = r.goodput >= 1e6 ? "\(fmt(r.goodput / 1e6)) MB/s" : "\(fmt(r.goodput / 1e3)) kB/s"
                let ofLimit = r.limit.map { fmt($0 > 0 ? r.goodput / $0 : 0) } ?? "-"
                lines.append(pad(r.driver, 8) + pad(r.link, 23) + pad(r.echo ? "ok" : "FAIL", 6)
                             + pad("\(r.bytes)", 11) + pad(fmt(r.seconds), 11) + pad(r.clock, 9)
                             + pad(goodput, 14) + pad(ofLimit, 10) + (r.digestMatch ? "match" : "MISMATCH"))
            }
            return lines.joined(separator: "\n")
        }

        static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
        static func fmt(_ v: Double) -> String {
            let scaled = (v * 1000).rounded() / 1000
            return "\(scaled)"
        }
    }

    /// The bytes a source service sends: a pattern that is not periodic at any small period.
    static func pattern(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var x: UInt32 = 0x1234_5678
        for i in 0..<count {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5
            out[i] = UInt8(truncatingIfNeeded: x)
        }
        return out
    }

    /// Echo then bulk download against a server, run inside a process of the right runtime.
    /// `progress`, when given, counts the bulk transfer's bytes and is finished (blanked) here.
    static func exercise(
        client: some Driver, server: some Driver, host: Host, size: Int, progress: ProgressReporter? = nil
    ) async throws -> (echo: Bool, digest: Bool, received: Int) {
        defer { progress?.finish(keep: false) }
        let data = pattern(size)
        let echoListener = try ListenSocket.listen(port: 0, options: [.binary, .active(.passive)], driver: server)
        let sourceListener = try ListenSocket.listen(port: 0, options: [.binary, .active(.passive)], driver: server)
        let echoPort = try echoListener.port()
        let sourcePort = try sourceListener.port()
        let runtime = server.runtime
        Process.spawn(runtime: runtime) {
            let s = try await echoListener.accept()
            while true {
                guard let chunk = try? await s.recv(0) else { break }
                try await s.send(chunk.bytes)
            }
            s.close()
        }
        Process.spawn(runtime: runtime) {
            let s = try await sourceListener.accept()
            var offset = 0
            while offset < data.count {
                let end = min(data.count, offset + 4096)
                try await s.send(Array(data[offset..<end]))
                offset = end
            }
            s.close()
        }
        let greeting = Array("hello, board".utf8)
        let echo = try await Socket.connect(host, port: echoPort, options: [.binary, .active(.passive)], driver: client)
        try await echo.send(greeting)
        let back = try await echo.recv(greeting.count, timeout: 60_000)
        echo.close()

        let source = try await Socket.connect(host, port: sourcePort, options: [.binary, .active(.passive), .buffer(16384)], driver: client)
        var hasher = SHA256()
        var received = 0
        while true {
            do {
                let chunk = try await source.recv(0)
                hasher.update(chunk.bytes)
                received += chunk.count
                progress?.add(received: chunk.count)
            } catch {
                guard error.reason == .closed else { throw error }
                break
            }
        }
        source.close()
        echoListener.close()
        sourceListener.close()
        return (back.bytes == greeting, hasher.finalize() == SHA256.hash(data) && received == size, received)
    }

    static func simRow(size: Int, _ options: Options) async throws -> Row {
        let net = try SimNetwork(seed: options.seed)
        let host = try net.addHost("host")
        let board = try net.addHost("board")
        let line = SimLink.serial(baud: 115_200, latency: .milliseconds(2))
        net.setLink(line, between: host, and: board)
        if options.faults {
            net.setFaults(SimFaults(jitter: .milliseconds(3), stallProbability: 0.01, stallDuration: .milliseconds(50)))
        }
        let wallStart = wallClock()
        let (result, virtualNanos) = try await net.run {
            let start = net.now
            let r = try await exercise(client: .sim(net, host: host), server: .sim(net, host: board), host: "board", size: size,
                                       progress: options.progressReporter("sim", size: size, net: net))
            return (r, net.now - start)
        }
        let wall = wallClock() - wallStart
        let seconds = Double(virtualNanos) / 1e9
        return Row(driver: "sim", link: "serial 115200 (sim)", echo: result.echo, bytes: result.received,
                   seconds: seconds, clock: "virtual", goodput: Double(result.received) / max(seconds, 1e-9),
                   limit: Double(line.bytesPerSecond ?? 0), digestMatch: result.digest)
            .noting(wall: wall, driver: "sim")
    }

    /// A simulated SLIP board (GenTCP's own stack) behind a simulated 115200-baud line, reached
    /// through the slip driver. The limit is what the line can carry as TCP payload: MSS bytes
    /// per MTU + 40-byte headers + SLIP framing and escapes, at 10 bits a byte.
    static func slipRow(size: Int, _ options: Options) async throws -> Row {
        let seed = options.seed
        let net = try SimNetwork(seed: seed)
        let baud = 115_200
        let mtu = 1006
        let lineFaults = options.faults ? LineFaults(dropProbability: 0.0001) : LineFaults()
        let wallStart = wallClock()
        let (result, virtualNanos) = try await net.run {
            let (hostEnd, boardEnd) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: baud), runtime: net.runtime,
                                                      faults: lineFaults, seed: seed)
            var hostSide = SLIPConfiguration(local: IPAddress(10, 10, 0, 1), peer: IPAddress(10, 10, 0, 2), mtu: mtu)
            hostSide.seed = seed
            var boardSide = SLIPConfiguration(local: IPAddress(10, 10, 0, 2), peer: IPAddress(10, 10, 0, 1), mtu: mtu)
            boardSide.seed = seed &+ 1
            let hostLink: any SerialLink = options.verbose
                ? Trace.wrap(hostEnd, runtime: net.runtime, name: "the slip row's line (SLIP, 115200 baud, simulated)") : hostEnd
            let host = try SLIPDriver(link: hostLink, configuration: hostSide, runtime: net.runtime)
            let board = try SLIPDriver(link: boardEnd, configuration: boardSide, runtime: net.runtime)
            defer { host.close(); board.close() }
            let start = net.now
            let r = try await exercise(client: host, server: board, host: .address(IPAddress(10, 10, 0, 2)), size: size,
                                       progress: options.progressReporter("slip", size: size, net: net))
            return (r, net.now - start)
        }
        let wall = wallClock() - wallStart
        let seconds = Double(virtualNanos) / 1e9
        let payload = Double(mtu - 40)
        let framed = Double(mtu) + 2 + Double(mtu) * 2 / 256   // END bytes, and escapes of random data
        return Row(driver: "slip", link: "SLIP 115200 (sim)", echo: result.echo, bytes: result.received,
                   seconds: seconds, clock: "virtual", goodput: Double(result.received) / max(seconds, 1e-9),
                   limit: Double(baud / 10) * payload / framed, digestMatch: result.digest)
            .noting(wall: wall, driver: "slip")
    }

    /// A simulated ESP32 with ESP-AT (the modem simulator) behind a simulated 115200-baud line,
    /// driven by the at driver; the module's sockets reach a server on the simulated network.
    static func atRow(size: Int, _ options: Options) async throws -> Row {
        let seed = options.seed
        let net = try SimNetwork(seed: seed)
        let server = try net.addHost("server")
        let modemHost = try net.addHost("esp32")
        let baud = 115_200
        var moduleFaults = ModemFaults()
        if options.faults {
            moduleFaults.maxFragmentLength = 64
            moduleFaults.noiseProbability = 0.05
        }
        let chosenFaults = moduleFaults
        let wallStart = wallClock()
        let (result, virtualNanos) = try await net.run {
            let (hostEnd, moduleEnd) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: baud), runtime: net.runtime)
            let bridge = ModemLinkBridge(link: moduleEnd, configuration: .espAT(firmware: "3.3.0.0", seed: seed, faults: chosenFaults),
                                         driver: try .sim(net, host: modemHost))
            bridge.modem.powerOn()
            let hostLink: any SerialLink = options.verbose
                ? Trace.wrap(hostEnd, runtime: net.runtime, name: "the at row's line (ESP-AT, 115200 baud, simulated)") : hostEnd
            let modem = ATDriver(link: hostLink, configuration: ATConfiguration(dialect: .espAT), runtime: net.runtime)
            modem.start()
            defer { modem.stop(); bridge.close() }
            let start = net.now
            let r = try await exercise(client: modem, server: .sim(net, host: server),
                                       host: .address(server.addresses[0]), size: size,
                                       progress: options.progressReporter("at", size: size, net: net))
            return (r, net.now - start)
        }
        let wall = wallClock() - wallStart
        let seconds = Double(virtualNanos) / 1e9
        return Row(driver: "at", link: "ESP-AT 115200 (sim)", echo: result.echo, bytes: result.received,
                   seconds: seconds, clock: "virtual", goodput: Double(result.received) / max(seconds, 1e-9),
                   limit: Double(baud / 10), digestMatch: result.digest)
            .noting(wall: wall, driver: "at")
    }

    static func posixRow(size: Int, _ options: Options) async throws -> Row {
        let start = wallClock()
        let result = try await Process.run {
            try await exercise(client: .posix, server: .posix, host: "127.0.0.1", size: size,
                               progress: options.progressReporter("posix", size: size, net: nil))
        }
        let seconds = wallClock() - start
        return Row(driver: "posix", link: "loopback (kernel)", echo: result.echo, bytes: result.received,
                   seconds: seconds, clock: "wall", goodput: Double(result.received) / max(seconds, 1e-9),
                   limit: nil, digestMatch: result.digest)
    }

    static func wallClock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

extension Demo.Options {
    /// A progress line for one row's bulk transfer, on the row's clock, when progress is on.
    func progressReporter(_ driver: String, size: Int, net: SimNetwork?) -> ProgressReporter? {
        guard progress else { return nil }
        if let net {
            return ProgressReporter(label: driver, sending: false, receiving: true, receivedTotal: size,
                                    clockName: "virtual", clock: { net.now })
        }
        return ProgressReporter(label: driver, sending: false, receiving: true, receivedTotal: size)
    }
}

extension Demo.Row {
    /// Mentions the wall time a virtual-clock row took, on stderr-free stdout before the table.
    func noting(wall: Double, driver: String) -> Demo.Row {
        print("  \(driver): \(Demo.Row.fmt(seconds)) s of line time in \(Demo.Row.fmt(wall)) s of wall time")
        return self
    }
}
