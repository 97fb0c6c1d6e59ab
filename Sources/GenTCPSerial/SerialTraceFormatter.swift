/// Turns ``SerialTraceEvent``s into text lines: time since an origin, a direction mark, and a
/// ``HexDump`` row, one line per 16 bytes.
///
/// ```
///   0.000812 >> 0000  41 54 0d 0a                                       |AT..|
///   0.004310 << 0000  0d 0a 4f 4b 0d 0a                                 |..OK..|
///   1.250000 << hang-up
/// ```
///
/// The time is seconds since ``origin`` with microseconds (truncated), right-aligned in 10
/// characters; every row of a chunk repeats the chunk's time and mark, so each line stands on
/// its own (`grep '<<'` gives one direction). A line is never longer than the time, the mark and
/// one hex row (about 90 characters for runs shorter than 1000 s). Pure: no I/O, no state.
public struct SerialTraceFormatter: Sendable {
    /// The time shown as 0, in the events' clock (nanoseconds). Earlier events show as 0.
    public var origin: UInt64
    /// The mark for ``SerialTraceEvent/Direction/written`` bytes (`>>` by default).
    public var writtenMark: String
    /// The mark for ``SerialTraceEvent/Direction/read`` bytes (`<<` by default).
    public var readMark: String

    /// - Parameters:
    ///   - origin: the clock reading shown as time 0, in nanoseconds.
    ///   - writtenMark: shown for written bytes; `>>` (host to board) by default.
    ///   - readMark: shown for read bytes; `<<` (board to host) by default. A board-side program
    ///     swaps the two so that `>>` still means host to board.
    public init(origin: UInt64, writtenMark: String = ">>", readMark: String = "<<") {
        self.origin = origin
        self.writtenMark = writtenMark
        self.readMark = readMark
    }

    /// The lines for one event: one per 16 bytes, or one for a hang-up or failure.
    public func lines(for event: SerialTraceEvent) -> [String] {
        let prefix = SerialTraceFormatter.paddedSeconds(event.time >= origin ? event.time - origin : 0) + " "
            + (event.direction == .written ? writtenMark : readMark) + " "
        switch event.what {
        case .bytes(let bytes):
            return HexDump.rows(bytes).map { prefix + $0 }
        case .hangUp:
            return [prefix + "hang-up"]
        case .failed(let reason):
            return [prefix + "failed: \(reason.atom) (\(reason.summary))"]
        }
    }

    /// Seconds with six decimals (microseconds, truncated): `0.001234`, `91.022222`.
    public static func seconds(_ nanoseconds: UInt64) -> String {
        let micros = nanoseconds / 1000
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }

    /// ``seconds(_:)`` right-aligned in 10 characters (wider when it needs more).
    static func paddedSeconds(_ nanoseconds: UInt64) -> String {
        let text = seconds(nanoseconds)
        return String(repeating: " ", count: max(0, 10 - text.count)) + text
    }
}
