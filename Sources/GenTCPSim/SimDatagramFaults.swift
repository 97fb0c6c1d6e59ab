/// Seeded fault injection for datagrams (gen_udp). All probabilities are in `0...1`.
///
/// Decisions come from a generator of their own, seeded from the network's seed, so datagram
/// traffic never shifts the TCP faults of the same run (and a run without datagrams keeps its
/// trace). Each decision is drawn only when its fault is switched on, in a fixed order per
/// datagram and destination host: loss, duplication, then for each copy jitter and reordering.
///
/// A path's MTU is not a fault: it is ``SimLink/mtu``.
public struct SimDatagramFaults: Hashable, Sendable {
    /// Probability that a datagram is lost on the way (recorded as
    /// ``SimEvent/UDP/lost(from:to:bytes:)``).
    public var lossProbability: Double = 0
    /// Probability that a datagram arrives twice (the copy draws its own jitter and reordering).
    public var duplicateProbability: Double = 0
    /// Probability that a datagram is held back by an extra delay drawn from
    /// `1 ns...reorderDelay`, so that later datagrams overtake it.
    public var reorderProbability: Double = 0
    /// The longest extra delay of a reordered datagram.
    public var reorderDelay: Duration = .milliseconds(10)
    /// Latency added to every datagram.
    public var extraLatency: Duration = .zero
    /// Extra delay drawn uniformly from `0...jitter` for every datagram. Unlike TCP segments,
    /// datagrams keep no order: jitter alone may reorder them.
    public var jitter: Duration = .zero

    /// Faults with every field as named; the defaults inject nothing.
    public init(
        lossProbability: Double = 0, duplicateProbability: Double = 0, reorderProbability: Double = 0,
        reorderDelay: Duration = .milliseconds(10), extraLatency: Duration = .zero, jitter: Duration = .zero
    ) {
        self.lossProbability = lossProbability
        self.duplicateProbability = duplicateProbability
        self.reorderProbability = reorderProbability
        self.reorderDelay = reorderDelay
        self.extraLatency = extraLatency
        self.jitter = jitter
    }

    /// No faults.
    public static let none = SimDatagramFaults()
}

extension SimNetwork {
    /// Sets the datagram faults of a scope; ``SimDatagramFaults/none`` switches a scope's faults
    /// off. They apply from the next datagram sent. For a datagram the most specific scope wins:
    /// the destination's port, then the destination host, then the sending host, then the whole
    /// network (the same order as ``setFaults(_:for:)``).
    public func setDatagramFaults(_ faults: SimDatagramFaults, for scope: SimFaultScope = .network) {
        withWorld(deferred: false) { w in
            switch scope {
            case .network: w.datagramFaults[.network] = faults
            case .host(let h):
                check(h)
                w.datagramFaults[.host(h.index)] = faults
            case .port(let h, let p):
                check(h)
                w.datagramFaults[.port(h.index, p)] = faults
            }
        }
    }
}
