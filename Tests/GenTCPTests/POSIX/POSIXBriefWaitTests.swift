import CGenTCPShims
import Foundation
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The posix driver's brief wait (`BriefWait`): before a read parks, its thread watches the
/// descriptor, first spinning (`poll` with no timeout, `sched_yield` between; a yield that gives
/// the CPU to another thread ends the spin), then sleeping in `ppoll` for the rest. The C wait
/// answers 2 when the spin found the descriptor readable, 1 when the sleep did, 0 when the time
/// ran out. Issue 14: the spin is what took ping-pong and 64 KiB bulk past OTP's
/// spinning schedulers on this VM (README, Performance).
@Suite("posix: the brief wait before a read parks")
struct POSIXBriefWaitTests {
    /// A connected AF_UNIX stream pair, closed by the caller.
    static func pair() -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        precondition(rc == 0, "socketpair failed")
        return (fds[0], fds[1])
    }

    /// This thread's voluntary context switches: the times it slept.
    static func sleeps() -> Int {
        var usage = rusage()
        _ = getrusage(1, &usage)   // RUSAGE_THREAD (Linux), which Glibc's module leaves out
        return Int(usage.ru_nvcsw)
    }

    /// Runs the wait on the calling thread (it blocks) while another thread does `after` once
    /// `delay` has passed; returns the wait's result, this thread's sleeps and its time.
    static func waitHere(spin: UInt64, total: UInt64, on fd: Int32, delay: Double? = nil,
                         after: @escaping @Sendable () -> Void = {}) -> (rc: Int32, sleeps: Int, seconds: Double) {
        if let delay {
            Thread {
                Thread.sleep(forTimeInterval: delay)
                after()
            }.start()
        }
        let before = sleeps()
        let start = cgentcp_monotonic_ns()
        let rc = cgentcp_wait_readable_spinning(fd, spin, total)
        let seconds = Double(cgentcp_monotonic_ns() - start) / 1e9
        return (rc, sleeps() - before, seconds)
    }

    /// ``waitHere(spin:total:on:delay:after:)`` on a thread of its own.
    static func wait(spin: UInt64, total: UInt64, on fd: Int32, delay: Double? = nil,
                     after: @escaping @Sendable () -> Void = {}) async -> (rc: Int32, sleeps: Int, seconds: Double) {
        await OffPool.run { waitHere(spin: spin, total: total, on: fd, delay: delay, after: after) }
    }

    /// Writes the one byte `value` to `fd`.
    static func send(_ value: UInt8, to fd: Int32) {
        var byte = value
        _ = write(fd, &byte, 1)
    }

    @Test("data already queued: the spin's first poll finds it (2); with the spin off, the sleep's does (1); no sleep either way")
    func queued() async {
        let (a, b) = Self.pair()
        defer { close(a); close(b) }
        var byte: UInt8 = 7
        #expect(write(b, &byte, 1) == 1)
        let spinning = await Self.wait(spin: 5_000_000, total: 5_000_000_000, on: a)
        #expect(spinning.rc == 2)
        #expect(spinning.sleeps == 0)
        let sleeping = await Self.wait(spin: 0, total: 5_000_000_000, on: a)
        #expect(sleeping.rc == 1)
        #expect(sleeping.sleeps == 0)
    }

    @Test("nothing comes: not readable, and only after the whole wait (the spin, then the sleep for the rest)")
    func nothingComes() async {
        let (a, b) = Self.pair()
        defer { close(a); close(b) }
        let result = await Self.wait(spin: 5_000_000, total: 40_000_000, on: a)
        #expect(result.rc == 0)
        #expect(result.seconds >= 0.040)
        #expect(result.sleeps >= 1, "after the spin the rest of the wait sleeps")
    }

    @Test("data that comes 20 ms into a long spin: readable; found by the spin without a sleep, or (on a busy CPU, which ends the spin) by the sleep")
    func dataWhileSpinning() async {
        let (a, b) = Self.pair()
        defer { close(a); close(b) }
        let result = await Self.wait(spin: 30_000_000_000, total: 30_000_000_000, on: a, delay: 0.02) { Self.send(1, to: b) }
        #expect(result.rc == 1 || result.rc == 2)
        if result.rc == 2 { #expect(result.sleeps == 0, "a spinning wait yields the CPU but never sleeps") }
        var byte: UInt8 = 0
        #expect(read(a, &byte, 1) == 1 && byte == 1)
    }

    /// A flag shared with threads.
    final class Flag: Sendable {
        let raised = Atomic<Bool>(false)
    }

    @Test("a thread that wants the same CPU ends the spin: the wait sleeps for the rest instead of spinning 30 s")
    func busyCPUEndsTheSpin() async {
        let (a, b) = Self.pair()
        defer { close(a); close(b) }
        // All on threads of their own, started and stopped from one of them: the CPU-bound
        // thread must stop when the wait ends, not when the pool gets round to this test again
        // (on a busy pool that took seconds, a CPU that the rest of the suite needed). It also
        // stops after 5 s whatever happens.
        let result = await OffPool.run { () -> (pinned: Bool, rc: Int32, sleeps: Int) in
            let cpu = cgentcp_pin_thread(-1)
            guard cpu >= 0 else { return (false, -1, 0) }
            let stop = Flag()
            let deadline = cgentcp_monotonic_ns() + 5_000_000_000
            let hog = Thread {
                guard cgentcp_pin_thread(cpu) == cpu else { return }
                var n = 0
                while !stop.raised.load(ordering: .relaxed) && cgentcp_monotonic_ns() < deadline { n &+= 1 }
                _ = n
            }
            hog.start()
            let waited = Self.waitHere(spin: 30_000_000_000, total: 30_000_000_000, on: a, delay: 0.2) {
                Self.send(3, to: b)
            }
            stop.raised.store(true, ordering: .relaxed)
            return (true, waited.rc, waited.sleeps)
        }
        #expect(result.pinned)
        #expect(result.rc == 1, "found by the sleep, not by a spin that went on beside a busy thread")
        #expect(result.sleeps >= 1)
    }

    @Test("data that comes while it sleeps, spin off: readable (1), after one sleep at least")
    func dataWhileSleeping() async {
        let (a, b) = Self.pair()
        defer { close(a); close(b) }
        let result = await Self.wait(spin: 0, total: 30_000_000_000, on: a, delay: 0.02) { Self.send(2, to: b) }
        #expect(result.rc == 1)
        #expect(result.sleeps >= 1)
    }

    @Test("the peer's close ends the wait, spinning or sleeping (end of stream is readable)",
          arguments: [UInt64(0), 30_000_000_000])
    func peerClose(spin: UInt64) async {
        let (a, b) = Self.pair()
        defer { close(a) }
        let result = await Self.wait(spin: spin, total: 30_000_000_000, on: a, delay: 0.02) { close(b) }
        #expect(result.rc >= 1)
        var byte: UInt8 = 0
        #expect(read(a, &byte, 1) == 0)
    }

    /// 500 round trips of 1 to 300 bytes through an echo on `c`, every byte checked; `afterRecv`
    /// runs after each `recv` (for checks of where the caller runs).
    static func roundTrips(on c: Socket, afterRecv: () -> Void = {}) async throws {
        for i in 0..<500 {
            let message = (0..<(1 + i % 300)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) }
            try await c.send(message)
            var back: [UInt8] = []
            while back.count < message.count {
                back += try await c.recv(0, timeout: 60_000).bytes
                afterRecv()
            }
            #expect(back == message, "round trip \(i)")
            if back != message { break }
        }
    }

    /// (brief wait µs, spin µs): the default, sleeping only, off, and a spin longer than the wait.
    static let settings: [(Int, Int)] = [(50, 20), (50, 0), (0, 0), (50, 500)]

    @Test("ping-pong through the driver, brief wait spinning, sleeping only, off, or spin > wait: every byte back, in order",
          arguments: settings)
    func pingPong(wait: Int, spin: Int) async throws {
        let driver = POSIXDriver(briefWait: .microseconds(wait), briefSpin: .microseconds(spin))
        #expect(driver.briefSpin == .microseconds(spin))
        try await Process.run {
            let listener = try ListenSocket.listen(
                port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)], driver: driver)
            defer { listener.close() }
            let port = try listener.port()
            let echo = Process.spawn {
                let s = try await listener.accept(timeout: 60_000)
                defer { s.close() }
                try s.setopts(.nodelay(true))
                while true {
                    let got = try await s.recv(0, timeout: 60_000)
                    try await s.send(got.bytes)
                }
            }
            let c = try await Socket.connect(
                "127.0.0.1", port: port, options: [.binary, .active(.passive), .nodelay(true)], driver: driver)
            defer { c.close() }
            try await POSIXBriefWaitTests.roundTrips(on: c)
            c.close()
            let reason = await echo.waitForExit()
            #expect(reason != .normal, "the echo ends with the client's close (closed)")
        }
    }

    @Test("a recv in its brief wait counts as waiting: a second recv is ealready at once, the first gets the data (TCP and UDP)")
    func briefWaitIsWaiting() async throws {
        // A 3 s brief wait, so the first recv is still in it when the second comes (when the
        // driver grants it: another test's brief wait may hold the one slot, and then the first
        // recv parks at once, which must answer the second the same way).
        let driver = POSIXDriver(briefWait: .seconds(3), briefSpin: .zero)
        @Sendable func settle(_ waiting: @Sendable () -> Bool) async -> Bool {
            for _ in 0..<2000 where !waiting() { try? await Task.sleep(for: .milliseconds(5)) }
            return waiting()
        }
        try await Process.run {
            let listener = try ListenSocket.listen(
                port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)], driver: driver)
            defer { listener.close() }
            let c = try await Socket.connect("127.0.0.1", port: try listener.port(),
                                             options: [.binary, .active(.passive)], timeout: 10_000, driver: driver)
            defer { c.close() }
            let p = try await listener.accept(timeout: 10_000)
            defer { p.close() }
            let first = Process.spawn { _ = try await c.recv(0, timeout: 30_000) }
            #expect(await settle { c.recvIsWaiting }, "the first recv never waited")
            do throws(SocketError) {
                let got = try await c.recv(0, timeout: 0)
                Issue.record("a second recv got \(got.count) bytes")
            } catch {
                #expect(error.reason == .alreadyInProgress, "the second recv: \(error)")
            }
            try await p.send([7])
            #expect(await first.waitForExit() == .normal, "the first recv got the byte")

            let u = try await UDPSocket.open(port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)], driver: driver)
            defer { u.close() }
            let sender = try await UDPSocket.open(port: 0, options: [.binary, .localAddress(.loopbackV4)], driver: driver)
            defer { sender.close() }
            let firstUDP = Process.spawn { _ = try await u.recv(timeout: 30_000) }
            #expect(await settle { u.recvIsWaiting }, "the first UDP recv never waited")
            do throws(SocketError) {
                let got = try await u.recv(timeout: 0)
                Issue.record("a second UDP recv got \(got)")
            } catch {
                #expect(error.reason == .alreadyInProgress, "the second UDP recv: \(error)")
            }
            try await sender.send([7], to: "127.0.0.1", port: try u.port())
            #expect(await firstUDP.waitForExit() == .normal, "the first UDP recv got the datagram")
        }
    }
}
