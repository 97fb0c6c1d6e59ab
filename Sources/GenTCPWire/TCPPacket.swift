/// A read-only view of a TCP segment (RFC 9293 §3.1) in caller-owned bytes.
///
/// Make it over exactly the segment (for IPv4, ``IPv4Packet/payload``): the payload runs to the
/// end of the buffer, and the checksum covers the whole buffer. ``init(checking:)`` proves the
/// header, options included, lies inside the buffer; after that no accessor can trap. Options are
/// read lazily through ``optionReader``; ``TCPHeader/init(parsing:source:destination:verifyingChecksum:)``
/// reads and validates them all.
public struct TCPPacket {
    /// The header without options.
    public static let minimumHeaderLength = 20
    /// The header with the most options the data offset can announce (15 × 4).
    public static let maximumHeaderLength = 60

    /// The segment: header, options, payload.
    public let bytes: UnsafeRawBufferPointer

    /// Checks that `bytes` starts with a whole TCP header.
    ///
    /// Neither the checksum nor the options are checked here.
    ///
    /// - Throws: ``WireError/truncated`` if the buffer is shorter than 20 bytes or than the data
    ///   offset announces; ``WireError/badHeaderLength`` if the data offset is below 5.
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.minimumHeaderLength else { throw .truncated }
        let headerLength = Int(bytes[12] >> 4) * 4
        guard headerLength >= Self.minimumHeaderLength else { throw .badHeaderLength }
        guard bytes.count >= headerLength else { throw .truncated }
        self.bytes = bytes
    }

    /// The source port field.
    public var sourcePort: UInt16 { bytes.uint16(at: 0) }
    /// The destination port field.
    public var destinationPort: UInt16 { bytes.uint16(at: 2) }
    /// The sequence number field.
    public var sequenceNumber: SequenceNumber { SequenceNumber(bytes.uint32(at: 4)) }
    /// The acknowledgment number field; meaningful only with ``TCPFlags/ack``.
    public var acknowledgmentNumber: SequenceNumber { SequenceNumber(bytes.uint32(at: 8)) }
    /// The header length in bytes (data offset × 4), options included: 20...60.
    public var headerLength: Int { Int(bytes[12] >> 4) * 4 }
    /// The four bits between the data offset and the flags: reserved in RFC 9293 (the lowest
    /// one is the AE bit of accurate ECN). Not carried by ``TCPHeader``.
    public var reservedBits: UInt8 { bytes[12] & 0x0F }
    /// The eight control bits (byte 13).
    public var flags: TCPFlags { TCPFlags(rawValue: bytes[13]) }
    /// The window field, unscaled.
    public var window: UInt16 { bytes.uint16(at: 14) }
    /// The checksum field as received.
    public var checksum: UInt16 { bytes.uint16(at: 16) }
    /// The urgent pointer field; meaningful only with ``TCPFlags/urg``.
    public var urgentPointer: UInt16 { bytes.uint16(at: 18) }
    /// The raw option bytes (empty when the data offset is 5).
    public var options: UnsafeRawBufferPointer { bytes.slice(Self.minimumHeaderLength..<headerLength) }
    /// A reader over ``options``.
    public var optionReader: TCPOptionReader { TCPOptionReader(options) }
    /// The data after the header, to the end of the buffer.
    public var payload: UnsafeRawBufferPointer { bytes.slice(headerLength..<bytes.count) }
    /// The sequence space the segment occupies (SEG.LEN, RFC 9293 §3.4): payload bytes, plus one
    /// for SYN and one for FIN.
    public var segmentLength: Int {
        let control = flags
        return payload.count + (control.contains(.syn) ? 1 : 0) + (control.contains(.fin) ? 1 : 0)
    }

    /// True when the checksum verifies over the IPv4 pseudo-header and the whole buffer.
    public func isChecksumValid(source: IPv4Address, destination: IPv4Address) -> Bool {
        // A buffer over 65 535 bytes cannot be a segment; its length would not fit the pseudo-header.
        guard bytes.count <= 0xFFFF else { return false }
        var sum = InternetChecksum.ipv4PseudoHeader(
            source: source, destination: destination, protocol: .tcp, length: UInt16(bytes.count))
        sum.add(bytes)
        return sum.verifies
    }
}
