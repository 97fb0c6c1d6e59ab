/// The meaningful fields of an IPv4 header (RFC 791), parsed or to be emitted.
///
/// Options are skipped when parsing and never emitted: an emitted header is always 20 bytes.
/// Lengths are in bytes. Parse a datagram with ``init(parsing:verifyingChecksum:)``, write one
/// with ``emit(into:)``.
public struct IPv4Header: Equatable, Sendable {
    /// The length of every emitted header.
    public static let length = 20

    /// The sender's address.
    public var source: IPv4Address
    /// The receiver's address.
    public var destination: IPv4Address
    /// The protocol of the payload.
    public var `protocol`: IPProtocol
    /// Bytes after the header: total length − header length.
    public var payloadLength: Int
    /// Time to live.
    public var timeToLive: UInt8
    /// Differentiated Services code point, 0...63 (RFC 2474).
    public var dscp: UInt8
    /// Explicit Congestion Notification, 0...3 (RFC 3168).
    public var ecn: UInt8
    /// The identification field.
    public var identification: UInt16
    /// DF.
    public var dontFragment: Bool
    /// MF.
    public var moreFragments: Bool
    /// The fragment offset in bytes: a multiple of 8, at most 65 528.
    public var fragmentOffset: UInt16

    /// A header for an unfragmented datagram with the usual defaults: TTL 64, DF set,
    /// identification 0 (RFC 6864 allows any value on atomic datagrams), DSCP and ECN 0.
    public init(
        source: IPv4Address, destination: IPv4Address, protocol: IPProtocol, payloadLength: Int,
        timeToLive: UInt8 = 64, dscp: UInt8 = 0, ecn: UInt8 = 0, identification: UInt16 = 0,
        dontFragment: Bool = true, moreFragments: Bool = false, fragmentOffset: UInt16 = 0
    ) {
        self.source = source
        self.destination = destination
        self.protocol = `protocol`
        self.payloadLength = payloadLength
        self.timeToLive = timeToLive
        self.dscp = dscp
        self.ecn = ecn
        self.identification = identification
        self.dontFragment = dontFragment
        self.moreFragments = moreFragments
        self.fragmentOffset = fragmentOffset
    }

    /// Reads the header of a checked datagram.
    ///
    /// - Parameters:
    ///   - packet: a view made by ``IPv4Packet/init(checking:)``.
    ///   - verifyingChecksum: check the header checksum (the default). Pass `false` only where
    ///     something else already verified it.
    /// - Throws: ``WireError/badChecksum``.
    public init(parsing packet: IPv4Packet, verifyingChecksum: Bool = true) throws(WireError) {
        if verifyingChecksum, !packet.isChecksumValid { throw .badChecksum }
        self.init(
            source: packet.source, destination: packet.destination, protocol: packet.protocol,
            payloadLength: packet.totalLength - packet.headerLength, timeToLive: packet.timeToLive,
            dscp: packet.dscp, ecn: packet.ecn, identification: packet.identification,
            dontFragment: packet.dontFragment, moreFragments: packet.moreFragments,
            fragmentOffset: packet.fragmentOffset)
    }

    /// True when MF is set or the offset is nonzero.
    public var isFragment: Bool { moreFragments || fragmentOffset != 0 }

    /// The total length field this header emits: 20 + ``payloadLength``.
    public var totalLength: Int { Self.length + payloadLength }

    /// The pseudo-header sum for the TCP or UDP payload this header announces.
    public var pseudoHeaderChecksum: InternetChecksum {
        InternetChecksum.ipv4PseudoHeader(
            source: source, destination: destination, protocol: self.protocol,
            length: UInt16(truncatingIfNeeded: payloadLength))
    }

    /// Writes the 20-byte header, checksum included, at the start of `buffer`.
    ///
    /// Only the header is written; the payload goes after it, before or after this call.
    ///
    /// - Returns: 20.
    /// - Throws: ``WireError/bufferTooSmall`` if `buffer` is shorter than 20 bytes;
    ///   ``WireError/fieldOutOfRange`` if ``payloadLength`` is negative or above 65 515,
    ///   ``dscp`` above 63, ``ecn`` above 3, or ``fragmentOffset`` not a multiple of 8.
    ///   Nothing is written when it throws.
    @discardableResult
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard buffer.count >= Self.length else { throw .bufferTooSmall }
        guard payloadLength >= 0, payloadLength <= 0xFFFF - Self.length, dscp < 64, ecn < 4,
              fragmentOffset & 7 == 0
        else { throw .fieldOutOfRange }
        buffer.store(UInt8(0x45), at: 0)
        buffer.store(dscp << 2 | ecn, at: 1)
        buffer.store(UInt16(totalLength), at: 2)
        buffer.store(identification, at: 4)
        var flagsAndOffset = fragmentOffset >> 3
        if dontFragment { flagsAndOffset |= 0x4000 }
        if moreFragments { flagsAndOffset |= 0x2000 }
        buffer.store(flagsAndOffset, at: 6)
        buffer.store(timeToLive, at: 8)
        buffer.store(self.protocol.rawValue, at: 9)
        buffer.store(UInt16(0), at: 10)
        buffer.store(source.rawValue, at: 12)
        buffer.store(destination.rawValue, at: 16)
        var sum = InternetChecksum()
        sum.add(UnsafeRawBufferPointer(buffer.slice(0..<Self.length)))
        buffer.store(sum.checksum, at: 10)
        return Self.length
    }
}
