/// How a pair of hosts is connected: one-way latency and an optional rate.
public struct SimLink: Hashable, Sendable {
    /// One-way propagation delay of every segment.
    public var latency: Duration
    /// Bytes per second in each direction (shared by every connection between the two hosts);
    /// nil for no limit. A segment of `n` bytes occupies the line for `n / rate` seconds.
    public var bytesPerSecond: Int?
    /// The largest IP packet the path carries, in bytes, for datagrams; nil for no limit. TCP
    /// segments ignore it (their size is ``SimNetwork/Configuration/segmentSize``).
    ///
    /// The sim driver behaves as Linux with `IP_PMTUDISC_DO`: a datagram whose IP packet (payload
    /// plus 28 bytes of IPv4 and UDP headers, 48 on IPv6) exceeds the MTU of the path to its
    /// destination is refused at send with `emsgsize` and never goes on the wire (for a
    /// broadcast, the smallest MTU of the paths it takes). The socket's largest datagram stays
    /// 65507 (65527 on IPv6).
    public var mtu: Int?

    /// A link with `latency` each way (1 ms by default), an optional rate and an optional MTU
    /// (none by default).
    public init(latency: Duration = .milliseconds(1), bytesPerSecond: Int? = nil, mtu: Int? = nil) {
        self.latency = latency
        self.bytesPerSecond = bytesPerSecond
        self.mtu = mtu
    }

    /// A serial line at `baud` with 8N1 framing (10 bits per byte): 115200 baud is 11520 B/s.
    public static func serial(baud: Int, latency: Duration = .zero) -> SimLink {
        SimLink(latency: latency, bytesPerSecond: max(1, baud / 10))
    }
}
