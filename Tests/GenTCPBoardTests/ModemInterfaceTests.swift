import GenTCPBoard
import GenTCPCore
import GenTCPModem
import ModemSimulator
import Testing

/// What one transfer through the interface saw.
struct Transfer: Sendable {
    var received: [UInt8] = []
    var sent = 0
    var end = false
    var error: SocketError?
    var events: [InterfaceEvent] = []
    var problem: String?
}

extension ModemRig {
    /// Sends `upload` and reads until `expect` bytes came, the stream ended or failed, or
    /// `seconds` passed. `whenReceived` runs once after `trigger` bytes were read.
    func transfer(_ c: InterfaceConnection, upload: [UInt8], expect: Int, seconds: Double = 120,
                  trigger: Int = Int.max, whenReceived: (ModemRig<D>) -> Void = { _ in }) -> Transfer {
        var t = Transfer()
        var buffer = [UInt8](repeating: 0, count: 700)
        var triggered = false
        let finished = run(seconds: seconds) { rig in
            if t.sent < upload.count {
                let sent: Result<Int, SocketError> = upload[t.sent...].withUnsafeBytes { raw in
                    do throws(SocketError) {
                        return .success(try rig.interface.send(c, raw, now: rig.now))
                    } catch {
                        return .failure(error)
                    }
                }
                switch sent {
                case .success(let n): t.sent += n
                case .failure(let error):
                    t.error = error
                    return true
                }
            }
            while true {
                let result: Result<InterfaceRead, SocketError> = buffer.withUnsafeMutableBytes { raw in
                    do throws(SocketError) {
                        return .success(try rig.interface.recv(c, into: raw, now: rig.now))
                    } catch {
                        return .failure(error)
                    }
                }
                guard case .success(let read) = result else {
                    if case .failure(let error) = result { t.error = error }
                    return true
                }
                switch read {
                case .data(let n):
                    t.received += buffer[0..<n]
                    if !triggered && t.received.count >= trigger {
                        triggered = true
                        whenReceived(rig)
                    }
                    continue
                case .end:
                    t.end = true
                    return true
                case .wouldBlock:
                    break
                }
                break
            }
            return t.received.count >= expect && t.sent == upload.count
        }
        if !finished { t.problem = "no result within \(seconds) s: sent \(t.sent), received \(t.received.count)" }
        t.events = events
        return t
    }
}

@Suite("ModemInterface on the simulated ESP-AT module", .serialized, .timeLimit(.minutes(5)))
struct ModemInterfaceTests {
    @Test("bring-up: AT, ATE0, version, CIPMUX, passive receive, Wi-Fi join, address; then up",
          arguments: ["2.2.0.0", "3.3.0.0"])
    func bringUp(firmware: String) async throws {
        let result: (up: Bool, events: [InterfaceEvent], local: IPAddress, passive: Bool) = await offPool {
            guard let rig = try? ESPRig(simulator: .espAT(firmware: firmware, seed: 5)) else { return (false, [], .anyV4, false) }
            let up = rig.bootAndWaitUp()
            let dialect = rig.interface.engine.dialect
            return (up, rig.events, rig.interface.localAddress, dialect.passiveReceive && dialect.multiplexed)
        }
        #expect(result.up)
        #expect(result.passive)
        #expect(result.events.contains(.up))
        #expect(!result.events.contains { if case .down = $0 { true } else { false } })
        #expect(result.local == IPAddress(192, 168, 4, 2))
    }

