import GenTCP
import GenTCPCore

/// A host of a ``SimNetwork``: a name and its addresses. Every host also answers on the
/// loopback addresses (`127.0.0.1`, `::1`) and on the name `localhost`.
public struct SimHost: Hashable, Sendable, CustomStringConvertible {
    /// The host's name, as ``SimDriver/resolve(_:preference:)`` finds it (case-insensitively).
    public let name: String
    /// The host's IPv4 and IPv6 addresses, in the order given.
    public let addresses: [IPAddress]
    /// The receive window (socket buffer) of this host's connections, in bytes.
    public let receiveWindow: Int
    /// The host's index in its network.
    let index: Int
    /// The network the host belongs to.
    let network: ObjectIdentifier

    public var description: String { name }

    /// The first IPv4 address, if any.
    public var ipv4: IPAddress? { addresses.first { !$0.isIPv6 } }
    /// The first IPv6 address, if any.
    public var ipv6: IPAddress? { addresses.first { $0.isIPv6 } }
}
