import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSLIP
import GenTCPSim
import GenTCPAT
import GenTCPModem
import ModemSimulator
import Synchronization

/// gen_udp goodput over slip on a paced `MemoryLink`, on the virtual clock (`--udp`): one slip
/// driver sends datagrams of the largest payload the MTU allows (MTU − 28) to a socket on a second
/// slip driver, as fast as `send` returns; the payload delivered per virtual second, as a fraction
/// of what the line can carry. Deterministic: no repeats needed.
enum UDPGoodput {
    /// One line's figures.
    struct Row {
        var baud: Int
        var mtu: Int
        var sent: Int
        var received: Int
        var intact: Bool
        /// Payload bytes per virtual second.
        var goodput: Double
        /// The line's limit for this payload, bytes per second.
        var limit: Double
    }

    /// The line's limit: baud/10 bytes a second, of which each datagram's frame takes the MTU
    /// (IPv4 and UDP headers: 28 bytes) plus 2 SLIP END bytes plus escapes (2 in 256 bytes of
    /// random-looking data), and carries MTU − 28 bytes of payload.
    static func limit(baud: Int, mtu: Int) -> Double {
        Double(baud) / 10 * Double(mtu - 28) / (Double(mtu) + 2 + Double(mtu) * 2 / 256)
    }

    /// Datagrams of `mtu − 28` bytes, `size` bytes in all (rounded up), from the host's slip
    /// driver to the board's; the time runs from the first `send` to the last arrival.
    static func slip(baud: Int, mtu: Int, size: Int) async throws -> Row {
        let net = try SimNetwork(seed: 1)
        let payload = mtu - 28
        let count = (size + payload - 1) / payload
        return try await net.run {
            let (hostEnd, boardEnd) = try MemoryLink.pair(
                configuration: SerialConfiguration(baudRate: baud), runtime: net.runtime, bufferSize: 1024)
            let host = try SLIPDriver(
                link: hostEnd, configuration: SLIPConfiguration(local: IPAddress(10, 10, 0, 1), peer: IPAddress(10, 10, 0, 2), mtu: mtu, seed: 1),
                runtime: net.runtime)
            var boardConfig = SLIPConfiguration(local: IPAddress(10, 10, 0, 2), peer: IPAddress(10, 10, 0, 1), mtu: mtu)
            boardConfig.seed = 2
            let board = try SLIPDriver(link: boardEnd, configuration: boardConfig, runtime: net.runtime)
            defer { host.close(); board.close() }
            let receiver = try await UDPSocket.open(port: 9, options: [.binary, .active(.passive)], driver: board)
            defer { receiver.close() }
            let sender = try await UDPSocket.open(options: [.binary, .active(.passive)], driver: host)
            defer { sender.close() }
            try await sender.connect(.address(IPAddress(10, 10, 0, 2)), port: 9)
            let outcome = Mutex<(received: Int, intact: Bool, last: UInt64)?>(nil)
            let receiving = net.spawn {
                var received = 0, intact = true, last: UInt64 = 0
                while received < count {
                    guard let d = try? await receiver.recv(timeout: 5000) else { break }
                    // In order and unaltered: the datagram numbered `received`.
                    if d.payload.bytes != datagram(received, size: payload) { intact = false }
                    received += 1
                    last = net.now
                }
                let final = (received: received, intact: intact, last: last)
                outcome.withLock { $0 = final }
            }
            let t0 = net.now
            for i in 0..<count { try await sender.send(datagram(i, size: payload)) }
            _ = await receiving.waitForExit()
            let o = outcome.withLock { $0 } ?? (received: 0, intact: false, last: t0)
            let seconds = Double(o.last &- t0) / 1e9
            return Row(baud: baud, mtu: mtu, sent: count, received: o.received, intact: o.intact && o.received == count,
                       goodput: Double(o.received * payload) / seconds, limit: limit(baud: baud, mtu: mtu))
        }
    }

