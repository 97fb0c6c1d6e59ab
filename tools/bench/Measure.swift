import CGenTCPShims
#if canImport(Glibc)
import Glibc
#endif

/// Wall clock, CPU time and context switches of the whole process at one instant.
struct Snapshot: Sendable {
    var wall: UInt64
    var cpu: Double
    var switches: Int
    var faults: Int

    /// The monotonic clock alone, in nanoseconds.
    static func clock() -> UInt64 { cgentcp_monotonic_ns() }

    static func now() -> Snapshot {
        var usage = rusage()
        _ = getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return Snapshot(wall: cgentcp_monotonic_ns(), cpu: cpu, switches: usage.ru_nvcsw + usage.ru_nivcsw,
                        faults: usage.ru_minflt)
    }

    static func - (end: Snapshot, start: Snapshot) -> Sample {
        Sample(seconds: Double(end.wall &- start.wall) / 1e9, cpu: end.cpu - start.cpu,
               switches: end.switches - start.switches, faults: end.faults - start.faults)
    }
}

/// One timed run: wall seconds, CPU seconds (every thread of the process: both ends of the
/// connection, the reactor, the pool), context switches and minor page faults, between the same
/// two points.
struct Sample: Sendable {
    var seconds: Double
    var cpu: Double
    var switches: Int
    var faults: Int
    /// Messages (or recv results) the receiver handled; 0 when not counted (raw).
    var deliveries: Int = 0
    /// One-way UDP: datagrams sent and never received.
    var lost: Int = 0
    /// One-way UDP: times the sender waited a whole quiet period for a credit.
    var stalls: Int = 0
}

func median(_ values: [Double]) -> Double {
    precondition(!values.isEmpty)
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// `1.23 GB/s`, `845 MB/s` (decimal units, as throughput usually is).
func formatRate(bytesPerSecond rate: Double) -> String {
    if rate >= 1e9 { return format(rate / 1e9, 2) + " GB/s" }
    return format(rate / 1e6, 0) + " MB/s"
}

/// `412.3k dg/s`.
func formatDatagrams(perSecond rate: Double) -> String {
    format(rate / 1e3, 1) + "k dg/s"
}

/// `52.3k rt/s`.
func formatRoundTrips(perSecond rate: Double) -> String {
    format(rate / 1e3, 1) + "k rt/s"
}

/// A fixed-point decimal without Foundation.
func format(_ value: Double, _ decimals: Int) -> String {
    guard value.isFinite else { return "n/a" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let negative = value < 0
    let scaled = Int((abs(value) * scale).rounded())
    let whole = scaled / Int(scale)
    var text = "\(whole)"
    if decimals > 0 {
        var frac = "\(scaled % Int(scale))"
        while frac.count < decimals { frac = "0" + frac }
        text += "." + frac
    }
    return negative ? "-" + text : text
}

func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    if s.count >= width { return s }
    let fill = String(repeating: " ", count: width - s.count)
    return right ? fill + s : s + fill
}

/// Parses `1073741824`, `64M`, `1G`, `512k` (binary multiples).
func parseSize(_ text: String) -> Int? {
    var digits = text
    var multiplier = 1
    switch text.last {
    case "k", "K": multiplier = 1 << 10
    case "m", "M": multiplier = 1 << 20
    case "g", "G": multiplier = 1 << 30
    default: break
    }
    if multiplier != 1 { digits.removeLast() }
    guard let n = Int(digits), n > 0 else { return nil }
    return n * multiplier
}

/// `1 GiB`, `64 MiB`, `1460 B`.
func formatSize(_ n: Int) -> String {
    if n >= 1 << 30 && n % (1 << 30) == 0 { return "\(n >> 30) GiB" }
    if n >= 1 << 20 && n % (1 << 20) == 0 { return "\(n >> 20) MiB" }
    if n >= 1 << 10 && n % (1 << 10) == 0 { return "\(n >> 10) KiB" }
    return "\(n) B"
}

/// Writes a line to stdout now (Swift 6 mode forbids setvbuf on `stdout`; see swift-platform.md).
func say(_ line: String = "") {
    print(line)
    fflush(nil)
}
