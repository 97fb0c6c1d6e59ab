import GenTCP
import GenTCPCore
import GenTCPModem
import GenTCPPOSIX
import GenTCPSerial
import GenTCPAT
import GenTCPSim
import ModemSimulator
import Synchronization
import Testing

/// gen_udp through the at driver beyond the conformance suite: real loopback peers through each
/// dialect, and a sender that outruns the module.
@Suite("at driver: UDP", .timeLimit(.minutes(5)))
struct ATUDPTests {
    /// A numbered datagram: its number in 4 bytes, then bytes made from it (32 bytes in all).
    static func numbered(_ n: Int, size: Int = 32) -> [UInt8] {
        var out = [UInt8(n >> 24 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
        for i in 4..<size { out.append(UInt8(truncatingIfNeeded: n &* 7 &+ i)) }
        return out
    }

    static func number(of bytes: [UInt8], size: Int = 32) -> Int? {
        guard bytes.count == size else { return nil }
        let n = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
        return bytes == numbered(n, size: size) ? n : nil
    }

    /// What one direction's receiver counted.
    struct Tally: Sendable, CustomStringConvertible {
        var received = 0, duplicated = 0, altered = 0, reordered = 0
        var description: String { "received \(received), duplicated \(duplicated), altered \(altered), reordered \(reordered)" }
    }

    /// Receives until `count` datagrams came or `quiet` passes without one; answers every 4th
    /// with a credit when `credits` (the sender keeps at most 8 in flight).
    static func receive(_ socket: UDPSocket, count: Int, credits: Bool, size: Int = 32, quiet: Timeout = 10_000) async -> Tally {
        var t = Tally()
        var seen = Set<Int>()
        var highest = -1
        while t.received < count, let d = try? await socket.recv(timeout: quiet) {
            guard let n = number(of: d.payload.bytes, size: size) else {
                t.altered += 1
                continue
            }
            if !seen.insert(n).inserted {
                t.duplicated += 1
                continue
            }
            if n < highest { t.reordered += 1 } else { highest = n }
            t.received += 1
            if credits, t.received % 4 == 0 { _ = try? await socket.send([1]) }
        }
        return t
    }

    /// Sends `count` numbered datagrams; with `credits`, at most 8 in flight, 4 more per credit.
    static func send(_ socket: UDPSocket, count: Int, credits: Bool, size: Int = 32) async throws {
        var allowed = credits ? 8 : Int.max
        for i in 0..<count {
            while allowed == 0 {
                _ = try await socket.recv(timeout: 10_000)
                allowed += 4
            }
            try await socket.send(numbered(i, size: size))
            if credits { allowed -= 1 }
        }
    }

    /// `count` datagrams from `sender` (this process) to `receiver` (a process of its own, which
    /// needs no ownership to receive in passive mode); what the receiver counted.
    static func run(receiver: UDPSocket, sender: UDPSocket, count: Int, credits: Bool, size: Int = 32,
                    runtime: any Runtime) async throws -> Tally {
        let result = Mutex<Tally?>(nil)
        let receiving = Process.spawn(runtime: runtime) {
            let t = await ATUDPTests.receive(receiver, count: count, credits: credits, size: size)
            result.withLock { $0 = t }
        }
        try await ATUDPTests.send(sender, count: count, credits: credits, size: size)
        _ = await receiving.waitForExit()
        return result.withLock { $0 } ?? Tally()
    }

    @Test("10,000 datagrams each way through each dialect's simulated module to a kernel UDP socket on loopback: none lost, none altered",
          arguments: [ATDialect.espAT, .sim800, .bg96])
    func tenThousandEachWay(_ dialect: ATDialect) async throws {
        let count = 10_000
        // The module reaches real loopback sockets (its UDP links are kernel sockets on
        // 127.0.0.1); the line is a fast memory line on the real clock.
        let (host, module) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 4_000_000), bufferSize: 16_384)
        let simulator = ModemSimulatorConfiguration(dialect: dialect, firmware: dialect == .espAT ? "3.3.0.0" : nil, seed: 7)
        let bridge = ModemLinkBridge(link: module, configuration: simulator, driver: POSIXDriver.shared)
        bridge.modem.powerOn()
        let at = ATDriver(link: host, configuration: ATConfiguration(dialect: dialect, apn: "internet"))
        at.start()
        defer {
            at.stop()
            bridge.close()
        }
        try await Process.run {
            let peer = try await UDPSocket.open(options: [.binary, .active(.passive), .localAddress(.loopbackV4), .recbuf(1 << 20)],
                                                driver: POSIXDriver.shared)
            defer { peer.close() }
            let near = try await UDPSocket.open(options: [.binary, .active(.passive)], driver: at)
            defer { near.close() }
            try await near.connect(.address(.loopbackV4), port: try peer.port())
            // The peer learns the module's address and port from a first datagram.
            try await near.send([0])
            let hello = try await peer.recv(timeout: 60_000)
            try await peer.connect(to: hello.source)

            // Up: the modem socket sends as fast as send returns; the kernel's 1 MiB queue holds them.
            let up = try await ATUDPTests.run(receiver: peer, sender: near, count: count, credits: false, runtime: RealRuntime.shared)
            #expect(up.received == count && up.altered == 0 && up.duplicated == 0, "up: \(up)")
            // Down: the kernel socket sends, paced by the modem socket's credits (a module in
            // pushed receive has nowhere to keep what its UART cannot carry, ESP-U6).
            let down = try await ATUDPTests.run(receiver: near, sender: peer, count: count, credits: true, runtime: RealRuntime.shared)
            #expect(down.received == count && down.altered == 0 && down.duplicated == 0, "down: \(down)")
            #expect(at.statistics.malformedDatagrams == 0)
        }
    }

