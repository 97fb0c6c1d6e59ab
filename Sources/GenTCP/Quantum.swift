/// How long a task has run through GenTCP calls that did not suspend: a `recv` that found its
/// data (already read, or caught by the driver's brief wait), a `receive` that found its message
/// queued.
///
/// Swift's tasks are never preempted, so a process whose calls keep completing at once holds
/// its pool thread. With as many such processes as pool threads every other process starved:
/// `gentcp-bench --scale` saw 2 of 100 echo connections served for a whole run
/// (`POSIXFairnessTests` checks it). After a quantum of running the next such call yields its
/// thread first. A quantum of time rather than of calls: yielding every 16 `recv`s cost a
/// 1,460-byte passive bulk transfer a context switch per 23 KB (37 % more CPU, `--perf`); every
/// millisecond it is one per megabyte or so. On the simulator's clock no time passes within a
/// turn, so a simulation never yields here and stays deterministic.
struct Quantum {
    /// How long a task may run through calls that did not suspend before one of them yields.
    static let nanoseconds: UInt64 = 1_000_000

    /// When the current run began, on the runtime's clock; 0 after a suspension.
    private var start: UInt64 = 0

    /// A call completed without suspending at `now`; true when it should yield before returning.
    mutating func ranWithoutSuspending(now: UInt64) -> Bool {
        if start == 0 {
            start = max(now, 1)
            return false
        }
        guard now &- start >= Quantum.nanoseconds else { return false }
        start = 0
        return true
    }

    /// The task suspended (or is about to): its next run starts a new quantum.
    mutating func suspended() { start = 0 }
}
