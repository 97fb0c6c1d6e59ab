/// Seeded fault injection. All probabilities are in `0...1`; decisions come from the network's
/// generator, so the same seed gives the same faults at the same points.
public struct SimFaults: Hashable, Sendable {
    /// Latency added to every segment and handshake, in both directions.
    public var extraLatency: Duration = .zero
    /// Extra delay drawn uniformly from `0...jitter` for every data segment (order is kept: a
    /// segment never overtakes an earlier one of the same connection and direction).
    public var jitter: Duration = .zero
    /// Probability that a connection attempt is refused (RST) although a listener is there.
    public var refuseProbability: Double = 0
    /// Reset the connection once this many bytes have gone in one direction: the receiver gets
    /// exactly these bytes, then an RST; the sender gets an RST one latency later.
    public var resetAfterBytes: Int? = nil
    /// Probability, per data segment, that the connection is reset instead of the segment going.
    public var resetProbability: Double = 0
    /// Probability, per write, that the connection takes fewer bytes than offered and room allows.
    public var shortWriteProbability: Double = 0
    /// Probability, per data segment, that delivery stalls for ``stallDuration`` (later segments
    /// of the same direction wait behind it).
    public var stallProbability: Double = 0
    /// How long a stall holds delivery.
    public var stallDuration: Duration = .milliseconds(200)

    /// Faults with every field as named; the defaults inject nothing.
    public init(
        extraLatency: Duration = .zero, jitter: Duration = .zero, refuseProbability: Double = 0,
        resetAfterBytes: Int? = nil, resetProbability: Double = 0, shortWriteProbability: Double = 0,
        stallProbability: Double = 0, stallDuration: Duration = .milliseconds(200)
    ) {
        self.extraLatency = extraLatency
        self.jitter = jitter
        self.refuseProbability = refuseProbability
        self.resetAfterBytes = resetAfterBytes
        self.resetProbability = resetProbability
        self.shortWriteProbability = shortWriteProbability
        self.stallProbability = stallProbability
        self.stallDuration = stallDuration
    }

    /// No faults.
    public static let none = SimFaults()
}

/// Where a ``SimFaults`` setting applies. For a connection the most specific one wins: the
/// server's port, then the server host, then the client host, then the whole network.
public enum SimFaultScope: Hashable, Sendable {
    /// Every connection of the network.
    case network
    /// Connections to or from this host.
    case host(SimHost)
    /// Connections to this port of this host.
    case port(SimHost, Int)
}
