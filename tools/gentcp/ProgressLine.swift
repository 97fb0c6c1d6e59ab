/// The text of gentcp's progress line, e.g.
/// `sent 524 kB of 1.05 MB 50% 11.5 kB/s eta 0:45, received 1.05 MB 11.5 kB/s, 0:47`.
///
/// Pure: the numbers come in, the text comes out, so tests cover it without a terminal.
/// Sizes and rates use decimal units with three significant digits (`999 B`, `1.00 kB`,
/// `52.4 kB`, `1.05 MB`), as `gentcp demo` prints goodput; times are `m:ss` or `h:mm:ss`.
struct ProgressLine: Equatable, Sendable {
    /// One direction of the transfer.
    struct Flow: Equatable, Sendable {
        /// Bytes moved so far.
        var bytes: Int
        /// Bytes expected in all, when known: adds the percentage and the time left.
        var total: Int?
        /// Bytes per second, when known.
        var rate: Double?
    }

    /// Shown first, followed by `: ` (e.g. a demo row's driver); nil for none.
    var label: String?
    /// Stdin to the peer; nil when not shown.
    var sent: Flow?
    /// The peer to stdout; nil when not shown.
    var received: Flow?
    /// Seconds since the transfer started.
    var elapsed: Double
    /// Named after the elapsed time when it is not wall time (`virtual`).
    var clock: String?

    /// The line, cut to `width` characters when `width` is positive (a terminal's columns
    /// minus one, so the line never wraps).
    func render(width: Int = 0) -> String {
        var parts: [String] = []
        if let sent { parts.append(ProgressLine.flow("sent", sent)) }
        if let received { parts.append(ProgressLine.flow("received", received)) }
        parts.append(ProgressLine.duration(elapsed) + (clock.map { " " + $0 } ?? ""))
        let text = (label.map { $0 + ": " } ?? "") + parts.joined(separator: ", ")
        guard width > 0, text.utf8.count > width else { return text }
        return String(decoding: text.utf8.prefix(width), as: UTF8.self)
    }

    /// `sent 524 kB of 1.05 MB 50% 11.5 kB/s eta 0:45`.
    static func flow(_ name: String, _ flow: Flow) -> String {
        var text = name + " " + byteCount(Double(flow.bytes))
        if let total = flow.total {
            text += " of " + byteCount(Double(total)) + " \(percent(flow.bytes, of: total))%"
        }
        if let rate = flow.rate { text += " " + byteCount(rate) + "/s" }
        if let total = flow.total, let rate = flow.rate, rate > 0, flow.bytes < total {
            text += " eta " + duration(Double(total - flow.bytes) / rate)
        }
        return text
    }

    /// Whole percent done, rounded down (100 only when everything arrived); 100 for a total of 0.
    static func percent(_ bytes: Int, of total: Int) -> Int {
        guard total > 0 else { return 100 }
        return min(100, max(0, bytes) * 100 / total)
    }

    /// Bytes in decimal units with three significant digits: `0 B`, `999 B`, `1.00 kB`,
    /// `52.4 kB`, `524 kB`, `1.05 MB`, up to TB.
    static func byteCount(_ value: Double) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        let v = max(0, value.isFinite ? value : 0)
        if v.rounded() < 1000 { return "\(Int(v.rounded())) B" }
        var scaled = v / 1000
        for unit in units.dropFirst() {
            // The most decimal places that still fit three digits after rounding.
            for places in [2, 1, 0] {
                let digits = (scaled * power(places)).rounded()
                if digits < 1000 { return decimal(Int(digits), places: places) + " " + unit }
            }
            if unit != units.last { scaled /= 1000 }
        }
        return "\(Int(min(scaled, 1e15).rounded())) TB"
    }

    /// `digits` with `places` of them after the point: (105, 2) is `1.05`, (524, 0) is `524`.
    static func decimal(_ digits: Int, places: Int) -> String {
        guard places > 0 else { return "\(digits)" }
        let divisor = Int(power(places))
        let fraction = String(digits % divisor)
        return "\(digits / divisor)." + String(repeating: "0", count: places - fraction.count) + fraction
    }

    /// Whole seconds, rounded down: `0:07`, `1:31`, `1:02:03`.
    static func duration(_ seconds: Double) -> String {
        let s = seconds.isFinite && seconds > 0 ? Int(min(seconds, 359_999_999)) : 0
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        if s >= 3600 { return "\(s / 3600):\(two(s % 3600 / 60)):\(two(s % 60))" }
        return "\(s / 60):\(two(s % 60))"
    }

    private static func power(_ places: Int) -> Double {
        places == 2 ? 100 : places == 1 ? 10 : 1
    }
}
