import GenTCP
import GenTCPCore

/// The length-prefixed frame of the framed cases (bulk and ping-pong): a 4-byte big-endian
/// length and its body, ``size`` bytes in all, read the way such a protocol reads it, the length
/// first and then exactly the body, on every side (GenTCP, raw, OTP).
enum Frame {
    static let size = 64
    /// One frame: the length (60) and a body of 0x42 bytes.
    static let bytes: [UInt8] = [0, 0, 0, UInt8(size - 4)] + [UInt8](repeating: 0x42, count: size - 4)

    /// GenTCP: `recv(4)` for the length, `recv(length)` for the body; returns the frame's size.
    static func recv(on socket: Socket) async throws -> Int {
        let header = try await socket.recv(4).bytes
        let length = header.reduce(0) { $0 << 8 | Int($1) }
        check(length == size - 4, "a frame of \(length) bytes")
        return 4 + (try await socket.recv(length)).count
    }

    /// Raw: `read`s of exactly the length and then the body into `buffer` (``size`` bytes);
    /// false at an early end of stream.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawPointer, spinning: Bool) -> Bool {
        guard Raw.readExactly(fd, buffer, 4, spinning: spinning) else { return false }
        let length = Int(buffer.loadUnaligned(as: UInt32.self).bigEndian)
        check(length == size - 4, "a frame of \(length) bytes")
        return Raw.readExactly(fd, buffer + 4, length, spinning: spinning)
    }
}
