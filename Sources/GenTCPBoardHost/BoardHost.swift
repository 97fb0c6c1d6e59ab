import GenTCP
import GenTCPBoard
import GenTCPCore
import GenTCPSerial
import Synchronization

/// A ``Board`` made of a host serial link and a GenTCP runtime's clock: a board program's line
/// is a `MemoryLink` (a simulation run, on the virtual clock) or a pty (`gentcp simulate`, on
/// the real clock). ``BoardHost`` drives it; `idle` is never called.
public struct LinkBoard: Board {
    let link: any SerialLink
    let runtime: any Runtime
    let origin: UInt64
    let seed: UInt64
    let logger: (@Sendable (String) -> Void)?
    /// The line hung up or failed: what the read or write answered.
    var failure: LinkIO?
    var readWouldBlock = false
    var writeWouldBlock = false
    var bytesRead = 0
    var bytesWritten = 0

    public mutating func readLine(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard failure == nil else { return 0 }
        switch link.read(into: buffer) {
        case .bytes(let n):
            bytesRead += n
            if n == 0 { readWouldBlock = true }
            return n
        case .wouldBlock:
            readWouldBlock = true
            return 0
        case let other:
            failure = other
            return 0
        }
    }

    public mutating func writeLine(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard failure == nil else { return bytes.count }  // the line is gone: drop, the run ends
        switch link.write(bytes) {
        case .bytes(let n):
            bytesWritten += n
            if n < bytes.count { writeWouldBlock = true }
            return n
        case .wouldBlock:
            writeWouldBlock = true
            return 0
        case let other:
            failure = other
            return bytes.count
        }
    }

    public func now() -> MillisecondInstant {
        MillisecondInstant(milliseconds: Int64((runtime.now &- origin) / 1_000_000))
    }

    public mutating func entropy() -> UInt64 { seed }

    public mutating func idle(until deadline: MillisecondInstant?) {}

    public mutating func log(_ line: StaticString) {
        logger?(line.description)
    }
}

