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

    private struct Waiter {
        var id: UInt64
        var predicate: Predicate?
        var continuation: UnsafeContinuation<Message?, Never>
        var timer: TimerID?
    }

    private struct State {
        var queue = Deque<Message>()
        var waiter: Waiter?
        var nextWaiterID: UInt64 = 1
        var open = true
    }

    private let state = Mutex(State())
    let runtime: any Runtime

    init(runtime: any Runtime) { self.runtime = runtime }

    /// A receiver that was handed a message and must be resumed, after the caller's locks are
    /// released (waking it while a socket lock is held only makes it wait on that lock).
    struct Wakeup {
        fileprivate let continuation: UnsafeContinuation<Message?, Never>
        fileprivate let timer: TimerID?
        fileprivate let message: Message
        fileprivate let runtime: any Runtime

        func resume() {
            if let timer { runtime.cancel(timer) }
            continuation.resume(returning: message)
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

    /// Takes the first matching message, waiting up to `timeout`; nil on timeout.
    func receive(timeout: Timeout, where predicate: Predicate?) async -> Message? {
        // Fast path: a match is already queued.
        enum Fast { case found(Message), none, wait }
        let fast: Fast = state.withLock { s in
            if let index = Mailbox.firstIndex(in: s.queue, predicate) {
                return .found(s.queue.remove(at: index))
            }
            if timeout.nanoseconds == 0 || !s.open { return .none }
            return .wait
        }
        switch fast {
        case .found(let m): return m
        case .none: return nil
        case .wait: break
        }
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<Message?, Never>) in
            let outcome: Message?? = state.withLock { s in
                // Re-check: a message may have arrived between the fast path and here.
                if let index = Mailbox.firstIndex(in: s.queue, predicate) {
                    return .some(s.queue.remove(at: index))
                }
                if !s.open { return Optional<Message?>.some(nil) }
                precondition(s.waiter == nil, "GenTCP: two tasks are receiving on one process's mailbox at once")
                let id = s.nextWaiterID
                s.nextWaiterID += 1
                s.waiter = Waiter(id: id, predicate: predicate, continuation: continuation, timer: nil)
                if let ns = timeout.nanoseconds {
                    // Arm the timer under the lock so it is recorded before it can fire.
                    s.waiter?.timer = runtime.schedule(afterNanoseconds: ns) { [weak self] in
                        self?.expire(id)
                    }
                }
                return nil
            }
            if let result = outcome { continuation.resume(returning: result) }
        }
    }

    private func expire(_ id: UInt64) {
        let continuation: UnsafeContinuation<Message?, Never>? = state.withLock { s in
            guard let w = s.waiter, w.id == id else { return nil }
            s.waiter = nil
            return w.continuation
        }
        continuation?.resume(returning: nil)
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

    /// Closes the mailbox at process exit: queued messages are dropped and a waiting receive
    /// returns nil.
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
            w.continuation.resume(returning: nil)
        }
    }
}
