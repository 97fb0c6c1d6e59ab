import CGenTCPShims
import GenTCP
import GenTCPCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A mailbox message in a comparable form, for `#expect(await next() == .tcp(c, ...))`.
enum Msg: Equatable, Sendable, CustomStringConvertible {
    case tcp(Socket, Payload)
    case tcpClosed(Socket)
    case tcpError(Socket, SocketError.Reason)
    case tcpPassive(Socket)
    case ssl(Socket, Payload)
    case sslClosed(Socket)
    /// The error's reason and, for a TLS alert, the alert's name and side (`unknown_ca generated`).
    case sslError(Socket, SocketError.Reason, String?)
    case sslPassive(Socket)
    case udp(UDPSocket, Datagram)
    case udpPassive(UDPSocket)
    case udpError(UDPSocket, SocketError.Reason)
    case user(String)
    /// Nothing arrived in time.
    case none
    /// The receive itself failed (`cancelled`).
    case receiveFailed(SocketError.Reason)

    init(_ message: Message?) {
        switch message {
        case nil: self = .none
        case .tcp(let s, let p)?: self = .tcp(s, p)
        case .tcpClosed(let s)?: self = .tcpClosed(s)
        case .tcpError(let s, let r)?: self = .tcpError(s, r)
        case .tcpPassive(let s)?: self = .tcpPassive(s)
        case .ssl(let s, let p)?: self = .ssl(s, p)
        case .sslClosed(let s)?: self = .sslClosed(s)
        case .sslError(let s, let e)?:
            self = .sslError(s, e.reason, e.alert.map { "\($0.name) \(e.alertOrigin.map { "\($0)" } ?? "?")" })
        case .sslPassive(let s)?: self = .sslPassive(s)
        case .udp(let s, let d)?: self = .udp(s, d)
        case .udpPassive(let s)?: self = .udpPassive(s)
        case .udpError(let s, let r)?: self = .udpError(s, r)
        case .user(let v)?: self = .user("\(v)")
        }
    }

    var description: String {
        switch self {
        case .tcp(let s, let p): return "{tcp, \(s), \(p)}"
        case .tcpClosed(let s): return "{tcp_closed, \(s)}"
        case .tcpError(let s, let r): return "{tcp_error, \(s), \(r.atom)}"
        case .tcpPassive(let s): return "{tcp_passive, \(s)}"
        case .ssl(let s, let p): return "{ssl, \(s), \(p)}"
        case .sslClosed(let s): return "{ssl_closed, \(s)}"
        case .sslError(let s, let r, let alert): return "{ssl_error, \(s), \(alert.map { "tls_alert \($0)" } ?? "\(r.atom)")}"
        case .sslPassive(let s): return "{ssl_passive, \(s)}"
        case .udp(let s, let d): return "{udp, \(s), \(d.source), \(d.payload)}"
        case .udpPassive(let s): return "{udp_passive, \(s)}"
        case .udpError(let s, let r): return "{udp_error, \(s), \(r.atom)}"
        case .user(let v): return "user(\(v))"
        case .none: return "(no message)"
        case .receiveFailed(let r): return "(receive failed: \(r.atom))"
        }
    }
}

/// The next message of the calling process's mailbox, waiting at most `timeout`.
func next(_ timeout: Timeout = 2000) async -> Msg {
    await received { () async throws(SocketError) -> Message? in try await Process.receive(timeout: timeout) }
}

/// The next socket message (skipping nothing: user messages are left queued).
func nextSocketMessage(_ timeout: Timeout = 2000) async -> Msg {
    await received { () async throws(SocketError) -> Message? in
        try await Process.receive(timeout: timeout, where: { $0.socket != nil })
    }
}

/// A receive's outcome as a ``Msg``.
private func received(_ receive: () async throws(SocketError) -> Message?) async -> Msg {
    do throws(SocketError) { return Msg(try await receive()) } catch { return .receiveFailed(error.reason) }
}

