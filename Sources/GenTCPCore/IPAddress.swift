/// An IPv4 or IPv6 address: OTP's 4-tuple or 8-tuple.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// An IPv4 address, most significant byte first (`127.0.0.1` is `0x7F00_0001`).
    case v4(UInt32)
    /// An IPv6 address as eight 16-bit groups, first group first (`{0,0,0,0,0,0,0,1}` is `::1`).
    case v6(UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16)

    /// `127.0.0.1`.
    public static let loopbackV4 = IPAddress.v4(0x7F00_0001)
    /// `::1`.
    public static let loopbackV6 = IPAddress.v6(0, 0, 0, 0, 0, 0, 0, 1)
    /// `0.0.0.0`.
    public static let anyV4 = IPAddress.v4(0)
    /// `::`.
    public static let anyV6 = IPAddress.v6(0, 0, 0, 0, 0, 0, 0, 0)

    /// Builds an IPv4 address from its four bytes, as in `{127,0,0,1}`.
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        self = .v4(UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d))
    }

    /// True for `127.0.0.0/8` and `::1`.
    public var isLoopback: Bool {
        switch self {
        case .v4(let v): return v >> 24 == 127
        case .v6: return self == .loopbackV6
        }
    }

    /// True for a multicast group: `224.0.0.0/4` or `ff00::/8`.
    public var isMulticast: Bool {
        switch self {
        case .v4(let v): return v >> 28 == 0xE
        case let .v6(a, _, _, _, _, _, _, _): return a >> 8 == 0xFF
        }
    }

    /// True for the wildcard address `0.0.0.0` or `::`.
    public var isUnspecified: Bool { self == .anyV4 || self == .anyV6 }

    /// True for an IPv6 address.
    public var isIPv6: Bool {
        if case .v6 = self { return true }
        return false
    }

    /// The eight groups of an IPv6 address (zeros for IPv4).
    public var groups: [UInt16] {
        switch self {
        case .v4: return [0, 0, 0, 0, 0, 0, 0, 0]
        case let .v6(a, b, c, d, e, f, g, h): return [a, b, c, d, e, f, g, h]
        }
    }

    /// The address in network byte order: 4 or 16 bytes.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let v): return [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
        case .v6:
            var out: [UInt8] = []
            out.reserveCapacity(16)
            for g in groups { out.append(UInt8(g >> 8)); out.append(UInt8(g & 0xFF)) }
            return out
        }
    }

    /// Builds an address from 4 or 16 bytes in network order; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        let b = Array(bytes)
        if b.count == 4 {
            self.init(b[0], b[1], b[2], b[3])
        } else if b.count == 16 {
            var g = [UInt16](repeating: 0, count: 8)
            for i in 0..<8 { g[i] = UInt16(b[2 * i]) << 8 | UInt16(b[2 * i + 1]) }
            self = .v6(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7])
        } else {
            return nil
        }
    }

    /// Parses dotted-quad IPv4 (`192.0.2.1`) or IPv6 text (`::1`, `fe80::1`, `::ffff:1.2.3.4`).
    /// Returns nil for anything else (a host name, say).
    public init?(_ text: String) {
        let utf8 = Array(text.utf8)
        if let v4 = IPAddress.parseV4(utf8[...]) {
            self = .v4(v4)
        } else if let g = IPAddress.parseV6(utf8) {
            self = .v6(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7])
        } else {
            return nil
        }
    }

    static func parseV4(_ s: ArraySlice<UInt8>) -> UInt32? {
        var value: UInt32 = 0
        var parts = 0
        var current: UInt32 = 0
        var digits = 0
        for c in s {
            if c >= 48 && c <= 57 {
                // No leading zeros beyond a single "0", as inet_parse does for strict dotted quads.
                if digits == 1 && current == 0 { return nil }
                current = current * 10 + UInt32(c - 48)
                digits += 1
                if current > 255 { return nil }
            } else if c == 46 {
                if digits == 0 || parts == 3 { return nil }
                value = value << 8 | current
                parts += 1
                current = 0
                digits = 0
            } else {
                return nil
            }
        }
        if digits == 0 || parts != 3 { return nil }
        return value << 8 | current
    }

    static func parseV6(_ s: [UInt8]) -> [UInt16]? {
        if s.count < 2 || s.count > 45 { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawGap = false
        var i = 0
        // A leading "::".
        if s[0] == 58 {
            guard s[1] == 58 else { return nil }
            sawGap = true
            i = 2
            if i == s.count { return [0, 0, 0, 0, 0, 0, 0, 0] }
        }
        while i < s.count {
            // Find the end of this group.
            var j = i
            while j < s.count && s[j] != 58 { j += 1 }
            let field = s[i..<j]
            if field.isEmpty { return nil }
            if field.contains(46) {
                // Embedded IPv4 must be last.
                guard j == s.count, let v4 = parseV4(field) else { return nil }
                let pair = [UInt16(v4 >> 16), UInt16(v4 & 0xFFFF)]
                if sawGap { tail += pair } else { head += pair }
                break
            }
            if field.count > 4 { return nil }
            var g: UInt16 = 0
            for c in field {
                let d: UInt8
                switch c {
                case 48...57: d = c - 48
                case 65...70: d = c - 55
                case 97...102: d = c - 87
                default: return nil
                }
                g = g << 4 | UInt16(d)
            }
            if sawGap { tail.append(g) } else { head.append(g) }
            if j == s.count { break }
            // j points at ':'.
            if j + 1 < s.count && s[j + 1] == 58 {
                if sawGap { return nil }
                sawGap = true
                i = j + 2
                if i == s.count { break }
            } else {
                if j + 1 == s.count { return nil }  // trailing single ':'
                i = j + 1
            }
        }
        let total = head.count + tail.count
        if sawGap {
            if total > 7 { return nil }
            return head + [UInt16](repeating: 0, count: 8 - total) + tail
        }
        return total == 8 ? head : nil
    }

    /// Text form: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed).
    public var description: String {
        var out: [UInt8] = []
        switch self {
        case .v4(let v):
            for shift in [24, 16, 8, 0] {
                if shift != 24 { out.append(46) }
                IPAddress.appendDecimal(Int(v >> UInt32(shift) & 0xFF), to: &out)
            }
        case .v6:
            let g = groups
            // Longest run of zero groups (length >= 2) to compress; the first one on a tie.
            var bestStart = -1, bestLen = 0, i = 0
            while i < 8 {
                if g[i] == 0 {
                    var j = i
                    while j < 8 && g[j] == 0 { j += 1 }
                    if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                    i = j
                } else {
                    i += 1
                }
            }
            var k = 0
            var needColon = false
            while k < 8 {
                if k == bestStart {
                    out.append(58); out.append(58)
                    k += bestLen
                    needColon = false
                    continue
                }
                if needColon { out.append(58) }
                IPAddress.appendHex(g[k], to: &out)
                needColon = true
                k += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        if value >= 10 { appendDecimal(value / 10, to: &out) }
        out.append(UInt8(48 + value % 10))
    }

    static func appendHex(_ value: UInt16, to out: inout [UInt8]) {
        if value >= 16 { appendHex(value >> 4, to: &out) }
        let d = UInt8(value & 0xF)
        out.append(d < 10 ? 48 + d : 87 + d)
    }
}

/// An address and a port: what `peername`/`sockname` return (`{Address, Port}`).
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// The IPv4 or IPv6 address.
    public var address: IPAddress
    /// The TCP port, 0...65535 (0: unbound, or "any" when binding).
    public var port: Int

    /// An address and a port; nothing is checked here (`connect` and `listen` check the port).
    public init(_ address: IPAddress, port: Int) {
        self.address = address
        self.port = port
    }

    /// `127.0.0.1:80` or `[::1]:80`.
    public var description: String {
        address.isIPv6 ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}
