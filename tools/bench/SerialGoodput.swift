import GenTCP
import GenTCPModem
import GenTCPCore
import GenTCPSerial
import GenTCPAT
import GenTCPSLIP
import GenTCPSim
import GenTCPWire
import ModemSimulator

/// Goodput of the serial drivers over simulated lines on the virtual clock: payload bytes per
/// second as a fraction of what the line can carry. Deterministic (same seed, same figures), so
/// unlike the posix table it needs no interleaving and no repeats.
enum SerialGoodput {
    struct Row {
        var driver: String
        var baud: Int
        var direction: String
        var fraction: Double
        var goal: Double
        var intact: Bool
    }

    /// The AT driver: 1 MiB up then 1 MiB down through the modem simulator (output fragmented,
    /// URC noise on). The limit is the raw line, baud/10 bytes/s: every byte of framing (commands,
    /// prompts, `SEND OK`, `+CIPRECVDATA` headers) counts against the driver.
    static func at(dialect: ATDialect, simulator: ModemSimulatorConfiguration, baud: Int, size: Int) async throws -> [Row] {
        let net = try SimNetwork(seed: 1)
        let server = try net.addHost("server")
        let modemHost = try net.addHost("modem")
        return try await net.run {
            let (hostEnd, moduleEnd) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: baud), runtime: net.runtime)
            let bridge = ModemLinkBridge(link: moduleEnd, configuration: simulator, driver: try .sim(net, host: modemHost))
            bridge.modem.powerOn()
            let modem = ATDriver(link: hostEnd, configuration: ATConfiguration(dialect: dialect, apn: "internet"), runtime: net.runtime)
            modem.start()
            defer { modem.stop(); bridge.close() }
            let t = try await exchange(net: net, client: modem, server: .sim(net, host: server),
                                       serverAddress: server.addresses[0], clientOptions: [.buffer(4096)], size: size)
            let line = Double(baud) / 10
            return [
                Row(driver: "at \(dialect.description)", baud: baud, direction: "upload",
                    fraction: Double(size) / t.uploadSeconds / line, goal: 0.9, intact: t.uploadIntact),
                Row(driver: "at \(dialect.description)", baud: baud, direction: "download",
                    fraction: Double(size) / t.downloadSeconds / line, goal: 0.9, intact: t.downloadIntact),
            ]
        }
    }

    /// The slip driver against a second slip driver (the board), 1 MiB up then down.
    /// The limit is the TCP payload the line can carry:
    /// (MTU - 40) per MTU + 2 END bytes + escapes of random data (2/256 of the bytes).
    static func slip(
        baud: Int, mtu: Int, drop: Double, size: Int, goalOneWay: Double, lineSeed: UInt64 = 7, dedicatedLink: Bool = true
    ) async throws -> [Row] {
        let net = try SimNetwork(seed: 1)
        let line = Double(baud) / 10 * Double(mtu - 40) / (Double(mtu) + 2 + Double(mtu) * 2 / 256)
        let name = drop > 0 ? "slip \(drop * 100)% drop" : "slip"
        return try await net.run {
            let (hostEnd, boardEnd) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: baud), runtime: net.runtime,
                                                      bufferSize: 1024, faults: LineFaults(dropProbability: drop), seed: lineSeed)
            var hostConfig = SLIPConfiguration(local: IPAddress(10, 10, 0, 1), peer: IPAddress(10, 10, 0, 2), mtu: mtu, seed: 1)
            hostConfig.dedicatedLink = dedicatedLink
            let host = try SLIPDriver(link: hostEnd, configuration: hostConfig, runtime: net.runtime)
            var boardConfig = SLIPConfiguration(local: IPAddress(10, 10, 0, 2), peer: IPAddress(10, 10, 0, 1), mtu: mtu)
            boardConfig.seed = 2
            boardConfig.dedicatedLink = dedicatedLink
            let board = try SLIPDriver(link: boardEnd, configuration: boardConfig, runtime: net.runtime)
            defer { host.close(); board.close() }
            let t = try await exchange(net: net, client: host, server: board,
                                       serverAddress: IPAddress(10, 10, 0, 2), clientOptions: [], size: size)
            return [
                Row(driver: name, baud: baud, direction: "upload", fraction: Double(size) / t.uploadSeconds / line,
                    goal: goalOneWay, intact: t.uploadIntact),
                Row(driver: name, baud: baud, direction: "download", fraction: Double(size) / t.downloadSeconds / line,
                    goal: goalOneWay, intact: t.downloadIntact),
            ]
        }
    }

    /// The lossy line of issue 3 (921600 baud, MTU 296, 0.1% of bytes dropped) over seven line
    /// seeds: the median fraction each way, as the reference figures were taken.
    static func lossySlip(size: Int, dedicatedLink: Bool) async throws -> [Row] {
        var up: [Double] = [], down: [Double] = []
        var intact = true
        for seed in UInt64(1)...7 {
            let rows = try await slip(baud: 921_600, mtu: 296, drop: 0.001, size: size, goalOneWay: 0.25,
                                      lineSeed: seed, dedicatedLink: dedicatedLink)
            up.append(rows[0].fraction)
            down.append(rows[1].fraction)
            intact = intact && rows.allSatisfy(\.intact)
        }
        let name = dedicatedLink ? "slip 0.1% drop" : "slip 0.1% std cc"
        return [
            Row(driver: name, baud: 921_600, direction: "upload", fraction: up.sorted()[3], goal: 0.25, intact: intact),
            Row(driver: name, baud: 921_600, direction: "download", fraction: down.sorted()[3], goal: 0.25, intact: intact),
        ]
    }

    /// What one exchange measured, in virtual seconds.
    struct Exchange {
        var uploadSeconds: Double
        var downloadSeconds: Double
        var uploadIntact: Bool
        var downloadIntact: Bool
    }

    /// `size` bytes from `client` to a listener on `server`, checked there by SHA-256, then `size`
    /// bytes back and a close. Upload time runs from the first send to the server's last byte;
    /// download time from the client's first byte to its last. Run inside `net.run`.
    static func exchange(
        net: SimNetwork, client: some Driver, server: some Driver, serverAddress: IPAddress,
        clientOptions: [Option], size: Int
    ) async throws -> Exchange {
        let upload = pattern(size, seed: 1)
        let download = pattern(size, seed: 2)
        let listener = try ListenSocket.listen(port: 9, options: [.binary, .active(.passive)], driver: server)
        defer { listener.close() }
        let done = Box()
        net.spawn {
            let s = try await listener.accept()
            var h = SHA256()
            var got = 0
            while got < size {
                let chunk = try await s.recv(0)
                h.update(chunk.bytes)
                got += chunk.count
            }
            done.set(net.now, h.finalize() == SHA256.hash(upload))
            try await s.send(download)
            s.close()
        }
        let s = try await Socket.connect(.address(serverAddress), port: 9,
                                         options: [.binary, .active(.passive)] + clientOptions, driver: client)
        defer { s.close() }
        let t0 = net.now
        try await s.send(upload)
        while done.value == nil { await net.sleep(for: .milliseconds(10)) }
        let (t1, uploadIntact) = done.value!
        var h = SHA256()
        var got = 0
        var first: UInt64 = 0
        while let chunk = try? await s.recv(0) {
            if got == 0 { first = net.now }
            h.update(chunk.bytes)
            got += chunk.count
        }
        let t2 = net.now
        return Exchange(uploadSeconds: Double(t1 - t0) / 1e9, downloadSeconds: Double(t2 - first) / 1e9,
                        uploadIntact: uploadIntact, downloadIntact: got == size && h.finalize() == SHA256.hash(download))
    }

    static func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
        var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    /// A value set once by another process of the simulation.
    final class Box: @unchecked Sendable {
        private(set) var value: (UInt64, Bool)?
        func set(_ t: UInt64, _ ok: Bool) { value = (t, ok) }
    }

    static func run(size: Int) async throws {
        let faults = ModemFaults(maxFragmentLength: 64, noiseProbability: 0.05)
        var rows: [Row] = []
        rows += try await at(dialect: .espAT, simulator: .espAT(firmware: "3.3.0.0", faults: faults), baud: 115_200, size: size)
        rows += try await at(dialect: .espAT, simulator: .espAT(firmware: "3.3.0.0", faults: faults), baud: 921_600, size: size)
        rows += try await at(dialect: .sim800, simulator: .sim800(faults: faults), baud: 115_200, size: size)
        rows += try await at(dialect: .bg96, simulator: .bg96(faults: faults), baud: 115_200, size: size)
        rows += try await slip(baud: 115_200, mtu: 1006, drop: 0, size: size, goalOneWay: 0.99)
        rows += try await slip(baud: 921_600, mtu: 1006, drop: 0, size: size, goalOneWay: 0.95)
        rows += try await lossySlip(size: size / 4, dedicatedLink: true)
        rows += try await lossySlip(size: size / 4, dedicatedLink: false)
        say("Serial drivers on simulated lines (virtual clock, deterministic): \(formatSize(size)) each way,")
        say("goodput as a fraction of the line's limit: at, baud/10 bytes/s (all AT framing counts against it;")
        say("modem output fragmented 1...64 B with URC noise); slip, the TCP payload the line can carry")
        say("((MTU-40) per MTU + SLIP framing and escapes, at 10 bits a byte). The lossy rows move a quarter as much")
        say("at MTU 296 with 0.1% of bytes dropped: medians of 7 line seeds, on a dedicated link (the window is")
        say("kept through losses) and with standard congestion control (\"std cc\").")
        say()
        say("\(pad("driver", 16)) \(pad("baud", 8)) \(pad("direction", 10)) \(pad("of limit", 9)) \(pad("sha-256", 9)) goal")
        for r in rows {
            let verdict = r.fraction >= r.goal ? "PASS" : "MISS"
            say("\(pad(r.driver, 16)) \(pad("\(r.baud)", 8)) \(pad(r.direction, 10)) \(pad(String(format3(r.fraction)), 9)) \(pad(r.intact ? "match" : "MISMATCH", 9)) >=\(r.goal) \(verdict)")
        }
    }

    static func format3(_ v: Double) -> String {
        let scaled = (v * 1000).rounded() / 1000
        return "\(scaled)"
    }
}
