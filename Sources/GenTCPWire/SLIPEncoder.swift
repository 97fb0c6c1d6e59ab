/// A resumable SLIP encoder for output space that comes in pieces.
///
/// It writes one frame's line encoding (RFC 1055, both `END`s included) into whatever space the
/// caller has, and remembers where it stopped, even between the two bytes of an escape pair.
/// Call ``encode(_:into:)`` with the *same* frame bytes until ``isComplete``, then ``reset()``
/// before the next frame. It holds no pointer and allocates nothing.
///
/// ```swift
/// var encoder = SLIPEncoder()
/// while !encoder.isComplete {
///     let n = encoder.encode(frame, into: uartSpace())
///     uartCommit(n)
/// }
/// encoder.reset()
/// ```
public struct SLIPEncoder: Equatable, Sendable {
    private enum Phase: UInt8, Sendable {
        case leadingEnd, body, trailingEnd, complete
    }

    private var phase: Phase = .leadingEnd
    /// How many bytes of the frame are fully written.
    private var offset = 0
    /// The second byte of an escape pair whose first byte went out at the end of the last call, or 0.
    private var pendingEscapeTail: UInt8 = 0

    /// A fresh encoder, ready for a frame.
    public init() {}

    /// True once the frame's closing `END` has been written.
    public var isComplete: Bool { phase == .complete }

    /// How many bytes of the frame have been written (an escaped byte counts once both of its
    /// line bytes are out).
    public var frameBytesWritten: Int { offset }

    /// Forgets the current frame so that the next call starts a new one with its leading `END`.
    public mutating func reset() {
        self = SLIPEncoder()
    }

    /// Writes the next part of `frame`'s encoding into `output`.
    ///
    /// - Parameters:
    ///   - frame: the frame being encoded; pass the same bytes on every call for one frame.
    ///   - output: free space; any size, including 0.
    /// - Returns: how many bytes of `output` were filled, from its start. 0 once ``isComplete``.
    public mutating func encode(
        _ frame: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) -> Int {
        var written = 0
        let capacity = output.count
        while written < capacity {
            switch phase {
            case .complete:
                return written
            case .leadingEnd:
                output[written] = SLIP.end
                written += 1
                phase = .body
            case .trailingEnd:
                output[written] = SLIP.end
                written += 1
                phase = .complete
            case .body:
                if pendingEscapeTail != 0 {
                    output[written] = pendingEscapeTail
                    written += 1
                    pendingEscapeTail = 0
                    offset += 1
                    continue
                }
                // A frame shorter than `offset` (the caller broke the contract) just ends here.
                guard offset < frame.count else {
                    phase = .trailingEnd
                    continue
                }
                let byte = frame[offset]
                switch byte {
                case SLIP.end, SLIP.escape:
                    output[written] = SLIP.escape
                    written += 1
                    pendingEscapeTail = byte == SLIP.end ? SLIP.escapedEnd : SLIP.escapedEscape
                default:
                    output[written] = byte
                    written += 1
                    offset += 1
                }
            }
        }
        return written
    }
}
