import GenTCP
import GenTCPCore
import GenTCPSLIP
import GenTCPWire

/// A check of a board program that did not hold, with what was seen.
public struct BoardCheckFailure: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String
    /// A failure saying `description`.
    public init(_ description: String) { self.description = description }
}

/// The checks every run of the example programs passes, whatever carries the board (a
/// simulation run, a pty, QEMU): the same code against the same program source.
public enum BoardChecks {
    /// `count` pings, each answered (the stack's own ICMP echo).
    public static func ping(_ driver: SLIPDriver, board: IPAddress, count: Int = 5,
                            timeout: Timeout = .seconds(10)) async throws {
        for i in 0..<count {
            do {
                _ = try await driver.ping(board, payloadSize: 56, timeout: timeout)
            } catch {
                throw BoardCheckFailure("ping \(i + 1) of \(count) to \(board): \(error)")
            }
        }
    }

    /// Bytes of a fixed xorshift64 sequence seeded with `seed`.
    public static func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
        var x = seed | 1
        var bytes = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            bytes[i] = UInt8(truncatingIfNeeded: x)
        }
        return bytes
    }

    /// Echo on TCP 7: `size` bytes sent, then `shutdown(write)`; every byte comes back in order
    /// and the board closes after our FIN (the stream ends with `closed`, never a reset).
    /// Returns the seconds on the runtime's clock from connect to the end.
    @discardableResult
    public static func echo(_ driver: SLIPDriver, board: IPAddress, size: Int, seed: UInt64 = 7,
                            runtime: any Runtime, timeout: Int = 600_000) async throws -> Double {
        let data = pattern(size, seed: seed)
        let start = runtime.now
        let socket = try await Socket.connect(.address(board), port: 7, options: [.binary, .active(.passive)],
                                              timeout: .milliseconds(30_000), driver: driver)
        // A child task, not `Task {}`: it keeps the caller's executor, so in a simulation the
        // writer runs inside it on the virtual clock (an unstructured task would run on the
        // global pool and let the clock race ahead).
        async let written: Void = {
            var offset = 0
            while offset < data.count {
                let end = min(offset + 4096, data.count)
                try await socket.send(Array(data[offset..<end]))
                offset = end
            }
            try socket.shutdown(.write)
        }()
        var back: [UInt8] = []
        back.reserveCapacity(size)
        do {
            while true {
                let chunk = try await socket.recv(0, timeout: .milliseconds(timeout))
                back += chunk.bytes
            }
        } catch where error.reason == .closed {
            // the board closed after our FIN: the end we expect
        } catch {
            socket.close()
            try? await written
            throw BoardCheckFailure("echo of \(size) bytes: \(error) after \(back.count) bytes back")
        }
        try await written
        socket.close()
        guard back.count == data.count else {
            throw BoardCheckFailure("echo of \(size) bytes: \(back.count) came back before the close")
        }
        if let first = zip(back, data).enumerated().first(where: { $0.element.0 != $0.element.1 }) {
            throw BoardCheckFailure("echo of \(size) bytes: first difference at byte \(first.offset)")
        }
        return Double(runtime.now &- start) / 1e9
    }

    /// Discard on TCP 9: `size` bytes accepted and the board closes after our FIN.
    public static func discard(_ driver: SLIPDriver, board: IPAddress, size: Int) async throws {
        let socket = try await Socket.connect(.address(board), port: 9, options: [.binary, .active(.passive)],
                                              timeout: .milliseconds(30_000), driver: driver)
        try await socket.send(pattern(size, seed: 9))
        try socket.shutdown(.write)
        do {
            let extra = try await socket.recv(0, timeout: .milliseconds(600_000))
            throw BoardCheckFailure("discard sent \(extra.bytes.count) bytes back")
        } catch let error as SocketError where error.reason == .closed {}
        socket.close()
    }

    /// Source on TCP 19: 1 MiB of the board's xorshift32 sequence (seed 0x12345678), then its close.
    public static func source(_ driver: SLIPDriver, board: IPAddress) async throws {
        let socket = try await Socket.connect(.address(board), port: 19, options: [.binary, .active(.passive)],
                                              timeout: .milliseconds(30_000), driver: driver)
        var x: UInt32 = 0x1234_5678
        var count = 0
        do {
            while true {
                let chunk = try await socket.recv(0, timeout: .milliseconds(600_000))
                for byte in chunk.bytes {
                    x ^= x << 13
                    x ^= x >> 17
                    x ^= x << 5
                    guard byte == UInt8(truncatingIfNeeded: x) else {
                        throw BoardCheckFailure("source: byte \(count) differs from the sequence")
                    }
                    count += 1
                }
            }
        } catch let error as SocketError where error.reason == .closed {}
        socket.close()
        guard count == 1 << 20 else { throw BoardCheckFailure("source: \(count) bytes before the close, not 1 MiB") }
    }
}
