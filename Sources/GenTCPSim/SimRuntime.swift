import DequeModule
import GenTCP
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The simulator's runtime: a virtual clock and a serial task executor on one thread.
///
/// - **Clock.** ``now`` starts at 0 and only moves when nothing else can happen: jobs (task
///   steps) run first-in first-out, and only when no job is runnable does the clock jump to the
///   earliest pending timer (ties fire in the order they were scheduled). CPU work therefore takes
///   no virtual time, and a simulation spanning virtual minutes takes milliseconds of wall time.
/// - **Executor.** Every process started on this runtime (``SimNetwork/run(_:)``,
///   `Process.spawn(runtime:)`) runs on this one executor, one job at a time, on one thread
///   (started on demand, and ending when there is neither a job nor a timer it may fire: then
///   nothing inside the simulation can move until something is enqueued from outside or, the
///   clock being stopped, a run begins).
/// - **Determinism.** Because all work inside the simulation is serialised in one order, a run
///   with the same seed replays exactly. That holds only for code that runs *inside* the
///   simulation: everything that touches simulated sockets must run in a process of this runtime
///   (wrap it in `network.run { ... }`), and must wait with GenTCP's timeouts or ``sleep(for:)``,
///   never `Task.sleep` (a wall-clock sleep would let the virtual clock race ahead) or other
///   executors.
/// - **Runs.** Once a run (``SimNetwork/run(_:)``) has begun, the clock moves only while a run is
///   under way. When the last run ends the clock stops, and stays stopped until the next run
///   begins: jobs still run and timers due at the current instant still fire (in order, taking no
///   time), but no timer later than ``now`` fires, whoever scheduled it and whatever the wall
///   clock does. Work submitted between runs (closing a driver, reading a socket from another
///   executor) is therefore queued on the stopped clock, and what it starts waits for the next
///   run. A runtime made for a ``SimNetwork`` is stopped from the start, so setting up a network
///   before its first run does not move the clock either; a runtime made with ``init(deadlockTimeout:)``
///   and driven without runs keeps a free-running clock until a run of it ends.
///
/// ``schedule(afterNanoseconds:_:)`` and ``cancel(_:)`` may be called from any thread; an action
/// never runs synchronously inside `schedule`. Nothing here blocks a thread of the caller: waiting
/// for the simulator (``SimNetwork/run(_:)``, ``settle()``) suspends the task.
///
/// A simulation in which every process waits and no timer is pending can never move again (unless
/// something outside wakes it). Rather than hang, ``SimNetwork/run(_:)`` then throws
/// ``SimDeadlock`` (after the runtime's `deadlockTimeout` of wall-clock time).
public final class SimRuntime: Runtime, TaskExecutor, @unchecked Sendable {
    private struct State {
        var jobs = Deque<UnownedJob>()
        var timers = TimerHeap()
        var actions: [UInt64: @Sendable () -> Void] = [:]
        var nextTimerID: UInt64 = 1
        /// True while the executor thread exists (it leaves when idle).
        var running = false
        /// Bodies of `SimNetwork.run` under way, with what to do if they deadlock.
        var runs: [UInt64: @Sendable (UInt64) -> Void] = [:]
        var nextRun: UInt64 = 1
        /// Counts the thread's idle periods, so a deadlock check knows nothing ran since.
        var idleEpoch: UInt64 = 0
        /// The clock stands still: only timers due at `now` fire, later ones wait for the next run.
        var paused: Bool
        /// Tasks waiting in `settle()` for the thread to go idle with the clock paused.
        var settleWaiters: [UnsafeContinuation<Void, Never>] = []
        /// The executor thread, while `running`.
        var thread: pthread_t?
        var jobsRun: UInt64 = 0
        var timersFired: UInt64 = 0
    }

    private let state: Mutex<State>
    private let clock = Atomic<UInt64>(0)
    private let deadlockTimeout: UInt64?

    /// - Parameter deadlockTimeout: how long (wall-clock) the simulation may sit with a run under
    ///   way, no job runnable and no timer pending before that run fails with ``SimDeadlock``;
    ///   nil waits forever. Nothing inside the simulation can move then, so only work from outside
    ///   could save it; the wait merely leaves room for that.
    public init(deadlockTimeout: Duration? = .seconds(1)) {
        self.deadlockTimeout = deadlockTimeout.map { max(1, $0.simNanoseconds) }
        state = Mutex(State(paused: false))
    }

