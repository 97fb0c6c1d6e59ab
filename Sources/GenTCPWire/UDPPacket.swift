/// A read-only view of a UDP datagram (RFC 768) in caller-owned bytes.
///
/// Make it over the IP payload. ``init(checking:)`` proves the 8-byte header and the length the
/// header announces lie inside the buffer; after that no accessor can trap.
public struct UDPPacket {
    /// The UDP header length.
    public static let headerLength = 8

    /// The buffer the view was made over.
    public let bytes: UnsafeRawBufferPointer

    /// Checks that `bytes` starts with a whole UDP datagram.
    ///
    /// - Throws: ``WireError/truncated`` if the buffer is shorter than 8 bytes;
    ///   ``WireError/lengthMismatch`` if the length field is below 8 or beyond the buffer.
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.headerLength else { throw .truncated }
        let length = Int(bytes.uint16(at: 4))
        guard length >= Self.headerLength, length <= bytes.count else { throw .lengthMismatch }
        self.bytes = bytes
    }

    /// The source port field (0: none).
    public var sourcePort: UInt16 { bytes.uint16(at: 0) }
    /// The destination port field.
    public var destinationPort: UInt16 { bytes.uint16(at: 2) }
    /// The length field: header plus data.
    public var length: Int { Int(bytes.uint16(at: 4)) }
    /// The checksum field; 0 means the sender computed none.
    public var checksum: UInt16 { bytes.uint16(at: 6) }
    /// The data, up to the length field.
    public var payload: UnsafeRawBufferPointer { bytes.slice(Self.headerLength..<length) }

    /// True when the checksum verifies over the pseudo-header and the datagram, or is 0 (none).
    public func isChecksumValid(source: IPv4Address, destination: IPv4Address) -> Bool {
        guard checksum != 0 else { return true }
        var sum = InternetChecksum.ipv4PseudoHeader(
            source: source, destination: destination, protocol: .udp, length: UInt16(length))
        sum.add(bytes.slice(0..<length))
        return sum.verifies
    }
}

/// The fields of a UDP header (RFC 768), parsed or to be emitted.
public struct UDPHeader: Equatable, Sendable {
    /// The sender's port (0: none).
    public var sourcePort: UInt16
    /// The receiver's port.
    public var destinationPort: UInt16

    /// A header for the given ports; length and checksum are computed when emitting.
    public init(sourcePort: UInt16, destinationPort: UInt16) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    /// Reads a checked datagram's ports.
    ///
    /// - Throws: ``WireError/badChecksum`` when `verifyingChecksum` and a nonzero checksum does
    ///   not verify.
    public init(
        parsing packet: UDPPacket, source: IPv4Address, destination: IPv4Address,
        verifyingChecksum: Bool = true
    ) throws(WireError) {
        if verifyingChecksum, !packet.isChecksumValid(source: source, destination: destination) {
            throw .badChecksum
        }
        self.init(sourcePort: packet.sourcePort, destinationPort: packet.destinationPort)
    }

    /// Writes the 8-byte header with its checksum around a payload already in place at
    /// `buffer[8 ..< 8 + payloadLength]`. A computed checksum of 0 is sent as 0xFFFF (RFC 768).
    ///
    /// - Returns: the datagram length, 8 + `payloadLength`.
    /// - Throws: ``WireError/fieldOutOfRange`` if `payloadLength` is negative or above 65 527;
    ///   ``WireError/bufferTooSmall`` if `buffer` cannot hold the datagram.
    @discardableResult
    public func emit(
        into buffer: UnsafeMutableRawBufferPointer, payloadLength: Int,
        source: IPv4Address, destination: IPv4Address
    ) throws(WireError) -> Int {
        guard payloadLength >= 0, payloadLength <= 0xFFFF - UDPPacket.headerLength else { throw .fieldOutOfRange }
        let length = UDPPacket.headerLength + payloadLength
        guard buffer.count >= length else { throw .bufferTooSmall }
        buffer.store(sourcePort, at: 0)
        buffer.store(destinationPort, at: 2)
        buffer.store(UInt16(length), at: 4)
        buffer.store(UInt16(0), at: 6)
        var sum = InternetChecksum.ipv4PseudoHeader(
            source: source, destination: destination, protocol: .udp, length: UInt16(length))
        sum.add(UnsafeRawBufferPointer(buffer.slice(0..<length)))
        let checksum = sum.checksum
        buffer.store(checksum == 0 ? 0xFFFF : checksum, at: 6)
        return length
    }
}
