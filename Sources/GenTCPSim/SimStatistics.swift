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
    /// Datagrams handed to the network by a send (a broadcast counts once).
    public var datagramsSent = 0
    /// Datagrams put in a receiving socket's queue (each copy of a duplicate, each receiver of a
    /// broadcast).
    public var datagramsDelivered = 0
    /// Datagrams lost: by the loss fault, or sent to an address no host has.
    public var datagramsLost = 0
    /// Datagrams the duplication fault copied.
    public var datagramsDuplicated = 0
    /// Datagrams the reordering fault held back.
    public var datagramsReordered = 0
    /// Datagrams dropped because the receiving socket's queue was full.
    public var datagramsDroppedQueueFull = 0
    /// Datagrams dropped by a connected socket's filter (from another sender).
    public var datagramsFiltered = 0
    /// ICMP port unreachable messages sent back (a datagram reached a port nobody has bound).
    public var portUnreachables = 0
    /// Events not recorded because the trace reached its limit.
    public var traceDropped = 0
}
