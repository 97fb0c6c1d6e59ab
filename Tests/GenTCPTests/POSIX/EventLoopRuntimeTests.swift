import CGenTCPShims
import Foundation
import GenTCP
import GenTCPCore
@testable import GenTCPPOSIX
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `EventLoopRuntime`: processes that run on the event loop's thread, the one that waits for
/// readiness (issue 14: a round trip with no thread switch). The whole conformance suite also runs
/// on it (backend `posix-loop`); these cases check what is particular to it.
@Suite("posix: processes on the event loop")
struct EventLoopRuntimeTests {
    /// (client on the loop, echo server on the loop, driver on the loop): both ends there, one end
    /// there with the other on the pool, and loop processes using a default driver's sockets.
    static let placements: [(Bool, Bool, Bool)] = [(true, true, true), (false, true, true), (true, false, false), (true, true, false)]

    @Test("ping-pong with ends on the loop or the pool: every byte back, in order; loop processes resume on the loop's thread after every wait",
          arguments: placements)
    func pingPong(clientOnLoop: Bool, serverOnLoop: Bool, driverOnLoop: Bool) async throws {
        let loop = EventLoopRuntime.shared
        let driver = driverOnLoop ? POSIXDriver(runtime: loop) : POSIXDriver()
        let offLoop = Atomic<Int>(0)
        @Sendable func check(_ onLoop: Bool) {
            if onLoop && !Reactor.onLoopThread { offLoop.add(1, ordering: .relaxed) }
        }
        try await Process.run(runtime: clientOnLoop ? loop : RealRuntime.shared) {
            check(clientOnLoop)
            let listener = try ListenSocket.listen(
                port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)], driver: driver)
            defer { listener.close() }
            let port = try listener.port()
            let echo = Process.spawn(runtime: serverOnLoop ? loop : RealRuntime.shared) {
                let s = try await listener.accept(timeout: 60_000)
                defer { s.close() }
                check(serverOnLoop)
                try s.setopts(.nodelay(true))
                while true {
                    let got = try await s.recv(0, timeout: 60_000)
                    check(serverOnLoop)
                    try await s.send(got.bytes)
                    check(serverOnLoop)
                }
            }
            let c = try await Socket.connect(
                "127.0.0.1", port: port, options: [.binary, .active(.passive), .nodelay(true)], timeout: 60_000, driver: driver)
            defer { c.close() }
            check(clientOnLoop)
            try await POSIXBriefWaitTests.roundTrips(on: c) { check(clientOnLoop) }
            c.close()
            let reason = await echo.waitForExit()
            #expect(reason != .normal, "the echo ends with the client's close (closed)")
        }
        #expect(offLoop.load(ordering: .relaxed) == 0, "a loop process ran off the loop's thread")
    }

    @Test("the loop never takes a brief wait (it would stall every process on it); a pool thread is not the loop")
    func noBriefWaitOnLoop() async throws {
        #expect(!Reactor.onLoopThread)
        @Sendable func granted(_ reactor: Reactor) -> Bool {
            let yes = reactor.beginBriefWait(for: 1 << 60)
            if yes { reactor.endBriefWait() }
            return yes
        }
        let refused = try await Process.run(runtime: EventLoopRuntime.shared) {
            (Reactor.onLoopThread, granted(Reactor.loop), granted(Reactor.shared))
        }
        #expect(refused.0, "the process ran on the loop's thread")
        #expect(!refused.1 && !refused.2, "a brief wait was granted on the loop")
    }

    @Test("work from other threads wakes an idle loop: a timer, and a plain thread resuming a waiting process")
    func wakesFromOtherThreads() async throws {
        let loop = EventLoopRuntime.shared
        let result = try await Process.run(runtime: loop) {
            // Let the loop go idle (its spin backs off, it sleeps in epoll_wait).
            let start = loop.now
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                _ = loop.schedule(afterNanoseconds: 200_000_000) { c.resume() }
            }
            let afterTimer = (Reactor.onLoopThread, Double(loop.now &- start) / 1e6)
            let value = await withUnsafeContinuation { (c: UnsafeContinuation<Int, Never>) in
                Thread {
                    usleep(100_000)
                    c.resume(returning: 42)
                }.start()
            }
            return (afterTimer, Reactor.onLoopThread, value)
        }
        #expect(result.0.0, "resumed on the loop after the timer")
        #expect(result.0.1 >= 200, "the timer fired early: \(result.0.1) ms")
        #expect(result.1 && result.2 == 42, "resumed on the loop by the other thread")
    }
}
