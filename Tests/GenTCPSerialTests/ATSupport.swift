import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPAT
import GenTCPSim
import GenTCPWire
import ModemSimulator
import Synchronization
import Testing

/// A bench: a simulated network with a server host and a modem host, a paced serial line, the
/// simulated module on one end and an ``ATDriver`` on the other. Build it inside `net.run`.
struct ATBench {
    let net: SimNetwork
    let server: SimHost
    let line: (MemoryLink, MemoryLink)
    let module: ModemLinkBridge
    let at: ATDriver

    init(net: SimNetwork, server: SimHost, modemHost: SimHost, baud: Int, simulator: ModemSimulatorConfiguration,
         driver: ATConfiguration, powerOn: Bool = true) throws {
        self.net = net
        self.server = server
        line = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: baud), runtime: net.runtime)
        module = ModemLinkBridge(link: line.1, configuration: simulator, driver: try SimDriver.sim(net, host: modemHost))
        at = ATDriver(link: line.0, configuration: driver, runtime: net.runtime)
        if powerOn { module.modem.powerOn() }
    }

    /// Waits (virtual time) until the driver is ready.
    func waitReady(_ limit: Duration = .seconds(30)) async throws {
        try await waitUntil("module ready", limit) { at.isReady }
    }

    func waitUntil(_ what: String, _ limit: Duration, _ done: () -> Bool) async throws {
        let deadline = net.now + UInt64(limit.components.seconds) * 1_000_000_000
        while !done() {
            if net.now > deadline { throw BenchTimeout(what: what) }
            await net.sleep(for: .milliseconds(5))
        }
    }

    func close() {
        at.stop()
        module.modem.powerOff()
        line.1.close()
    }
}

extension ATBench {
    /// Runs `body` on a fresh bench inside a new simulated network seeded with `seed` (hosts
    /// `server` and `modem`, the module powered on, the driver started and, with `ready`, done
    /// with its bring-up); closes the bench afterwards.
    static func run<T: Sendable>(
        seed: UInt64, baud: Int = 115_200, simulator: ModemSimulatorConfiguration, driver: ATConfiguration,
        ready: Bool = true, _ body: @escaping @Sendable (ATBench) async throws -> T
    ) async throws -> T {
        let net = try SimNetwork(seed: seed)
        let server = try net.addHost("server")
        let modemHost = try net.addHost("modem")
        return try await net.run {
            let bench = try ATBench(net: net, server: server, modemHost: modemHost, baud: baud, simulator: simulator,
                                driver: driver)
            defer { bench.close() }
            bench.at.start()
            if ready { try await bench.waitReady() }
            return try await body(bench)
        }
    }
}

struct BenchTimeout: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Bytes that exercise the parser: CR-LF, `OK`, `+IPD,`, `>`, `CLOSED`, NUL, 0x1A, and noise.
func trickyBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    let pieces: [[UInt8]] = [Array("\r\nOK\r\n".utf8), Array("+IPD,0,5:".utf8), Array(">".utf8),
                             Array("0,CLOSED\r\n".utf8), Array("\r\nSEND OK\r\n".utf8), [0, 0x1A, 0x1B, 0xFF]]
    var out: [UInt8] = []
    out.reserveCapacity(count)
    var state = seed | 1
    func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    while out.count < count {
        let r = next()
        if r % 7 == 0 {
            out += pieces[Int(r >> 8) % pieces.count]
        } else {
            for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: r >> (8 * UInt64(k)))) }
        }
    }
    return Array(out.prefix(count))
}

func sha(_ bytes: [UInt8]) -> [UInt8] { SHA256.hash(bytes) }

/// What a peer process saw.
final class PeerLog: @unchecked Sendable {
    private let state = Mutex<(received: Int, hash: [UInt8], error: SocketError?, done: Bool, firstAt: UInt64, lastAt: UInt64)>(
        (0, [], nil, false, 0, 0))
    func set(received: Int, hash: [UInt8], error: SocketError?, firstAt: UInt64, lastAt: UInt64) {
        state.withLock { $0 = (received, hash, error, true, firstAt, lastAt) }
    }
    var received: Int { state.withLock { $0.received } }
    var hash: [UInt8] { state.withLock { $0.hash } }
    var error: SocketError? { state.withLock { $0.error } }
    var done: Bool { state.withLock { $0.done } }
    var span: UInt64 { state.withLock { $0.lastAt &- $0.firstAt } }
}

/// Server side: accepts one connection, reads `expect` bytes (hashing them), then sends `reply`
/// and closes.
func uploadThenDownloadPeer(_ listener: ListenSocket, runtime: any Runtime, expect: Int, reply: [UInt8],
                            log: PeerLog) async {
    var hasher = SHA256()
    var got = 0
    var firstAt: UInt64 = 0
    var lastAt: UInt64 = 0
    do {
        let s = try await listener.accept(timeout: .milliseconds(120_000))
        while got < expect {
            let p = try await s.recv(0, timeout: .milliseconds(600_000))
            if got == 0 { firstAt = runtime.now }
            hasher.update(p.bytes)
            got += p.count
            lastAt = runtime.now
        }
        log.set(received: got, hash: hasher.finalize(), error: nil, firstAt: firstAt, lastAt: lastAt)
        if !reply.isEmpty { try await s.send(reply) }
        s.close()
    } catch {
        log.set(received: got, hash: hasher.finalize(), error: error, firstAt: firstAt, lastAt: lastAt)
    }
}

/// Reads until the end of stream (or error), hashing; returns (count, hash, first, last, error).
func drainSocket(_ s: Socket, runtime: any Runtime, timeout: Timeout = .milliseconds(600_000))
    async -> (count: Int, hash: [UInt8], first: UInt64, last: UInt64, error: SocketError?) {
    var hasher = SHA256()
    var got = 0
    var first: UInt64 = 0
    var last: UInt64 = 0
    while true {
        do {
            let p = try await s.recv(0, timeout: timeout)
            if got == 0 { first = runtime.now }
            got += p.count
            hasher.update(p.bytes)
            last = runtime.now
        } catch {
            return (got, hasher.finalize(), first, last, error)
        }
    }
}
