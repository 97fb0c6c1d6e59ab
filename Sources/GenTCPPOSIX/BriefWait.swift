import CGenTCPShims
import Synchronization

/// How long a read about to park first watches its own descriptor, and how much of that it
/// spins; both in nanoseconds (see ``POSIXDriver/init(runtime:syscalls:briefWait:briefSpin:lookup:)``).
struct BriefWaitSettings: Sendable {
    var total: UInt64
    var spin: UInt64
}

/// One socket's brief wait: before its reader parks, its thread watches the descriptor for up to
/// ``BriefWaitSettings/total``, first polling it (``BriefWaitSettings/spin``, yielding the CPU
/// between polls, and only while the yields find no other thread wanting this CPU), then
/// sleeping in `ppoll(2)`. A prompt answer is then read on the same thread,
/// with no trip through the reactor; one found while spinning costs no wakeup at all. A peer that
/// does not answer promptly would cost a pool thread per wait: after a miss the socket skips its
/// next 1, 2, 4 ... 64 chances, and a hit starts over. Shared by TCP connections and UDP
/// endpoints.
struct BriefWait: ~Copyable {
    let settings: BriefWaitSettings
    private let backOff = Mutex(MissBackOff())

    init(_ settings: BriefWaitSettings) { self.settings = settings }

    /// Waits for `fd` (registered on `reactor` as `token`) to become readable, for at most the
    /// brief wait and at most `limit`. True when it did; false at once when the wait is skipped
    /// or the driver is busy (``Reactor/beginBriefWait(for:)``).
    func wait(fd: Int32, token: UInt64, reactor: Reactor, limit: Duration?) -> Bool {
        let budget = min(settings.total, limit.map(POSIXDriver.nanoseconds) ?? .max)
        guard budget > 0 else { return false }
        if backOff.withLock({ $0.skipsThisTurn() }) { return false }
        guard reactor.beginBriefWait(for: token) else { return false }
        defer { reactor.endBriefWait() }
        // Without this the reactor thread would wake for the same data (a second context switch).
        reactor.disarmRead(token)
        let hit = cgentcp_wait_readable_spinning(fd, min(settings.spin, budget), budget) >= 1
        backOff.withLock { $0.record(hit: hit) }
        return hit
    }
}

/// The back-off of a wait that pays only when it finds something (the brief wait, the event
/// loop's idle spin): after a miss the next 1, 2, 4 ... 64 turns are skipped; a hit starts over.
struct MissBackOff {
    private var skips = 0
    private var penalty = 0

    /// Whether this turn is skipped (counting it off when it is).
    mutating func skipsThisTurn() -> Bool {
        guard skips > 0 else { return false }
        skips -= 1
        return true
    }

    /// What the wait of a turn not skipped found.
    mutating func record(hit: Bool) {
        penalty = hit ? 0 : min(64, max(1, penalty * 2))
        skips = penalty
    }
}
