import GenTCPCore

/// One thing a ``TracingLink`` saw: bytes read or written, or the first hang-up or failure in
/// a direction.
public struct SerialTraceEvent: Hashable, Sendable {
    /// Which way the bytes went, seen from the program holding the link.
    public enum Direction: Hashable, Sendable {
        /// Written to the link (for a host talking to a board: host to board).
        case written
        /// Read from the link (for a host talking to a board: board to host).
        case read
    }

    /// What happened.
    public enum What: Hashable, Sendable {
        /// These bytes were transferred (never empty).
        case bytes([UInt8])
        /// The link reported ``LinkIO/hangUp`` (reported once per direction).
        case hangUp
        /// The link reported ``LinkIO/failed(_:)`` (reported once per direction).
        case failed(SocketError.Reason)
    }

    /// When, in nanoseconds of the clock the ``TracingLink`` was given (virtual time on a
    /// simulated runtime).
    public var time: UInt64
    /// Which way.
    public var direction: Direction
    /// What happened.
    public var what: What

    /// - Parameters:
    ///   - time: nanoseconds of the tracing link's clock.
    ///   - direction: written or read.
    ///   - what: bytes, hang-up or failure.
    public init(time: UInt64, direction: Direction, what: What) {
        self.time = time
        self.direction = direction
        self.what = what
    }
}
