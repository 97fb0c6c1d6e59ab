import DequeModule
import GenTCPCore
import Synchronization

/// A process's mailbox: an ordered queue with one selective receiver.
///
/// `deliver` never blocks and may be called from any thread (a reactor thread, a timer, another
/// process). `receive` takes the first message that matches, leaving the others queued in order,
/// as Erlang's selective receive does. A receive that finds nothing parks one continuation; the
/// sender that brings a matching message resumes it outside the lock.
final class Mailbox: Sendable {
    typealias Predicate = @Sendable (Message) -> Bool

    /// How a receive ended.
    enum Received {
        case message(Message)
        case timedOut
        /// The receiving task was cancelled, or the process exited (the mailbox closed).
        case interrupted
    }

    private struct Waiter {
        var id: UInt64
        var predicate: Predicate?
        var continuation: UnsafeContinuation<Received, Never>
        var timer: TimerID?
    }

    private struct State {
        var queue = Deque<Message>()
        var waiter: Waiter?
        var open = true
        /// How long the owner has run through receives that found their message queued (see
        /// ``Quantum``).
        var quantum = Quantum()
    }

    private let state = Mutex(State())
    private let waiterIDs = Atomic<UInt64>(0)
    let runtime: any Runtime

    init(runtime: any Runtime) { self.runtime = runtime }

    /// A receiver that was handed a message and must be resumed, after the caller's locks are
    /// released (waking it while a socket lock is held only makes it wait on that lock).
    struct Wakeup {
        fileprivate let continuation: UnsafeContinuation<Received, Never>
        fileprivate let timer: TimerID?
        fileprivate let message: Message
        fileprivate let runtime: any Runtime

        func resume() {
            if let timer { runtime.cancel(timer) }
            continuation.resume(returning: .message(message))
        }
    }

    /// Appends a message, or hands it straight to a receiver waiting for it. Dropped once the
    /// owning process has exited (as a message to a dead pid is).
    func deliver(_ message: Message) {
        enqueue(message)?.resume()
    }

    /// Like ``deliver(_:)``, but a waiting receiver is returned for the caller to resume later.
    func enqueue(_ message: Message) -> Wakeup? {
        state.withLock { s in
            guard s.open else { return nil }
            if let w = s.waiter, w.predicate?(message) ?? true {
                s.waiter = nil
                return Wakeup(continuation: w.continuation, timer: w.timer, message: message, runtime: runtime)
            }
            s.queue.append(message)
            return nil
        }
    }

    /// Delivers several messages in order (callers hold the socket lock, so nothing of that socket
    /// interleaves).
    func deliver(contentsOf messages: [Message]) {
        for m in messages { deliver(m) }
    }

    /// Takes the first matching message if one is queued, without waiting.
    func poll(where predicate: Predicate?) -> Message? {
        state.withLock { s in
            guard let index = Mailbox.firstIndex(in: s.queue, predicate) else { return nil }
            return s.queue.remove(at: index)
        }
    }

    /// A number for the next ``receive(timeout:where:id:as:)``, known before it waits so that
    /// ``interrupt(_:)`` can name it.
    func reserveWaiterID() -> UInt64 { waiterIDs.add(1, ordering: .relaxed).newValue }

    /// Takes the first matching message, waiting up to `timeout` as `process` (which must own
    /// this mailbox). A message already queued is taken even when the task is cancelled; the
    /// receive is `interrupted` instead of waiting when ``Process/mustNotWait`` holds, and when
    /// ``interrupt(_:)`` names `id` while it waits.
    func receive(timeout: Timeout, where predicate: Predicate?, id: UInt64, as process: Process) async -> Received {
        // Fast path: a match is already queued.
        enum Fast { case found(Message, yields: Bool), timedOut, closed, wait }
        let fast: Fast = state.withLock { s in
            if let index = Mailbox.firstIndex(in: s.queue, predicate) {
                let yields = s.quantum.ranWithoutSuspending(now: runtime.now)
                return .found(s.queue.remove(at: index), yields: yields)
            }
            if !s.open { return .closed }
            if timeout.nanoseconds == 0 { return .timedOut }
            s.quantum.suspended()
            return .wait
        }
        switch fast {
        case .found(let m, let yields):
            if yields { await Task.yield() }
            return .message(m)
        case .timedOut: return .timedOut
        case .closed: return .interrupted
        case .wait: break
        }
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<Received, Never>) in
            let outcome: Received? = state.withLock { s in
                // Re-check: a message may have arrived between the fast path and here.
                if let index = Mailbox.firstIndex(in: s.queue, predicate) {
                    return .message(s.queue.remove(at: index))
                }
                if !s.open || process.mustNotWait { return .interrupted }
                precondition(s.waiter == nil, "GenTCP: two tasks are receiving on one process's mailbox at once")
                s.waiter = Waiter(id: id, predicate: predicate, continuation: continuation, timer: nil)
                if let ns = timeout.nanoseconds {
                    // Arm the timer under the lock so it is recorded before it can fire.
                    s.waiter?.timer = runtime.schedule(afterNanoseconds: ns) { [weak self] in
                        self?.end(id, .timedOut)
                    }
                }
                return nil
            }
            if let result = outcome { continuation.resume(returning: result) }
        }
    }

    /// Ends the receive numbered `id` with `interrupted`, if it is waiting.
    func interrupt(_ id: UInt64) { end(id, .interrupted) }

    private func end(_ id: UInt64, _ outcome: Received) {
        let waiter: Waiter? = state.withLock { s in
            guard let w = s.waiter, w.id == id else { return nil }
            s.waiter = nil
            return w
        }
        guard let waiter else { return }
        if case .interrupted = outcome, let t = waiter.timer { runtime.cancel(t) }
        waiter.continuation.resume(returning: outcome)
    }

    private static func firstIndex(in queue: Deque<Message>, _ predicate: Predicate?) -> Int? {
        guard let predicate else { return queue.isEmpty ? nil : queue.startIndex }
        return queue.firstIndex(where: predicate)
    }

    /// Removes and returns every queued message that matches, in order.
    func take(where predicate: (Message) -> Bool) -> [Message] {
        state.withLock { s in
            var taken: [Message] = []
            var kept = Deque<Message>()
            for m in s.queue {
                if predicate(m) { taken.append(m) } else { kept.append(m) }
            }
            if !taken.isEmpty { s.queue = kept }
            return taken
        }
    }

    /// Removes the first queued message that matches; true when one was removed.
    @discardableResult
    func removeFirst(where predicate: (Message) -> Bool) -> Bool {
        state.withLock { s in
            guard let i = s.queue.firstIndex(where: predicate) else { return false }
            s.queue.remove(at: i)
            return true
        }
    }

    /// The number of queued messages.
    var count: Int { state.withLock { $0.queue.count } }

    /// True while a receive waits (tests use it to know a receiver is parked).
    var hasReceiver: Bool { state.withLock { $0.waiter != nil } }

    /// Closes the mailbox at process exit: queued messages are dropped and a waiting receive
    /// is interrupted.
    func close() {
        let waiter: Waiter? = state.withLock { s in
            s.open = false
            s.queue.removeAll()
            let w = s.waiter
            s.waiter = nil
            return w
        }
        if let w = waiter {
            if let t = w.timer { runtime.cancel(t) }
            w.continuation.resume(returning: .interrupted)
        }
    }
}
