import GenTCPCore
import Synchronization

/// How a process ended.
public enum ExitReason: Sendable, Equatable, CustomStringConvertible {
    /// The body returned.
    case normal
    /// The body threw; the text describes the error.
    case error(String)

    /// `normal`, or `error: ` and the text.
    public var description: String {
        switch self {
        case .normal: return "normal"
        case .error(let text): return "error: \(text)"
        }
    }
}

/// A lightweight process in Erlang's sense: a task with a mailbox, the owner of sockets.
///
/// - A socket's *controlling process* receives its `.tcp`, `.tcpClosed`, `.tcpError` and
///   `.tcpPassive` messages; only it may hand the socket to another process.
/// - When a process exits, normally or by throwing, every socket it controls is closed (OTP links
///   the port to its owner; AtomVM's port drivers do not, and leak the socket).
/// - Child tasks started inside a process act as that process (they inherit the task-local
///   identity). Code outside any process acts as ``root``, which never exits.
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
    }
    private let state = Mutex(State())

    private static let counter = Atomic<UInt64>(0)
    @TaskLocal static var taskCurrent: Process?

    /// The process that owns code running outside any spawned process (like the Erlang shell).
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
    public static func run<T: Sendable>(
        runtime: any Runtime = RealRuntime.shared,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await start(runtime: runtime, body).task.value
    }

    private static func start<T: Sendable>(
        runtime: any Runtime,
        _ body: @escaping @Sendable () async throws -> T
    ) -> (process: Process, task: Task<T, any Error>) {
        let process = Process(runtime: runtime)
        let task = Task<T, any Error>(executorPreference: runtime.executor) {
            do {
                let value = try await Process.$taskCurrent.withValue(process) { try await body() }
                process.exit(.normal)
                return value
            } catch {
                process.exit(.error("\(error)"))
                throw error
            }
        }
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
    public static func receive(
        timeout: Timeout = .infinity,
        where predicate: (@Sendable (Message) -> Bool)? = nil
    ) async -> Message? {
        let process = current
        if timeout.nanoseconds != 0, let socket = process.soleActiveSocket() {
            // About to park on an empty mailbox while one active socket may bring the next
            // message: let its driver wait a moment on this thread (see Connection.waitBriefly).
            if let m = process.mailbox.poll(where: predicate) { return m }
            socket.waitBrieflyAndPump(upTo: timeout.nanoseconds)
        }
        return await process.mailbox.receive(timeout: timeout, where: predicate)
    }

    /// The one socket this process controls that waits for data in an active mode, if exactly one.
    private func soleActiveSocket() -> Socket? {
        // Copy the list first: socket locks are never taken under the process lock (a socket
        // holding its lock calls `release`, which takes the process lock).
        let sockets = state.withLock { $0.sockets }
        var found: Socket?
        for case let socket as Socket in sockets where socket.isWaitingToDeliver {
            if found != nil { return nil }
            found = socket
        }
        return found
    }

    /// The number of messages waiting in this process's mailbox.
    public var messageCount: Int { mailbox.count }

    // MARK: Lifetime

    /// True until the process's body has returned or thrown.
    public var isAlive: Bool { state.withLock { $0.alive } }

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

    private func exit(_ reason: ExitReason) {
        let (sockets, waiters): ([any OwnedByProcess], [UnsafeContinuation<ExitReason, Never>]) = state.withLock { s in
            s.alive = false
            s.exitReason = reason
            let result = (s.sockets, s.exitWaiters)
            s.sockets = []
            s.exitWaiters = []
            return result
        }
        // The owner's exit closes its sockets, in the order it came to control them.
        for socket in sockets { socket.ownerExited(self) }
        mailbox.close()
        for w in waiters { w.resume(returning: reason) }
    }
}
