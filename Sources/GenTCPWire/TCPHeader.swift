/// The fields of a TCP header (RFC 9293 §3.1) and the options this module understands, parsed or
/// to be emitted.
///
/// Fields are kept as on the wire (the window unscaled, the acknowledgment number even without
/// ACK) so that a parsed header emits back to the same values. Unknown options are skipped when
/// parsing and never emitted; a repeated option keeps its last value.
///
/// Emitted options follow the layout Linux uses, 32-bit aligned with NOPs: MSS; SACK-permitted
/// and timestamps together (`04 02 08 0a …`, or `01 01 08 0a …` without SACK-permitted, or
/// `01 01 04 02` alone); `01 03 03 ws`; `01 01 05 …` for SACK blocks. When that aligned layout
/// would exceed 40 bytes, the options are packed without NOPs and zero-padded instead.
public struct TCPHeader: Equatable, Sendable {
    /// The sender's port.
    public var sourcePort: UInt16
    /// The receiver's port.
    public var destinationPort: UInt16
    /// The sequence number of the first data byte (of the SYN, on a SYN).
    public var sequenceNumber: SequenceNumber
    /// Emitted as is, whether or not ``flags`` contains ``TCPFlags/ack``.
    public var acknowledgmentNumber: SequenceNumber
    /// The control bits: SYN, ACK, FIN, RST, PSH, URG, ECE, CWR.
    public var flags: TCPFlags
    /// The window field, unscaled.
    public var window: UInt16
    /// The urgent pointer field, kept as on the wire (meaningful only with URG).
    public var urgentPointer: UInt16
    /// The MSS option (kind 2).
    public var maximumSegmentSize: UInt16?
    /// The window scale option (kind 3), as received: RFC 7323 says to treat values above 14 as 14.
    public var windowScale: UInt8?
    /// The SACK-permitted option (kind 4).
    public var sackPermitted: Bool
    /// The timestamps option (kind 8).
    public var timestamps: TCPTimestamps?
    /// The SACK option's blocks (kind 5); empty for none.
    public var sackBlocks: TCPSACKBlocks

