import GenTCP
import GenTCPModem
import GenTCPCore
import GenTCPSerial
import GenTCPAT
import GenTCPSim
import GenTCPWire
import ModemSimulator
import Testing

/// Output cut into 1...7-byte fragments, each delayed up to 200 µs, with URC noise.
private let noisy = ModemFaults(maxFragmentLength: 7, maxFragmentDelay: .microseconds(200), noiseProbability: 0.1)
/// Fragments and noise without delays, so the line (not the simulator's delays) sets the pace.
private let fragmented = ModemFaults(maxFragmentLength: 7, noiseProbability: 0.1)

/// Runs `body` on a fresh bench inside a simulated network.
private func onBench<T: Sendable>(
    baud: Int = 115_200, simulator: ModemSimulatorConfiguration = .espAT(firmware: "3.3.0.0"),
    driver: ATConfiguration = ATConfiguration(dialect: .espAT), seed: UInt64 = 3,
    _ body: @escaping @Sendable (ATBench) async throws -> T
) async throws -> T {
    try await ATBench.run(seed: seed, baud: baud, simulator: simulator, driver: driver, body)
}

@Suite("at driver on the modem simulator", .timeLimit(.minutes(5)))
struct ATDriverTests {
    @Test("echo through ESP-AT by host name", arguments: ["2.2.0.0", "3.3.0.0"])
    func echo(firmware: String) async throws {
        try await onBench(simulator: .espAT(firmware: firmware, faults: noisy)) { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            b.net.spawn {
                let s = try await listener.accept(timeout: .milliseconds(30_000))
                while let p = try? await s.recv(0, timeout: .milliseconds(30_000)) { try await s.send(p.bytes) }
                s.close()
            }
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            let message = Array("hello\r\nOK\r\n+IPD,0,3:>".utf8)
            try await s.send(message)
            var got: [UInt8] = []
            while got.count < message.count { got += try await s.recv(0, timeout: .milliseconds(10_000)).bytes }
            #expect(got == message)
            #expect(try s.peername().port == 7000)
            s.close()
            listener.close()
        }
    }

    @Test("1 MiB each way byte-exact over ESP-AT with fragmentation and URC noise; goodput",
          arguments: [115_200, 921_600])
    func mebibyte(baud: Int) async throws {
        let size = 1 << 20
        let upload = trickyBytes(size, seed: 1)
        let download = trickyBytes(size, seed: 2)
        try await onBench(baud: baud, simulator: .espAT(firmware: "3.3.0.0", faults: fragmented)) { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            let log = PeerLog()
            let runtime = b.net.runtime
            b.net.spawn {
                await uploadThenDownloadPeer(listener, runtime: runtime, expect: size, reply: download, log: log)
            }
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            let t0 = runtime.now
            try await s.send(upload)
            try await b.waitUntil("upload", .seconds(600)) { log.done }
            let t1 = runtime.now
            #expect(log.error == nil)
            #expect(log.received == size)
            #expect(log.hash == sha(upload))
            let down = await drainSocket(s, runtime: runtime)
            #expect(down.error == .closed)
            #expect(down.count == size)
            #expect(down.hash == sha(download))
            let line = Double(baud) / 10
            let up = Double(size) / (Double(t1 - t0) / 1e9) / line
            let dn = Double(size) / (Double(down.last - down.first) / 1e9) / line
            print("goodput esp-at \(baud) baud: upload \(up), download \(dn) of the line's \(Int(line)) B/s")
            #expect(up > 0.85)
            #expect(dn > 0.85)
            let stats = b.at.statistics
            #expect(stats.overflowBytes == 0)
            #expect(stats.framingErrors == 0)
            #expect(stats.largestReceiveBuffer <= SocketOptions.defaultBuffer)
            s.close()
            listener.close()
        }
    }
}

