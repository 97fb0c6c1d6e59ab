import BoardTestSupport
import GenTCP
import GenTCPBoard
import GenTCPBoardHost
import GenTCPBoardPrograms
import GenTCPCore
import GenTCPModem
import GenTCPSerial
import GenTCPSim
import ModemSimulator
import Testing

/// The ESP-AT telemetry firmware's source, run on the host in a simulation: its line a
/// MemoryLink on the virtual clock to GenTCP's modem simulator (ESP-AT), whose sockets reach a
/// simulated collector. Flash-free and deterministic.
@Suite("board program: telemetry through ESP-AT in a simulation run", .timeLimit(.minutes(3)))
struct TelemetrySimulationTests {
    /// A collector host listening on 7007, the modem simulator (ESP-AT) on another host, and the
    /// board on a MemoryLink to it, all on one simulated network.
    struct Setup {
        var net: SimNetwork
        var bridge: ModemLinkBridge
        var board: BoardHost<ModemInterface<ESPATDialect>, TelemetryClient>
        var listener: ListenSocket

        init(seed: UInt64, boardSeed: UInt64, readings: Int) throws {
            net = try SimNetwork(seed: seed)
            let collector = try net.addHost("collector")
            let modemHost = try net.addHost("modem")
            let (boardLink, moduleLink) = try MemoryLink.pair(
                configuration: SerialConfiguration(baudRate: 115_200), runtime: net.runtime,
                names: ("memory:board", "memory:module"))
            bridge = ModemLinkBridge(link: moduleLink, configuration: .espAT(firmware: "2.2.0.0", seed: seed),
                                     driver: try SimDriver(network: net, host: modemHost))
            let settings = TelemetrySettings(collector: collector.addresses[0], port: 7007, count: readings, interval: 250)
            board = BoardHost(
                link: boardLink, runtime: net.runtime, seed: boardSeed, limits: TelemetryFirmware.limits,
                interface: ModemInterface(dialect: ESPATDialect(), configuration: TelemetryFirmware.modem(ssid: "lab", password: "secret")),
                program: TelemetryClient(settings: settings))
            listener = try ListenSocket.listen(port: 7007, options: [.binary, .active(.passive)],
                                               driver: try SimDriver(network: net, host: collector))
        }

        func close() {
            listener.close()
            bridge.close()
        }
    }

    @Test("readings reach the collector, every one acknowledged, then the board closes and exits 0")
    func readings() async throws {
        let setup = try Setup(seed: 3, boardSeed: 42, readings: 8)
        let (bridge, board, listener) = (setup.bridge, setup.board, setup.listener)
        let (lines, status) = try await setup.net.run {
            bridge.modem.powerOn()
            board.start()
            async let lines = BoardChecks.collect(listener, count: 8)
            let status = try await board.wait()
            return (try await lines, status)
        }
        #expect(status == 0)
        #expect(lines.count == 8)
        #expect(lines.first?.hasPrefix("t 0 ") == true)
        setup.close()
    }

    @Test("a module that does not answer at first: the bring-up fails, the client waits for the retry, and every reading still arrives")
    func bringUpFailsFirst() async throws {
        let setup = try Setup(seed: 4, boardSeed: 43, readings: 3)
        let (bridge, board, listener, runtime) = (setup.bridge, setup.board, setup.listener, setup.net.runtime)
        let (lines, status, answeredAt) = try await setup.net.run {
            bridge.modem.powerOn()
            // Its probes go unanswered for 20 s: the bring-up fails after five of them, and the
            // interface tries again (every 5 s) until the module answers.
            bridge.modem.setSilent(true)
            board.start()
            async let lines = BoardChecks.collect(listener, count: 3)
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                _ = runtime.schedule(after: .seconds(20)) { c.resume() }
            }
            bridge.modem.setSilent(false)
            let answeredAt = runtime.uptime
            let status = try await board.wait()
            return (try await lines, status, answeredAt)
        }
        #expect(status == 0, "the client gave up on the first failed bring-up")
        #expect(lines.count == 3)
        #expect(answeredAt >= .seconds(20))
        setup.close()
    }
}
