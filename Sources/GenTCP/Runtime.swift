import CGenTCPShims
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Identifies a timer scheduled on a ``Runtime``, for cancelling it.
public struct TimerID: Hashable, Sendable {
    /// The runtime's number for the timer, unique within that runtime.
    public let rawValue: UInt64
    /// Wraps a runtime's timer number (for ``Runtime`` implementations).
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
}

/// Where time comes from and where processes run: the injected clock of DESIGN.md.
///
/// The real runtime (``RealRuntime/shared``) reads the monotonic clock and runs processes on the
/// global concurrent executor. The simulator's runtime keeps a virtual clock and runs every
/// process on one serial executor, so a seed replays exactly. Every timeout in GenTCP (recv,
/// accept, connect, send, mailbox receive) is a timer on a runtime.
public protocol Runtime: AnyObject, Sendable {
    /// Now, in nanoseconds of this runtime's monotonic clock.
    var now: UInt64 { get }
    /// Runs `action` once, `nanoseconds` from now, on the runtime's timer context. Actions must be
    /// short and must not block (they resume continuations).
    func schedule(afterNanoseconds nanoseconds: UInt64, _ action: @escaping @Sendable () -> Void) -> TimerID
    /// Cancels a timer; a timer that already fired is ignored.
    func cancel(_ timer: TimerID)
    /// The executor processes of this runtime run on; nil for the global concurrent executor.
    var executor: (any TaskExecutor)? { get }
}

extension Runtime {
    /// ``now`` as a `Duration` since this runtime's origin (the monotonic clock's for the real
    /// runtime, the start of the simulation for the simulator's).
    public var uptime: Duration { .nanoseconds(Int64(clamping: now)) }

    /// Runs `action` once, `delay` from now (at once for a negative delay), on the runtime's timer
    /// context: ``schedule(afterNanoseconds:_:)`` with a `Duration`.
    public func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) -> TimerID {
        schedule(afterNanoseconds: delay.clampedNanoseconds, action)
    }
}

/// The wall-clock runtime: a monotonic clock and one timer thread holding a min-heap of deadlines.
public final class RealRuntime: Runtime, @unchecked Sendable {
    /// The process-wide real runtime.
    public static let shared = RealRuntime()

    // Guarded by `mutex`.
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var heap = TimerHeap()
    private var actions: [UInt64: @Sendable () -> Void] = [:]
    private var nextID: UInt64 = 1
    private var started = false

    /// A separate real runtime with its own timer thread, started by the first
    /// ``schedule(afterNanoseconds:_:)``. Most code wants ``shared``.
    public init() {
        pthread_mutex_init(&mutex, nil)
        cgentcp_cond_init_monotonic(&condition)
    }

    /// `CLOCK_MONOTONIC`, in nanoseconds.
    public var now: UInt64 { cgentcp_monotonic_ns() }
    /// Nil: processes run on the global concurrent executor.
    public var executor: (any TaskExecutor)? { nil }

    public func schedule(afterNanoseconds nanoseconds: UInt64, _ action: @escaping @Sendable () -> Void) -> TimerID {
        let (deadline, overflow) = now.addingReportingOverflow(nanoseconds)
        pthread_mutex_lock(&mutex)
        let id = nextID
        nextID += 1
        actions[id] = action
        heap.push(deadline: overflow ? UInt64.max - 1 : deadline, id: id)
        if !started {
            started = true
            startThread()
        }
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
        return TimerID(id)
    }

    public func cancel(_ timer: TimerID) {
        pthread_mutex_lock(&mutex)
        actions[timer.rawValue] = nil
        pthread_mutex_unlock(&mutex)
    }

    private func startThread() {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let runtime = Unmanaged<RealRuntime>.fromOpaque(arg!).takeRetainedValue()
            runtime.loop()
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "GenTCP: cannot start the timer thread (pthread_create \(rc))")
        pthread_detach(thread)
    }

    private func loop() {
        pthread_mutex_lock(&mutex)
        while true {
            // Drop cancelled timers at the top so the wait is for a live deadline.
            while let top = heap.peek, actions[top.id] == nil { _ = heap.pop() }
            guard let top = heap.peek else {
                _ = cgentcp_cond_wait_until(&condition, &mutex, 0)
                continue
            }
            let current = cgentcp_monotonic_ns()
            if top.deadline > current {
                _ = cgentcp_cond_wait_until(&condition, &mutex, top.deadline)
                continue
            }
            _ = heap.pop()
            let action = actions.removeValue(forKey: top.id)
            pthread_mutex_unlock(&mutex)
            action?()
            pthread_mutex_lock(&mutex)
        }
    }
}

/// A binary min-heap of (deadline, id), ties broken by id so equal deadlines fire in order.
/// Shared by the runtimes of this package (`package`, not public API).
package struct TimerHeap: Sendable {
    /// One timer: when it fires and which it is.
    package struct Entry: Sendable {
        /// The deadline, in nanoseconds of the runtime's clock.
        package var deadline: UInt64
        /// The timer's number (``TimerID/rawValue``).
        package var id: UInt64
    }
    private var items: [Entry] = []

    /// An empty heap.
    package init() {}
    /// True when no entry is held.
    package var isEmpty: Bool { items.isEmpty }
    /// The number of entries held.
    package var count: Int { items.count }
    /// The entry with the earliest deadline (the lowest id among equal deadlines), if any.
    package var peek: Entry? { items.first }

    private static func less(_ a: Entry, _ b: Entry) -> Bool {
        a.deadline != b.deadline ? a.deadline < b.deadline : a.id < b.id
    }

    /// Adds an entry; O(log n).
    package mutating func push(deadline: UInt64, id: UInt64) {
        items.append(Entry(deadline: deadline, id: id))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if TimerHeap.less(items[i], items[parent]) {
                items.swapAt(i, parent)
                i = parent
            } else {
                break
            }
        }
    }

    /// Removes and returns the entry ``peek`` shows; nil when empty. O(log n).
    package mutating func pop() -> Entry? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && TimerHeap.less(items[l], items[m]) { m = l }
                if r < items.count && TimerHeap.less(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