    @Test("TCP and UDP on one module: once a UDP socket made the module name senders (CIPDINFO, CIPSRIP), TCP reads still arrive byte-exact",
          arguments: [ATDialect.espAT, .sim800])
    func tcpBesideUDP(_ dialect: ATDialect) async throws {
        let simulator = ModemSimulatorConfiguration(dialect: dialect, firmware: dialect == .espAT ? "3.3.0.0" : nil,
                                                    localAddress: "10.0.0.2", seed: 5)
        let data = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) }
        let received = try await ATBench.run(seed: 5, simulator: simulator,
                                             driver: ATConfiguration(dialect: dialect, apn: "internet")) { b in
            let server = try SimDriver(network: b.net, host: b.server)
            let far = try await UDPSocket.open(port: 9, options: [.binary, .active(.passive)], driver: server)
            defer { far.close() }
            // The UDP socket (and, on SIM800, its connect) turns remote info on in the module.
            let near = try await UDPSocket.open(options: [.binary, .active(.passive)], driver: b.at)
            defer { near.close() }
            try await near.connect(.address(b.server.addresses[0]), port: 9)
            try await near.send([1, 2, 3])
            #expect(try await far.recv(timeout: 30_000).payload.bytes == [1, 2, 3])
            // Then a TCP transfer from the server through the module, read in passive mode.
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)], driver: server)
            defer { listener.close() }
            let sending = b.net.spawn {
                let s = try await listener.accept(timeout: 30_000)
                try await s.send(data)
                s.close()
            }
            let tcp = try await Socket.connect(.address(b.server.addresses[0]), port: 7000,
                                               options: [.binary, .active(.passive)], timeout: 30_000, driver: b.at)
            var got: [UInt8] = []
            while got.count < data.count {
                guard let chunk = try? await tcp.recv(0, timeout: 30_000) else { break }
                got += chunk.bytes
            }
            tcp.close()
            _ = await sending.waitForExit()
            return got
        }
        #expect(received == data, "\(received.count) of \(data.count) bytes")
    }

    @Test("1460-byte datagrams sent as fast as send returns: send waits for room in the module's queue, all arrive whole",
          arguments: [ATDialect.espAT, .bg96])
    func outrunTheModule(_ dialect: ATDialect) async throws {
        let simulator = ModemSimulatorConfiguration(dialect: dialect, firmware: dialect == .espAT ? "3.3.0.0" : nil,
                                                    localAddress: "10.0.0.2", seed: 3)
        let tally = try await ATBench.run(seed: 3, simulator: simulator,
                                          driver: ATConfiguration(dialect: dialect, apn: "internet")) { b in
            let server = try SimDriver(network: b.net, host: b.server)
            let far = try await UDPSocket.open(port: 9, options: [.binary, .active(.passive), .recbuf(1 << 20)], driver: server)
            defer { far.close() }
            let near = try await UDPSocket.open(options: [.binary, .active(.passive)], driver: b.at)
            defer { near.close() }
            try await near.connect(.address(b.server.addresses[0]), port: 9)
            return try await ATUDPTests.run(receiver: far, sender: near, count: 100, credits: false, size: 1460,
                                            runtime: b.net.runtime)
        }
        #expect(tally.received == 100 && tally.altered == 0 && tally.reordered == 0, "\(tally)")
    }
}
