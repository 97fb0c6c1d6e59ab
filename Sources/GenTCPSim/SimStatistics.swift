/// Counters of a ``SimNetwork``.
public struct SimStatistics: Hashable, Sendable {
    /// Connections established (handshake reached a listener).
    public var connections = 0
    /// Data segments delivered.
    public var segments = 0
    /// Bytes of the data segments delivered.
    public var bytesDelivered = 0
    /// Bytes held by the network right now: in flight plus received and not yet read.
    public var bufferedBytes = 0
    /// The most bytes one direction of one connection ever held (in flight plus unread).
    public var peakBufferedBytes = 0
    /// Faults injected.
    public var faults = 0
    /// Events not recorded because the trace reached its limit.
    public var traceDropped = 0
}
