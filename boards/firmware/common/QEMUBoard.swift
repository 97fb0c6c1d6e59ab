// The QEMU boards' `Board`: the C board support (board.h, module CBoard) behind GenTCPBoard's
// protocol. Compiled into every Swift firmware program, for either board.
//
// Besides the protocol, it reports memory on the debug console: a "stats" line (heap in use,
// peak, live blocks, allocations, stack high-water) whenever the number of live heap blocks
// changed (a connection opened or closed), at most once a second when the peaks grew, and
// every 2 seconds regardless (with preallocated slots nothing else changes).
import CBoard
import GenTCPBoard
import GenTCPCore

struct QEMUBoard: Board {
    private var reportedLive = -1
    private var reportedPeak = 0
    private var reportedAt: UInt64 = 0
    private var reportedStack = 0

    init() {}

    mutating func readLine(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        return board_line_read(base.assumingMemoryBound(to: UInt8.self), buffer.count)
    }

    mutating func writeLine(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        return board_line_write(base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    func now() -> MillisecondInstant { MillisecondInstant(milliseconds: Int64(board_millis())) }

    /// The board's 64 bits (the value seeds the ISN secret: it is not printed).
    mutating func entropy() -> UInt64 { board_entropy() }

    mutating func idle(until deadline: MillisecondInstant?) {
        reportMemory()
        board_idle(deadline?.milliseconds ?? -1)
    }

    mutating func log(_ line: StaticString) {
        QEMUBoard.console(line)
        board_console_str("\n")
    }

    /// Prints a stats line when live blocks changed, or (once a second at most) the peaks grew.
    mutating func reportMemory() {
        let live = board_heap_live()
        let millis = board_millis()
        if live == reportedLive && millis &- reportedAt < 1000 { return }
        let peak = board_heap_peak()
        let stack = board_stack_high_water()
        if live == reportedLive && peak == reportedPeak && stack == reportedStack && millis &- reportedAt < 2000 { return }
        reportedLive = live
        reportedPeak = peak
        reportedStack = stack
        reportedAt = millis
        QEMUBoard.report("idle")
    }

    /// Writes `text` to the debug console (no newline).
    static func console(_ text: StaticString) {
        UnsafeRawPointer(text.utf8Start).withMemoryRebound(to: CChar.self, capacity: text.utf8CodeUnitCount) {
            board_console_write($0, text.utf8CodeUnitCount)
        }
    }

    /// The heap and stack figures as one console line ("stats LABEL heap-in-use=... ...").
    static func report(_ label: StaticString) {
        UnsafeRawPointer(label.utf8Start).withMemoryRebound(to: CChar.self, capacity: label.utf8CodeUnitCount + 1) {
            board_report($0)
        }
    }
}