    @Test("before up: connect is enetdown; listen, accept and shutdown are enotsup")
    func refusedCalls() throws {
        var interface = ModemInterface(dialect: ESPATDialect())
        #expect(!interface.isUp)
        #expect(throws: SocketError(.networkDown)) {
            _ = try interface.connect(to: .loopbackV4, port: 7, settings: InterfaceSettings(), now: 0)
        }
        #expect(throws: SocketError(.notSupported)) {
            _ = try interface.listen(port: 7, backlog: 1, settings: InterfaceSettings())
        }
        #expect(throws: SocketError(.notSupported)) {
            _ = try interface.accept(InterfaceListener(raw: 0))
        }
        #expect(interface.nextEvent() == nil)
    }

    @Test("64 KiB each way byte-exact through a loopback echo server; shutdown is enotsup; close")
    func echo() async throws {
        let upload = trickyBytes(64 * 1024, seed: 1)
        let server = LoopbackServer(.echo)
        let port = server.port
        let result: (Transfer, SocketError?, Bool) = await offPool {
            guard let rig = try? ESPRig() else { return (Transfer(problem: "no rig"), nil, false) }
            guard rig.bootAndWaitUp() else { return (Transfer(problem: "not up"), nil, false) }
            guard case .success(let c) = rig.connect(port: port) else { return (Transfer(problem: "connect failed"), nil, false) }
            let t = rig.transfer(c, upload: upload, expect: upload.count)
            var shutdownError: SocketError?
            do throws(SocketError) { try rig.interface.shutdown(c, now: rig.now) } catch { shutdownError = error }
            let unsent = rig.interface.unsentCount(c)
            rig.interface.close(c, now: rig.now)
            // The server sees the close (AT+CIPCLOSE) and finishes.
            _ = rig.run(seconds: 10) { _ in server.waitFinished(seconds: 0) }
            return (t, shutdownError, unsent == 0)
        }
        let (t, shutdownError, drained) = result
        #expect(t.problem == nil)
        #expect(t.error == nil)
        #expect(t.sent == upload.count)
        #expect(t.received.count == upload.count)
        #expect(t.received == upload)
        #expect(shutdownError == SocketError(.notSupported))
        #expect(drained)
        #expect(server.waitFinished(seconds: 10))
        #expect(server.received == upload.count)
    }

    @Test("peer close: 64 KiB down byte-exact, then end (never a failure)")
    func peerClose() async throws {
        let download = trickyBytes(64 * 1024, seed: 2)
        let server = LoopbackServer(.sendThenClose(download))
        let port = server.port
        let t: Transfer = await offPool {
            guard let rig = try? ESPRig() else { return Transfer(problem: "no rig") }
            guard rig.bootAndWaitUp() else { return Transfer(problem: "not up") }
            guard case .success(let c) = rig.connect(port: port) else { return Transfer(problem: "connect failed") }
            var t = rig.transfer(c, upload: [], expect: Int.max)
            // Reading after the end gives the end again; the handle is stale after close.
            var buffer = [UInt8](repeating: 0, count: 16)
            let again = try? buffer.withUnsafeMutableBytes { raw throws(SocketError) in
                try rig.interface.recv(c, into: raw, now: rig.now)
            }
            if again != .end { t.problem = "a second recv after the end gave \(String(describing: again))" }
            rig.interface.close(c, now: rig.now)
            if rig.interface.readableCount(c) != 0 || rig.interface.peer(c) != nil { t.problem = "the handle is not stale" }
            return t
        }
        #expect(t.problem == nil)
        #expect(t.error == nil)
        #expect(t.end)
        #expect(t.received.count == download.count)
        #expect(t.received == download)
        #expect(!t.events.contains { if case .failed = $0 { true } else { false } })
    }

    @Test("a refused connect fails with econnrefused; the link is free again")
    func refused() async throws {
        let port = LoopbackServer.refusingPort()
        let server = LoopbackServer(.sendThenClose(Array("after".utf8)))
        let serverPort = server.port
        let result: (SocketError?, Transfer) = await offPool {
            guard let rig = try? ESPRig(configuration: ModemInterfaceConfiguration(wifiSSID: "sim-net", links: 1)) else {
                return (nil, Transfer(problem: "no rig"))
            }
            guard rig.bootAndWaitUp() else { return (nil, Transfer(problem: "not up")) }
            guard case .failure(let error) = rig.connect(port: port) else { return (nil, Transfer(problem: "connected")) }
            // The one link is reused once the failed connection is closed.
            let events = rig.events
            for case .failed(let c, _) in events { rig.interface.close(c, now: rig.now) }
            guard case .success(let c) = rig.connect(port: serverPort) else { return (error, Transfer(problem: "second connect failed")) }
            return (error, rig.transfer(c, upload: [], expect: Int.max, seconds: 30))
        }
        #expect(result.0 == SocketError(.connectionRefused))
        #expect(result.1.problem == nil)
        #expect(result.1.end)
        #expect(result.1.received == Array("after".utf8))
    }

    @Test("a module reset mid-transfer fails the connection with econnaborted (not an end); the interface comes up again")
    func resetMidTransfer() async throws {
        let upload = trickyBytes(64 * 1024, seed: 3)
        let server = LoopbackServer(.echo)
        let port = server.port
        let after = LoopbackServer(.sendThenClose(Array("again".utf8)))
        let afterPort = after.port
        let result: (Transfer, Transfer) = await offPool {
            guard let rig = try? ESPRig() else { return (Transfer(problem: "no rig"), Transfer()) }
            guard rig.bootAndWaitUp() else { return (Transfer(problem: "not up"), Transfer()) }
            guard case .success(let c) = rig.connect(port: port) else { return (Transfer(problem: "connect failed"), Transfer()) }
            let t = rig.transfer(c, upload: upload, expect: upload.count, trigger: 8 * 1024) { rig in rig.bridge.modem.reset() }
            rig.interface.close(c, now: rig.now)
            // Up again after the restart, and a new connection works.
            let upAgain = rig.run(seconds: 30) { rig in
                rig.interface.isUp && rig.events.lastIndex(of: .up)! > (rig.events.firstIndex { if case .down = $0 { true } else { false } } ?? Int.max)
            }
            guard upAgain, case .success(let c2) = rig.connect(port: afterPort) else {
                return (t, Transfer(problem: "no second connection after the restart"))
            }
            return (t, rig.transfer(c2, upload: [], expect: Int.max, seconds: 30))
        }
        let (t, second) = result
        #expect(t.problem == nil)
        #expect(!t.end)
        #expect(t.error == SocketError(.connectionAborted))
        #expect(t.received.count < upload.count)
        #expect(t.received == Array(upload[0..<t.received.count]))
        #expect(t.events.contains { if case .failed(_, let e) = $0 { e == SocketError(.connectionAborted) } else { false } })
        #expect(t.events.contains(.down(SocketError(.connectionAborted))))
        #expect(second.problem == nil)
        #expect(second.end)
        #expect(second.received == Array("again".utf8))
    }
}

