/// An IPv4 address, as the 32-bit number whose most significant byte is the first on the wire.
public struct IPv4Address: Hashable, Sendable, Comparable {
    /// The address, first octet in the most significant byte (`10.0.0.1` is `0x0A00_0001`).
    public var rawValue: UInt32

    /// The address whose first octet is `rawValue`'s most significant byte.
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// Builds `a.b.c.d`.
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// `0.0.0.0`.
    public static let any = IPv4Address(rawValue: 0)
    /// `255.255.255.255`.
    public static let broadcast = IPv4Address(rawValue: 0xFFFF_FFFF)

    /// The four octets, first on the wire first.
    public var octets: (UInt8, UInt8, UInt8, UInt8) {
        (UInt8(truncatingIfNeeded: rawValue >> 24), UInt8(truncatingIfNeeded: rawValue >> 16),
         UInt8(truncatingIfNeeded: rawValue >> 8), UInt8(truncatingIfNeeded: rawValue))
    }

    /// `0.0.0.0`.
    public var isUnspecified: Bool { rawValue == 0 }
    /// `127.0.0.0/8`.
    public var isLoopback: Bool { rawValue >> 24 == 127 }
    /// `224.0.0.0/4`.
    public var isMulticast: Bool { rawValue >> 28 == 0xE }
    /// `255.255.255.255`.
    public var isBroadcast: Bool { rawValue == 0xFFFF_FFFF }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.rawValue < rhs.rawValue }
}

// Text forms are host-only: string formatting would be most of an embedded image's size.
#if !hasFeature(Embedded)
extension IPv4Address: CustomStringConvertible {
    /// Dotted quad, e.g. `10.0.0.1`.
    public var description: String {
        let (a, b, c, d) = octets
        return "\(a).\(b).\(c).\(d)"
    }
}
#endif

/// The IPv4 protocol field (IANA "Assigned Internet Protocol Numbers").
public struct IPProtocol: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// 1, RFC 792.
    public static let icmp = IPProtocol(rawValue: 1)
    /// 6, RFC 9293.
    public static let tcp = IPProtocol(rawValue: 6)
    /// 17, RFC 768.
    public static let udp = IPProtocol(rawValue: 17)
}
