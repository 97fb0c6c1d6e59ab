/// A connection slot of a ``Stack``: its index and the generation the slot had when handed out.
///
/// Handles are small values. Once the socket is closed the slot's generation moves on, so an old
/// handle is refused with ``TCPError/closed`` instead of reaching a newer connection.
public struct ConnectionHandle: Hashable, Sendable {
    /// The slot's index in the stack's connection table.
    public let index: UInt16
    /// The slot's generation when this handle was handed out.
    public let generation: UInt16

    /// A handle for slot `index` at `generation` (the stack makes them; tests may too).
    public init(index: UInt16, generation: UInt16) {
        self.index = index
        self.generation = generation
    }
}

/// A listening slot of a ``Stack`` (index and generation, as ``ConnectionHandle``).
public struct ListenerHandle: Hashable, Sendable {
    /// The slot's index in the stack's listener table.
    public let index: UInt16
    /// The slot's generation when this handle was handed out.
    public let generation: UInt16

    /// A handle for slot `index` at `generation` (the stack makes them; tests may too).
    public init(index: UInt16, generation: UInt16) {
        self.index = index
        self.generation = generation
    }
}

/// The TCP connection states of RFC 9293 §3.3.2.
public enum TCPState: Hashable, Sendable {
    /// Before the handshake completes: CLOSED (no connection), LISTEN (waiting for a SYN),
    /// SYN-SENT (our SYN sent), SYN-RECEIVED (a SYN received and answered), then ESTABLISHED
    /// (data flows both ways).
    case closed, listen, synSent, synReceived, established
    /// Closing: FIN-WAIT-1 and FIN-WAIT-2 (we closed first), CLOSE-WAIT (the peer closed first),
    /// CLOSING (both at once), LAST-ACK (our FIN after the peer's), TIME-WAIT (2·MSL before the
    /// slot is reused).
    case finWait1, finWait2, closeWait, closing, lastAck, timeWait

    /// States after the three-way handshake (RFC 9293 §3.3.2 "synchronized states").
    var isSynchronized: Bool {
        switch self {
        case .closed, .listen, .synSent, .synReceived: false
        default: true
        }
    }
}

/// What ``Stack/recv(_:into:)`` found.
public enum ReceiveResult: Hashable, Sendable {
    /// This many bytes were copied out.
    case data(Int)
    /// Nothing buffered yet; the connection is still open for reading.
    case wouldBlock
    /// The peer sent FIN and every byte before it has been read.
    case endOfStream
}

/// Something the driver may want to act on. Readiness queries stay authoritative: if the event
/// queue overflows (``StackCounters/eventsDropped``), poll ``Stack/isReadable(_:)`` and friends.
public enum StackEvent: Hashable, Sendable {
    /// An active open completed (SYN-SENT → ESTABLISHED).
    case connected(ConnectionHandle)
    /// A connection from this listener completed its handshake and can be accepted.
    case acceptable(ListenerHandle)
    /// New bytes, or the end of the stream, can be read.
    case readable(ConnectionHandle)
    /// Send-buffer space was freed after a short `send`.
    case writable(ConnectionHandle)
    /// The connection failed; the reason stays readable with ``Stack/error(_:)``.
    case failed(ConnectionHandle, TCPError)
    /// Both directions finished (TIME-WAIT or CLOSED reached) while the application still holds
    /// the handle.
    case finished(ConnectionHandle)
    /// A UDP socket has a datagram (or an ICMP error) to receive.
    case datagramReadable(DatagramHandle)
    /// A slot of the UDP send queue freed after a send found it full.
    case datagramSendRoom
    /// An ICMP echo reply arrived (RFC 792).
    case echoReply(source: IPv4Address, identifier: UInt16, sequence: UInt16, dataLength: Int)
}

import GenTCPWire