@Suite("at driver failures and limits", .timeLimit(.minutes(5)))
struct ATDriverFailureTests {
    @Test("peer close: every byte, then closed")
    func peerClose() async throws {
        let data = trickyBytes(20_000, seed: 5)
        try await onBench(simulator: .espAT(firmware: "2.2.0.0", faults: noisy)) { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            b.net.spawn {
                let s = try await listener.accept(timeout: .milliseconds(30_000))
                try await s.send(data)
                s.close()
            }
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            let down = await drainSocket(s, runtime: b.net.runtime, timeout: .milliseconds(60_000))
            #expect(down.count == data.count)
            #expect(down.hash == sha(data))
            #expect(down.error == .closed)
            // The link id is free again: a second connection works.
            b.net.spawn {
                let s2 = try await listener.accept(timeout: .milliseconds(30_000))
                try await s2.send(Array("again".utf8))
                s2.close()
            }
            let s2 = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                              timeout: .milliseconds(30_000), driver: b.at)
            let again = await drainSocket(s2, runtime: b.net.runtime, timeout: .milliseconds(30_000))
            #expect(again.count == 5)
            s.close()
            listener.close()
        }
    }

    @Test("1 MiB down through ESP-AT at 9600 baud is byte-exact: reads of 8 KiB take 9 s on the line, not a flat 5 s")
    func slowLine() async throws {
        let size = 1 << 20
        let data = trickyBytes(size, seed: 21)
        try await onBench(baud: 9_600, simulator: .espAT(firmware: "3.3.0.0")) { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            b.net.spawn {
                let s = try await listener.accept(timeout: .milliseconds(30_000))
                try await s.send(data)
                s.close()
            }
            // A buffer that lets one read ask for ESP-AT's largest answer (8 KiB).
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive), .buffer(8192)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            let down = await drainSocket(s, runtime: b.net.runtime, timeout: .milliseconds(60_000))
            #expect(down.count == size)
            #expect(down.hash == sha(data))
            #expect(down.error == .closed)
            #expect(b.at.statistics.engine.timeouts == 0)
            #expect(b.at.lastIncident == nil)
            s.close()
            listener.close()
        }
    }

    @Test("the serial line hanging up mid-download fails the socket with eio, never an end of stream")
    func lineHangUp() async throws {
        let data = trickyBytes(200_000, seed: 23)
        try await onBench(simulator: .espAT(firmware: "3.3.0.0")) { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            b.net.spawn {
                let s = try await listener.accept(timeout: .milliseconds(30_000))
                try? await s.send(data)
                s.close()
            }
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            var got = 0
            while got < 20_000 { got += try await s.recv(0, timeout: .milliseconds(10_000)).count }
            b.line.1.close()  // the module's end of the cable is gone
            let rest = await drainSocket(s, runtime: b.net.runtime, timeout: .milliseconds(10_000))
            #expect(rest.error?.reason == .ioError)
            #expect(got + rest.count < data.count)
            #expect(b.at.lastIncident == "the serial line hung up")
            // The driver is dead for good: a connect says so at once.
            await #expect(throws: SocketError(.networkDown)) {
                _ = try await Socket.connect("server", port: 7000, options: [.binary], timeout: .milliseconds(1_000), driver: b.at)
            }
            listener.close()
        }
    }

    @Test("the configuration's times are Timeouts: integer milliseconds, .seconds, Duration")
    func configurationTimes() {
        var c = ATConfiguration(dialect: .espAT, probeTimeout: 300, connectTimeout: .seconds(20))
        c.livenessInterval = Timeout(.milliseconds(2500))
        #expect(c.probeTimeout == .milliseconds(300))
        #expect(c.connectTimeout == 20_000)
        #expect(c.resolveTimeout == .seconds(60))
        #expect(c.livenessInterval.duration == .milliseconds(2500))
    }

    @Test("after stop(): recv, send, connect, listen and lookups are enetdown, as on every stopped driver")
    func stopIsNetworkDown() async throws {
        try await onBench { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            for _ in 0..<2 {
                b.net.spawn {
                    let s = try await listener.accept(timeout: .milliseconds(30_000))
                    _ = try? await s.recv(0, timeout: .milliseconds(30_000))
                    s.close()
                }
            }
            // One socket per operation: after a socket's first error the port layer answers
            // `closed` (OTP's rule), so each checks the driver's own answer.
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            let t = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            b.at.stop()
            await #expect(throws: SocketError(.networkDown)) { _ = try await s.recv(0, timeout: .milliseconds(1_000)) }
            await #expect(throws: SocketError(.networkDown)) { try await t.send("late") }
            await #expect(throws: SocketError(.networkDown)) {
                _ = try await Socket.connect("server", port: 7000, options: [.binary], timeout: .milliseconds(1_000),
                                             driver: b.at)
            }
            #expect(throws: SocketError(.networkDown)) { _ = try ListenSocket.listen(port: 7001, driver: b.at) }
            await #expect(throws: SocketError(.networkDown)) {
                _ = try await b.at.resolve("server", preference: .ipv4Preferred)
            }
            s.close()
            t.close()
            listener.close()
        }
    }

    @Test("an ESP-AT module with no Wi-Fi (STAIP 0.0.0.0): connect fails at once with enetunreach naming the cause, not econnrefused")
    func noWiFi() async throws {
        let simulator = ModemSimulatorConfiguration(dialect: .espAT, firmware: "3.3.0.0", localAddress: "0.0.0.0")
        try await ATBench.run(seed: 6, simulator: simulator, driver: ATConfiguration(dialect: .espAT), ready: false) { b in
            let started = b.net.now
            await #expect(throws: SocketError(.networkUnreachable)) {
                _ = try await Socket.connect(.address(.v4(0x0A00_0001)), port: 7000, options: [.binary],
                                             timeout: .milliseconds(30_000), driver: b.at)
            }
            #expect(b.net.now - started < 2_000_000_000)
            #expect(b.at.lastIncident?.contains("has not joined a Wi-Fi network") == true)
            #expect(!b.at.isReady)
        }
    }

    @Test("SIM800 bring-up follows AT+CIPSTATUS: CPIN, CGATT, then IP INITIAL takes CIPMUX, CIPRXGET, CSTT, CIICR, CIFSR")
    func sim800BringUp() async throws {
        try await onBench(simulator: .sim800(), driver: ATConfiguration(dialect: .sim800)) { b in
            let commands = b.at.statistics.engine.commands
            #expect(commands >= 10)
            // Restarting the module (its TCP/IP stack back in IP INITIAL) brings it up again the same way.
            b.module.modem.reset()
            try await b.waitUntil("module restarted", .seconds(5)) { !b.at.isReady }
            try await b.waitReady()
            #expect(b.at.statistics.initialisations == 2)
            #expect(b.at.lastIncident == nil)
        }
    }

    @Test("refused and unknown names map to econnrefused and nxdomain")
    func refusedAndUnknown() async throws {
        try await onBench { b in
            await #expect(throws: SocketError(.connectionRefused)) {
                _ = try await Socket.connect("server", port: 7999, options: [.binary], timeout: .milliseconds(30_000), driver: b.at)
            }
            await #expect(throws: SocketError(.nonExistentDomain)) {
                _ = try await Socket.connect("nowhere", port: 7000, options: [.binary], timeout: .milliseconds(30_000), driver: b.at)
            }
        }
    }

    @Test("AT injection in a host name is einval before any byte is written",
          arguments: ["evil\",1", "a\r\nAT+RST", "x,y", "back\\slash"])
    func injection(host: String) async throws {
        try await onBench { b in
            let before = b.at.statistics.engine.bytesOut
            let commands = b.module.modem.statistics.commands
            await #expect(throws: SocketError(.invalidArgument)) {
                _ = try await Socket.connect(Host(host), port: 1, options: [.binary], timeout: .milliseconds(5_000), driver: b.at)
            }
            #expect(b.at.statistics.engine.bytesOut == before)
            #expect(b.module.modem.statistics.commands == commands)
        }
    }

    @Test("module reset mid-transfer fails the socket with econnaborted (never an end of stream), then the driver recovers")
    func resetMidTransfer() async throws {
        let data = trickyBytes(200_000, seed: 9)
        try await onBench(simulator: .espAT(firmware: "3.3.0.0", faults: fragmented)) { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            b.net.spawn {
                let s = try await listener.accept(timeout: .milliseconds(30_000))
                try? await s.send(data)
                s.close()
            }
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            var got = try await s.recv(0, timeout: .milliseconds(10_000)).count
            while got < 20_000 { got += try await s.recv(0, timeout: .milliseconds(10_000)).count }
            b.module.modem.reset()
            let resetAt = b.net.now
            let rest = await drainSocket(s, runtime: b.net.runtime, timeout: .milliseconds(10_000))
            #expect(rest.error?.reason == .connectionAborted)
            #expect(b.at.lastIncident?.contains("restarted (ready)") == true)
            #expect(got + rest.count < data.count)
            // Within a second of virtual time (the boot banner comes after the simulator's 20 ms).
            #expect(b.net.now - resetAt < 1_000_000_000)
            #expect(b.at.statistics.engine.resets >= 1)
            try await b.waitReady()
            // A new connection after recovery.
            b.net.spawn {
                let s2 = try await listener.accept(timeout: .milliseconds(30_000))
                try await s2.send(Array("fresh".utf8))
                s2.close()
            }
            let s2 = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                              timeout: .milliseconds(30_000), driver: b.at)
            let fresh = await drainSocket(s2, runtime: b.net.runtime, timeout: .milliseconds(30_000))
            #expect(fresh.count == 5)
            listener.close()
        }
    }

    @Test("a socket nobody reads leaves the data in the module and memory flat")
    func backpressure() async throws {
        let data = trickyBytes(256 * 1024, seed: 13)
        try await onBench(simulator: .espAT(firmware: "3.3.0.0")) { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            let sent = PeerLog()
            let runtime = b.net.runtime
            b.net.spawn {
                let s = try await listener.accept(timeout: .milliseconds(30_000))
                try await s.send(data)
                sent.set(received: data.count, hash: [], error: nil, firstAt: 0, lastAt: runtime.now)
                s.close()
            }
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive), .buffer(1000)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            // Nobody reads for 30 s of virtual time: the line could have carried 340 KiB.
            await b.net.sleep(for: .seconds(30))
            let stats = b.at.statistics
            #expect(stats.payloadIn <= 1000)
            #expect(stats.largestReceiveBuffer == 1000)
            #expect(b.module.modem.bufferedBytes(link: 0) <= b.module.modem.configuration.linkBufferSize)
            #expect(b.module.backlog < 4096)
            #expect(!sent.done)
            // Reading resumes the flow, with nothing lost.
            let down = await drainSocket(s, runtime: runtime, timeout: .milliseconds(60_000))
            #expect(down.count == data.count)
            #expect(down.hash == sha(data))
            #expect(b.at.statistics.overflowBytes == 0)
            listener.close()
        }
    }

    @Test("a silent module: connect times out, nothing hangs, and the driver recovers when it answers")
    func silentModule() async throws {
        try await ATBench.run(seed: 4, simulator: .espAT(firmware: "3.3.0.0", faults: ModemFaults(silent: true)),
                              driver: ATConfiguration(dialect: .espAT, probeTimeout: 300, probeAttempts: 2,
                                                      retryDelay: 200, restartTimeout: 1_000),
                              ready: false) { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            let started = b.net.now
            // Two unanswered probes: the connect fails then (etimedout, the module's silence named),
            // well before its own 3 s.
            await #expect(throws: SocketError(.connectionTimedOut)) {
                _ = try await Socket.connect(.address(.v4(0x0A00_0001)), port: 7000, options: [.binary],
                                             timeout: .milliseconds(3_000), driver: b.at)
            }
            #expect(b.net.now - started < 2_000_000_000)
            #expect(b.at.lastIncident?.contains("does not answer AT") == true)
            #expect(b.at.statistics.restarts >= 1)
            #expect(!b.at.isReady)
            b.module.modem.setSilent(false)
            try await b.waitReady()
            b.net.spawn {
                let s = try await listener.accept(timeout: .milliseconds(30_000))
                try await s.send(Array("awake".utf8))
                s.close()
            }
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            let got = await drainSocket(s, runtime: b.net.runtime, timeout: .milliseconds(30_000))
            #expect(got.count == 5)
            listener.close()
        }
    }
}

