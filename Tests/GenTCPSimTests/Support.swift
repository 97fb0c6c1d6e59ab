import GenTCP
import GenTCPCore
import GenTCPSim
import Synchronization
import Testing

/// A network with two hosts, `server` (10.0.0.1, fd00::1) and `client` (10.0.0.2, fd00::2),
/// 1 ms apart by default.
func makeNetwork(seed: UInt64 = 1, _ configure: (inout SimNetwork.Configuration) -> Void = { _ in }) throws
    -> (net: SimNetwork, server: SimHost, client: SimHost)
{
    var config = SimNetwork.Configuration()
    configure(&config)
    let net = try SimNetwork(seed: seed, configuration: config)
    let server = try net.addHost("server")
    let client = try net.addHost("client")
    return (net, server, client)
}

/// Binary, passive: the options most tests use.
let passive: [Option] = [.binary, .active(.passive)]

let ms: UInt64 = 1_000_000

/// `count` pseudo-random bytes from `seed`.
func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        var i = 0
        while i < count {
            var word = rng.next()
            for _ in 0..<min(8, count - i) {
                buffer[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
        initialized = count
    }
}

/// FNV-1a, 64 bits, updatable chunk by chunk.
struct Checksum: Equatable {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    private(set) var count = 0

    mutating func add(_ bytes: [UInt8]) {
        var h = value
        bytes.withUnsafeBufferPointer { buffer in
            for b in buffer {
                h ^= UInt64(b)
                h = h &* 0x0000_0100_0000_01B3
            }
        }
        value = h
        count += bytes.count
    }

    static func of(_ bytes: [UInt8]) -> Checksum {
        var c = Checksum()
        c.add(bytes)
        return c
    }
}

/// Reads with `recv(0)` until the stream ends; returns the checksum and how the stream ended.
func drain(_ socket: Socket, timeout: Timeout = .infinity) async -> (Checksum, SocketError) {
    var sum = Checksum()
    while true {
        do {
            let data = try await socket.recv(0, timeout: timeout)
            sum.add(data.bytes)
        } catch {
            return (sum, error)
        }
    }
}

/// A value processes of one simulation share (they all run on one executor, but the type system
/// wants a lock).
final class Shared<Value: Sendable>: Sendable {
    private let state: Mutex<Value>
    init(_ value: Value) { state = Mutex(value) }
    var value: Value {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
    func update(_ body: (inout Value) -> Void) { state.withLock { body(&$0) } }
}

/// Starts an echo server on `port` of `host` that serves one connection per process.
func startEchoServer(_ net: SimNetwork, on host: SimHost, port: Int, options: [Option] = passive) throws -> ListenSocket {
    let listener = try ListenSocket.listen(port: port, options: options, driver: .sim(net, host: host))
    net.spawn {
        while true {
            guard let s = try? await listener.accept() else { return }
            net.spawn {
                while let data = try? await s.recv(0) {
                    try await s.send(data.bytes)
                }
                s.close()
            }
        }
    }
    return listener
}
