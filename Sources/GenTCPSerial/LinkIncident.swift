import GenTCPCore

/// A driver on a serial line that can say, in one sentence, what last went wrong on the line.
///
/// Sockets fail with a reason (an Erlang atom); the sentence says what happened on the link, so a
/// program (and `gentcp`) can report "the modem restarted (ready)" instead of a bare
/// `econnaborted`. The reasons, one rule for every serial driver (see the README's serial
/// section): an end of stream is only the peer's FIN, or a module's close notice after every
/// byte it announced was read. Everything else is an error:
///
/// | what happened on the link | reason |
/// |---|---|
/// | the module restarted (`ready`, `RDY`, ...), or its bearer dropped | `econnaborted` |
/// | the module stopped answering (a command's line-derived timeout passed) | `etimedout` |
/// | the serial line hung up or failed (pty closed, adapter pulled) | `eio` (or the device's own errno) |
/// | a framing violation: an impossible length, an over-long header, data announced and never delivered | `eproto` |
/// | the driver was stopped by its user | `closed` |
public protocol SerialLinkIncidents: Sendable {
    /// The last link-level failure as one sentence (no trailing period), e.g.
    /// "the modem restarted (ready)"; nil while nothing went wrong.
    var lastIncident: String? { get }
}

extension LinkIO {
    /// The reason sockets fail with when the link reports this result, for a driver that did not
    /// close the link itself: a hang-up is `eio`; a failure keeps its reason, except `closed`
    /// (only a link closed by its user says that), which becomes `eio`. Nil for bytes and
    /// would-block.
    public var lossReason: SocketError.Reason? {
        switch self {
        case .bytes, .wouldBlock: nil
        case .hangUp: .ioError
        case .failed(.closed): .ioError
        case .failed(let reason): reason
        }
    }
}
