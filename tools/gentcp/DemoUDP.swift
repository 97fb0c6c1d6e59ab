import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSLIP
import GenTCPSim
import GenTCPAT
import ModemSimulator

/// `gentcp demo`'s gen_udp rows: numbered datagrams echoed by a UDP echo on the board, counted
/// on the way back: received, lost, reordered, duplicated, altered.
extension Demo {
    struct UDPRow {
        var driver: String
        var link: String
        var sent: Int
        var received: Int
        var reordered: Int
        var duplicated: Int
        var altered: Int
        var seconds: Double
        var clock: String
        var lost: Int { sent - received }

        static func table(_ rows: [UDPRow]) -> String {
            var lines = ["driver  link                   datagrams  received  lost  reordered  duplicated  altered  seconds    clock"]
            for r in rows {
                lines.append(Row.pad(r.driver, 8) + Row.pad(r.link, 23) + Row.pad("\(r.sent)", 11) + Row.pad("\(r.received)", 10)
                             + Row.pad("\(r.lost)", 6) + Row.pad("\(r.reordered)", 11) + Row.pad("\(r.duplicated)", 12)
                             + Row.pad("\(r.altered)", 9) + Row.pad(Row.fmt(r.seconds), 11) + r.clock)
            }
            return lines.joined(separator: "\n")
        }
    }

    /// How many datagrams each UDP row sends, and how big.
    static let udpCount = 500
    static let udpSize = 256

    /// Sends `udpCount` numbered datagrams to a UDP echo on `server`, `window` at a time, waiting
    /// up to `patience` for each window's echoes (what does not come back is lost), and at the
    /// end up to `stragglers` for late ones.
    static func exerciseUDP(
        client: some DatagramDriver, server: some DatagramDriver, serverAddress: IPAddress, window: Int = 8,
        patience: Timeout = 2000, stragglers: Timeout = 2000
    ) async throws -> (received: Int, reordered: Int, duplicated: Int, altered: Int) {
        let echo = try await UDPSocket.open(options: [.binary, .active(.passive), .localAddress(serverAddress)], driver: server)
        let port = try echo.port()
        let echoer = Process.spawn(runtime: server.runtime) {
            while let d = try? await echo.recv() { _ = try? await echo.send(d.payload.bytes, to: d.source) }
        }
        try echo.controllingProcess(echoer)
        defer { echo.close() }
        let socket = try await UDPSocket.open(options: [.binary, .active(.passive)], driver: client)
        defer { socket.close() }
        try await socket.connect(.address(serverAddress), port: port)
        var seen = Set<Int>()
        var highest = -1
        var reordered = 0, duplicated = 0, altered = 0
        var next = 0
        while next < udpCount {
            let end = min(udpCount, next + window)
            let windowStart = next
            for n in next..<end { try await socket.send(numberedDatagram(n)) }
            var waiting = end - next
            next = end
            while waiting > 0, let d = try? await socket.recv(timeout: patience) {
                guard let n = sequence(of: d.payload.bytes) else { altered += 1; continue }
                if seen.contains(n) { duplicated += 1; continue }
                seen.insert(n)
                if n < highest { reordered += 1 } else { highest = n }
                if (windowStart..<end).contains(n) { waiting -= 1 }
            }
        }
        // Stragglers (reordered past their window) still count as received.
        while let d = try? await socket.recv(timeout: stragglers) {
            guard let n = sequence(of: d.payload.bytes) else { altered += 1; continue }
            if seen.insert(n).inserted { reordered += 1 } else { duplicated += 1 }
        }
        return (seen.count, reordered, duplicated, altered)
    }

