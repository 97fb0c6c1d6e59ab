@testable import GenTCP
import GenTCPCore
import Testing

/// How a blocking call made in a helper process or child task ended, sent to the test process.
struct CallEnded: Sendable {
    var tag: String
    var error: SocketError?
    var bytes: [UInt8] = []
}

/// Runs `body` and sends how it ended to `process` (a killed process's code runs on until its
/// blocked call returns: the report comes after the kill).
func report(_ tag: String, to process: Process, _ body: () async throws(SocketError) -> [UInt8]) async {
    do throws(SocketError) {
        process.send(CallEnded(tag: tag, error: nil, bytes: try await body()))
    } catch {
        process.send(CallEnded(tag: tag, error: error))
    }
}

/// Polls `condition` on the backend's clock until it holds; false when `milliseconds` pass first.
func eventually(_ ctx: TestContext, within milliseconds: Int = 5000, _ condition: () -> Bool) async -> Bool {
    var waited = 0
    while !condition() {
        if waited >= milliseconds { return false }
        await ctx.sleep(2)
        waited += 2
    }
    return true
}

/// Runs `body` in a child task of the calling process, cancels it once `ready` holds (the call
/// is parked), and returns how it ended and how long it took to end after the cancel, in ms of
/// the backend's clock.
func cancelWhenParked<T: Sendable>(
    _ ctx: TestContext, ready: () -> Bool,
    _ body: @escaping @Sendable () async throws(SocketError) -> T
) async throws -> (result: Result<T, SocketError>, parked: Bool, milliseconds: Double) {
    try await withThrowingTaskGroup(of: Result<T, SocketError>.self) { group in
        group.addTask {
            do throws(SocketError) { return .success(try await body()) } catch { return .failure(error) }
        }
        let parked = await eventually(ctx, ready)
        let start = ctx.now
        group.cancelAll()
        let result = try #require(try await group.next())
        return (result, parked, ctx.elapsedMilliseconds(since: start))
    }
}

extension Conformance {
    /// Issue 10: processes that can be killed, and Swift task cancellation. Erlang's
    /// `exit(Pid, kill)` ends a process whatever it does: its sockets close and its pending calls
    /// are dropped. Swift adds task cancellation, which Erlang has not: a cancelled call ends
    /// with `cancelled` (GenTCP's own reason) and leaves what it had not taken for the next caller.
    @Suite("L Kill and cancellation")
    struct KillAndCancel {
        @Test("L81 kill ends a recv the killed process waits in; its bytes stay for the next reader", arguments: Backend.all)
        func killDuringRecv(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let me = Process.current
                let reader = Process.spawn(runtime: ctx.runtime) {
                    await report("reader", to: me) { () async throws(SocketError) -> [UInt8] in try await c.recv(8).bytes }
                }
                #expect(await eventually(ctx) { c.state.withLock { $0.recvWaiter != nil } }, "the reader never waited")
                try await p.send("abc")
                // The reader has gathered the first bytes of its exact read.
                #expect(await eventually(ctx) { c.state.withLock { $0.recvWaiter?.filled == 3 } })
                let start = ctx.now
                reader.kill()
                #expect(!reader.isAlive)
                #expect(await ctx.waitForExit(reader) == .killed)
                let ended = try #require(await nextUser(CallEnded.self))
                #expect(ended.error == .cancelled)
                #expect(ctx.elapsedMilliseconds(since: start) < 1000)
                // The slot is free (OTP would say ealready here), and nothing was lost.
                try await p.send("defgh")
                #expect(try await c.recv(8, timeout: 30_000) == bin("abcdefgh"))
                // The killed process did not own C: it still works both ways.
                try await c.send("ok")
                #expect(try await p.recv(2, timeout: 30_000) == bin("ok"))
                c.close()
                p.close()
            }
        }

