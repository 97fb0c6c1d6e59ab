/// The recent rate of a growing byte count: bytes per second over the last ``span`` of samples.
///
/// Feed it the running total at each redraw; it keeps the samples of the last ``span`` (and one
/// just before, so the window covers all of it). Pure; time is nanoseconds of any clock.
struct RateWindow: Sendable {
    /// How far back the rate looks, in nanoseconds.
    let span: UInt64
    /// The window must cover at least this much before it gives a rate (nanoseconds).
    let minimumSpan: UInt64
    private(set) var samples: [(time: UInt64, bytes: Int)] = []

    /// - Parameters:
    ///   - span: how far back the rate looks (5 s by default).
    ///   - minimumSpan: no rate until the samples cover this much (0.2 s by default).
    init(span: UInt64 = 5_000_000_000, minimumSpan: UInt64 = 200_000_000) {
        self.span = span
        self.minimumSpan = minimumSpan
    }

    /// Records the running total `bytes` at `time` (times must not go backwards).
    mutating func add(bytes: Int, at time: UInt64) {
        samples.append((time, bytes))
        // Keep the newest sample at or before `time - span` as the window's start.
        while samples.count > 1, samples[1].time + span <= time { samples.removeFirst() }
    }

    /// Bytes per second between the oldest and newest sample kept, or nil while they are less
    /// than ``minimumSpan`` apart.
    var rate: Double? {
        guard let first = samples.first, let last = samples.last, last.time >= first.time + minimumSpan else {
            return nil
        }
        return Double(last.bytes - first.bytes) * 1e9 / Double(last.time - first.time)
    }
}
