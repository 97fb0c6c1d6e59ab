import GenTCPCore
import Synchronization

/// How a process ended.
public enum ExitReason: Sendable, Equatable, CustomStringConvertible {
    /// The body returned.
    case normal
    /// The body threw, or ``Process/exit(_:reason:)`` named this reason; the text describes it.
    case error(String)
    /// Ended by ``Process/kill()``: Erlang's `killed`, the reason of a process that got
    /// `exit(Pid, kill)`.
    case killed

    /// `normal`, `killed`, or `error: ` and the text.
    public var description: String {
        switch self {
        case .normal: return "normal"
        case .error(let text): return "error: \(text)"
        case .killed: return "killed"
        }
    }
}

/// A lightweight process in Erlang's sense: a task with a mailbox, the owner of sockets.
///
/// - A socket's *controlling process* receives its `.tcp`, `.tcpClosed`, `.tcpError` and
///   `.tcpPassive` messages; only it may hand the socket to another process.
/// - When a process exits (its body returns or throws, or another process ends it with
///   ``kill()`` or ``exit(_:reason:)``), every socket it controls is closed (OTP links the port to
///   its owner; AtomVM's port drivers do not, and leak the socket), and every GenTCP call it is
///   blocked in ends with `cancelled`.
/// - Child tasks started inside a process act as that process (they inherit the task-local
///   identity). Code outside any process acts as ``root``, which never exits.
/// - A blocked `connect`, `recv`, `send`, `accept` or ``receive(timeout:where:)`` also ends with
///   `cancelled` when its Swift task is cancelled; data it had not taken stays for the next reader.
public final class Process: Sendable, Hashable, CustomStringConvertible {
    /// A number unique among the processes of this program, in spawn order.
    public let id: UInt64
    /// The runtime whose clock times this process's receives.
    public let runtime: any Runtime
    let mailbox: Mailbox

    private struct State {
        var alive = true
        var sockets: [any OwnedByProcess] = []
        var exitReason: ExitReason?
        var exitWaiters: [UnsafeContinuation<ExitReason, Never>] = []
        /// Cancels the body's task, once it exists.
        var cancelTask: (@Sendable () -> Void)?
        /// Killed before ``cancelTask`` was known: `start` cancels the task.
        var cancelPending = false
        /// How to end each GenTCP call this process is blocked in (see ``waiting(interrupt:_:)``).
        var interrupts: [UInt64: @Sendable () -> Void] = [:]
        var nextInterrupt: UInt64 = 1
    }
    private let state = Mutex(State())
    /// `State.alive`, readable without the lock (every blocking call checks it).
    private let living = Atomic<Bool>(true)

    private static let counter = Atomic<UInt64>(0)
    @TaskLocal static var taskCurrent: Process?

    /// The process that owns code running outside any spawned process (like the Erlang shell).
    /// It never exits: ``kill()`` and ``exit(_:reason:)`` leave it alone.
    public static let root = Process(runtime: RealRuntime.shared)

    init(runtime: any Runtime) {
        self.id = Process.counter.add(1, ordering: .relaxed).newValue
        self.runtime = runtime
        self.mailbox = Mailbox(runtime: runtime)
    }

    /// The calling process: the one whose task (or an ancestor task) is running this code, or
    /// ``root`` outside any process. Erlang's `self()`.
    public static var current: Process { taskCurrent ?? root }

    /// `<0.N.0>`.
    public var description: String { "<0.\(id).0>" }

    public static func == (a: Process, b: Process) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    // MARK: Spawning

    /// Starts a new process running `body`; Erlang's `spawn/1`.
    ///
    /// - Parameters:
    ///   - runtime: the clock and executor the process runs on; the simulator passes its own.
    ///   - body: the process's code. When it returns or throws, the process exits and its sockets close.
    @discardableResult
    public static func spawn(
        runtime: any Runtime = RealRuntime.shared,
        _ body: @escaping @Sendable () async throws -> Void
    ) -> Process {
        start(runtime: runtime, body).process
    }

    /// Runs `body` as a new process and waits for its result. The process exits (closing its
    /// sockets) when `body` returns; an error thrown by `body` is rethrown here.
    ///
    /// Cancelling the calling task cancels the process's task: its waiting GenTCP calls end with
    /// `cancelled`, and `body` decides what to do (the process is not killed).
    public static func run<T: Sendable>(
        runtime: any Runtime = RealRuntime.shared,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let task = start(runtime: runtime, body).task
        return try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    }