    /// A runtime whose clock is stopped until its first run begins (``SimNetwork``'s).
    init(deadlockTimeout: Duration?, stoppedUntilFirstRun: Bool) {
        self.deadlockTimeout = deadlockTimeout.map { max(1, $0.simNanoseconds) }
        state = Mutex(State(paused: stoppedUntilFirstRun))
    }

    /// Virtual nanoseconds since the simulation started.
    public var now: UInt64 { clock.load(ordering: .acquiring) }

    /// This runtime itself: processes of the simulation run on it.
    public var executor: (any TaskExecutor)? { self }

    /// How many jobs and timer actions have run so far (for tests and diagnostics).
    public var counters: (jobs: UInt64, timers: UInt64) {
        state.withLock { ($0.jobsRun, $0.timersFired) }
    }

    /// The number of timers not yet fired or cancelled.
    public var pendingTimers: Int { state.withLock { $0.actions.count } }

    /// Runs `action` when the virtual clock reaches now + `nanoseconds` (on the runtime's thread,
    /// after every job runnable before that time).
    public func schedule(afterNanoseconds nanoseconds: UInt64, _ action: @escaping @Sendable () -> Void) -> TimerID {
        let start: Bool
        let id: UInt64
        (id, start) = state.withLock { s in
            let id = s.nextTimerID
            s.nextTimerID += 1
            let (deadline, overflow) = clock.load(ordering: .acquiring).addingReportingOverflow(nanoseconds)
            s.actions[id] = action
            s.timers.push(deadline: overflow ? UInt64.max : deadline, id: id)
            return (id, claimThread(&s))
        }
        if start { startThread() }
        return TimerID(id)
    }

    /// Cancels a timer; one that already fired (or was cancelled) is ignored.
    public func cancel(_ timer: TimerID) {
        state.withLock { s in _ = s.actions.removeValue(forKey: timer.rawValue) }
    }