    static func numberedDatagram(_ n: Int) -> [UInt8] {
        var b = [UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
        for i in 2..<udpSize { b.append(UInt8(truncatingIfNeeded: n &* 31 &+ i)) }
        return b
    }

    static func sequence(of bytes: [UInt8]) -> Int? {
        guard bytes.count == udpSize else { return nil }
        let n = Int(bytes[0]) << 8 | Int(bytes[1])
        for i in 2..<udpSize where bytes[i] != UInt8(truncatingIfNeeded: n &* 31 &+ i) { return nil }
        return n
    }

    static func udpRows(_ options: Options) async throws -> [UDPRow] {
        var rows: [UDPRow] = []
        // sim: two hosts on a simulated 115200-baud line; --faults adds loss, duplication, reordering.
        do {
            let net = try SimNetwork(seed: options.seed)
            let host = try net.addHost("host")
            let board = try net.addHost("board")
            net.setLink(SimLink.serial(baud: 115_200, latency: .milliseconds(2)), between: host, and: board)
            if options.faults {
                net.setDatagramFaults(SimDatagramFaults(lossProbability: 0.01, duplicateProbability: 0.005,
                                                        reorderProbability: 0.02, reorderDelay: .milliseconds(30)))
            }
            let (r, nanos) = try await net.run {
                let start = net.now
                let r = try await exerciseUDP(client: try SimDriver(network: net, host: host),
                                              server: try SimDriver(network: net, host: board), serverAddress: board.addresses[0])
                return (r, net.now - start)
            }
            rows.append(UDPRow(driver: "sim", link: "serial 115200 (sim)", sent: udpCount, received: r.received,
                               reordered: r.reordered, duplicated: r.duplicated, altered: r.altered,
                               seconds: Double(nanos) / 1e9, clock: "virtual"))
        }
        // slip: GenTCP's stack on both ends of a simulated 115200-baud line; --faults drops line bytes.
        do {
            let net = try SimNetwork(seed: options.seed)
            let lineFaults = options.faults ? LineFaults(dropProbability: 0.0001) : LineFaults()
            let (r, nanos) = try await net.run {
                let (hostEnd, boardEnd) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 115_200),
                                                              runtime: net.runtime, faults: lineFaults, seed: options.seed)
                var hostSide = SLIPConfiguration(local: IPAddress(10, 10, 0, 1), peer: IPAddress(10, 10, 0, 2))
                hostSide.seed = options.seed
                var boardSide = SLIPConfiguration(local: IPAddress(10, 10, 0, 2), peer: IPAddress(10, 10, 0, 1))
                boardSide.seed = options.seed &+ 1
                let host = try SLIPDriver(link: hostEnd, configuration: hostSide, runtime: net.runtime)
                let board = try SLIPDriver(link: boardEnd, configuration: boardSide, runtime: net.runtime)
                defer { host.close(); board.close() }
                let start = net.now
                let r = try await exerciseUDP(client: host, server: board, serverAddress: IPAddress(10, 10, 0, 2))
                return (r, net.now - start)
            }
            rows.append(UDPRow(driver: "slip", link: "SLIP 115200 (sim)", sent: udpCount, received: r.received,
                               reordered: r.reordered, duplicated: r.duplicated, altered: r.altered,
                               seconds: Double(nanos) / 1e9, clock: "virtual"))
        }
        // at: the simulated ESP32 with ESP-AT behind a 115200-baud line, its UDP link bridged to the
        // simulated network; --faults cuts the module's output into pieces with URC noise between.
        do {
            let net = try SimNetwork(seed: options.seed)
            let server = try net.addHost("server")
            // The module's host has the address the module reports, so the echo's answers reach it.
            let modemHost = try net.addHost("esp32", addresses: [IPAddress(192, 168, 4, 2)])
            var moduleFaults = ModemFaults()
            if options.faults {
                moduleFaults.maxFragmentLength = 64
                moduleFaults.noiseProbability = 0.05
            }
            let chosenFaults = moduleFaults
            let (r, nanos) = try await net.run {
                let (hostEnd, moduleEnd) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 115_200), runtime: net.runtime)
                let bridge = ModemLinkBridge(link: moduleEnd, configuration: .espAT(firmware: "3.3.0.0", seed: options.seed, faults: chosenFaults),
                                             driver: try .sim(net, host: modemHost))
                bridge.modem.powerOn()
                let modem = ATDriver(link: hostEnd, configuration: ATConfiguration(dialect: .espAT), runtime: net.runtime)
                modem.start()
                defer { modem.stop(); bridge.close() }
                let start = net.now
                let r = try await exerciseUDP(client: modem, server: try SimDriver(network: net, host: server),
                                              serverAddress: server.addresses[0])
                return (r, net.now - start)
            }
            rows.append(UDPRow(driver: "at", link: "ESP-AT 115200 (sim)", sent: udpCount, received: r.received,
                               reordered: r.reordered, duplicated: r.duplicated, altered: r.altered,
                               seconds: Double(nanos) / 1e9, clock: "virtual"))
        }
        // posix: the kernel over loopback, on the wall clock.
        let start = wallClock()
        let r = try await Process.run {
            try await exerciseUDP(client: .posix, server: .posix, serverAddress: .loopbackV4, patience: 5000, stragglers: 100)
        }
        rows.append(UDPRow(driver: "posix", link: "loopback (kernel)", sent: udpCount, received: r.received,
                           reordered: r.reordered, duplicated: r.duplicated, altered: r.altered,
                           seconds: wallClock() - start, clock: "wall"))
        return rows
    }
}