/// The next user message of type `T`, waiting at most `timeout`; nil on timeout (or when the
/// receive fails).
func nextUser<T: Sendable>(_ type: T.Type, _ timeout: Timeout = 2000) async -> T? {
    let m = try? await Process.receive(timeout: timeout, where: { m in
        if case .user(let v) = m { return v is T }
        return false
    })
    if case .user(let v)? = m { return v as? T }
    return nil
}

/// Collects active-mode data from `socket` until `count` bytes arrived (or a non-data message,
/// or the safety timeout). Returns the bytes and the sizes of the messages.
func collectActive(_ socket: Socket, count: Int, timeout: Timeout = 2000) async -> (bytes: [UInt8], sizes: [Int], other: Msg?) {
    var bytes: [UInt8] = []
    var sizes: [Int] = []
    while bytes.count < count {
        let m = await next(timeout)
        guard case .tcp(let s, let p) = m, s == socket else { return (bytes, sizes, m) }
        bytes += p.bytes
        sizes.append(p.count)
    }
    return (bytes, sizes, nil)
}

/// Exact passive read of `count` bytes by repeated `recv(0)` (so the test sees what arrived).
func recvAll(_ socket: Socket, count: Int, timeout: Timeout = 2000) async throws -> [UInt8] {
    var bytes: [UInt8] = []
    while bytes.count < count {
        bytes += try await socket.recv(0, timeout: timeout).bytes
    }
    return bytes
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func bin(_ text: String) -> Payload { .binary(Array(text.utf8)) }
func list(_ text: String) -> Payload { .list(Array(text.utf8)) }

// MARK: - Bulk data

/// The bulk test pattern: a deterministic pseudo-random byte stream (xorshift64*), so that a
/// dropped, duplicated or reordered chunk changes the checksum.
enum Pattern {
    static func bytes(count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
        var state = seed
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var i = 0
            while i < count {
                state ^= state >> 12
                state ^= state << 25
                state ^= state >> 27
                var word = state &* 0x2545_F491_4F6C_DD1D
                var k = 0
                while k < 8 && i < count {
                    buffer[i] = UInt8(truncatingIfNeeded: word)
                    word >>= 8
                    k += 1
                    i += 1
                }
            }
            initialized = count
        }
    }

    /// 8 MiB, as in K77.
    static let eightMiB: [UInt8] = bytes(count: 8 << 20)
    static let eightMiBDigest = Digest(of: eightMiB)
}

/// The checksum used for bulk transfers: 64-bit FNV-1a over the stream plus its total length.
/// (Not SHA-256: the test target is built without optimisation, where a hand-written SHA-256
/// over 8 MiB costs seconds; FNV-1a with the length catches any lost, extra or changed byte in
/// practice, and the pattern is pseudo-random so reordered chunks change it too.)
struct Digest: Equatable, CustomStringConvertible {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    var length = 0

    init() {}
    init(of bytes: [UInt8]) { update(bytes) }

    mutating func update(_ bytes: [UInt8]) {
        var h = hash
        bytes.withUnsafeBufferPointer { p in
            for b in p {
                h ^= UInt64(b)
                h = h &* 0x0000_0100_0000_01B3
            }
        }
        hash = h
        length += bytes.count
    }

    var description: String {
        let hex = String(hash, radix: 16)
        return "fnv1a64=\(String(repeating: "0", count: 16 - hex.count) + hex) length=\(length)"
    }
}

// MARK: - Host facts

enum Loopback {
    /// True when a TCP socket can be bound to ::1 here.
    static let ipv6Available: Bool = {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var sin6 = sockaddr_in6()
        sin6.sin6_family = sa_family_t(AF_INET6)
        sin6.sin6_addr = in6addr_loopback
        let rc = withUnsafePointer(to: &sin6) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        }
        return rc == 0
    }()
}

/// Resident memory of this program in bytes, from `/proc/self/statm` (second field, in pages).
func residentBytes() -> Int? {
    guard let f = fopen("/proc/self/statm", "r") else { return nil }
    defer { fclose(f) }
    var size = 0, resident = 0
    guard withUnsafeMutablePointer(to: &size, { sp in
        withUnsafeMutablePointer(to: &resident) { rp in
            withVaList([sp, rp]) { vfscanf(f, "%ld %ld", $0) }
        }
    }) == 2 else { return nil }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
}
