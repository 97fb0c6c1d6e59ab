/// A streaming SLIP decoder (RFC 1055) that owns one fixed frame buffer.
///
/// Feed it the bytes read from the line in chunks of any size, split anywhere (inside an escape
/// pair too); it hands back each complete frame. Memory is one buffer of
/// ``maximumFrameSize`` bytes, allocated once at initialisation and never grown.
///
/// Bad frames are dropped, counted, and decoding resynchronises at the next `END`:
/// - an `ESC` followed by anything but `ESC_END` or `ESC_ESC` (an `END` included) counts in
///   ``escapeErrors``. RFC 1055's sample code keeps the odd byte; here it can only be line
///   corruption, and IP has no way to recover the frame, so the whole frame goes;
/// - a frame longer than ``maximumFrameSize`` counts in ``overflows``.
///
/// Empty frames (back-to-back `END`s, as sent around every frame) are ignored, not errors. Bytes
/// before the first `END` form a frame like any other: line noise there reaches the IP layer as
/// one bogus frame, which is what the leading `END` of RFC 1055 is for.
///
/// ```swift
/// var decoder = SLIPDecoder(maximumFrameSize: SLIP.recommendedMaximumFrameSize)
/// decoder.decode(chunk) { frame in stack.receive(frame) }
/// ```
public struct SLIPDecoder: ~Copyable {
    private enum State: UInt8 {
        /// Collecting data bytes.
        case data
        /// The previous byte was `ESC`.
        case escaped
        /// The frame is being dropped; waiting for `END`.
        case discarding
    }

    private let storage: UnsafeMutableRawBufferPointer
    private var length = 0
    private var state = State.data

    /// Complete, non-empty frames handed to the caller.
    public private(set) var framesDecoded: UInt64 = 0
    /// Frames dropped because an `ESC` was followed by a byte other than `ESC_END`/`ESC_ESC`.
    public private(set) var escapeErrors: UInt64 = 0
    /// Frames dropped because they were longer than ``maximumFrameSize``.
    public private(set) var overflows: UInt64 = 0

    /// The longest frame delivered; longer ones are dropped and counted in ``overflows``.
    public var maximumFrameSize: Int { storage.count }

    /// Bytes of the frame in progress (0 between frames and while a bad frame is being dropped).
    public var partialFrameLength: Int { state == .discarding ? 0 : length }

    /// True while a bad frame is being dropped, until the next `END`.
    public var isDiscarding: Bool { state == .discarding }

    /// Allocates the frame buffer.
    ///
    /// - Parameter maximumFrameSize: the longest frame to accept, framing excluded (1006 is
    ///   RFC 1055's advice, ``SLIP/recommendedMaximumFrameSize``). Values below 1 are taken as 1.
    public init(maximumFrameSize: Int) {
        storage = .allocate(
            byteCount: max(1, maximumFrameSize), alignment: MemoryLayout<UInt32>.alignment)
    }

    deinit {
        storage.deallocate()
    }

    /// Drops the frame in progress (if any) so the next byte starts a new frame. Counters stay.
    public mutating func reset() {
        length = 0
        state = .data
    }

    /// Sets every counter back to zero.
    public mutating func resetCounters() {
        framesDecoded = 0
        escapeErrors = 0
        overflows = 0
    }

    /// Decodes one chunk of line bytes.
    ///
    /// - Parameters:
    ///   - bytes: the next bytes from the line, any length; a frame may span many calls.
    ///   - onFrame: called once per complete frame, in order, with the decoded bytes. The buffer
    ///     is the decoder's own and is reused after the call returns: copy what must outlive it.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer, onFrame: (UnsafeRawBufferPointer) -> Void) {
        let count = bytes.count
        var index = 0
        while index < count {
            let byte = bytes[index]
            index += 1
            switch state {
            case .data:
                switch byte {
                case SLIP.end:
                    if length > 0 {
                        framesDecoded &+= 1
                        let frameLength = length
                        length = 0
                        onFrame(UnsafeRawBufferPointer(storage.slice(0..<frameLength)))
                    }
                case SLIP.escape:
                    state = .escaped
                default:
                    // Copy the whole run of plain bytes at once.
                    let runStart = index - 1
                    var runEnd = index
                    while runEnd < count, bytes[runEnd] != SLIP.end, bytes[runEnd] != SLIP.escape {
                        runEnd += 1
                    }
                    let runLength = runEnd - runStart
                    if runLength <= storage.count - length {
                        storage.slice(length..<(length + runLength))
                            .copyMemory(from: bytes.slice(runStart..<runEnd))
                        length += runLength
                    } else {
                        overflows &+= 1
                        state = .discarding
                    }
                    index = runEnd
                }
            case .escaped:
                switch byte {
                case SLIP.escapedEnd:
                    state = .data
                    append(SLIP.end)
                case SLIP.escapedEscape:
                    state = .data
                    append(SLIP.escape)
                case SLIP.end:
                    // The END still ends the (bad) frame: resynchronised already.
                    escapeErrors &+= 1
                    length = 0
                    state = .data
                default:
                    escapeErrors &+= 1
                    state = .discarding
                }
            case .discarding:
                if byte == SLIP.end {
                    length = 0
                    state = .data
                }
            }
        }
    }

    private mutating func append(_ byte: UInt8) {
        if length < storage.count {
            storage[length] = byte
            length += 1
        } else {
            overflows &+= 1
            state = .discarding
        }
    }
}
