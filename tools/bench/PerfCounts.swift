#if canImport(Glibc)
import Glibc
#endif

/// `--perf`: counts system calls, context switches and page faults per unit of work for each
/// case, GenTCP and raw side by side, by running this binary under `perf stat` (tracepoints;
/// they work with `kernel.perf_event_paranoid` 2 here). Counts do not depend on machine load the
/// way timings do, so they show where GenTCP does more work than raw.
enum PerfCounts {
    static let events: [(name: String, label: String, width: Int)] = [
        ("context-switches", "csw", 7), ("page-faults", "faults", 7),
        ("syscalls:sys_enter_read", "read", 7), ("syscalls:sys_enter_sendto", "send", 6),
        ("syscalls:sys_enter_sendmsg", "sendmsg", 7), ("syscalls:sys_enter_epoll_wait", "epoll_wt", 8),
        ("syscalls:sys_enter_epoll_ctl", "epoll_ctl", 9), ("syscalls:sys_enter_futex", "futex", 7),
        ("syscalls:sys_enter_madvise", "madvise", 7), ("syscalls:sys_enter_recvfrom", "recvfrom", 8),
        ("syscalls:sys_enter_writev", "writev", 6), ("syscalls:sys_enter_sched_yield", "yield", 7),
    ]

    /// Runs every case once per side under `perf stat`; `units` is the work of one run plus its
    /// warm-up, in 64 KiB blocks (bulk) or round trips (ping-pong).
    /// With `otp`, the cases with an OTP form also run on OTP's side (the BEAM is a child of the
    /// counted process, so perf counts it; its start-up, about 0.1 s of CPU, is in the figures).
    static func run(_ cases: [Case], bytesArgument: String, roundTripsArgument: String, otp: Bool = false,
                    otpFlags: String = "", driverArguments: [String] = [], units: (Case) -> Double) {
        var header = pad("case", 20) + " " + pad("side", 6) + " " + pad("cpu ms", 8, right: true)
        for e in events { header += " " + pad(e.label, e.width, right: true) }
        say(header)
        let output = "/tmp/gentcp-bench-perf-\(getpid()).csv"
        defer { unlink(output) }
        for c in cases {
            for side in ["raw", "gentcp"] + (otp && c.otp != nil ? ["otp"] : []) {
                let arguments = ["perf", "stat", "-x,", "-o", output,
                                 "-e", (["task-clock"] + events.map(\.name)).joined(separator: ","),
                                 "/proc/self/exe".resolvedSelf, "--only", c.name, "--repeat", "1",
                                 "--bytes", bytesArgument, "--round-trips", roundTripsArgument, "--side", side]
                    + (side == "otp" && !otpFlags.isEmpty ? ["--otp-flags", otpFlags] : [])
                    + (side == "gentcp" ? driverArguments : [])
                guard spawnAndWait(arguments) == 0, let values = parse(output) else {
                    say("gentcp-bench: perf stat failed for \(c.name) (\(side)); is perf installed and allowed?")
                    return
                }
                let u = units(c)
                var line = pad(c.name, 20) + " " + pad(side, 6) + " " + pad(format(values["task-clock"] ?? 0, 0), 8, right: true)
                for e in events { line += " " + pad(format((values[e.name] ?? 0) / u, 2), e.width, right: true) }
                say(line)
            }
        }
        say("(per unit: 64 KiB of bulk data or one round trip, warm-up included; both ends of the connection;")
        say(" 'cpu ms' is the task-clock of the whole run)")
    }

    /// perf's CSV: `value,unit,event,...` per line.
    private static func parse(_ path: String) -> [String: Double]? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var values: [String: Double] = [:]
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), f) != nil {
            let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count >= 3, let v = Double(fields[0]) else { continue }
            values[String(fields[2])] = v
        }
        return values.isEmpty ? nil : values
    }

    private static func spawnAndWait(_ arguments: [String]) -> Int32 {
        var pid: pid_t = 0
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        // The child's stdout (the bench's own table) is not wanted: perf's counts go to -o.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        guard posix_spawnp(&pid, "perf", &actions, nil, &argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
    }
}

extension String {
    /// The target of a symlink such as `/proc/self/exe`, or the string itself.
    var resolvedSelf: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(self, &buffer, buffer.count - 1)
        guard n > 0 else { return self }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
