/// A read-only view of an ICMP message (RFC 792) in caller-owned bytes.
///
/// Make it over the IP payload. ``init(checking:)`` proves the 8-byte header (type, code,
/// checksum and four type-specific bytes) lies inside the buffer; the message runs to the end of
/// the buffer and the checksum covers all of it.
public struct ICMPv4Packet {
    /// Type, code, checksum and the four type-specific bytes.
    public static let headerLength = 8

    /// The message.
    public let bytes: UnsafeRawBufferPointer

    /// Checks that `bytes` holds at least an ICMP header.
    ///
    /// - Throws: ``WireError/truncated`` if the buffer is shorter than 8 bytes.
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.headerLength else { throw .truncated }
        self.bytes = bytes
    }

    /// The type field (byte 0): echo request, echo reply, destination unreachable...
    public var type: ICMPv4Type { ICMPv4Type(rawValue: bytes[0]) }
    /// The code field (byte 1), which refines the type (0 for echoes).
    public var code: UInt8 { bytes[1] }
    /// The checksum field as received.
    public var checksum: UInt16 { bytes.uint16(at: 2) }
    /// Bytes 4...7, whose meaning depends on the type.
    public var restOfHeader: UInt32 { bytes.uint32(at: 4) }
    /// For an echo request or reply: the identifier (bytes 4...5).
    public var identifier: UInt16 { bytes.uint16(at: 4) }
    /// For an echo request or reply: the sequence number (bytes 6...7).
    public var sequenceNumber: UInt16 { bytes.uint16(at: 6) }
    /// Everything after the 8-byte header (an echo's data).
    public var payload: UnsafeRawBufferPointer { bytes.slice(Self.headerLength..<bytes.count) }

    /// True when the checksum verifies over the whole message.
    public var isChecksumValid: Bool {
        var sum = InternetChecksum()
        sum.add(bytes)
        return sum.verifies
    }
}

/// The ICMP type field (RFC 792).
public struct ICMPv4Type: RawRepresentable, Hashable, Sendable {
    /// The type number.
    public var rawValue: UInt8

    /// Any type number, known here or not.
    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// 0.
    public static let echoReply = ICMPv4Type(rawValue: 0)
    /// 3.
    public static let destinationUnreachable = ICMPv4Type(rawValue: 3)
    /// 8.
    public static let echoRequest = ICMPv4Type(rawValue: 8)
    /// 11.
    public static let timeExceeded = ICMPv4Type(rawValue: 11)
}

/// An ICMP echo request or reply (RFC 792, the message `ping` sends and expects), parsed or to
/// be emitted. The data travels separately: it is the view's ``ICMPv4Packet/payload`` when
/// parsing, and already in place (or copied) when emitting.
public struct ICMPv4Echo: Equatable, Sendable {
    /// Request (type 8) or reply (type 0).
    public var isReply: Bool
    /// Matches replies to the pinger that sent the requests (`ping(8)` uses its process id).
    public var identifier: UInt16
    /// Numbers the requests of one pinger; a reply echoes it.
    public var sequenceNumber: UInt16

    /// An echo request or reply with the given identifier and sequence number.
    public init(isReply: Bool, identifier: UInt16, sequenceNumber: UInt16) {
        self.isReply = isReply
        self.identifier = identifier
        self.sequenceNumber = sequenceNumber
    }

    /// Reads an echo request or reply.
    ///
    /// - Throws: ``WireError/unsupported`` if the message is not type 0 or 8 with code 0;
    ///   ``WireError/badChecksum`` when `verifyingChecksum` and the checksum does not verify.
    public init(parsing packet: ICMPv4Packet, verifyingChecksum: Bool = true) throws(WireError) {
        let type = packet.type
        guard type == .echoRequest || type == .echoReply, packet.code == 0 else { throw .unsupported }
        if verifyingChecksum, !packet.isChecksumValid { throw .badChecksum }
        self.init(isReply: type == .echoReply, identifier: packet.identifier, sequenceNumber: packet.sequenceNumber)
    }

    /// The reply to this request: same identifier and sequence number (send the same data).
    public var reply: ICMPv4Echo {
        ICMPv4Echo(isReply: true, identifier: identifier, sequenceNumber: sequenceNumber)
    }

    /// Writes the 8-byte header with its checksum around data already in place at
    /// `buffer[8 ..< 8 + dataLength]`.
    ///
    /// - Returns: the message length, 8 + `dataLength`.
    /// - Throws: ``WireError/fieldOutOfRange`` if `dataLength` is negative or above 65 507;
    ///   ``WireError/bufferTooSmall`` if `buffer` cannot hold the message.
    @discardableResult
    public func emit(into buffer: UnsafeMutableRawBufferPointer, dataLength: Int) throws(WireError) -> Int {
        // 65 535 − 20 (IPv4 header) − 8.
        guard dataLength >= 0, dataLength <= 0xFFFF - 28 else { throw .fieldOutOfRange }
        let length = ICMPv4Packet.headerLength + dataLength
        guard buffer.count >= length else { throw .bufferTooSmall }
        buffer.store(isReply ? ICMPv4Type.echoReply.rawValue : ICMPv4Type.echoRequest.rawValue, at: 0)
        buffer.store(UInt8(0), at: 1)
        buffer.store(UInt16(0), at: 2)
        buffer.store(identifier, at: 4)
        buffer.store(sequenceNumber, at: 6)
        var sum = InternetChecksum()
        sum.add(UnsafeRawBufferPointer(buffer.slice(0..<length)))
        buffer.store(sum.checksum, at: 2)
        return length
    }