    /// A header with the given fields; options default to absent, the acknowledgment number and
    /// urgent pointer to 0.
    public init(
        sourcePort: UInt16, destinationPort: UInt16, sequenceNumber: SequenceNumber,
        acknowledgmentNumber: SequenceNumber = SequenceNumber(0), flags: TCPFlags, window: UInt16,
        urgentPointer: UInt16 = 0, maximumSegmentSize: UInt16? = nil, windowScale: UInt8? = nil,
        sackPermitted: Bool = false, timestamps: TCPTimestamps? = nil, sackBlocks: TCPSACKBlocks = TCPSACKBlocks()
    ) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequenceNumber = sequenceNumber
        self.acknowledgmentNumber = acknowledgmentNumber
        self.flags = flags
        self.window = window
        self.urgentPointer = urgentPointer
        self.maximumSegmentSize = maximumSegmentSize
        self.windowScale = windowScale
        self.sackPermitted = sackPermitted
        self.timestamps = timestamps
        self.sackBlocks = sackBlocks
    }

    /// Reads the header and every option of a checked segment.
    ///
    /// - Parameters:
    ///   - packet: a view made by ``TCPPacket/init(checking:)`` over exactly the segment.
    ///   - source: the IPv4 source address, for the pseudo-header.
    ///   - destination: the IPv4 destination address, for the pseudo-header.
    ///   - verifyingChecksum: check the checksum (the default).
    /// - Throws: ``WireError/badChecksum``; ``WireError/malformedOption``.
    public init(
        parsing packet: TCPPacket, source: IPv4Address, destination: IPv4Address,
        verifyingChecksum: Bool = true
    ) throws(WireError) {
        if verifyingChecksum, !packet.isChecksumValid(source: source, destination: destination) {
            throw .badChecksum
        }
        self.init(
            sourcePort: packet.sourcePort, destinationPort: packet.destinationPort,
            sequenceNumber: packet.sequenceNumber, acknowledgmentNumber: packet.acknowledgmentNumber,
            flags: packet.flags, window: packet.window, urgentPointer: packet.urgentPointer)
        var reader = packet.optionReader
        while let option = try reader.next() {
            switch option {
            case .maximumSegmentSize(let value): maximumSegmentSize = value
            case .windowScale(let shift): windowScale = shift
            case .sackPermitted: sackPermitted = true
            case .timestamps(let value): timestamps = value
            case .sack(let blocks): sackBlocks = blocks
            case .endOfList, .noOperation, .unknown: break
            }
        }
    }

    /// The header length ``emit(into:payloadLength:source:destination:)`` writes: 20 plus the
    /// options, a multiple of 4. Above 60 when the options cannot fit (emit then throws).
    public var headerLength: Int { TCPPacket.minimumHeaderLength + optionsLength }

    private var optionsLength: Int {
        let aligned = alignedOptionsLength
        if aligned <= 40 { return aligned }
        let packed = packedOptionsLength
        return (packed + 3) & ~3
    }

    private var alignedOptionsLength: Int {
        var length = 0
        if maximumSegmentSize != nil { length += 4 }
        if timestamps != nil { length += 12 } else if sackPermitted { length += 4 }
        if windowScale != nil { length += 4 }
        if !sackBlocks.isEmpty { length += 4 + 8 * sackBlocks.count }
        return length
    }

    private var packedOptionsLength: Int {
        var length = 0
        if maximumSegmentSize != nil { length += 4 }
        if sackPermitted { length += 2 }
        if timestamps != nil { length += 10 }
        if windowScale != nil { length += 3 }
        if !sackBlocks.isEmpty { length += 2 + 8 * sackBlocks.count }
        return length
    }

    /// Writes the header, options and checksum at the start of `buffer`, around a payload that
    /// is already in place at `buffer[headerLength ..< headerLength + payloadLength]`.
    ///
    /// Writing the payload first (straight from a send buffer) and the header after avoids a copy.
    ///
    /// - Returns: the segment length, ``headerLength`` + `payloadLength`.
    /// - Throws: ``WireError/optionsTooLong`` if the options need more than 40 bytes;
    ///   ``WireError/fieldOutOfRange`` if `payloadLength` is negative or the segment would exceed
    ///   65 535 bytes; ``WireError/bufferTooSmall`` if `buffer` cannot hold the segment. Nothing
    ///   is written when it throws.
    @discardableResult
    public func emit(
        into buffer: UnsafeMutableRawBufferPointer, payloadLength: Int,
        source: IPv4Address, destination: IPv4Address
    ) throws(WireError) -> Int {
        let headerLength = headerLength
        guard headerLength <= TCPPacket.maximumHeaderLength else { throw .optionsTooLong }
        guard payloadLength >= 0, payloadLength <= 0xFFFF - headerLength else { throw .fieldOutOfRange }
        let segmentLength = headerLength + payloadLength
        guard buffer.count >= segmentLength else { throw .bufferTooSmall }

        buffer.store(sourcePort, at: 0)
        buffer.store(destinationPort, at: 2)
        buffer.store(sequenceNumber.rawValue, at: 4)
        buffer.store(acknowledgmentNumber.rawValue, at: 8)
        buffer.store(UInt8(headerLength / 4) << 4, at: 12)
        buffer.store(flags.rawValue, at: 13)
        buffer.store(window, at: 14)
        buffer.store(UInt16(0), at: 16)
        buffer.store(urgentPointer, at: 18)
        writeOptions(into: buffer.slice(TCPPacket.minimumHeaderLength..<headerLength),
                     aligned: alignedOptionsLength <= 40)

        var sum = InternetChecksum.ipv4PseudoHeader(
            source: source, destination: destination, protocol: .tcp, length: UInt16(segmentLength))
        sum.add(UnsafeRawBufferPointer(buffer.slice(0..<segmentLength)))
        buffer.store(sum.checksum, at: 16)
        return segmentLength
    }

    /// Copies `payload` after the header, then emits as
    /// ``emit(into:payloadLength:source:destination:)`` does. `payload` may overlap `buffer`.
    @discardableResult
    public func emit(
        into buffer: UnsafeMutableRawBufferPointer, payload: UnsafeRawBufferPointer,
        source: IPv4Address, destination: IPv4Address
    ) throws(WireError) -> Int {
        let headerLength = headerLength
        guard headerLength <= TCPPacket.maximumHeaderLength else { throw .optionsTooLong }
        guard payload.count <= 0xFFFF - headerLength else { throw .fieldOutOfRange }
        guard buffer.count >= headerLength + payload.count else { throw .bufferTooSmall }
        buffer.slice(headerLength..<(headerLength + payload.count)).copyMemory(from: payload)
        return try emit(into: buffer, payloadLength: payload.count, source: source, destination: destination)
    }

    /// Writes the options into exactly `area` (``optionsLength`` bytes).
    private func writeOptions(into area: UnsafeMutableRawBufferPointer, aligned: Bool) {
        var at = 0
        func byte(_ value: UInt8) {
            area[at] = value
            at += 1
        }
        if let mss = maximumSegmentSize {
            byte(2); byte(4)
            area.store(mss, at: at)
            at += 2
        }
        if let timestamps {
            if sackPermitted {
                byte(4); byte(2)
            } else if aligned {
                byte(1); byte(1)
            }
            byte(8); byte(10)
            area.store(timestamps.value, at: at)
            area.store(timestamps.echoReply, at: at + 4)
            at += 8
        } else if sackPermitted {
            if aligned { byte(1); byte(1) }
            byte(4); byte(2)
        }
        if let windowScale {
            if aligned { byte(1) }
            byte(3); byte(3); byte(windowScale)
        }
        if !sackBlocks.isEmpty {
            if aligned { byte(1); byte(1) }
            byte(5); byte(UInt8(2 + 8 * sackBlocks.count))
            for block in sackBlocks {
                area.store(block.left.rawValue, at: at)
                area.store(block.right.rawValue, at: at + 4)
                at += 8
            }
        }
        // Packed layout: end-of-list, then zeros (RFC 9293 §3.1 "Padding").
        while at < area.count { byte(0) }
    }
}