    /// Datagram number `n`: its number in 4 bytes, then pseudo-random bytes from it.
    static func datagram(_ n: Int, size: Int) -> [UInt8] {
        var x = UInt64(n + 1) &* 0x9E37_79B9_7F4A_7C15 | 1
        var out = [UInt8(n >> 24 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
        out.reserveCapacity(size)
        while out.count < size {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            out.append(UInt8(truncatingIfNeeded: x))
        }
        return Array(out.prefix(size))
    }

    /// The goal: at least this fraction of the line's limit.
    static let goal = 0.95

    /// The goal through ESP-AT (issue 11): this fraction of the raw line, every byte of AT framing
    /// counted against the driver.
    static let atGoal = 0.85

    /// One modem row: 1460-byte datagrams through the modem simulator on a `baud` line, to a
    /// socket on the simulated network (`upload`) or from it. Downloads are paced by credits,
    /// since a module has no room for what its UART cannot carry (ESP-U6): ESP-AT pushes each
    /// datagram as it comes (8 in flight, a credit every 4); SIM800 and BG96 keep them in a
    /// buffer of a few KiB until read (2 in flight, a credit for each, so the module never
    /// drops one for want of room). The limit is the raw line, baud/10 bytes a second.
    static func at(dialect: ATDialect, simulator: ModemSimulatorConfiguration, baud: Int, size: Int,
                   upload: Bool) async throws -> Row {
        let (window, creditEvery) = dialect == .espAT ? (8, 4) : (2, 1)
        let net = try SimNetwork(seed: 1)
        let server = try net.addHost("server")
        let modemHost = try net.addHost("modem", addresses: [IPAddress(simulator.localAddress) ?? IPAddress(192, 168, 4, 2)])
        let payload = 1460
        let count = (size + payload - 1) / payload
        return try await net.run {
            let (hostEnd, moduleEnd) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: baud), runtime: net.runtime)
            let bridge = ModemLinkBridge(link: moduleEnd, configuration: simulator, driver: try .sim(net, host: modemHost))
            bridge.modem.powerOn()
            let modem = ATDriver(link: hostEnd, configuration: ATConfiguration(dialect: dialect, apn: "internet"), runtime: net.runtime)
            modem.start()
            defer { modem.stop(); bridge.close() }
            let serverDriver = try SimDriver(network: net, host: server)
            let far = try await UDPSocket.open(port: 9, options: [.binary, .active(.passive), .recbuf(1 << 20)], driver: serverDriver)
            defer { far.close() }
            let near = try await UDPSocket.open(options: [.binary, .active(.passive)], driver: modem)
            defer { near.close() }
            try await near.connect(.address(server.addresses[0]), port: 9)
            // The far end learns the modem socket's address from its first datagram.
            try await near.send([0])
            let hello = try await far.recv(timeout: 60_000)
            try await far.connect(to: hello.source)
            let (receiver, sender) = upload ? (far, near) : (near, far)
            let outcome = Mutex<(received: Int, intact: Bool, last: UInt64)?>(nil)
            let receiving = net.spawn {
                var received = 0, intact = true, last: UInt64 = 0
                while received < count {
                    guard let d = try? await receiver.recv(timeout: 10_000) else { break }
                    if d.payload.bytes != datagram(received, size: payload) { intact = false }
                    received += 1
                    last = net.now
                    if !upload, received % creditEvery == 0 { _ = try? await receiver.send([1]) }
                }
                let final = (received: received, intact: intact, last: last)
                outcome.withLock { $0 = final }
            }
            try receiver.controllingProcess(receiving)
            let t0 = net.now
            var credits = upload ? Int.max : window
            for i in 0..<count {
                while credits == 0 {
                    guard (try? await sender.recv(timeout: 10_000)) != nil else { break }
                    credits += creditEvery
                }
                try await sender.send(datagram(i, size: payload))
                if !upload { credits -= 1 }
            }
            _ = await receiving.waitForExit()
            let o = outcome.withLock { $0 } ?? (received: 0, intact: false, last: t0)
            let seconds = Double(o.last &- t0) / 1e9
            return Row(baud: baud, mtu: payload, sent: count, received: o.received, intact: o.intact && o.received == count,
                       goodput: Double(o.received * payload) / max(seconds, 1e-9), limit: Double(baud) / 10)
        }
    }

    /// Prints the modem rows: ESP-AT, SIM800 and BG96 at 115200 baud, each way.
    static func runModems(size: Int) async throws {
        say()
        say("gen_udp through AT modems (the modem simulator, virtual clock): \(formatSize(size)) each way in 1460-byte datagrams,")
        say("limit = the raw line, baud/10 bytes/s (commands, prompts, SEND OK and +IPD/+QIRD headers all count).")
        say()
        say("\(pad("module", 8)) \(pad("baud", 8)) \(pad("direction", 10)) \(pad("datagrams", 10)) \(pad("received", 9)) \(pad("in order", 9)) \(pad("goodput", 12)) \(pad("of limit", 9)) goal")
        let modems: [(String, ATDialect, ModemSimulatorConfiguration)] = [
            ("ESP-AT", .espAT, .espAT(firmware: "3.3.0.0", seed: 1)),
            ("SIM800", .sim800, .sim800(seed: 1)),
            ("BG96", .bg96, .bg96(seed: 1)),
        ]
        for (name, dialect, simulator) in modems {
            for upload in [true, false] {
                let r = try await at(dialect: dialect, simulator: simulator, baud: 115_200, size: size, upload: upload)
                let fraction = r.goodput / r.limit
                // SIM800 sends only to its connected peer, which is what this run does.
                let goalText = dialect == .espAT ? ">=\(atGoal) \(fraction >= atGoal && r.intact ? "PASS" : "MISS")" : "(none)"
                say("\(pad(name, 8)) \(pad("\(r.baud)", 8)) \(pad(upload ? "upload" : "download", 10)) \(pad("\(r.sent)", 10)) "
                    + "\(pad("\(r.received)", 9)) \(pad(r.intact ? "yes" : "NO", 9)) \(pad(format(r.goodput, 0) + " B/s", 12)) "
                    + "\(pad(format(fraction, 3), 9)) \(goalText)")
            }
        }
    }

    /// Prints the slip rows: 921600 and 115200 baud at MTU 1006, `size` bytes each.
    static func run(size: Int) async throws {
        var rows: [Row] = []
        for baud in [921_600, 115_200] { rows.append(try await slip(baud: baud, mtu: 1006, size: size)) }
        say("gen_udp over slip on simulated lines (virtual clock, deterministic): \(formatSize(size)) one way in")
        say("datagrams of MTU - 28 bytes, send as fast as it returns; limit = baud/10 x (MTU-28)/(MTU + 2 END + escapes).")
        say()
        say("\(pad("baud", 8)) \(pad("MTU", 5)) \(pad("datagrams", 10)) \(pad("received", 9)) \(pad("in order", 9)) \(pad("goodput", 12)) \(pad("limit", 12)) \(pad("of limit", 9)) goal")
        for r in rows {
            let fraction = r.goodput / r.limit
            say("\(pad("\(r.baud)", 8)) \(pad("\(r.mtu)", 5)) \(pad("\(r.sent)", 10)) \(pad("\(r.received)", 9)) "
                + "\(pad(r.intact ? "yes" : "NO", 9)) \(pad(format(r.goodput, 0) + " B/s", 12)) \(pad(format(r.limit, 0) + " B/s", 12)) "
                + "\(pad(format(fraction, 3), 9)) >=\(goal) \(fraction >= goal ? "PASS" : "MISS")")
        }
    }
}
