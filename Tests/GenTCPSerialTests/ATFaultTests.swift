import GenTCP
import GenTCPModem
import GenTCPCore
import GenTCPSerial
import GenTCPAT
import GenTCPSim
import ModemSimulator
import Testing

/// The at driver against the modem simulator's fault modes (`docs/modem-behaviour.md`, "Faults"),
/// every dialect, on the virtual clock: each broken link is an error with its own reason, never
/// an end of stream, and every byte the module delivered before it is intact.
@Suite("at driver against the simulator's faults", .timeLimit(.minutes(5)))
struct ATFaultTests {
    static let dialects: [ATDialect] = [.espAT, .sim800, .bg96]

    static func simulator(_ dialect: ATDialect, _ faults: ModemFaults) -> ModemSimulatorConfiguration {
        switch dialect {
        case .espAT: .espAT(firmware: "3.3.0.0", seed: 7, faults: faults)
        case .sim800: .sim800(seed: 7, faults: faults)
        case .bg96: .bg96(seed: 7, faults: faults)
        }
    }

    /// What a download through a faulty module came to.
    struct Outcome: Sendable {
        var received: Int
        var prefixIntact: Bool
        var error: SocketError?
        var incident: String?
    }

    /// Connects through a module with `faults` (bring-up untouched: the faults count bytes from
    /// power-on, so each is set past the bring-up) and downloads `size` bytes the server sends
    /// and then closes.
    static func download(_ dialect: ATDialect, _ faults: ModemFaults, size: Int = 60_000,
                         apn: String = "internet") async throws -> Outcome {
        let data = trickyBytes(size, seed: 31)
        return try await ATBench.run(seed: 9, simulator: simulator(dialect, faults),
                                     driver: ATConfiguration(dialect: dialect, apn: apn)) { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            defer { listener.close() }
            b.net.spawn {
                let s = try await listener.accept(timeout: .milliseconds(30_000))
                try? await s.send(data)
                s.close()
            }
            let s = try await Socket.connect(.address(.v4(0x0A00_0001)), port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            let got = await drainSocket(s, runtime: b.net.runtime, timeout: .milliseconds(120_000))
            s.close()
            return Outcome(received: got.count, prefixIntact: got.count <= data.count && got.hash == sha(Array(data[0..<got.count])),
                           error: got.error, incident: b.at.lastIncident)
        }
    }

    @Test("the module resets mid-download: an error naming the restart, the bytes before it intact (a read cut by the reset is taken back)",
          arguments: dialects)
    func reset(_ dialect: ATDialect) async throws {
        let o = try await Self.download(dialect, ModemFaults(resetAfterBytes: 12_000))
        // A reset between answers is seen at once (econnaborted); one inside a read's answer
        // swallows the banner as payload, so the read ends without OK (etimedout), and the
        // probe that follows finds echo back on: the restart is named either way.
        #expect(o.error?.reason == .connectionAborted || o.error?.reason == .connectionTimedOut)
        #expect(o.received < 60_000 && o.prefixIntact)
        #expect(o.incident?.contains("restarted") == true, "\(o.incident ?? "nil")")
    }

    @Test("the module goes silent mid-download: etimedout, the bytes before it intact", arguments: dialects)
    func silence(_ dialect: ATDialect) async throws {
        let o = try await Self.download(dialect, ModemFaults(silenceAfterBytes: 12_000))
        #expect(o.error?.reason == .connectionTimedOut)
        #expect(o.received < 60_000 && o.prefixIntact)
        #expect(o.incident != nil)
    }

    @Test("silent after the connect: etimedout, not an end of stream", arguments: dialects)
    func silentAfterConnect(_ dialect: ATDialect) async throws {
        let o = try await Self.download(dialect, ModemFaults(silentAfterConnect: true))
        #expect(o.error?.reason == .connectionTimedOut)
        #expect(o.received == 0)
    }

    @Test("the serial port vanishes mid-download: eio, the bytes before it intact", arguments: dialects)
    func portVanishes(_ dialect: ATDialect) async throws {
        let o = try await Self.download(dialect, ModemFaults(portVanishesAfterBytes: 12_000))
        #expect(o.error?.reason == .ioError)
        #expect(o.received < 60_000 && o.prefixIntact)
        #expect(o.incident == "the serial line hung up")
    }

    @Test("passive receive reverts to pushed data mid-download: every byte in order, or eproto (never a silent hole)",
          arguments: [ATDialect.espAT, .sim800])
    func passiveReverts(_ dialect: ATDialect) async throws {
        let o = try await Self.download(dialect, ModemFaults(passiveRevertsAfterBytes: 8_000))
        #expect(o.prefixIntact)
        if o.error?.reason == .closed {
            #expect(o.received == 60_000)
        } else {
            #expect(o.error?.reason == .protocolError)
        }
    }

    @Test("over-long data headers: eproto at once, no hang", arguments: dialects)
    func overlongHeaders(_ dialect: ATDialect) async throws {
        let o = try await Self.download(dialect, ModemFaults(overlongHeaders: ModemHeaderPadding(count: 400)))
        #expect(o.error?.reason == .protocolError)
        #expect(o.prefixIntact)
        #expect(o.incident != nil)
    }

    @Test("a server that sends and closes: every byte the module buffered is read before the end", arguments: dialects)
    func sendAndClose(_ dialect: ATDialect) async throws {
        let o = try await Self.download(dialect, ModemFaults(), size: 200_000)
        #expect(o.error?.reason == .closed)
        #expect(o.received == 200_000 && o.prefixIntact)
    }

    /// Bring-up against a module that cannot get a network: the connect fails within seconds,
    /// naming the step, never blaming the host.
    static func bringUp(_ dialect: ATDialect, _ faults: ModemFaults, apn: String = "internet")
        async throws -> (error: SocketError?, seconds: Double, incident: String?) {
        try await ATBench.run(seed: 10, simulator: simulator(dialect, faults),
                              driver: ATConfiguration(dialect: dialect, apn: apn), ready: false) { b in
            let started = b.net.now
            var error: SocketError?
            do {
                _ = try await Socket.connect(.address(.v4(0x0A00_0001)), port: 7000, options: [.binary],
                                             timeout: .milliseconds(60_000), driver: b.at)
            } catch let e as SocketError {
                error = e
            }
            return (error, Double(b.net.now - started) / 1e9, b.at.lastIncident)
        }
    }

    @Test("SIM800 whose AT+CIICR is refused: enetunreach within seconds, naming AT+CIICR and ERROR")
    func sim800RejectsCIICR() async throws {
        let r = try await Self.bringUp(.sim800, ModemFaults(rejectCIICR: true))
        #expect(r.error?.reason == .networkUnreachable)
        #expect(r.seconds < 5)
        #expect(r.incident?.contains("AT+CIICR answered ERROR") == true, "\(r.incident ?? "nil")")
    }

    @Test("SIM800 and BG96 without a ready SIM: enetdown within seconds, naming the SIM", arguments: [ATDialect.sim800, .bg96])
    func simNotReady(_ dialect: ATDialect) async throws {
        let r = try await Self.bringUp(dialect, ModemFaults(noNetwork: .simNotReady))
        #expect(r.error?.reason == .networkDown)
        #expect(r.seconds < 5)
        #expect(r.incident?.contains("SIM is not ready") == true, "\(r.incident ?? "nil")")
    }

    @Test("an ESP-AT module that answers busy p... to everything: etimedout within seconds, naming busy p..., not the host")
    func busyForever() async throws {
        let r = try await Self.bringUp(.espAT, ModemFaults(spuriousBusyProbability: 1))
        #expect(r.error?.reason == .connectionTimedOut)
        #expect(r.seconds < 30)
        #expect(r.incident?.contains("does not answer AT") == true, "\(r.incident ?? "nil")")
        #expect(r.incident?.contains("busy p...") == true, "\(r.incident ?? "nil")")
    }

    @Test("SIM800 and BG96 not attached: the connect's own timeout, with the reason on record", arguments: [ATDialect.sim800, .bg96])
    func notAttached(_ dialect: ATDialect) async throws {
        let r = try await Self.bringUp(dialect, ModemFaults(noNetwork: .notAttached))
        #expect(r.error?.reason == .timeout)
        #expect(r.incident?.contains("not attached") == true, "\(r.incident ?? "nil")")
    }
}