    private static func start<T: Sendable>(
        runtime: any Runtime,
        _ body: @escaping @Sendable () async throws -> T
    ) -> (process: Process, task: Task<T, any Error>) {
        let process = Process(runtime: runtime)
        let task = Task<T, any Error>(executorPreference: runtime.executor) {
            do {
                let value = try await Process.$taskCurrent.withValue(process) { try await body() }
                process.terminate(.normal, cancellingTask: false)
                return value
            } catch {
                process.terminate(.error("\(error)"), cancellingTask: false)
                throw error
            }
        }
        let cancel: @Sendable () -> Void = { task.cancel() }
        let killedAlready = process.state.withLock { s in
            if s.alive { s.cancelTask = cancel }
            return s.cancelPending
        }
        if killedAlready { cancel() }
        return (process, task)
    }

    // MARK: Messages

    /// Sends a value to this process's mailbox (`Pid ! Term`). A dead process drops it.
    public func send(_ value: any Sendable) {
        mailbox.deliver(.user(value))
    }

    /// Receives the first message of the calling process's mailbox that matches `predicate`,
    /// waiting up to `timeout`; nil on timeout. Erlang's `receive ... after T -> ... end`.
    ///
    /// Unmatched messages stay queued in order. Only one task of a process may receive at a time.
    /// The predicate runs under the mailbox's lock and must not call into GenTCP.
    ///
    /// - Throws: `cancelled` when the calling task is cancelled while it waits (a matching message
    ///   already queued is still returned, and nothing is taken from the mailbox), or when the
    ///   calling process has exited or is killed (GenTCP's own reason: Erlang has no task
    ///   cancellation).
    public static func receive(
        timeout: Timeout = .infinity,
        where predicate: (@Sendable (Message) -> Bool)? = nil
    ) async throws(SocketError) -> Message? {
        let process = try liveCaller()
        if timeout.nanoseconds != 0, let wait = process.soleActiveSocket() {
            // About to park on an empty mailbox while one active socket may bring the next
            // message: let its driver wait a moment on this thread (see Connection.waitBriefly).
            if let m = process.mailbox.poll(where: predicate) { return taken(m) }
            wait(timeout.duration)
        }
        let mailbox = process.mailbox
        let id = mailbox.reserveWaiterID()
        let outcome = await process.waiting(interrupt: { mailbox.interrupt(id) }) {
            await mailbox.receive(timeout: timeout, where: predicate, id: id, as: process)
        }
        switch outcome {
        case .message(let m): return taken(m)
        case .timedOut: return nil
        case .interrupted: throw process.cancellation
        }
    }

    /// A message leaves the mailbox: a gen_udp socket that stopped reading because its owner was
    /// behind may read again.
    private static func taken(_ m: Message) -> Message {
        if case .udp(let socket, _) = m { socket.messageTaken() }
        return m
    }

    /// The brief wait of the one socket (gen_tcp or gen_udp) this process controls that waits
    /// for data in an active mode, if exactly one.
    private func soleActiveSocket() -> ((Duration?) -> Void)? {
        // Copy the list first: socket locks are never taken under the process lock (a socket
        // holding its lock calls `release`, which takes the process lock).
        let sockets = state.withLock { $0.sockets }
        var found: ((Duration?) -> Void)?
        for socket in sockets {
            if let tcp = socket as? Socket, tcp.isWaitingToDeliver {
                if found != nil { return nil }
                found = { tcp.waitBrieflyAndPump(upTo: $0) }
            } else if let udp = socket as? UDPSocket, udp.isWaitingToDeliver {
                if found != nil { return nil }
                found = { udp.waitBrieflyAndPump(upTo: $0) }
            }
        }
        return found
    }

    /// The number of messages waiting in this process's mailbox.
    public var messageCount: Int { mailbox.count }

    // MARK: Lifetime

    /// True until the process has exited: its body returned or threw, or it was killed.
    public var isAlive: Bool { living.load(ordering: .acquiring) }

    /// Waits until the process exits and returns why.
    public func waitForExit() async -> ExitReason {
        if let reason = state.withLock({ $0.exitReason }) { return reason }
        return await withUnsafeContinuation { continuation in
            let reason: ExitReason? = state.withLock { s in
                if let r = s.exitReason { return r }
                s.exitWaiters.append(continuation)
                return nil
            }
            if let reason { continuation.resume(returning: reason) }
        }
    }

    /// Kills the process; Erlang's `exit(Pid, kill)`. The same as
    /// ``exit(_:reason:)`` with `.killed`.
    public func kill() {
        Process.exit(self, reason: .killed)
    }

