import GenTCPCore
import GenTCPSerial
import Testing

/// `HexDump` and `SerialTraceFormatter`: exact text. The rows are laid out as `hexdump -C` lays
/// them out (checked against it by hand), with a 4-digit offset.
@Suite("HexDump and SerialTraceFormatter")
struct SerialTraceFormatterTests {
    @Test("rows as hexdump -C prints them: the gap after 8 bytes, padding, dots for non-printables", arguments: [
        ("AT\r\n",
         ["0000  41 54 0d 0a                                       |AT..|"]),
        ("0123456789abcdef",
         ["0000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|"]),
        ("ABCDEFGH",
         ["0000  41 42 43 44 45 46 47 48                           |ABCDEFGH|"]),
        ("ABCDEFGHI",
         ["0000  41 42 43 44 45 46 47 48  49                       |ABCDEFGHI|"]),
        ("0123456789abcdefg",
         ["0000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|",
          "0010  67                                                |g|"]),
    ])
    func rows(text: String, expected: [String]) {
        #expect(HexDump.rows(Array(text.utf8)) == expected)
    }

    @Test("control bytes, DEL and bytes above 0x7f show as dots; space and ~ as themselves")
    func printable() {
        let bytes: [UInt8] = [0x00, 0x1F, 0x20, 0x7E, 0x7F, 0x80, 0xFF] + Array("+IPD,0,5:hello world".utf8)
        #expect(HexDump.rows(bytes) == [
            "0000  00 1f 20 7e 7f 80 ff 2b  49 50 44 2c 30 2c 35 3a  |.. ~...+IPD,0,5:|",
            "0010  68 65 6c 6c 6f 20 77 6f  72 6c 64                 |hello world|",
        ])
        #expect(HexDump.printable(0x41) == 0x41)
        #expect(HexDump.printable(0x0A) == 0x2E)
    }

    @Test("nothing to show gives no rows; every row of a long chunk gets the same offset width")
    func offsets() {
        #expect(HexDump.rows([]).isEmpty)
        let fourK = HexDump.rows([UInt8](repeating: 0x41, count: 4097))
        #expect(fourK.count == 257)
        #expect(fourK.first?.hasPrefix("0000  41 41") == true)
        #expect(fourK.last == "1000  41                                                |A|")
        let big = HexDump.rows([UInt8](repeating: 0, count: 65537))
        #expect(big.first?.hasPrefix("00000  00 00") == true)
        #expect(big[1].hasPrefix("00010  00"))
        #expect(big.last == "10000  00                                                |.|")
        #expect(HexDump.row([0xAB], offset: 0x2a0, offsetDigits: 8)
                == "000002a0  ab                                                |.|")
    }

    @Test("seconds with microseconds, truncated")
    func seconds() {
        #expect(SerialTraceFormatter.seconds(0) == "0.000000")
        #expect(SerialTraceFormatter.seconds(999) == "0.000000")
        #expect(SerialTraceFormatter.seconds(1_234_567) == "0.001234")
        #expect(SerialTraceFormatter.seconds(91_022_222_223) == "91.022222")
        #expect(SerialTraceFormatter.seconds(12_345_000_000_000) == "12345.000000")
    }

    @Test("a chunk: one line per 16 bytes, each with the time since the origin and the direction's mark")
    func chunkLines() {
        let formatter = SerialTraceFormatter(origin: 5_000_000_000)
        let written = SerialTraceEvent(time: 5_000_812_345, direction: .written, what: .bytes(Array("AT\r\n".utf8)))
        #expect(formatter.lines(for: written) == [
            "  0.000812 >> 0000  41 54 0d 0a                                       |AT..|",
        ])
        let read = SerialTraceEvent(time: 6_004_310_000, direction: .read,
                                    what: .bytes(Array("\r\n+IPD,0,12:hello world!".utf8)))
        #expect(formatter.lines(for: read) == [
            "  1.004310 << 0000  0d 0a 2b 49 50 44 2c 30  2c 31 32 3a 68 65 6c 6c  |..+IPD,0,12:hell|",
            "  1.004310 << 0010  6f 20 77 6f 72 6c 64 21                           |o world!|",
        ])
    }

    @Test("hang-up and failure lines; times before the origin show as 0; long runs widen the time")
    func endLines() {
        let formatter = SerialTraceFormatter(origin: 1_000)
        #expect(formatter.lines(for: SerialTraceEvent(time: 1_250_001_000, direction: .read, what: .hangUp))
                == ["  1.250000 << hang-up"])
        #expect(formatter.lines(for: SerialTraceEvent(time: 0, direction: .written, what: .failed(.ioError)))
                == ["  0.000000 >> failed: eio (input/output error)"])
        #expect(formatter.lines(for: SerialTraceEvent(time: 1_000 + 12_345_678_901_000, direction: .read, what: .hangUp))
                == ["12345.678901 << hang-up"])
    }

    @Test("a board-side formatter swaps the marks, so >> still means host to board")
    func boardSide() {
        let formatter = SerialTraceFormatter(origin: 0, writtenMark: "<<", readMark: ">>")
        #expect(formatter.lines(for: SerialTraceEvent(time: 0, direction: .written, what: .bytes([0x4F, 0x4B]))) == [
            "  0.000000 << 0000  4f 4b                                             |OK|",
        ])
        #expect(formatter.lines(for: SerialTraceEvent(time: 0, direction: .read, what: .hangUp)) == ["  0.000000 >> hang-up"])
    }
}
