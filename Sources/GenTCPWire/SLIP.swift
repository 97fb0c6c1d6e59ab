/// Serial Line IP framing (RFC 1055): the special bytes and one-shot encoding.
///
/// A frame goes on the line as `END`, the frame's bytes with every `END` replaced by
/// `ESC ESC_END` and every `ESC` by `ESC ESC_ESC`, then `END`. The leading `END` is the RFC's
/// recommendation: it closes whatever line noise came before, so the noise becomes a separate
/// (discarded) frame instead of corrupting this one.
///
/// For output space smaller than a whole encoded frame (a UART FIFO, a small ring) use
/// ``SLIPEncoder``; to take frames back out of a byte stream use ``SLIPDecoder``.
public enum SLIP {
    /// `END` (octal 300): ends a frame.
    public static let end: UInt8 = 0xC0
    /// `ESC` (octal 333): introduces a two-byte escape.
    public static let escape: UInt8 = 0xDB
    /// `ESC_END` (octal 334): after `ESC`, stands for a data byte equal to `END`.
    public static let escapedEnd: UInt8 = 0xDC
    /// `ESC_ESC` (octal 335): after `ESC`, stands for a data byte equal to `ESC`.
    public static let escapedEscape: UInt8 = 0xDD

    /// The largest IP datagram the RFC advises every receiver to accept (the Berkeley driver's
    /// limit), framing excluded.
    public static let recommendedMaximumFrameSize = 1006

    /// The exact number of line bytes ``encode(_:into:)`` writes for `frame`: both `END`s, plus
    /// one byte per frame byte, plus one more per byte that needs escaping.
    public static func encodedLength(of frame: UnsafeRawBufferPointer) -> Int {
        var length = frame.count + 2
        for byte in frame where byte == end || byte == escape { length += 1 }
        return length
    }

    /// The most line bytes a frame of `frameLength` bytes can take (every byte escaped).
    public static func maximumEncodedLength(forFrameLength frameLength: Int) -> Int {
        2 * frameLength + 2
    }

    /// Encodes one frame, both `END`s included, into `output`.
    ///
    /// - Returns: the number of bytes written, always ``encodedLength(of:)``.
    /// - Throws: ``WireError/bufferTooSmall`` when `output` is shorter than the encoding; nothing
    ///   is written then.
    public static func encode(
        _ frame: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws(WireError) -> Int {
        guard output.count >= encodedLength(of: frame) else { throw .bufferTooSmall }
        var written = 0
        output[written] = end
        written += 1
        for byte in frame {
            switch byte {
            case end:
                output[written] = escape
                output[written + 1] = escapedEnd
                written += 2
            case escape:
                output[written] = escape
                output[written + 1] = escapedEscape
                written += 2
            default:
                output[written] = byte
                written += 1
            }
        }
        output[written] = end
        return written + 1
    }

    /// Encodes one frame, both `END`s included, by handing its line bytes to `sink` in order.
    ///
    /// Runs of bytes that need no escaping are passed straight from `frame` (no copy); each
    /// `END` and escape pair comes as its own small chunk. The chunks are only valid during the
    /// call. Nothing is allocated.
    public static func encode<E: Error>(
        _ frame: UnsafeRawBufferPointer, to sink: (UnsafeRawBufferPointer) throws(E) -> Void
    ) throws(E) {
        // end, escape, escapedEnd, escape, escapedEscape: every fixed chunk is a slice of these.
        let specials: (UInt8, UInt8, UInt8, UInt8, UInt8) = (end, escape, escapedEnd, escape, escapedEscape)
        try withUnsafeBytes(of: specials) { (table) throws(E) in
            let endChunk = table.slice(0..<1)
            let escapedEndChunk = table.slice(1..<3)
            let escapedEscapeChunk = table.slice(3..<5)
            try sink(endChunk)
            var runStart = 0
            for index in 0..<frame.count {
                let byte = frame[index]
                guard byte == end || byte == escape else { continue }
                if runStart < index { try sink(frame.slice(runStart..<index)) }
                try sink(byte == end ? escapedEndChunk : escapedEscapeChunk)
                runStart = index + 1
            }
            if runStart < frame.count { try sink(frame.slice(runStart..<frame.count)) }
            try sink(endChunk)
        }
    }
}
