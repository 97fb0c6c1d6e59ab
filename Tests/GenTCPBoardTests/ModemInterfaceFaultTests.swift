import GenTCPBoard
import GenTCPCore
import GenTCPModem
import ModemSimulator
import Testing

/// An interface configuration that gives up quickly: two probes, a short pause before retrying.
private let quick = ModemInterfaceConfiguration(wifiSSID: "sim-net", wifiPassword: "secret", links: 2, probeAttempts: 2,
                                                probeInterval: 100, retryDelay: 1_000)

@Suite("ModemInterface: failures, closes and cellular modules", .serialized, .timeLimit(.minutes(5)))
struct ModemInterfaceFaultTests {
    @Test("a silent module: the bring-up gives up with down(etimedout)")
    func silentModule() async throws {
        let result: (down: Bool, up: Bool, last: SocketError?) = await offPool {
            let simulator = ModemSimulatorConfiguration.espAT(firmware: "3.3.0.0", seed: 5, faults: ModemFaults(silent: true))
            guard let rig = try? ESPRig(simulator: simulator, configuration: quick) else { return (false, false, nil) }
            rig.boot()
            let down = rig.run(seconds: 30) { $0.saw(.down(SocketError(.connectionTimedOut))) }
            return (down, rig.interface.isUp, rig.interface.lastDownReason)
        }
        #expect(result.down)
        #expect(!result.up)
        #expect(result.last == SocketError(.connectionTimedOut))
    }

    @Test("a module with no network address (not joined, no SSID given): down(enetunreach)")
    func notJoined() async throws {
        let result: (down: Bool, up: Bool) = await offPool {
            let simulator = ModemSimulatorConfiguration(dialect: .espAT, firmware: "3.3.0.0", localAddress: "0.0.0.0", seed: 5)
            var configuration = quick
            configuration.wifiSSID = nil
            guard let rig = try? ESPRig(simulator: simulator, configuration: configuration) else { return (false, false) }
            rig.boot()
            let down = rig.run(seconds: 30) { $0.saw(.down(SocketError(.networkUnreachable))) }
            return (down, rig.interface.isUp)
        }
        #expect(result.down)
        #expect(!result.up)
    }

    @Test("a module that falls silent mid-transfer: etimedout (not an end), down, and up again once it answers")
    func silenceMidTransfer() async throws {
        let upload = trickyBytes(64 * 1024, seed: 4)
        let server = LoopbackServer(.echo)
        let port = server.port
        let result: (Transfer, Bool) = await offPool {
            guard let rig = try? ESPRig(configuration: quick) else { return (Transfer(problem: "no rig"), false) }
            guard rig.bootAndWaitUp() else { return (Transfer(problem: "not up"), false) }
            guard case .success(let c) = rig.connect(port: port) else { return (Transfer(problem: "connect failed"), false) }
            let t = rig.transfer(c, upload: upload, expect: upload.count, seconds: 60, trigger: 8 * 1024) { rig in
                rig.bridge.modem.setSilent(true)
            }
            rig.interface.close(c, now: rig.now)
            rig.bridge.modem.setSilent(false)
            let upAgain = rig.run(seconds: 30) { $0.interface.isUp }
            return (t, upAgain)
        }
        let (t, upAgain) = result
        #expect(t.problem == nil)
        #expect(!t.end)
        #expect(t.error == SocketError(.connectionTimedOut))
        #expect(t.received == Array(upload[0..<t.received.count]))
        #expect(t.events.contains(.down(SocketError(.connectionTimedOut))))
        #expect(upAgain)
    }

    @Test("the line hangs up mid-transfer: eio (not an end) and down(eio)")
    func lineLost() async throws {
        let upload = trickyBytes(64 * 1024, seed: 6)
        let server = LoopbackServer(.echo)
        let port = server.port
        let result: (Transfer, Bool) = await offPool {
            guard let rig = try? ESPRig() else { return (Transfer(problem: "no rig"), false) }
            guard rig.bootAndWaitUp() else { return (Transfer(problem: "not up"), false) }
            guard case .success(let c) = rig.connect(port: port) else { return (Transfer(problem: "connect failed"), false) }
            let t = rig.transfer(c, upload: upload, expect: upload.count, seconds: 30, trigger: 8 * 1024) { rig in
                rig.bridge.close()
            }
            return (t, rig.interface.isUp)
        }
        let (t, up) = result
        #expect(t.problem == nil)
        #expect(!t.end)
        #expect(t.error == SocketError(.ioError))
        #expect(t.events.contains(.down(SocketError(.ioError))))
        #expect(!up)
    }

    @Test("close after send: the queued bytes still reach the peer before AT+CIPCLOSE")
    func gracefulClose() async throws {
        let data = trickyBytes(1460, seed: 7)
        let server = LoopbackServer(.echo)
        let port = server.port
        let problem: String? = await offPool {
            guard let rig = try? ESPRig() else { return "no rig" }
            guard rig.bootAndWaitUp() else { return "not up" }
            guard case .success(let c) = rig.connect(port: port) else { return "connect failed" }
            let taken = data.withUnsafeBytes { raw in (try? rig.interface.send(c, raw, now: rig.now)) ?? 0 }
            guard taken == data.count else { return "send took \(taken)" }
            rig.interface.close(c, now: rig.now)
            guard rig.run(seconds: 20, until: { _ in server.waitFinished(seconds: 0) }) else { return "the server never saw the close" }
            return nil
        }
        #expect(problem == nil)
        #expect(server.received == data.count)
    }

