import GenTCP

/// A runtime whose processes run on the posix driver's event loop: one thread that waits for
/// socket readiness with `epoll` and, between waits, runs the processes' code. Pass it to
/// `Process.spawn(runtime:)` and to `POSIXDriver(runtime:)`.
///
/// With the default `RealRuntime`, a process runs on the global concurrent pool and its sockets'
/// readiness is handled by a separate reactor thread, so every wake-up of a waiting `recv` hands
/// the process from one thread to another. Here the thread that sees the data runs the process
/// that reads it: a request/response round trip has no thread switch at all (the way SwiftNIO's
/// event loops and the BEAM's schedulers work). In `gentcp-bench --scale` (64-byte echo, a process
/// per connection, two cores), at 10 and 100 connections this took the server from 81-88k round
/// trips/s with a p99 at 1.8-3.6x a raw epoll server's to 100-110k with a p99 at 0.95-1.4x
/// (README, Performance).
///
/// What it costs:
/// - All of its processes share **one thread**, so one core. A process that computes for long
///   without suspending, or blocks its thread (a blocking `read(2)`, `sleep(3)`, a lock held by
///   another thread), stalls every other process on the loop and the readiness of their sockets.
///   Processes that do heavy work belong on the default runtime, which has a thread per core.
/// - When nothing is queued the thread polls its epoll set for up to 20 µs before it sleeps,
///   only after it ran a process, only while no other thread wants the CPU, and less often after
///   polls that found nothing.
///
/// Sockets are handled on the loop when the driver was made with this runtime, or when a process
/// on the loop opens or accepts them; the readiness of other sockets still reaches a process on
/// the loop, by way of the shared reactor (one hand-over more). Timers (timeouts) fire on
/// `RealRuntime.shared`'s timer thread, on the same monotonic clock.
public final class EventLoopRuntime: Runtime {
    /// The event loop (its thread starts when the first process or socket needs it).
    public static let shared = EventLoopRuntime()

    private let reactor = Reactor.loop
    private let timers = RealRuntime.shared

    private init() {}

    /// `CLOCK_MONOTONIC`, in nanoseconds (the clock of `RealRuntime`, whose timers these are).
    public var now: UInt64 { timers.now }

    /// Runs `action` on `RealRuntime.shared`'s timer thread (it must be short: it resumes a
    /// waiting process, which then runs on the loop).
    public func schedule(afterNanoseconds nanoseconds: UInt64, _ action: @escaping @Sendable () -> Void) -> TimerID {
        timers.schedule(afterNanoseconds: nanoseconds, action)
    }

    public func cancel(_ timer: TimerID) { timers.cancel(timer) }

    /// The loop's thread.
    public var executor: (any TaskExecutor)? { reactor }
}
