import GenTCPCore

/// Where to connect: an IP address or a host name. A string literal that parses as an address is
/// an address (`"127.0.0.1"`, `"::1"`); anything else is a name (`"localhost"`).
public enum Host: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// An IPv4 or IPv6 address: connected to as is, with no lookup.
    case address(IPAddress)
    /// A host name, resolved by the driver (``Driver/resolve(_:preference:)``) before connecting.
    case name(String)

    /// An address when `text` parses as one (`"10.0.0.1"`, `"fe80::1"`), else a name.
    public init(_ text: String) {
        if let a = IPAddress(text) { self = .address(a) } else { self = .name(text) }
    }

    /// The same as ``init(_:)``: `"10.0.0.1"` is an address, `"board"` a name.
    public init(stringLiteral value: String) { self.init(value) }

    /// The address in its text form, or the name.
    public var description: String {
        switch self {
        case .address(let a): return a.description
        case .name(let n): return n
        }
    }
}
