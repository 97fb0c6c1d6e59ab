import GenTCP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Shows a transfer's progress as ``Console``'s status line: redrawn at most 10 times a second
/// from the real runtime's timer, and at ``finish(keep:)`` either left as a summary line or
/// blanked.
///
/// The copy loops only add to two atomic counters; all formatting happens on the timer.
final class ProgressReporter: Sendable {
    /// Time between redraws: 10 a second at most.
    static let interval: UInt64 = 100_000_000

    private struct State {
        var sentWindow = RateWindow()
        var receivedWindow = RateWindow()
        var timer: TimerID?
        var finished = false
    }

    private let label: String?
    private let showsSent: Bool
    private let showsReceived: Bool
    private let sentTotal: Int?
    private let receivedTotal: Int?
    private let clockName: String?
    private let clock: @Sendable () -> UInt64
    private let console: Console
    private let start: UInt64
    private let sent = Atomic<Int>(0)
    private let received = Atomic<Int>(0)
    private let state = Mutex(State())

    /// - Parameters:
    ///   - label: shown first (a demo row's driver), or nil.
    ///   - sending / receiving: which directions to show.
    ///   - sentTotal / receivedTotal: the expected byte counts, when known.
    ///   - clockName: named after the elapsed time when `clock` is not wall time (`virtual`).
    ///   - clock: nanoseconds; the transfer starts now.
    init(label: String? = nil, sending: Bool, sentTotal: Int? = nil, receiving: Bool, receivedTotal: Int? = nil,
         clockName: String? = nil, clock: @escaping @Sendable () -> UInt64 = { RealRuntime.shared.now },
         console: Console = .shared) {
        self.label = label
        showsSent = sending
        showsReceived = receiving
        self.sentTotal = sentTotal
        self.receivedTotal = receivedTotal
        self.clockName = clockName
        self.clock = clock
        self.console = console
        start = clock()
        state.withLock { s in
            s.sentWindow.add(bytes: 0, at: start)
            s.receivedWindow.add(bytes: 0, at: start)
        }
        schedule()
    }

    /// Counts bytes sent.
    func add(sent count: Int) { sent.add(count, ordering: .relaxed) }

    /// Counts bytes received.
    func add(received count: Int) { received.add(count, ordering: .relaxed) }

    /// Stops redrawing. With `keep`, draws the totals with average rates and leaves that line on
    /// screen; without, blanks the line. Returns when that is written. Idempotent.
    func finish(keep: Bool) {
        // Under the lock, so that a redraw already under way cannot come after the last line.
        let timer: TimerID? = state.withLock { st in
            guard !st.finished else { return nil }
            st.finished = true
            if keep {
                let now = clock()
                let seconds = Double(now >= start ? now - start : 0) / 1e9
                func average(_ bytes: Int) -> Double? { seconds > 0 ? Double(bytes) / seconds : nil }
                let s = sent.load(ordering: .relaxed), r = received.load(ordering: .relaxed)
                console.setStatus(line(sent: s, sentRate: average(s), received: r, receivedRate: average(r),
                                       elapsed: seconds).render(width: ProgressReporter.columns()))
            }
            console.endStatus(keep: keep)
            return st.timer
        }
        if let timer { RealRuntime.shared.cancel(timer) }
        // Written before the caller prints anything to stdout on the same terminal.
        console.flush()
    }

    private func schedule() {
        state.withLock { s in
            guard !s.finished else { return }
            s.timer = RealRuntime.shared.schedule(afterNanoseconds: ProgressReporter.interval) { [self] in tick() }
        }
    }

    /// Timer context: samples the counters, redraws, schedules the next redraw.
    private func tick() {
        let now = clock()
        let s = sent.load(ordering: .relaxed), r = received.load(ordering: .relaxed)
        let drawn: Bool = state.withLock { st in
            guard !st.finished else { return false }
            st.sentWindow.add(bytes: s, at: now)
            st.receivedWindow.add(bytes: r, at: now)
            console.setStatus(line(sent: s, sentRate: st.sentWindow.rate, received: r, receivedRate: st.receivedWindow.rate,
                                   elapsed: Double(now >= start ? now - start : 0) / 1e9)
                .render(width: ProgressReporter.columns()))
            return true
        }
        if drawn { schedule() }
    }

    private func line(sent s: Int, sentRate: Double?, received r: Int, receivedRate: Double?, elapsed: Double) -> ProgressLine {
        ProgressLine(label: label,
                     sent: showsSent ? .init(bytes: s, total: sentTotal, rate: sentRate) : nil,
                     received: showsReceived ? .init(bytes: r, total: receivedTotal, rate: receivedRate) : nil,
                     elapsed: elapsed, clock: clockName)
    }

    /// The terminal's width on stderr minus one (so the line never wraps), 79 when unknown.
    static func columns() -> Int {
        var size = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 1 { return Int(size.ws_col) - 1 }
        return 79
    }
}