    @Test("SIM800 with an APN: bring-up (CIPMUX, CIPRXGET, CSTT, CIICR, CIFSR), 16 KiB echo, peer close")
    func sim800() async throws {
        let upload = trickyBytes(16 * 1024, seed: 8)
        let echo = LoopbackServer(.echo)
        let closing = LoopbackServer(.sendThenClose(upload))
        let (echoPort, closingPort) = (echo.port, closing.port)
        let result: (Transfer, Transfer) = await offPool {
            let configuration = ModemInterfaceConfiguration(apn: "internet", links: 2)
            guard let rig = try? ModemRig(dialect: SIM800Dialect(), simulator: .sim800(seed: 5), configuration: configuration) else {
                return (Transfer(problem: "no rig"), Transfer())
            }
            guard rig.bootAndWaitUp() else { return (Transfer(problem: "not up: \(String(describing: rig.interface.lastDownReason))"), Transfer()) }
            guard case .success(let c) = rig.connect(port: echoPort) else { return (Transfer(problem: "connect failed"), Transfer()) }
            let t = rig.transfer(c, upload: upload, expect: upload.count, seconds: 60)
            rig.interface.close(c, now: rig.now)
            guard case .success(let c2) = rig.connect(port: closingPort) else { return (t, Transfer(problem: "second connect failed")) }
            return (t, rig.transfer(c2, upload: [], expect: Int.max, seconds: 60))
        }
        let (t, down) = result
        #expect(t.problem == nil)
        #expect(t.error == nil)
        #expect(t.received == upload)
        #expect(down.problem == nil)
        #expect(down.error == nil)
        #expect(down.end)
        #expect(down.received == upload)
    }
}

/// Module faults that must not change a byte of the stream.
enum StreamFault: String, CaseIterable, Sendable {
    /// Output cut into 1...7-byte pieces with harmless URCs between messages.
    case noisy
    /// The module forgets passive receive after 8 KiB and pushes `+IPD,<id>,<len>:<data>`.
    case passiveReverts
    /// The module answers 5% of commands `busy p...` (ignoring them): the engine retries.
    case busy
    /// The first data notice (`+IPD,0,000…0n`) is longer than a line may be: lost.
    case overlongNotice

    var faults: ModemFaults {
        switch self {
        case .noisy: ModemFaults(maxFragmentLength: 7, noiseProbability: 0.1)
        case .passiveReverts: ModemFaults(passiveRevertsAfterBytes: 8 * 1024)
        case .busy: ModemFaults(spuriousBusyProbability: 0.05)
        case .overlongNotice: ModemFaults(overlongHeaders: ModemHeaderPadding(fill: .zeros, count: 400, headers: 1))
        }
    }
}

@Suite("ModemInterface: streams under module faults, flow control, BG96", .serialized, .timeLimit(.minutes(5)))
struct ModemInterfaceStreamTests {
    @Test("64 KiB echo and a 64 KiB download ending in the peer's close, byte-exact under module faults",
          arguments: StreamFault.allCases)
    func faultyStreams(_ fault: StreamFault) async throws {
        let upload = trickyBytes(64 * 1024, seed: 9)
        let download = trickyBytes(64 * 1024, seed: 10)
        let echo = LoopbackServer(.echo)
        let closing = LoopbackServer(.sendThenClose(download))
        let (echoPort, closingPort) = (echo.port, closing.port)
        let result: (Transfer, Transfer) = await offPool {
            let simulator = ModemSimulatorConfiguration.espAT(firmware: "3.3.0.0", seed: 11, faults: fault.faults)
            // Buffers as large as the module's pushes (2920 bytes) when it may push.
            let configuration = ModemInterfaceConfiguration(wifiSSID: "sim-net", links: 2, receiveBufferSize: 8192)
            guard let rig = try? ESPRig(simulator: simulator, configuration: configuration) else { return (Transfer(problem: "no rig"), Transfer()) }
            guard rig.bootAndWaitUp() else { return (Transfer(problem: "not up"), Transfer()) }
            guard case .success(let c) = rig.connect(port: closingPort) else { return (Transfer(problem: "connect failed"), Transfer()) }
            let down = rig.transfer(c, upload: [], expect: Int.max)
            rig.interface.close(c, now: rig.now)
            guard case .success(let c2) = rig.connect(port: echoPort) else { return (down, Transfer(problem: "second connect failed")) }
            let t = rig.transfer(c2, upload: upload, expect: upload.count)
            rig.interface.close(c2, now: rig.now)
            return (down, t)
        }
        let (down, t) = result
        #expect(down.problem == nil)
        #expect(down.error == nil)
        #expect(down.end)
        #expect(down.received == download)
        #expect(t.problem == nil)
        #expect(t.error == nil)
        #expect(t.received == upload)
    }

