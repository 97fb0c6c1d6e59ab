/// Helpers that write classic pcap capture files (the libpcap "savefile" format,
/// draft-ietf-opsawg-pcap) into caller buffers: the 24-byte file header and the 16-byte record
/// header, little-endian, microsecond timestamps.
///
/// Nothing here does I/O. An embedded target can build records in RAM and ship them out; the
/// host writes the bytes to a file. Wireshark and tcpdump read the result.
///
/// ```swift
/// var n = try Pcap.writeFileHeader(into: out)                       // once
/// n += try Pcap.writeRecord(into: out[n...], packet: ipBytes, timestamp: nowMicros)
/// ```
public enum Pcap {
    /// The file header length.
    public static let fileHeaderLength = 24
    /// The record header length.
    public static let recordHeaderLength = 16
    /// The magic number of a file with microsecond timestamps.
    public static let magicMicroseconds: UInt32 = 0xA1B2_C3D4
    /// LINKTYPE_RAW: each packet is a bare IPv4 or IPv6 datagram, as SLIP carries.
    public static let linkTypeRaw: UInt32 = 101
    /// The snapshot length written by default: no packet is cut.
    public static let defaultSnapshotLength: UInt32 = 65535

    /// Writes the file header: magic, version 2.4, zone 0, sigfigs 0, snapshot length, link type.
    ///
    /// - Returns: 24.
    /// - Throws: ``WireError/bufferTooSmall``.
    @discardableResult
    public static func writeFileHeader(
        into buffer: UnsafeMutableRawBufferPointer, snapshotLength: UInt32 = defaultSnapshotLength,
        linkType: UInt32 = linkTypeRaw
    ) throws(WireError) -> Int {
        guard buffer.count >= fileHeaderLength else { throw .bufferTooSmall }
        buffer.storeLittleEndian(magicMicroseconds, at: 0)
        buffer.storeLittleEndian(UInt16(2), at: 4)
        buffer.storeLittleEndian(UInt16(4), at: 6)
        buffer.storeLittleEndian(UInt32(0), at: 8)
        buffer.storeLittleEndian(UInt32(0), at: 12)
        buffer.storeLittleEndian(snapshotLength, at: 16)
        buffer.storeLittleEndian(linkType, at: 20)
        return fileHeaderLength
    }

    /// Writes a record header.
    ///
    /// - Parameters:
    ///   - buffer: where the 16 bytes go.
    ///   - timestamp: microseconds since the Unix epoch, split into seconds (truncated to 32
    ///     bits, as the format holds them) and microseconds.
    ///   - capturedLength: the bytes of the packet that follow the header in the file.
    ///   - originalLength: the packet's length on the wire.
    /// - Returns: 16.
    /// - Throws: ``WireError/bufferTooSmall``.
    @discardableResult
    public static func writeRecordHeader(
        into buffer: UnsafeMutableRawBufferPointer, timestamp: UInt64, capturedLength: UInt32,
        originalLength: UInt32
    ) throws(WireError) -> Int {
        guard buffer.count >= recordHeaderLength else { throw .bufferTooSmall }
        buffer.storeLittleEndian(UInt32(truncatingIfNeeded: timestamp / 1_000_000), at: 0)
        buffer.storeLittleEndian(UInt32(truncatingIfNeeded: timestamp % 1_000_000), at: 4)
        buffer.storeLittleEndian(capturedLength, at: 8)
        buffer.storeLittleEndian(originalLength, at: 12)
        return recordHeaderLength
    }

    /// Writes a record header followed by the packet, cut to `snapshotLength` bytes.
    ///
    /// - Returns: 16 + the bytes of the packet written.
    /// - Throws: ``WireError/bufferTooSmall`` (nothing is written).
    @discardableResult
    public static func writeRecord(
        into buffer: UnsafeMutableRawBufferPointer, packet: UnsafeRawBufferPointer, timestamp: UInt64,
        snapshotLength: UInt32 = defaultSnapshotLength
    ) throws(WireError) -> Int {
        // Compared as UInt64: on a 32-bit target Int cannot hold every UInt32.
        let captured = UInt64(packet.count) <= UInt64(snapshotLength) ? packet.count : Int(snapshotLength)
        guard buffer.count >= recordHeaderLength + captured else { throw .bufferTooSmall }
        try writeRecordHeader(
            into: buffer, timestamp: timestamp, capturedLength: UInt32(captured),
            originalLength: UInt32(truncatingIfNeeded: packet.count))
        buffer.slice(recordHeaderLength..<(recordHeaderLength + captured)).copyMemory(from: packet.slice(0..<captured))
        return recordHeaderLength + captured
    }
}
