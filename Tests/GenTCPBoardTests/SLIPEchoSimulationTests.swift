import BoardTestSupport
import GenTCP
import GenTCPBoard
import GenTCPBoardHost
import GenTCPBoardPrograms
import GenTCPCore
import GenTCPSerial
import GenTCPSim
import GenTCPStack
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

    @Test("the same seed replays the same run: virtual time and every counter of the board's stack")
    func deterministic() async throws {
        func once() async throws -> (Double, StackCounters) {
            let run = try Self.start(seed: 5)
            let seconds = try await run.net.run {
                run.boardHost.start()
                return try await BoardChecks.echo(run.driver, board: Self.board, size: 16 << 10, runtime: run.net.runtime)
            }
            let counters = run.boardHost.inspect { $0.net.interface.counters }
            run.driver.close()
            run.boardHost.stop()
            return (seconds, counters)
        }
        let first = try await once()
        let second = try await once()
        #expect(first.0 == second.0)
        #expect(first.1 == second.1)
        #expect(first.1.packetsSent > 16)
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


/// The same program source and checks on a pty, on the real clock: the board's line is the
/// master end of a new pty, the host's slip driver opens the slave end as a program would.
@Suite("board program: slip echo on a pty", .serialized, .timeLimit(.minutes(5)))
struct SLIPEchoPTYTests {
    @Test("pings, 64 KiB echoed byte-exact, discard, and the board closes after our FIN")
    func echo() async throws {
        let configuration = SerialConfiguration(baudRate: 115_200)
        let pair = try PTYLink.openPair(configuration: configuration)
        let settings = SLIPEchoSettings(local: IPv4Address(10, 9, 0, 2), peer: IPv4Address(10, 9, 0, 1))
        let seed = UInt64.random(in: 1...UInt64.max)
        let board = BoardHost(
            link: pair.master, runtime: RealRuntime.shared, seed: seed, limits: SLIPEchoFirmware.limits(settings),
            interface: SLIPInterface(configuration: settings.interface, seed: seed),
            program: SLIPEchoServer(settings: settings))
        board.start()
        let host = try SLIPDriver(
            link: pair.slave,
            configuration: SLIPConfiguration(local: SLIPEchoSimulationTests.host, peer: SLIPEchoSimulationTests.board))
        defer {
            host.close()
            board.stop()
            pair.master.close()
        }
        try await BoardChecks.ping(host, board: SLIPEchoSimulationTests.board)
        try await BoardChecks.echo(host, board: SLIPEchoSimulationTests.board, size: 64 << 10, runtime: RealRuntime.shared)
        try await BoardChecks.discard(host, board: SLIPEchoSimulationTests.board, size: 16 << 10)
    }
}
