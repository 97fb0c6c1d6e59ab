/// The timestamps option (RFC 7323 §3.2): TSval and TSecr.
public struct TCPTimestamps: Equatable, Sendable {
    /// TSval: the sender's timestamp clock.
    public var value: UInt32
    /// TSecr: the most recent TSval received from the peer (0 when not yet known).
    public var echoReply: UInt32

    /// A timestamps option with TSval `value` and TSecr `echoReply`.
    public init(value: UInt32, echoReply: UInt32) {
        self.value = value
        self.echoReply = echoReply
    }
}

/// One selective-acknowledgment block (RFC 2018 §3): the data from `left` up to, but not
/// including, `right` has been received.
public struct TCPSACKBlock: Equatable, Sendable {
    /// Left edge: the first sequence number of the block.
    public var left: SequenceNumber
    /// Right edge: the sequence number just after the block.
    public var right: SequenceNumber

    /// The block `left..<right` (modulo 2^32).
    public init(left: SequenceNumber, right: SequenceNumber) {
        self.left = left
        self.right = right
    }
}

/// Up to four SACK blocks, held inline (no allocation). Four is the most a TCP header can carry:
/// 2 + 4 × 8 = 34 of its 40 option bytes.
public struct TCPSACKBlocks: RandomAccessCollection, Equatable, Sendable {
    /// The most blocks one option can carry.
    public static let capacity = 4

    // Slots past `count` are always the zero block, so the synthesised equality is exact.
    private var block0 = TCPSACKBlock.zero
    private var block1 = TCPSACKBlock.zero
    private var block2 = TCPSACKBlock.zero
    private var block3 = TCPSACKBlock.zero
    public private(set) var count = 0

    /// No blocks.
    public init() {}

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    /// The block at `index`, which must be below ``count``.
    public subscript(index: Int) -> TCPSACKBlock {
        precondition(index >= 0 && index < count, "SACK block index out of range")
        switch index {
        case 0: return block0
        case 1: return block1
        case 2: return block2
        default: return block3
        }
    }

    /// Adds a block at the end; returns false (and changes nothing) when four are held already.
    @discardableResult
    public mutating func append(_ block: TCPSACKBlock) -> Bool {
        switch count {
        case 0: block0 = block
        case 1: block1 = block
        case 2: block2 = block
        case 3: block3 = block
        default: return false
        }
        count += 1
        return true
    }

    /// Removes every block.
    public mutating func removeAll() {
        self = TCPSACKBlocks()
    }
}

extension TCPSACKBlock {
    fileprivate static let zero = TCPSACKBlock(left: SequenceNumber(0), right: SequenceNumber(0))
}

/// One TCP option, as read by ``TCPOptionReader``.
public enum TCPOption: Equatable, Sendable {
    /// Kind 0: end of the option list; what follows is padding.
    case endOfList
    /// Kind 1: no-operation, used for alignment.
    case noOperation
    /// Kind 2, length 4: the largest segment the sender can receive (RFC 9293 §3.7.1).
    case maximumSegmentSize(UInt16)
    /// Kind 3, length 3: the window scale shift count (RFC 7323 §2). Values above 14 are passed
    /// through as received; RFC 7323 says to use 14 in their place.
    case windowScale(UInt8)
    /// Kind 4, length 2: selective acknowledgments are permitted (RFC 2018).
    case sackPermitted
    /// Kind 5, length 2 + 8n with n = 1...4: selective acknowledgment blocks (RFC 2018).
    case sack(TCPSACKBlocks)
    /// Kind 8, length 10: timestamps (RFC 7323).
    case timestamps(TCPTimestamps)
    /// Any other kind, skipped by its length. `length` is the whole option's length byte.
    case unknown(kind: UInt8, length: UInt8)
}

/// Reads the options of a TCP header one at a time, without allocating.
///
/// ```swift
/// var reader = segment.optionReader
/// while let option = try reader.next() { ... }
/// ```
///
/// After `endOfList`, an error, or the end of the option bytes, ``next()`` returns `nil`.
public struct TCPOptionReader {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0
    private var finished = false

    /// A reader over raw option bytes (a TCP header's bytes 20 ..< data offset × 4).
    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// The next option, or `nil` when there are no more.
    ///
    /// - Throws: ``WireError/malformedOption`` for an option whose length byte is missing, below
    ///   2, runs past the option bytes, or does not fit its kind (MSS 4, window scale 3,
    ///   SACK-permitted 2, SACK 2 + 8n with n ≥ 1, timestamps 10). Reading stops there.
    public mutating func next() throws(WireError) -> TCPOption? {
        guard !finished, offset < bytes.count else { return nil }
        let kind = bytes[offset]
        switch kind {
        case 0:
            finished = true
            return .endOfList
        case 1:
            offset += 1
            return .noOperation
        default:
            break
        }
        let remaining = bytes.count - offset
        guard remaining >= 2 else { return try fail() }
        let length = Int(bytes[offset + 1])
        guard length >= 2, length <= remaining else { return try fail() }
        let start = offset + 2
        offset += length
        switch kind {
        case 2:
            guard length == 4 else { return try fail() }
            return .maximumSegmentSize(bytes.uint16(at: start))
        case 3:
            guard length == 3 else { return try fail() }
            return .windowScale(bytes[start])
        case 4:
            guard length == 2 else { return try fail() }
            return .sackPermitted
        case 5:
            guard length >= 10, (length - 2) % 8 == 0 else { return try fail() }
            // length ≤ remaining ≤ 40 keeps this at four blocks or fewer.
            var blocks = TCPSACKBlocks()
            var at = start
            while at < offset {
                blocks.append(TCPSACKBlock(
                    left: SequenceNumber(bytes.uint32(at: at)), right: SequenceNumber(bytes.uint32(at: at + 4))))
                at += 8
            }
            return .sack(blocks)
        case 8:
            guard length == 10 else { return try fail() }
            return .timestamps(TCPTimestamps(value: bytes.uint32(at: start), echoReply: bytes.uint32(at: start + 4)))
        default:
            return .unknown(kind: kind, length: UInt8(truncatingIfNeeded: length))
        }
    }

    private mutating func fail() throws(WireError) -> TCPOption? {
        finished = true
        throw .malformedOption
    }
}
