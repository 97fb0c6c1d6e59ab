import CGenTCPShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Something the reactor tells about readiness of its descriptor.
package protocol ReactorHandler: AnyObject, Sendable {
    /// Called on the reactor thread with what became ready among what was asked for.
    func ready(readable: Bool, writable: Bool)
}

/// One epoll instance and the thread that waits on it.
///
/// Registrations are one-shot (`EPOLLONESHOT`): a handler asks for read and/or write readiness,
/// gets one call when any of it is ready, and asks again. The interest that did not fire is
/// re-armed by the reactor. `epoll_ctl` is thread-safe, so arming needs no wake-up of the thread.
///
/// A reactor is also a `TaskExecutor`: jobs queued to it run on its thread between its waits.
/// Only ``loop`` gets any (``EventLoopRuntime``); ``shared`` serves sockets whose owners run on the
/// global concurrent pool.
package final class Reactor: TaskExecutor, Sendable {
    /// The reactor of sockets whose owners run on the global concurrent pool (the default).
    package static let shared = Reactor()
    /// The event loop's reactor (``EventLoopRuntime``): its thread also runs the processes.
    package static let loop = Reactor(loop: true)
    /// The thread of ``loop`` once it started (`pthread_self`), else 0.
    private static let loopThread = Atomic<UInt>(0)
    /// True on the event loop's thread: a wait there would stall every process on the loop.
    package static var onLoopThread: Bool { loopThread.load(ordering: .relaxed) == UInt(pthread_self()) }
    /// ``loop`` on the loop's thread (a socket opened or accepted by a process there), else
    /// `fallback`.
    package static func current(or fallback: Reactor) -> Reactor { onLoopThread ? loop : fallback }
    private let isLoop: Bool

    /// Task steps queued to run on the reactor thread (``enqueue(_:)``), and whether that thread
    /// found none at its last look (it may be asleep in `epoll_wait`), so an enqueue must wake it.
    private struct Jobs: ~Copyable {
        var queue: [UnownedJob] = []
        var sleeping = false
    }
    private let jobs = Mutex(Jobs())
    /// An eventfd in the epoll set (token 0): written to wake the thread for a queued job.
    private let wakeFD: Int32

    /// How long the thread, with processes of ``EventLoopRuntime`` on it, polls the
    /// epoll set before it sleeps in `epoll_wait` (ns): a round trip's answer often comes
    /// within it, and waking a sleeping thread is the dearest part of a round trip on a VM. Only
    /// after jobs ran (a reactor serving only pool processes never spins), ended early when the
    /// CPU is wanted by another thread, and after a spin that found nothing the next 1, 2, 4 ...
    /// 64 idle turns sleep at once.
    static let idleSpin: UInt64 = 20_000

    private struct Registration {
        var handler: any ReactorHandler
        var fd: Int32
        var wantRead = false
        var wantWrite = false
    }

    private let epfd: Int32
    private let table = Mutex<[UInt64: Registration]>([:])
    /// When the reactor last handed a socket its readiness (monotonic ns): other sockets are
    /// busy, so their owners are work waiting for the pool (see ``beginBriefWait(for:)``).
    private let lastDispatch = Atomic<UInt64>(0)
    /// The token of that socket (its own readiness says nothing about the others).
    private let lastDispatchToken = Atomic<UInt64>(0)
    /// Whether a brief wait is in progress on a pool thread.
    private let briefWaiting = Atomic<Bool>(false)
    /// How recent a readiness dispatch to another socket must be to count as a busy driver.
    static let busyWindow: UInt64 = 200_000

    /// Claims the driver's one brief wait for the socket registered as `token`, if waiting pays
    /// now: only while the pool would otherwise idle, so not while another brief wait holds a
    /// thread, nor while the reactor is handing other sockets their readiness (their owners are
    /// work for this thread). Measured at 10 and 100 echo connections (`gentcp-bench --scale`):
    /// brief waits on every socket halved the rate and put p99 at 30-40x raw's. A true answer
    /// must be followed by ``endBriefWait()``.
    package func beginBriefWait(for token: UInt64) -> Bool {
        if Reactor.onLoopThread { return false }
        if lastDispatchToken.load(ordering: .relaxed) != token,
           cgentcp_monotonic_ns() &- lastDispatch.load(ordering: .relaxed) < Reactor.busyWindow {
            return false
        }
        return briefWaiting.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    }

    package func endBriefWait() { briefWaiting.store(false, ordering: .releasing) }
    private let nextToken = Atomic<UInt64>(1)
    private let started = Atomic<Bool>(false)

    private init(loop: Bool = false) {
        isLoop = loop
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epfd >= 0, "GenTCP: epoll_create1 failed (errno \(cgentcp_errno()))")
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(wakeFD >= 0, "GenTCP: eventfd failed (errno \(cgentcp_errno()))")
        var event = epoll_event()
        event.events = UInt32(EPOLLIN.rawValue)
        event.data.u64 = 0
        _ = epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, &event)
        Reactor.tuneMalloc()
    }

    /// Active sockets allocate one buffer per message on this thread and their owners free it on
    /// another. With glibc's default 128 KiB trim threshold every such free hands the top of the
    /// heap back to the kernel, and the next message faults it in again: 7.5 page faults per
    /// 64 KiB message, 2.6x the CPU of a plain read loop, in the benchmark. A 32 MiB threshold
    /// keeps that memory (0.06 faults per message). This is process-wide; set
    /// `GENTCP_KEEP_MALLOC=1` in the environment to leave glibc's settings alone.
    private static func tuneMalloc() {
        #if canImport(Glibc)
        if getenv("GENTCP_KEEP_MALLOC") == nil {
            cgentcp_set_trim_threshold(32 << 20)
        }
        #endif
    }

    /// Adds a descriptor with no interest yet; returns its token.
    package func register(fd: Int32, handler: any ReactorHandler) -> UInt64 {
        startIfNeeded()
        let token = nextToken.add(1, ordering: .relaxed).newValue
        table.withLock { $0[token] = Registration(handler: handler, fd: fd) }
        var event = epoll_event()
        event.events = UInt32(EPOLLONESHOT.rawValue)
        event.data.u64 = token
        _ = epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event)
        return token
    }

    /// Asks for one readiness call for read and/or write (added to what is already asked).
    package func arm(_ token: UInt64, read: Bool, write: Bool) {
        table.withLock { t in
            guard var r = t[token] else { return }
            r.wantRead = r.wantRead || read
            r.wantWrite = r.wantWrite || write
            t[token] = r
            rearm(r, token: token)
        }
    }

    /// Withdraws a pending read request (the caller is about to wait on the descriptor itself).
    package func disarmRead(_ token: UInt64) {
        table.withLock { t in
            guard var r = t[token], r.wantRead else { return }
            r.wantRead = false
            t[token] = r
            rearm(r, token: token)
        }
    }

    /// Removes a descriptor before it is closed. Calls already under way may still arrive; the
    /// handler must ignore a call after it closed.
    package func deregister(_ token: UInt64) {
        table.withLock { t in
            guard let r = t.removeValue(forKey: token) else { return }
            _ = epoll_ctl(epfd, EPOLL_CTL_DEL, r.fd, nil)
        }
    }

    private func rearm(_ r: Registration, token: UInt64) {
        var mask = UInt32(EPOLLONESHOT.rawValue)
        if r.wantRead { mask |= UInt32(EPOLLIN.rawValue) | UInt32(EPOLLRDHUP.rawValue) }
        if r.wantWrite { mask |= UInt32(EPOLLOUT.rawValue) }
        var event = epoll_event()
        event.events = mask
        event.data.u64 = token
        _ = epoll_ctl(epfd, EPOLL_CTL_MOD, r.fd, &event)
    }

    /// Queues a task step to run on the reactor thread, between its waits for readiness (the
    /// executor of ``EventLoopRuntime``).
    package func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let wake = jobs.withLock { j in
            j.queue.append(unowned)
            let wake = j.sleeping
            j.sleeping = false
            return wake
        }
        startIfNeeded()
        if wake {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    private func startIfNeeded() {
        guard started.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            return
        }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let reactor = Unmanaged<Reactor>.fromOpaque(arg!).takeRetainedValue()
            reactor.loop()
            return nil
        }, box)
        precondition(rc == 0, "GenTCP: cannot start the reactor thread (pthread_create \(rc))")
        pthread_detach(thread)
    }

    private func loop() {
        let capacity = 128
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        if isLoop { Reactor.loopThread.store(UInt(pthread_self()), ordering: .relaxed) }
        let me = asUnownedTaskExecutor()
        var batch: [UnownedJob] = []
        // Idle spin (see `idleSpin`): whether jobs ran since the thread last went idle, and the
        // back-off after spins that found nothing.
        var ranJobs = false
        var backOff = MissBackOff()
        while true {
            // Run what is queued, then look for readiness without waiting; with nothing queued,
            // say so (an enqueue then writes the eventfd) and wait. The mark stays until the next
            // turn: an enqueue while this turn dispatches only writes the eventfd once too often.
            jobs.withLock { j in
                swap(&batch, &j.queue)
                j.sleeping = batch.isEmpty
            }
            let idle = batch.isEmpty
            if !idle {
                ranJobs = true
                for job in batch { job.runSynchronously(on: me) }
                batch.removeAll(keepingCapacity: true)
            } else if ranJobs {
                ranJobs = false
                if !backOff.skipsThisTurn() {
                    backOff.record(hit: cgentcp_spin_readable(epfd, Reactor.idleSpin, nil) == 1)
                }
            }
            let n = epoll_wait(epfd, events, Int32(capacity), idle ? -1 : 0)
            if n < 0 {
                if cgentcp_errno() == EINTR { continue }
                fatalError("GenTCP: epoll_wait failed (errno \(cgentcp_errno()))")
            }
            for i in 0..<Int(n) {
                let token = events[i].data.u64
                if token == 0 {
                    var count: UInt64 = 0
                    _ = read(wakeFD, &count, 8)
                    continue
                }
                let mask = events[i].events
                let failed = mask & (UInt32(EPOLLERR.rawValue) | UInt32(EPOLLHUP.rawValue)) != 0
                let readable = failed || mask & (UInt32(EPOLLIN.rawValue) | UInt32(EPOLLRDHUP.rawValue)) != 0
                let writable = failed || mask & UInt32(EPOLLOUT.rawValue) != 0
                let fire: (any ReactorHandler, Bool, Bool)? = table.withLock { t in
                    guard var r = t[token] else { return nil }
                    let fireRead = r.wantRead && readable
                    let fireWrite = r.wantWrite && writable
                    if fireRead { r.wantRead = false }
                    if fireWrite { r.wantWrite = false }
                    t[token] = r
                    // One-shot disarmed everything: re-arm what is still wanted.
                    if r.wantRead || r.wantWrite { rearm(r, token: token) }
                    return (fireRead || fireWrite) ? (r.handler, fireRead, fireWrite) : nil
                }
                if let (handler, r, w) = fire {
                    lastDispatchToken.store(token, ordering: .relaxed)
                    lastDispatch.store(cgentcp_monotonic_ns(), ordering: .relaxed)
                    handler.ready(readable: r, writable: w)
                }
            }
        }
    }
}
