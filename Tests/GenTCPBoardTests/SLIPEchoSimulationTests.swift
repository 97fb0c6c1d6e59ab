import BoardTestSupport
import GenTCP
import GenTCPBoard
import GenTCPBoardHost
import GenTCPBoardPrograms
import GenTCPCore
import GenTCPSerial
import GenTCPSim
import GenTCPSLIP
import GenTCPWire
import Testing

/// The SLIP echo firmware's source, run on the host in a simulation: its line a MemoryLink on
/// the virtual clock, the host side GenTCP's slip driver. Flash-free and deterministic.
@Suite("board program: slip echo in a simulation run", .timeLimit(.minutes(3)))
struct SLIPEchoSimulationTests {
    static let board = IPAddress(10, 9, 0, 2)
    static let host = IPAddress(10, 9, 0, 1)

    struct Run {
        let net: SimNetwork
        let driver: SLIPDriver
        let boardHost: BoardHost<SLIPInterface, SLIPEchoServer>
    }

    static func start(seed: UInt64 = 1, baud: Int = 115_200, window: Int = 4096) throws -> Run {
        let net = try SimNetwork(seed: seed)
        let (hostLink, boardLink) = try MemoryLink.pair(
            configuration: SerialConfiguration(baudRate: baud), runtime: net.runtime, names: ("memory:host", "memory:board"))
        let settings = SLIPEchoSettings(local: IPv4Address(10, 9, 0, 2), peer: IPv4Address(10, 9, 0, 1), baud: baud,
                                        window: window)
        let boardHost = BoardHost(
            link: boardLink, runtime: net.runtime, seed: seed &+ 100, limits: SLIPEchoFirmware.limits(settings),
            interface: SLIPInterface(configuration: settings.interface, seed: seed &+ 100),
            program: SLIPEchoServer(settings: settings))
        let driver = try SLIPDriver(
            link: hostLink, configuration: SLIPConfiguration(local: host, peer: board, seed: seed), runtime: net.runtime)
        return Run(net: net, driver: driver, boardHost: boardHost)
    }

    @Test("pings, 64 KiB echoed byte-exact, discard, and the board closes after our FIN")
    func echo() async throws {
        let run = try Self.start()
        try await run.net.run {
            run.boardHost.start()
            try await BoardChecks.ping(run.driver, board: Self.board)
            try await BoardChecks.echo(run.driver, board: Self.board, size: 64 << 10, runtime: run.net.runtime)
            try await BoardChecks.discard(run.driver, board: Self.board, size: 16 << 10)
            // A second echo on the same board: slots were given back.
            try await BoardChecks.echo(run.driver, board: Self.board, size: 4 << 10, seed: 3, runtime: run.net.runtime)
        }
        run.driver.close()
        run.boardHost.stop()
    }

    @Test("source: 1 MiB of the board's sequence, then its close")
    func source() async throws {
        let run = try Self.start(baud: 921_600)
        try await run.net.run {
            run.boardHost.start()
            try await BoardChecks.source(run.driver, board: Self.board)
        }
        run.driver.close()
        run.boardHost.stop()
    }
}
