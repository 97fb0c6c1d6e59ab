/// A read-only view of an IPv4 datagram (RFC 791) in caller-owned bytes.
///
/// ``init(checking:)`` proves that the buffer holds the whole header and the whole datagram its
/// total length announces; after that no accessor can trap or read outside the buffer. The view
/// copies nothing and keeps a pointer: it is valid only while those bytes are.
///
/// Bytes after the announced total length (link-layer padding) are not part of the datagram:
/// ``payload`` stops at the total length and ``trailingByteCount`` says how many were left over.
/// Options are not interpreted; ``options`` gives their raw bytes and ``payload`` starts after them.
public struct IPv4Packet {
    /// The 20-byte header without options.
    public static let minimumHeaderLength = 20

    /// The buffer the view was made over, trailing bytes included.
    public let bytes: UnsafeRawBufferPointer

    /// Checks that `bytes` starts with a structurally sound IPv4 datagram.
    ///
    /// The header checksum is *not* checked here (see ``isChecksumValid``).
    ///
    /// - Throws:
    ///   - ``WireError/truncated`` if the buffer is shorter than 20 bytes or than the header
    ///     length (IHL) announces;
    ///   - ``WireError/badVersion`` if the version is not 4;
    ///   - ``WireError/badHeaderLength`` if IHL is below 5;
    ///   - ``WireError/lengthMismatch`` if the total length is below the header length or above
    ///     the buffer's length.
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.minimumHeaderLength else { throw .truncated }
        guard bytes[0] >> 4 == 4 else { throw .badVersion }
        let headerLength = Int(bytes[0] & 0x0F) * 4
        guard headerLength >= Self.minimumHeaderLength else { throw .badHeaderLength }
        guard bytes.count >= headerLength else { throw .truncated }
        let totalLength = Int(bytes.uint16(at: 2))
        guard totalLength >= headerLength, totalLength <= bytes.count else { throw .lengthMismatch }
        self.bytes = bytes
    }

    /// The version field: always 4 in a checked view.
    public var version: UInt8 { bytes[0] >> 4 }
    /// The header length in bytes (IHL × 4), options included: 20...60.
    public var headerLength: Int { Int(bytes[0] & 0x0F) * 4 }
    /// Differentiated Services code point: the top six bits of the second byte (RFC 2474).
    public var dscp: UInt8 { bytes[1] >> 2 }
    /// Explicit Congestion Notification: the low two bits of the second byte (RFC 3168).
    public var ecn: UInt8 { bytes[1] & 0x03 }
    /// The total length field: header plus data, in bytes.
    public var totalLength: Int { Int(bytes.uint16(at: 2)) }
    /// The identification field.
    public var identification: UInt16 { bytes.uint16(at: 4) }
    /// The reserved flag bit, which RFC 791 requires to be zero.
    public var reservedFlag: Bool { bytes[6] & 0x80 != 0 }
    /// DF: the datagram must not be fragmented.
    public var dontFragment: Bool { bytes[6] & 0x40 != 0 }
    /// MF: more fragments follow this one.
    public var moreFragments: Bool { bytes[6] & 0x20 != 0 }
    /// Where this fragment's data belongs in the original datagram, in bytes (the field × 8).
    public var fragmentOffset: UInt16 { (bytes.uint16(at: 6) & 0x1FFF) &* 8 }
    /// True when this datagram is a fragment (MF set or a nonzero offset): its payload is not a
    /// whole transport segment.
    public var isFragment: Bool { moreFragments || fragmentOffset != 0 }
    /// Time to live.
    public var timeToLive: UInt8 { bytes[8] }
    /// The protocol of the payload.
    public var `protocol`: IPProtocol { IPProtocol(rawValue: bytes[9]) }
    /// The header checksum field as received.
    public var headerChecksum: UInt16 { bytes.uint16(at: 10) }
    /// The source address.
    public var source: IPv4Address { IPv4Address(rawValue: bytes.uint32(at: 12)) }
    /// The destination address.
    public var destination: IPv4Address { IPv4Address(rawValue: bytes.uint32(at: 16)) }
    /// The raw options (empty when IHL is 5); not interpreted.
    public var options: UnsafeRawBufferPointer { bytes.slice(Self.minimumHeaderLength..<headerLength) }
    /// The whole header, options included.
    public var header: UnsafeRawBufferPointer { bytes.slice(0..<headerLength) }
    /// The data after the header, up to the total length.
    public var payload: UnsafeRawBufferPointer { bytes.slice(headerLength..<totalLength) }
    /// Bytes in the buffer after the total length (0 for an exact frame).
    public var trailingByteCount: Int { bytes.count - totalLength }

    /// True when the header checksum verifies over the header, options included.
    public var isChecksumValid: Bool {
        var sum = InternetChecksum()
        sum.add(header)
        return sum.verifies
    }

    /// The pseudo-header sum for a TCP or UDP payload of this datagram (RFC 9293 §3.1).
    public var pseudoHeaderChecksum: InternetChecksum {
        InternetChecksum.ipv4PseudoHeader(
            source: source, destination: destination, protocol: self.protocol,
            length: UInt16(truncatingIfNeeded: totalLength - headerLength))
    }
}
