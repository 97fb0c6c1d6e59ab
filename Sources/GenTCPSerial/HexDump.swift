/// Bytes shown as `hexdump -C` shows them: an offset, 16 bytes in hex (a gap after the eighth),
/// and the same bytes as text with `.` for anything that is not printable ASCII.
///
/// ```
/// 0000  41 54 2b 43 49 50 53 54  41 52 54 3d 30 2c 22 54  |AT+CIPSTART=0,"T|
/// 0010  43 50 22 0d 0a                                    |CP"..|
/// ```
///
/// Every row has the same width up to the text column, whatever the number of bytes in it, so
/// rows of different chunks line up. Pure: no I/O, no state.
public enum HexDump {
    /// Bytes in one row.
    public static let bytesPerRow = 16

    /// Characters from the start of the hex column to the `|` of the text column: 16 bytes of
    /// `xx ` plus the gap after the eighth, then one space.
    static let hexColumnWidth = bytesPerRow * 3 + 2

    /// The rows that show `bytes`, each starting with the offset of its first byte in `bytes`.
    /// - Parameters:
    ///   - bytes: what to show; no rows for an empty collection.
    ///   - offsetDigits: the least number of hex digits in the offset column; more are used
    ///     when the last row's offset needs them (every row of one call gets the same width).
    public static func rows(_ bytes: [UInt8], offsetDigits: Int = 4) -> [String] {
        guard !bytes.isEmpty else { return [] }
        let lastOffset = (bytes.count - 1) / bytesPerRow * bytesPerRow
        let digits = max(offsetDigits, hexDigitCount(lastOffset))
        var rows: [String] = []
        rows.reserveCapacity((bytes.count + bytesPerRow - 1) / bytesPerRow)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + bytesPerRow)
            rows.append(row(bytes[offset..<end], offset: offset, offsetDigits: digits))
            offset = end
        }
        return rows
    }

    /// One row: `offset` in at least `offsetDigits` lowercase hex digits, two spaces, the hex
    /// column padded to full width, then the text between `|` bars.
    /// - Parameters:
    ///   - bytes: at most ``bytesPerRow`` bytes (more are cut off).
    ///   - offset: the position of the row's first byte in the chunk.
    ///   - offsetDigits: the least number of hex digits the offset is written with.
    public static func row(_ bytes: ArraySlice<UInt8>, offset: Int, offsetDigits: Int = 4) -> String {
        let shown = bytes.prefix(bytesPerRow)
        var out: [UInt8] = []
        out.reserveCapacity(offsetDigits + 2 + hexColumnWidth + shown.count + 2)
        appendHex(UInt64(max(0, offset)), digits: offsetDigits, to: &out)
        out.append(0x20)
        out.append(0x20)
        var column = 0
        for byte in shown {
            out.append(hexDigit(byte >> 4))
            out.append(hexDigit(byte & 0xF))
            out.append(0x20)
            column += 3
            if column == 8 * 3 {
                out.append(0x20)
                column += 1
            }
        }
        while column < hexColumnWidth - 1 {
            out.append(0x20)
            column += 1
        }
        out.append(0x20)
        out.append(0x7C)  // |
        for byte in shown { out.append(printable(byte)) }
        out.append(0x7C)
        return String(decoding: out, as: UTF8.self)
    }

    /// The byte shown in the text column: printable ASCII (0x20...0x7E) as itself, anything
    /// else as `.` (0x2E).
    public static func printable(_ byte: UInt8) -> UInt8 {
        (0x20...0x7E).contains(byte) ? byte : 0x2E
    }

    /// Appends `value` in lowercase hex, zero-padded to at least `digits` digits.
    static func appendHex(_ value: UInt64, digits: Int, to out: inout [UInt8]) {
        let needed = hexDigitCount(Int(truncatingIfNeeded: value))
        for _ in 0..<max(0, digits - needed) { out.append(0x30) }
        var shift = (needed - 1) * 4
        while shift >= 0 {
            out.append(hexDigit(UInt8(truncatingIfNeeded: value >> UInt64(shift)) & 0xF))
            shift -= 4
        }
    }

    /// Hex digits needed for a non-negative value (1 for 0).
    static func hexDigitCount(_ value: Int) -> Int {
        var v = UInt64(max(0, value))
        var n = 1
        while v > 0xF {
            v >>= 4
            n += 1
        }
        return n
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10
    }
}