@Suite("ModemInterface: two links at once", .timeLimit(.minutes(5)))
struct ModemInterfaceTwoLinkTests {
    @Test("two connections echo 32 KiB each at the same time, byte-exact")
    func twoAtOnce() async throws {
        let uploads = [trickyBytes(32 * 1024, seed: 20), trickyBytes(32 * 1024, seed: 21)]
        let servers = [LoopbackServer(.echo), LoopbackServer(.echo)]
        let ports = servers.map(\.port)
        let result: [[UInt8]]? = await offPool {
            guard let rig = try? ESPRig(), rig.bootAndWaitUp() else { return nil }
            var connections: [InterfaceConnection] = []
            for port in ports {
                guard case .success(let c) = rig.connect(port: port) else { return nil }
                connections.append(c)
            }
            var sent = [0, 0]
            var received: [[UInt8]] = [[], []]
            var buffer = [UInt8](repeating: 0, count: 500)
            let done = rig.run(seconds: 120) { rig in
                for i in 0..<2 {
                    let c = connections[i]
                    if sent[i] < uploads[i].count {
                        let n = uploads[i][sent[i]...].withUnsafeBytes { raw in (try? rig.interface.send(c, raw, now: rig.now)) ?? 0 }
                        sent[i] += n
                    }
                    let read = buffer.withUnsafeMutableBytes { raw in try? rig.interface.recv(c, into: raw, now: rig.now) }
                    if case .data(let n)? = read { received[i] += buffer[0..<n] }
                }
                return received[0].count >= uploads[0].count && received[1].count >= uploads[1].count
            }
            return done ? received : nil
        }
        #expect(result?[0] == uploads[0])
        #expect(result?[1] == uploads[1])
    }
}