/// Runs a board program on the host: the same source as the firmware, with its line on a
/// serial link and its clock the runtime's (virtual in a simulation, real on a pty).
///
/// Event-driven like the slip driver's engine: a turn runs when the link becomes readable or
/// writable or the program's deadline comes, never by polling; on a simulation's virtual
/// clock the run is deterministic for a seed.
public final class BoardHost<Interface: NetworkInterface & ~Copyable & SendableMetatype, Program: BoardProgram & ~Copyable & SendableMetatype>:
    SerialLinkDelegate, @unchecked Sendable {
    /// Guards ``shared``: every turn, link event and timer takes it.
    let lock = Mutex<Void>(())
    /// Only touched with ``lock`` held (hence `@unchecked Sendable`).
    var shared: State
    let link: any SerialLink
    let runtime: any Runtime
    let finished = Mutex<Finish>(Finish())

    struct State: ~Copyable {
        var loop: BoardRuntime<LinkBoard, Interface, Program>
        var timer: TimerID?
        var timerDeadline: MillisecondInstant?
        var readArmed = false
        var writeArmed = false
        var pumpScheduled = false
        var stopped = false
    }

    struct Finish {
        var status: Int32?
        var failure: SocketError.Reason?
        var waiters: [CheckedContinuation<Int32, any Error>] = []
    }

    /// A program on `link`: `makeInterface` builds the interface from the board's seed.
    /// Call ``start()`` to run it.
    public init(link: any SerialLink, runtime: any Runtime, seed: UInt64, limits: NetLimits,
                interface: consuming Interface, program: consuming Program,
                log: (@Sendable (String) -> Void)? = nil) {
        self.link = link
        self.runtime = runtime
        let board = LinkBoard(link: link, runtime: runtime, origin: runtime.now, seed: seed, logger: log)
        shared = State(loop: BoardRuntime(board: board, interface: interface, program: program, limits: limits))
    }

    func withState<R>(_ body: (inout State) -> R) -> R {
        lock.withLock { _ in body(&shared) }
    }

    /// Starts the program: its `start`, then a turn whenever something happens.
    public func start() {
        link.setDelegate(self)
        schedulePump()
    }

    /// Waits until the program stops (``Net/stop(status:)``) and returns its status.
    /// - Throws: the link's loss reason (`eio` for a hang-up) if the line went away first.
    public func wait() async throws -> Int32 {
        try await withCheckedThrowingContinuation { continuation in
            let resume: Result<Int32, SocketError>? = finished.withLock { f in
                if let status = f.status { return .success(status) }
                if let failure = f.failure { return .failure(SocketError(failure)) }
                f.waiters.append(continuation)
                return nil
            }
            if let resume { continuation.resume(with: resume) }
        }
    }

    /// The program's status once it stopped.
    public var status: Int32? { finished.withLock { $0.status } }

    /// Reads the run loop's state (the program, the interface's counters) under its lock.
    public func inspect<R>(_ body: (borrowing BoardRuntime<LinkBoard, Interface, Program>) -> R) -> R {
        lock.withLock { _ in body(shared.loop) }
    }

    /// Stops running turns and detaches from the link (the link stays open).
    public func stop() {
        withState { s in
            s.stopped = true
            if let timer = s.timer { runtime.cancel(timer) }
            s.timer = nil
        }
        link.setDelegate(nil)
        finish(status: nil, failure: .closed)
    }

    /// The link may call this from inside ``SerialLink/armRead()``, which a turn calls with the
    /// lock held: take the lock only later, on the runtime.
    public func linkIsReadable(_ link: any SerialLink) {
        _ = runtime.schedule(afterNanoseconds: 0) { [self] in
            withState { $0.readArmed = false }
            schedulePump()
        }
    }

    /// As ``linkIsReadable(_:)``: never takes the lock on the caller's stack.
    public func linkIsWritable(_ link: any SerialLink) {
        _ = runtime.schedule(afterNanoseconds: 0) { [self] in
            withState { $0.writeArmed = false }
            schedulePump()
        }
    }

    func schedulePump() {
        let schedule = withState { s -> Bool in
            if s.pumpScheduled || s.stopped { return false }
            s.pumpScheduled = true
            return true
        }
        if schedule { _ = runtime.schedule(afterNanoseconds: 0) { [self] in pump() } }
    }

    /// Runs turns until one finds nothing to do, then arms the link and the timer.
    func pump() {
        var outcome: (status: Int32?, failure: LinkIO?)
        outcome = withState { s in
            s.pumpScheduled = false
            guard !s.stopped else { return (nil, nil) }
            var turns = 0
            var turn = s.loop.step()
            while turn.busy, !s.loop.isFinished, s.loop.board.failure == nil, turns < 64 {
                turns += 1
                turn = s.loop.step()
            }
            if s.loop.isFinished, let status = s.loop.stopStatus {
                s.stopped = true
                if let timer = s.timer { runtime.cancel(timer) }
                return (status, nil)
            }
            if let failure = s.loop.board.failure {
                s.stopped = true
                if let timer = s.timer { runtime.cancel(timer) }
                return (nil, failure)
            }
            let again = turn.busy
            if s.loop.board.readWouldBlock, !s.readArmed {
                s.loop.board.readWouldBlock = false
                s.readArmed = true
                link.armRead()
            }
            if s.loop.board.writeWouldBlock || s.loop.hasPendingOutput {
                s.loop.board.writeWouldBlock = false
                if !s.writeArmed {
                    s.writeArmed = true
                    link.armWrite()
                }
            }
            if again {
                // More to do at once: another pump, after whatever else is runnable.
                s.pumpScheduled = true
                _ = runtime.schedule(afterNanoseconds: 0) { [self] in pump() }
            }
            // A deadline that is already due (the clock's millisecond has not turned yet) is
            // taken one millisecond later, as the slip driver does, so an idle board never spins.
            let now = s.loop.board.now()
            var deadline = turn.deadline
            if let d = deadline, d <= now { deadline = now.advanced(byMilliseconds: 1) }
            if deadline != s.timerDeadline || s.timer == nil {
                if let timer = s.timer { runtime.cancel(timer) }
                s.timer = nil
                s.timerDeadline = deadline
                if let deadline {
                    let wait = max(deadline.milliseconds(since: now), 0)
                    s.timer = runtime.schedule(afterNanoseconds: UInt64(wait) * 1_000_000) { [self] in
                        withState { $0.timer = nil; $0.timerDeadline = nil }
                        schedulePump()
                    }
                }
            }
            return (nil, nil)
        }
        if let status = outcome.status {
            link.setDelegate(nil)
            finish(status: status, failure: nil)
        } else if let failure = outcome.failure {
            link.setDelegate(nil)
            finish(status: nil, failure: failure.lossReason ?? .ioError)
        }
    }

    func finish(status: Int32?, failure: SocketError.Reason?) {
        let waiters = finished.withLock { f -> [CheckedContinuation<Int32, any Error>] in
            guard f.status == nil, f.failure == nil else { return [] }
            f.status = status
            f.failure = status == nil ? failure : nil
            let w = f.waiters
            f.waiters = []
            return w
        }
        for waiter in waiters {
            if let status { waiter.resume(returning: status) } else { waiter.resume(throwing: SocketError(failure ?? .closed)) }
        }
    }
}