        @Test("L82 kill while blocked in Process.receive: its sockets and listener close, the receive ends", arguments: Backend.all)
        func killDuringReceive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                let port = try l.port()
                let me = Process.current
                let owner = Process.spawn(runtime: ctx.runtime) {
                    let c = try await ctx.connect(port: port, [.binary, .active(.passive)])
                    let l2 = try ctx.listen()
                    me.send(c)
                    me.send(l2)
                    await report("receive", to: me) { () async throws(SocketError) -> [UInt8] in
                        _ = try await Process.receive()
                        return []
                    }
                    // The dead process's code runs on, but may not wait for anything again.
                    await report("accept after death", to: me) { () async throws(SocketError) -> [UInt8] in
                        _ = try await l.accept(timeout: 30_000)
                        return []
                    }
                }
                let p = try await l.accept(timeout: 30_000)
                let c = try #require(await nextUser(Socket.self))
                let l2 = try #require(await nextUser(ListenSocket.self))
                #expect(await eventually(ctx) { owner.mailbox.hasReceiver }, "the owner never waited")
                // A third process waits in recv on the owner's socket.
                let reader = ctx.spawn { () async -> SocketError? in
                    do throws(SocketError) { _ = try await c.recv(0, timeout: 5000); return nil } catch { return error }
                }
                #expect(await eventually(ctx) { c.state.withLock { $0.recvWaiter != nil } })
                owner.kill()
                #expect(await ctx.waitForExit(owner) == .killed)
                #expect(try #require(await nextUser(CallEnded.self)).error == .cancelled)
                let after = try #require(await nextUser(CallEnded.self))
                #expect(after.tag == "accept after death" && after.error == .cancelled)
                #expect(try await reader.value() == .closed)
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                await #expect(throws: SocketError.closed) { try await c.send("x") }
                await #expect(throws: SocketError.closed) { _ = try await l2.accept(timeout: 100) }
                // A message to a dead process is dropped.
                owner.send("late")
                #expect(owner.messageCount == 0)
                p.close()
                l.close()
            }
        }

        @Test("L83 three acceptors, one killed, two connections: both live acceptors get one (OTP)", arguments: Backend.all)
        func killOneOfThreeAcceptors(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                let port = try l.port()
                let me = Process.current
                var acceptors: [Process] = []
                for tag in ["first", "second", "third"] {
                    acceptors.append(Process.spawn(runtime: ctx.runtime) {
                        await report(tag, to: me) { () async throws(SocketError) -> [UInt8] in
                            let s = try await l.accept()
                            guard s.controllingProcess == Process.current else { return [] }
                            return try await s.recv(1, timeout: 5000).bytes
                        }
                    })
                    // Queued in this order: the killed one is first in line.
                    let queued = acceptors.count
                    #expect(await eventually(ctx) { l.state.withLock { $0.acceptors.count } == queued })
                }
                acceptors[0].kill()
                #expect(l.state.withLock { $0.acceptors.count } == 2, "the dead acceptor's accept is withdrawn at once")
                let killed = try #require(await nextUser(CallEnded.self))
                #expect(killed.tag == "first" && killed.error == .cancelled)
                let c1 = try await ctx.connect(port: port, [.binary, .active(.passive)])
                let c2 = try await ctx.connect(port: port, [.binary, .active(.passive)])
                try await c1.send("1")
                try await c2.send("2")
                var served: [String: [UInt8]] = [:]
                for _ in 0..<2 {
                    let ended = try #require(await nextUser(CallEnded.self, 5000))
                    #expect(ended.error == nil, "\(ended.tag): \(String(describing: ended.error))")
                    served[ended.tag] = ended.bytes
                }
                #expect(Set(served.keys) == ["second", "third"])
                #expect(Set(served.values) == [bytes("1"), bytes("2")])
                c1.close()
                c2.close()
                l.close()
            }
        }

        @Test("L84 a cancelled accept is withdrawn; the next acceptor gets the connection", arguments: Backend.all)
        func cancelAccept(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                let port = try l.port()
                let me = Process.current
                try await withThrowingTaskGroup(of: Result<Socket, SocketError>.self) { group in
                    group.addTask {
                        do throws(SocketError) { return .success(try await l.accept()) } catch { return .failure(error) }
                    }
                    #expect(await eventually(ctx) { l.state.withLock { $0.acceptors.count } == 1 })
                    // The accept to be cancelled is first in line; a second acceptor waits behind it.
                    Process.spawn(runtime: ctx.runtime) {
                        await report("second", to: me) { () async throws(SocketError) -> [UInt8] in
                            let s = try await l.accept(timeout: 5000)
                            return try await s.recv(1, timeout: 5000).bytes
                        }
                    }
                    #expect(await eventually(ctx) { l.state.withLock { $0.acceptors.count } == 2 })
                    let start = ctx.now
                    group.cancelAll()
                    let result = try #require(try await group.next())
                    #expect(throws: SocketError.cancelled) { try result.get() }
                    #expect(ctx.elapsedMilliseconds(since: start) < 1000)
                    #expect(l.state.withLock { $0.acceptors.count } == 1)
                }
                let c = try await ctx.connect(port: port, [.binary, .active(.passive)])
                try await c.send("x")
                let ended = try #require(await nextUser(CallEnded.self, 5000))
                #expect(ended.tag == "second" && ended.error == nil && ended.bytes == bytes("x"))
                // The cancelling process lives on and accepts as before.
                let c2 = try await ctx.connect(port: port, [.binary, .active(.passive)])
                let p2 = try await l.accept(timeout: 30_000)
                try await c2.send("y")
                #expect(try await p2.recv(1, timeout: 30_000) == bin("y"))
                for s in [c, c2, p2] { s.close() }
                l.close()
            }
        }

        @Test("L85 a cancelled recv ends at once; the next recv gets every byte", arguments: Backend.all)
        func cancelRecv(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await p.send("abc")
                let outcome = try await cancelWhenParked(ctx, ready: {
                    c.state.withLock { $0.recvWaiter?.filled == 3 }
                }) { () async throws(SocketError) -> Payload in try await c.recv(6) }
                #expect(outcome.parked, "the recv never gathered the first bytes")
                #expect(throws: SocketError.cancelled) { try outcome.result.get() }
                #expect(outcome.milliseconds < 1000)
                try await p.send("def")
                #expect(try await c.recv(6, timeout: 30_000) == bin("abcdef"))
                // A task cancelled before it calls: bytes already there are returned (here kept
                // by a timed-out exact recv), an empty socket is not waited on.
                try await p.send("g")
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(2, timeout: 1000) }
                let early = await withTaskGroup(of: [Result<Payload, SocketError>].self) { group in
                    group.addTask {
                        withUnsafeCurrentTask { $0?.cancel() }
                        var results: [Result<Payload, SocketError>] = []
                        for _ in 0..<2 {
                            do throws(SocketError) { results.append(.success(try await c.recv(0, timeout: 5000))) } catch { results.append(.failure(error)) }
                        }
                        return results
                    }
                    return await group.next() ?? []
                }
                #expect(early.count == 2)
                if early.count == 2 {
                    #expect(try early[0].get() == bin("g"))
                    #expect(throws: SocketError.cancelled) { try early[1].get() }
                }
                c.close()
                p.close()
            }
        }

        @Test("L86 a cancelled send blocked on a full window ends at once; the stream goes on", arguments: Backend.all)
        func cancelSend(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let big = [UInt8](repeating: 1, count: 16 << 20)
                let outcome = try await cancelWhenParked(ctx, ready: {
                    ((try? c.getstat().sendPend) ?? 0) > 0
                }) { () async throws(SocketError) -> Void in try await c.send(big) }
                #expect(outcome.parked, "the send never blocked")
                #expect(throws: SocketError.cancelled) { try outcome.result.get() }
                #expect(outcome.milliseconds < 1000)
                // What the driver took is still delivered, then the next send, whole.
                let reader = ctx.spawn { () async throws -> (ones: Int, tail: [UInt8]) in
                    var ones = 0
                    var tail: [UInt8] = []
                    while tail != bytes("END") {
                        for b in try await p.recv(0, timeout: 10_000).bytes {
                            if b == 1 && tail.isEmpty { ones += 1 } else { tail.append(b) }
                        }
                    }
                    return (ones, tail)
                }
                try await c.send("END")
                let got = try await reader.value(within: 60_000)
                #expect(got.ones > 0 && got.ones < big.count)
                #expect(got.tail == bytes("END"))
                c.close()
                p.close()
            }
        }

        @Test("L87 a cancelled connect ends at once; a connection completing later is closed", arguments: Backend.all)
        func cancelConnect(_ backend: Backend) async throws {
            try await backend.run { ctx in
                // As in A9: a listener whose accept queue is full drops the SYN.
                let l = try ctx.listen([.binary, .active(.passive), .backlog(0)])
                let port = try l.port()
                var held: [Socket] = []
                for _ in 0..<8 {
                    do throws(SocketError) {
                        held.append(try await ctx.connect(port: port, [.active(.passive)], timeout: 200))
                    } catch {
                        break
                    }
                }
                // The connect has no limit of its own; only the cancel ends it. Nothing shows
                // that it waits, so give it 100 ms of the backend's clock.
                try await withThrowingTaskGroup(of: Result<Socket, SocketError>.self) { group in
                    group.addTask {
                        do throws(SocketError) {
                            return .success(try await ctx.connect(port: port, [.binary, .active(.active)], timeout: .infinity))
                        } catch { return .failure(error) }
                    }
                    await ctx.sleep(100)
                    let start = ctx.now
                    group.cancelAll()
                    let result = try #require(try await group.next())
                    #expect(throws: SocketError.cancelled) { try result.get() }
                    #expect(ctx.elapsedMilliseconds(since: start) < 1000)
                }
                #expect(Process.current.messageCount == 0)
                for c in held { c.close() }
                // Room in the queue: the SYN the cancelled connect still retries may now complete;
                // that connection is closed by the port, never handed to anyone.
                var accepted: [Socket] = []
                while let p = try? await l.accept(timeout: 3000) {
                    accepted.append(p)
                }
                // Every connection accepted ends: the held ones were closed by their clients, a late
                // one by the port.
                for p in accepted {
                    await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 5000) }
                }
                #expect(accepted.count > held.count, "the cancelled connect's SYN never completed")
                #expect(Process.current.messageCount == 0, "no message from a connection nobody owns")
                for p in accepted { p.close() }
                l.close()
            }
        }

        @Test("L88 a cancelled Process.receive ends at once and takes nothing", arguments: Backend.all)
        func cancelReceive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let me = Process.current
                me.send("unwanted")
                let outcome = try await cancelWhenParked(ctx, ready: { me.mailbox.hasReceiver }) {
                    () async throws(SocketError) -> Message? in
                    try await Process.receive(where: { m in
                        if case .user(let v) = m { return (v as? String) == "wanted" }
                        return false
                    })
                }
                #expect(outcome.parked)
                #expect(throws: SocketError.cancelled) { try outcome.result.get() }
                #expect(outcome.milliseconds < 1000)
                me.send("wanted")
                #expect(await next() == .user("unwanted"))
                #expect(await next() == .user("wanted"))
            }
        }

        @Test("L89 exit(Pid, normal) is ignored by another process; other reasons end it", arguments: Backend.all)
        func exitReasons(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let me = Process.current
                let target = Process.spawn(runtime: ctx.runtime) {
                    _ = try #require(await nextUser(Socket.self, 5000))
                    me.send("owner")
                    _ = await nextUser(Int.self, 60_000)
                }
                // Hand C to the target.
                try c.controllingProcess(target)
                target.send(c)
                #expect(await nextUser(String.self) == "owner")
                Process.exit(target, reason: .normal)
                #expect(target.isAlive)
                #expect(c.controllingProcess == target)
                Process.exit(target, reason: .error("shutdown"))
                #expect(await ctx.waitForExit(target) == .error("shutdown"))
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                // A process may end itself with normal: its sockets close, its waits end.
                let l = try ctx.listen()
                let selfExit = Process.spawn(runtime: ctx.runtime) {
                    Process.exit(Process.current, reason: .normal)
                    await report("after self-exit", to: me) { () async throws(SocketError) -> [UInt8] in
                        _ = try await l.accept(timeout: 30_000)
                        return []
                    }
                }
                #expect(await ctx.waitForExit(selfExit) == .normal)
                #expect(try #require(await nextUser(CallEnded.self)).error == .cancelled)
                // The root process never exits.
                Process.root.kill()
                #expect(Process.root.isAlive)
                c.close()
                p.close()
                l.close()
            }
        }

        @Test("L90 cancelling a Process.run caller cancels the process's waiting calls", arguments: Backend.all)
        func cancelProcessRun(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let outcome = try await cancelWhenParked(ctx, ready: {
                    c.state.withLock { $0.recvWaiter != nil }
                }) { () async throws(SocketError) -> Payload in
                    do {
                        return try await Process.run(runtime: ctx.runtime) { try await c.recv(0) }
                    } catch let error as SocketError {
                        throw error
                    } catch {
                        throw SocketError(.badArgument, "not a socket error")
                    }
                }
                #expect(outcome.parked)
                #expect(throws: SocketError.cancelled) { try outcome.result.get() }
                try await p.send("z")
                #expect(try await c.recv(1, timeout: 30_000) == bin("z"))
                c.close()
                p.close()
            }
        }
    }
}