@Suite("at driver on cellular dialects", .timeLimit(.minutes(5)))
struct ATCellularTests {
    @Test("1 MiB each way byte-exact with fragmentation and noise; goodput", arguments: [ATDialect.sim800, .bg96])
    func transfer(dialect: ATDialect) async throws {
        let size = 1 << 20
        let upload = trickyBytes(size, seed: 21)
        let download = trickyBytes(size, seed: 22)
        let simulator: ModemSimulatorConfiguration = dialect == .sim800 ? .sim800(faults: fragmented) : .bg96(faults: fragmented)
        try await onBench(simulator: simulator, driver: ATConfiguration(dialect: dialect, apn: "internet")) { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            let log = PeerLog()
            let runtime = b.net.runtime
            b.net.spawn {
                await uploadThenDownloadPeer(listener, runtime: runtime, expect: size, reply: download, log: log)
            }
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(60_000), driver: b.at)
            let t0 = runtime.now
            try await s.send(upload)
            try await b.waitUntil("upload", .seconds(600)) { log.done }
            let t1 = runtime.now
            #expect(log.error == nil)
            #expect(log.hash == sha(upload))
            let down = await drainSocket(s, runtime: runtime)
            #expect(down.error == .closed)
            #expect(down.count == size)
            #expect(down.hash == sha(download))
            let line = 11_520.0
            let up = Double(size) / (Double(t1 - t0) / 1e9) / line
            let dn = Double(size) / (Double(down.last - down.first) / 1e9) / line
            print("goodput \(dialect.description) 115200 baud: upload \(up), download \(dn)")
            #expect(up > 0.8)
            #expect(dn > 0.8)
            s.close()
            listener.close()
        }
    }
}