    /// Queues a task step to run on the runtime's thread after the jobs already queued (the
    /// `TaskExecutor` requirement through which every process of the simulation runs).
    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let start = state.withLock { s in
            s.jobs.append(unowned)
            return claimThread(&s)
        }
        if start { startThread() }
    }

    /// Suspends the calling task for `nanoseconds` of virtual time.
    public func sleep(nanoseconds: UInt64) async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            _ = schedule(afterNanoseconds: nanoseconds) { continuation.resume() }
        }
    }

    /// Suspends the calling task for `duration` of virtual time.
    public func sleep(for duration: Duration) async {
        await sleep(nanoseconds: duration.simNanoseconds)
    }

    /// True while the clock is stopped: jobs still run and timers due at ``now`` fire, later timers
    /// wait. ``SimNetwork/run(_:)`` stops the clock when its body returns, so what the network
    /// shows afterwards (trace, counters, `now`) is exactly the state at that moment; only the next
    /// `run` starts it again. Jobs and timers submitted from outside the simulation in between do
    /// not (they wait on the stopped clock).
    public var isPaused: Bool { state.withLock { $0.paused } }

    /// Waits, without blocking a thread, until the simulator has nothing left to do at the
    /// current instant: no job runnable and, the clock being stopped, no timer due at ``now``.
    ///
    /// ``SimNetwork/run(_:)`` does this before it returns, so a run's trace and counters are read
    /// after every consequence of its last instant. Call it after work submitted between runs
    /// (closing a driver, say) to read counters that no longer change. While a run is under way
    /// (the clock moving) it waits until the last run ends and the simulator is idle; do not call
    /// it from inside the simulation.
    public func settle() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let now: Bool = state.withLock { s in
                if s.paused && !s.running { return true }
                s.settleWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// A run begins, on the simulator's thread, in the run's first job; returns its token for
    /// ``endRun(_:)``. The clock starts again here: nothing queued behind this job (and no timer
    /// later than now) ran while it was stopped, so the run continues exactly where the last one
    /// left off. `onDeadlock` gets the virtual time if the simulation gets stuck.
    func beginRun(onDeadlock: @escaping @Sendable (UInt64) -> Void) -> UInt64 {
        state.withLock { s in
            let token = s.nextRun
            s.nextRun += 1
            s.runs[token] = onDeadlock
            s.paused = false
            return token
        }
    }

    /// A run's body ended (on the simulator's thread): when it was the last one, the clock stops.
    /// Returns true when it stopped the clock. Ending twice is harmless.
    @discardableResult
    func endRun(_ token: UInt64) -> Bool {
        state.withLock { s in
            guard s.runs.removeValue(forKey: token) != nil else { return false }
            if s.runs.isEmpty { s.paused = true }
            return s.paused
        }
    }

    /// Called (on the real runtime's timer thread) a while after the thread went idle during a run.
    private func checkDeadlock(epoch: UInt64) {
        let (handlers, now, settled): ([@Sendable (UInt64) -> Void], UInt64, [UnsafeContinuation<Void, Never>]) = state.withLock { s in
            guard !s.running, s.idleEpoch == epoch, !s.paused, !s.runs.isEmpty else { return ([], 0, []) }
            let handlers = s.runs.sorted { $0.key < $1.key }.map(\.value)
            s.runs = [:]
            s.paused = true
            var settled: [UnsafeContinuation<Void, Never>] = []
            swap(&settled, &s.settleWaiters)
            return (handlers, clock.load(ordering: .acquiring), settled)
        }
        for h in handlers { h(now) }
        for waiter in settled { waiter.resume() }
    }

    // MARK: The executor thread

    /// True when the caller must start the thread (it was not running).
    private func claimThread(_ s: inout State) -> Bool {
        if s.running { return false }
        s.running = true
        return true
    }

    private func startThread() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let runtime = Unmanaged<SimRuntime>.fromOpaque(arg!).takeRetainedValue()
            runtime.loop()
            return nil
        }, box)
        precondition(rc == 0, "GenTCPSim: cannot start the simulator thread (pthread_create \(rc))")
        pthread_detach(thread)
    }

    private enum Work {
        case job(UnownedJob)
        case timer(@Sendable () -> Void)
        /// Nothing to do; with an epoch when a run is under way (a deadlock unless outside work
        /// comes), and the tasks waiting for the simulator to settle.
        case idle(UInt64?, [UnsafeContinuation<Void, Never>])
    }

    private func loop() {
        let me = asUnownedTaskExecutor()
        state.withLock { $0.thread = pthread_self() }
        while true {
            let work: Work = state.withLock { s in
                if let job = s.jobs.popFirst() {
                    s.jobsRun += 1
                    return .job(job)
                }
                let current = clock.load(ordering: .relaxed)
                // A stopped clock still lets timers due now fire (they take no time); the next
                // one later than now waits for a run.
                while let top = s.timers.peek, !s.paused || top.deadline <= current {
                    _ = s.timers.pop()
                    guard let action = s.actions.removeValue(forKey: top.id) else { continue }
                    if top.deadline > current {
                        clock.store(top.deadline, ordering: .releasing)
                    }
                    s.timersFired += 1
                    return .timer(action)
                }
                s.running = false
                s.thread = nil
                s.idleEpoch += 1
                var settled: [UnsafeContinuation<Void, Never>] = []
                if s.paused { swap(&settled, &s.settleWaiters) }
                return .idle(!s.paused && !s.runs.isEmpty ? s.idleEpoch : nil, settled)
            }
            switch work {
            case .job(let job): job.runSynchronously(on: me)
            case .timer(let action): action()
            case .idle(let epoch, let settled):
                for waiter in settled { waiter.resume() }
                if let epoch, let wait = deadlockTimeout {
                    _ = RealRuntime.shared.schedule(afterNanoseconds: wait) { [weak self] in
                        self?.checkDeadlock(epoch: epoch)
                    }
                }
                return
            }
        }
    }
}

extension Duration {
    /// Whole nanoseconds, clamped to 0 for negative durations and to `UInt64.max`.
    var simNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (sum, overflow2) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow2 ? .max : sum
    }
}

/// Thrown by ``SimNetwork/run(_:)`` when the simulation is stuck: every process waits (a `recv`
/// or `accept` without timeout that nothing will satisfy, say), no timer is pending, and nothing
/// arrived from outside within the runtime's deadlock timeout. The run's body stays suspended.
public struct SimDeadlock: Error, Hashable, Sendable, CustomStringConvertible {
    /// The virtual time at which everything stopped, in nanoseconds.
    public let virtualTime: UInt64

    /// The deadlock found at `virtualTime` nanoseconds.
    public init(virtualTime: UInt64) { self.virtualTime = virtualTime }

    public var description: String {
        "GenTCPSim: deadlock at \(virtualTime) ns of virtual time: every process waits and no timer is pending"
    }
}
