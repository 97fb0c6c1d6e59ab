import GenTCP
import GenTCPCore
import GenTCPSim
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing

@Suite struct SimRuntimeTests {
    @Test func timersFireInDeadlineOrderTiesInScheduleOrder() async throws {
        let rt = SimRuntime()
        let log = Shared<[(String, UInt64)]>([])
        try await Process.run(runtime: rt) {
            for (label, delay) in [("c", 30), ("a1", 10), ("b", 20), ("a2", 10), ("zero", 0)] as [(String, UInt64)] {
                _ = rt.schedule(afterNanoseconds: delay) { log.update { $0.append((label, rt.now)) } }
            }
            await rt.sleep(nanoseconds: 100)
        }
        #expect(log.value.map(\.0) == ["zero", "a1", "a2", "b", "c"])
        // The clock jumped to each deadline.
        #expect(log.value.map(\.1) == [0, 10, 10, 20, 30])
        #expect(rt.now == 100)
    }

    @Test func typedScheduleAndUptimeReadTheSameClock() async throws {
        let rt = SimRuntime()
        let fired = Shared<[Duration]>([])
        try await Process.run(runtime: rt) {
            _ = rt.schedule(after: .microseconds(3)) { fired.update { $0.append(rt.uptime) } }
            _ = rt.schedule(after: .nanoseconds(-5)) { fired.update { $0.append(rt.uptime) } }
            await rt.sleep(for: .milliseconds(1))
        }
        #expect(fired.value == [.zero, .microseconds(3)])
        #expect(rt.uptime == .milliseconds(1))
        #expect(rt.now == 1_000_000)
    }

    @Test func scheduleNeverRunsTheActionInline() async throws {
        let rt = SimRuntime()
        // From outside the simulation: the action runs on the simulator's thread, not the caller's.
        let caller = pthread_self()
        let ranOnCaller = Shared<Bool?>(nil)
        _ = rt.schedule(afterNanoseconds: 0) { ranOnCaller.value = pthread_equal(pthread_self(), caller) != 0 }
        // From inside: not before the scheduling job has finished.
        let inline = try await Process.run(runtime: rt) { () -> Bool in
            let flag = Shared(false)
            _ = rt.schedule(afterNanoseconds: 0) { flag.value = true }
            let inline = flag.value
            await rt.sleep(nanoseconds: 1)
            #expect(flag.value)
            return inline
        }
        #expect(!inline)
        #expect(ranOnCaller.value == false)
    }

    @Test func cancelledTimersDoNotFire() async throws {
        let rt = SimRuntime()
        let log = Shared<[String]>([])
        try await Process.run(runtime: rt) {
            let a = rt.schedule(afterNanoseconds: 50) { log.update { $0.append("a") } }
            _ = rt.schedule(afterNanoseconds: 60) { log.update { $0.append("b") } }
            rt.cancel(a)
            await rt.sleep(nanoseconds: 100)
            rt.cancel(a)  // again: ignored
        }
        #expect(log.value == ["b"])
        #expect(rt.pendingTimers == 0)
    }

    @Test func runnableJobsGoBeforeTimersAndTakeNoTime() async throws {
        let rt = SimRuntime()
        let log = Shared<[String]>([])
        try await Process.run(runtime: rt) {
            _ = rt.schedule(afterNanoseconds: 0) { log.update { $0.append("timer at \(rt.now)") } }
            let child = Process.spawn(runtime: rt) {
                // Busy work takes no virtual time.
                var x: UInt64 = 0
                for i in 0..<10_000 { x &+= UInt64(i) }
                log.update { $0.append("job at \(rt.now), \(x)") }
            }
            _ = await child.waitForExit()
            await rt.sleep(nanoseconds: 5)
        }
        #expect(log.value == ["job at 0, 49995000", "timer at 0"])
    }

    @Test func virtualMinutesPassInstantly() async throws {
        let net = try SimNetwork(seed: 1)
        let elapsed = try await net.run { () -> UInt64 in
            let start = net.now
            await net.sleep(for: .seconds(600))
            // Mailbox timeouts count virtual time too.
            let nothing = try await Process.receive(timeout: 60_000)
            #expect(nothing == nil)
            return net.now - start
        }
        #expect(elapsed == 660_000_000_000)
    }

    @Test func theClockStopsBetweenRuns() async throws {
        let net = try SimNetwork(seed: 1)
        let fired = Shared<UInt64?>(nil)
        try await net.run {
            _ = net.runtime.schedule(afterNanoseconds: 5_000) { fired.value = net.now }
        }
        // The run is over: the clock is paused and the timer waits.
        #expect(net.runtime.isPaused)
        #expect(net.now == 0)
        #expect(fired.value == nil)
        try await net.run { await net.sleep(for: .microseconds(10)) }
        #expect(fired.value == 5_000)
        #expect(net.now == 10_000)
    }

    @Test func splitMixIsReproducible() {
        var a = SplitMix64(seed: 42)
        var b = SplitMix64(seed: 42)
        var c = SplitMix64(seed: 43)
        let xs = (0..<8).map { _ in a.next() }
        #expect(xs == (0..<8).map { _ in b.next() })
        #expect(xs != (0..<8).map { _ in c.next() })
        #expect(Set(xs).count == 8)
        var u = SplitMix64(seed: 1)
        for _ in 0..<1000 {
            let v = u.nextUnit()
            #expect(v >= 0 && v < 1)
        }
        #expect(!u.chance(0) && u.chance(1))
    }
}

@Suite struct DeadlockTests {
    @Test func aStuckSimulationFailsTheRunInsteadOfHanging() async throws {
        let (net, server, client) = try makeNetwork { $0.deadlockTimeout = .milliseconds(50) }
        do {
            try await net.run {
                let listener = try ListenSocket.listen(port: 7, options: passive, driver: .sim(net, host: server))
                net.spawn { _ = try await listener.accept().recv(0) }
                let c = try await Socket.connect("server", port: 7, options: passive, driver: .sim(net, host: client))
                // Both sides wait for the other: nothing can ever happen.
                _ = try await c.recv(0)
            }
            Issue.record("the run returned")
        } catch let error as SimDeadlock {
            // Everything stopped when the connection came up.
            #expect(error.virtualTime == 2 * ms)
        }
        #expect(net.runtime.isPaused)
    }

    @Test func waitingOnTimersIsNotADeadlock() async throws {
        let (net, _, _) = try makeNetwork { $0.deadlockTimeout = .milliseconds(1) }
        let got = try await net.run { () -> Message? in
            // A long virtual wait is fine: a timer is pending all along.
            try await Process.receive(timeout: 3_600_000)
        }
        #expect(got == nil)
        #expect(net.now == 3_600_000 * ms)
    }
}