    /// Ends `process` with `reason`; Erlang's `exit(Pid, Reason)`.
    ///
    /// When this returns, the process is dead (``isAlive`` is false, ``waitForExit()`` returns
    /// `reason`): every socket and listener it controls is closed (the peers see the end),
    /// every GenTCP call it was blocked in has ended with `cancelled` (a pending `accept` is
    /// withdrawn, never handed a connection; a waiting `recv` leaves its bytes for the next
    /// reader; a `send` stops, with the bytes already handed to the driver still sent), its
    /// mailbox is dropped, and its task is cancelled. Swift cannot stop a task from outside: the
    /// process's code runs on until it returns, but every GenTCP call it makes fails with
    /// `cancelled`, and so does anything that honours task cancellation.
    ///
    /// - `.normal` ends only the calling process itself: as in Erlang, a process that does not
    ///   trap exits ignores `exit(Pid, normal)` from another (and GenTCP has no trapping).
    /// - Any other reason ends the process whatever it is doing, as `kill` does (without
    ///   trapping, Erlang's reasons differ only in what the exit reports).
    /// - A process that has already exited, and ``root``, are left alone.
    public static func exit(_ process: Process, reason: ExitReason) {
        if reason == .normal && process !== current { return }
        process.terminate(reason, cancellingTask: true)
    }

    /// Registers a socket this process now controls. False when the process is already dead, in
    /// which case the caller must close the socket.
    func adopt(_ socket: any OwnedByProcess) -> Bool {
        state.withLock { s in
            guard s.alive else { return false }
            s.sockets.append(socket)
            return true
        }
    }

    /// Forgets a socket this process no longer controls.
    func release(_ socket: any OwnedByProcess) {
        state.withLock { s in
            if let i = s.sockets.firstIndex(where: { $0 === socket }) { s.sockets.remove(at: i) }
        }
    }

    /// Ends the process, once (a later call, or the body returning after a kill, changes nothing).
    private func terminate(_ reason: ExitReason, cancellingTask: Bool) {
        guard self !== Process.root else { return }
        typealias Taken = (
            sockets: [any OwnedByProcess], waiters: [UnsafeContinuation<ExitReason, Never>],
            interrupts: [@Sendable () -> Void], cancelTask: (@Sendable () -> Void)?
        )
        let taken: Taken? = state.withLock { s in
            guard s.alive else { return nil }
            s.alive = false
            living.store(false, ordering: .releasing)
            s.exitReason = reason
            let result: Taken = (s.sockets, s.exitWaiters, Array(s.interrupts.values), s.cancelTask)
            if cancellingTask && s.cancelTask == nil { s.cancelPending = true }
            s.sockets = []
            s.exitWaiters = []
            s.interrupts = [:]
            s.cancelTask = nil
            return result
        }
        guard let taken else { return }
        // Blocked calls end first, so that no pending accept of this process can be handed a
        // connection while its sockets close (OTP drops a dead acceptor's accept too).
        for interrupt in taken.interrupts { interrupt() }
        if cancellingTask { taken.cancelTask?() }
        // The owner's exit closes its sockets, in the order it came to control them.
        for socket in taken.sockets { socket.ownerExited(self) }
        mailbox.close()
        for w in taken.waiters { w.resume(returning: reason) }
    }

    // MARK: Interrupting blocked calls

    /// The calling process, for a call that may block.
    /// - Throws: `cancelled` when the calling process has exited (a killed process's code runs on,
    ///   but may not wait for anything again).
    package static func liveCaller() throws(SocketError) -> Process {
        let process = current
        guard process.isAlive else { throw SocketError(.cancelled, "the process has exited") }
        return process
    }

    /// The error of a call made as this process that stopped waiting: `cancelled`, with a detail
    /// saying whether the process exited or only the task was cancelled.
    package var cancellation: SocketError {
        isAlive ? SocketError(.cancelled, "the task was cancelled") : SocketError(.cancelled, "the process has exited")
    }

    /// True when a call made as this process must not start waiting: its task is cancelled, or
    /// the process has exited. A blocking call checks it under the lock that records its waiter,
    /// just before recording it, so that an interrupt that comes later finds the waiter.
    package var mustNotWait: Bool { Task.isCancelled || !isAlive }

    /// Runs `body`, a wait made as this process, so that `interrupt` ends it when the calling task
    /// is cancelled or this process exits.
    ///
    /// `interrupt` may run at any time, more than once, and before `body` has recorded its waiter
    /// (it then finds nothing to end: `body` must check ``mustNotWait`` when it records the
    /// waiter). It must not block, and must resume the waiter outside any lock it takes.
    func waiting<T>(interrupt: @escaping @Sendable () -> Void, _ body: () async -> T) async -> T {
        // The root process never exits: only task cancellation can end its waits.
        let token: UInt64? = self === Process.root ? nil : state.withLock { s in
            guard s.alive else { return nil }
            let token = s.nextInterrupt
            s.nextInterrupt += 1
            s.interrupts[token] = interrupt
            return token
        }
        defer {
            if let token { _ = state.withLock { $0.interrupts.removeValue(forKey: token) } }
        }
        return await withTaskCancellationHandler(operation: body, onCancel: interrupt)
    }
}