    @Test("a program that does not read: the module keeps the data, the buffer never holds more than its size")
    func flowControl() async throws {
        let download = trickyBytes(64 * 1024, seed: 12)
        let server = LoopbackServer(.sendThenClose(download))
        let port = server.port
        let result: (Transfer, Int) = await offPool {
            guard let rig = try? ESPRig() else { return (Transfer(problem: "no rig"), 0) }
            guard rig.bootAndWaitUp() else { return (Transfer(problem: "not up"), 0) }
            guard case .success(let c) = rig.connect(port: port) else { return (Transfer(problem: "connect failed"), 0) }
            // A second of turns without reading: the ring fills, the module holds the rest.
            var most = 0
            _ = rig.run(seconds: 1) { rig in
                most = max(most, rig.interface.readableCount(c))
                return false
            }
            var t = rig.transfer(c, upload: [], expect: Int.max)
            if rig.bridge.modem.statistics.bytesOut < 64 * 1024 { t.problem = "the module sent less than the stream" }
            return (t, most)
        }
        let (t, most) = result
        #expect(most > 0)
        #expect(most <= 1460)
        #expect(t.problem == nil)
        #expect(t.end)
        #expect(t.received == download)
    }

    @Test("BG96 with an APN: bring-up, 16 KiB echo, peer close")
    func bg96() async throws {
        let upload = trickyBytes(16 * 1024, seed: 13)
        let echo = LoopbackServer(.echo)
        let closing = LoopbackServer(.sendThenClose(upload))
        let (echoPort, closingPort) = (echo.port, closing.port)
        let result: (Transfer, Transfer) = await offPool {
            let configuration = ModemInterfaceConfiguration(apn: "internet", links: 2)
            guard let rig = try? ModemRig(dialect: BG96Dialect(), simulator: .bg96(seed: 5), configuration: configuration) else {
                return (Transfer(problem: "no rig"), Transfer())
            }
            guard rig.bootAndWaitUp() else { return (Transfer(problem: "not up: \(String(describing: rig.interface.lastDownReason))"), Transfer()) }
            guard case .success(let c) = rig.connect(port: echoPort) else { return (Transfer(problem: "connect failed"), Transfer()) }
            let t = rig.transfer(c, upload: upload, expect: upload.count, seconds: 60)
            rig.interface.close(c, now: rig.now)
            guard case .success(let c2) = rig.connect(port: closingPort) else { return (t, Transfer(problem: "second connect failed")) }
            return (t, rig.transfer(c2, upload: [], expect: Int.max, seconds: 60))
        }
        let (t, down) = result
        #expect(t.problem == nil)
        #expect(t.error == nil)
        #expect(t.received == upload)
        #expect(down.problem == nil)
        #expect(down.error == nil)
        #expect(down.end)
        #expect(down.received == upload)
    }
}

@Suite("ModemInterface: a cellular bearer lost mid-transfer", .timeLimit(.minutes(5)))
struct ModemInterfaceBearerTests {
    @Test("SIM800 loses its bearer (+PDP: DEACT) mid-transfer: enetdown (not an end), down, up again, a new connection works")
    func sim800BearerLost() async throws {
        let upload = trickyBytes(64 * 1024, seed: 30)
        let echo = LoopbackServer(.echo)
        let after = LoopbackServer(.sendThenClose(Array("again".utf8)))
        let (echoPort, afterPort) = (echo.port, after.port)
        let result: (Transfer, Transfer) = await offPool {
            let configuration = ModemInterfaceConfiguration(apn: "internet", links: 2)
            guard let rig = try? ModemRig(dialect: SIM800Dialect(), simulator: .sim800(seed: 5), configuration: configuration),
                  rig.bootAndWaitUp() else { return (Transfer(problem: "not up"), Transfer()) }
            guard case .success(let c) = rig.connect(port: echoPort) else { return (Transfer(problem: "connect failed"), Transfer()) }
            let t = rig.transfer(c, upload: upload, expect: upload.count, seconds: 60, trigger: 8 * 1024) { rig in
                rig.bridge.modem.dropBearer()
            }
            rig.interface.close(c, now: rig.now)
            let upAgain = rig.run(seconds: 60) { rig in
                rig.interface.isUp && rig.events.lastIndex(of: .up)! > (rig.events.firstIndex { if case .down = $0 { true } else { false } } ?? Int.max)
            }
            guard upAgain, case .success(let c2) = rig.connect(port: afterPort) else {
                return (t, Transfer(problem: "no second connection: \(String(describing: rig.interface.lastDownReason))"))
            }
            return (t, rig.transfer(c2, upload: [], expect: Int.max, seconds: 30))
        }
        let (t, second) = result
        #expect(t.problem == nil)
        #expect(!t.end)
        #expect(t.error == SocketError(.networkDown))
        #expect(t.received == Array(upload[0..<t.received.count]))
        #expect(t.events.contains(.down(SocketError(.networkDown))))
        #expect(second.problem == nil)
        #expect(second.end)
        #expect(second.received == Array("again".utf8))
    }
}
