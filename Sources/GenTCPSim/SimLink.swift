/// How a pair of hosts is connected: one-way latency and an optional rate.
public struct SimLink: Hashable, Sendable {
    /// One-way propagation delay of every segment.
    public var latency: Duration
    /// Bytes per second in each direction (shared by every connection between the two hosts);
    /// nil for no limit. A segment of `n` bytes occupies the line for `n / rate` seconds.
    public var bytesPerSecond: Int?

    /// A link with `latency` each way (1 ms by default) and an optional rate (none by default).
    public init(latency: Duration = .milliseconds(1), bytesPerSecond: Int? = nil) {
        self.latency = latency
        self.bytesPerSecond = bytesPerSecond
    }

    /// A serial line at `baud` with 8N1 framing (10 bits per byte): 115200 baud is 11520 B/s.
    public static func serial(baud: Int, latency: Duration = .zero) -> SimLink {
        SimLink(latency: latency, bytesPerSecond: max(1, baud / 10))
    }
}
