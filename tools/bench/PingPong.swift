import GenTCP
import GenTCPCore
import GenTCPPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// Ping-pong: the client sends `size` bytes, the raw blocking echo peer sends them back; repeat.
/// TCP_NODELAY on both ends, for GenTCP and raw alike.
enum PingPong {
    static let size = 64

    enum Client: Sendable, Equatable {
        /// `send`, then `recv(64)`.
        case passive
        /// `send`, then `setopts(.active(.once))` and `Process.receive` (until 64 bytes came).
        case activeOnce
        /// A ``Frame``: `send`, then ``Frame/recv(on:)`` (`recv(4)`, `recv(60)`).
        case framed
        /// `send`, then `recv(64, timeout: 0)` polled for up to `spinNanoseconds` before a
        /// blocking `recv(64)`: what "spin briefly before parking" would give, done from outside.
        case passiveSpinning(spinNanoseconds: UInt64)
    }

    static func genTCP(_ client: Client, roundTrips: Int, driver: POSIXDriver) async throws -> Sample {
        let (listener, port) = Raw.listen()
        let peer = Raw.echoPeer(listener: listener, size: size)
        defer {
            peer.join()
            close(listener)
        }
        return try await Process.run {
            let socket = try await Socket.connect(
                "127.0.0.1", port: port, options: [.binary, .active(.passive), .nodelay(true)], driver: driver)
            defer { socket.close() }
            let message = client == .framed ? Frame.bytes : [UInt8](repeating: 0x42, count: size)
            let start = Snapshot.now()
            var deliveries = 0
            switch client {
            case .passive:
                for _ in 0..<roundTrips {
                    try await socket.send(message)
                    let back = try await socket.recv(size)
                    precondition(back.count == size)
                    deliveries += 1
                }
            case .framed:
                for _ in 0..<roundTrips {
                    try await socket.send(message)
                    _ = try await Frame.recv(on: socket)
                    deliveries += 1
                }
            case .activeOnce:
                for _ in 0..<roundTrips {
                    try await socket.send(message)
                    var got = 0
                    while got < size {
                        try socket.setopts(.active(.once))
                        guard case .tcp(_, let payload)? = try await Process.receive() else {
                            fatalError("gentcp-bench: unexpected message in ping-pong")
                        }
                        got += payload.count
                        deliveries += 1
                    }
                }
            case .passiveSpinning(let spin):
                for _ in 0..<roundTrips {
                    try await socket.send(message)
                    let deadline = Snapshot.now().wall &+ spin
                    var done = false
                    while !done && Snapshot.clock() < deadline {
                        do throws(SocketError) {
                            _ = try await socket.recv(size, timeout: 0)
                            done = true
                        } catch {
                            precondition(error.reason == .timeout, "gentcp-bench: \(error)")
                        }
                    }
                    if !done { _ = try await socket.recv(size) }
                    deliveries += 1
                }
            }
            var sample = Snapshot.now() - start
            sample.deliveries = deliveries
            return sample
        }
    }

    /// The reference: blocking write then read on this thread. `spinning`: the read polls a
    /// non-blocking socket in a busy loop instead of sleeping. `framed`: the read is two, the
    /// 4-byte header and the body it announces (as the other sides read it).
    static func raw(roundTrips: Int, spinning: Bool = false, framed: Bool = false) -> Sample {
        let (listener, port) = Raw.listen()
        let peer = Raw.echoPeer(listener: listener, size: size)
        let fd = Raw.connect(port: port)
        Raw.setNoDelay(fd)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        memset(buffer, 0x42, size)
        if framed { Frame.bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: size) } }
        defer {
            buffer.deallocate()
            close(fd)
            peer.join()
            close(listener)
        }
        let start = Snapshot.now()
        for _ in 0..<roundTrips {
            Raw.writeAll(fd, buffer, size)
            let ok = framed ? Frame.read(fd, into: buffer, spinning: spinning)
                            : Raw.readExactly(fd, buffer, size, spinning: spinning)
            check(ok, "ping-pong read")
        }
        var sample = Snapshot.now() - start
        sample.deliveries = roundTrips
        return sample
    }
}