    /// Copies `data` after the header, then emits as ``emit(into:dataLength:)`` does. `data`
    /// may overlap `buffer` (an echo reply built in the request's buffer).
    @discardableResult
    public func emit(into buffer: UnsafeMutableRawBufferPointer, data: UnsafeRawBufferPointer) throws(WireError) -> Int {
        guard data.count <= 0xFFFF - 28 else { throw .fieldOutOfRange }
        let length = ICMPv4Packet.headerLength + data.count
        guard buffer.count >= length else { throw .bufferTooSmall }
        buffer.slice(ICMPv4Packet.headerLength..<length).copyMemory(from: data)
        return try emit(into: buffer, dataLength: data.count)
    }
}

/// An ICMP destination unreachable message (RFC 792, type 3): a code, and the start of the
/// datagram it is about (its IP header and at least 8 bytes of its payload, RFC 1812 §4.3.2.3
/// allowing more), which names the sender's socket.
public struct ICMPv4Unreachable: Equatable, Sendable {
    /// Code 3: the destination's transport has no socket on that port (UDP's "port unreachable").
    public static let portUnreachable: UInt8 = 3

    /// Why the destination was unreachable (3: port unreachable).
    public var code: UInt8
    /// The quoted datagram's source (our address, when it is about a datagram we sent).
    public var source: IPv4Address
    /// The quoted datagram's destination.
    public var destination: IPv4Address
    /// The quoted datagram's protocol.
    public var quotedProtocol: IPProtocol
    /// The quoted transport header's first two fields: source and destination port (UDP, TCP).
    public var sourcePort: UInt16
    /// See ``sourcePort``.
    public var destinationPort: UInt16

    /// Reads a destination unreachable message and the datagram it quotes.
    ///
    /// - Throws: ``WireError/unsupported`` if the message is not type 3;
    ///   ``WireError/badChecksum`` when `verifyingChecksum` and the checksum does not verify;
    ///   ``WireError/truncated`` or ``WireError/badVersion`` or ``WireError/badHeaderLength`` when
    ///   the quoted IP header and the 4 bytes of ports after it are not all there.
    public init(parsing packet: ICMPv4Packet, verifyingChecksum: Bool = true) throws(WireError) {
        guard packet.type == .destinationUnreachable else { throw .unsupported }
        if verifyingChecksum, !packet.isChecksumValid { throw .badChecksum }
        let quoted = packet.payload
        guard quoted.count >= IPv4Header.length else { throw .truncated }
        guard quoted[0] >> 4 == 4 else { throw .badVersion }
        let headerLength = Int(quoted[0] & 0x0F) * 4
        guard headerLength >= IPv4Header.length else { throw .badHeaderLength }
        // The ports: the quoted payload may be cut anywhere after them.
        guard quoted.count >= headerLength + 4 else { throw .truncated }
        code = packet.code
        quotedProtocol = IPProtocol(rawValue: quoted[9])
        source = IPv4Address(rawValue: quoted.uint32(at: 12))
        destination = IPv4Address(rawValue: quoted.uint32(at: 16))
        sourcePort = quoted.uint16(at: headerLength)
        destinationPort = quoted.uint16(at: headerLength + 2)
    }

    /// Writes a destination unreachable message with `code` quoting `datagram` (give its IP
    /// header and the first 8 bytes of its payload; longer input is cut to that) into `buffer`.
    ///
    /// - Returns: the message length.
    /// - Throws: ``WireError/truncated`` when `datagram` is shorter than an IPv4 header;
    ///   ``WireError/bufferTooSmall`` when `buffer` cannot hold the message.
    public static func emit(
        into buffer: UnsafeMutableRawBufferPointer, code: UInt8, quoting datagram: UnsafeRawBufferPointer
    ) throws(WireError) -> Int {
        guard datagram.count >= IPv4Header.length else { throw .truncated }
        let headerLength = max(IPv4Header.length, Int(datagram[0] & 0x0F) * 4)
        let quotedLength = min(datagram.count, headerLength + 8)
        let length = ICMPv4Packet.headerLength + quotedLength
        guard buffer.count >= length else { throw .bufferTooSmall }
        buffer.store(ICMPv4Type.destinationUnreachable.rawValue, at: 0)
        buffer.store(code, at: 1)
        buffer.store(UInt16(0), at: 2)
        buffer.store(UInt32(0), at: 4)
        buffer.slice(ICMPv4Packet.headerLength..<length).copyMemory(from: datagram.slice(0..<quotedLength))
        var sum = InternetChecksum()
        sum.add(UnsafeRawBufferPointer(buffer.slice(0..<length)))
        buffer.store(sum.checksum, at: 2)
        return length
    }
}
