import ArgumentParser
import GenTCP
import GenTCPBoard
import GenTCPBoardHost
import GenTCPBoardPrograms
import GenTCPCore
import GenTCPModem
import GenTCPSerial
import GenTCPWire
#if canImport(Glibc)
import Glibc
#endif

extension Simulate {
    /// `--program`: the firmware's own program source on the host, its line a new pty, its
    /// clock the real one. Any SLIP profile works (the program is the board); the addresses are
    /// the profile's.
    func runProgram(_ name: String, _ profile: BoardProfile) async throws {
        if name == "esp-at-client" {
            try await runTelemetryClient(profile)
            return
        }
        guard name == "slip-echo" else {
            printError(failureLine(atom: "badarg", summary: "unknown board program",
                                   notes: ["--program \(name): the programs are slip-echo and esp-at-client"]))
            throw ExitCode(Status.usage)
        }
        guard profile.link == .slip, let slip = profile.slip, case .v4(let board) = slip.peerAddress,
              case .v4(let host) = slip.localAddress
        else {
            printError(failureLine(atom: "einval", summary: "bad board profile",
                                   notes: ["slip-echo runs on a SLIP board with IPv4 addresses; \(profile.name) is not one"]))
            throw ExitCode(Status.usage)
        }
        let pair = try openPTY(profile)
        let settings = SLIPEchoSettings(local: IPv4Address(rawValue: board), peer: IPv4Address(rawValue: host),
                                        mtu: slip.mtu, baud: profile.serial.baudRate, buffer: 1460, window: 4096)
        let link: any SerialLink = verbose ? Trace.wrap(pair.master, boardSide: true, name: pair.slavePath) : pair.master
        // The seed keys the board's initial sequence numbers: a new one every run, as a board's
        // entropy hook gives one every boot (--seed is for the modem simulator's faults).
        let entropy = UInt64.random(in: 1...UInt64.max)
        let runner = BoardHost(
            link: link, runtime: RealRuntime.shared, seed: entropy, limits: SLIPEchoFirmware.limits(settings),
            interface: SLIPInterface(configuration: settings.interface, seed: entropy),
            program: SLIPEchoServer(settings: settings),
            log: { line in printError("gentcp: board: \(line)") })
        printError("gentcp: running board program slip-echo for \(profile.name) (SLIP, \(slip.peerAddress), MTU \(slip.mtu)) on \(pair.slavePath): echo 7, discard 9, source 19; host side \(slip.localAddress)")
        runner.start()
        print(pair.slavePath)
        fflush(nil)
        await Simulate.runUntilStopped(seconds: seconds)
        runner.stop()
        pair.master.close()
        pair.slave.close()
    }
}

extension Simulate {
    /// `--program esp-at-client`: the telemetry firmware's source with its line on `--line` (an
    /// ESP-AT module's serial device). Exits with the program's status: 0 once every reading was
    /// acknowledged and the close reached the module.
    func runTelemetryClient(_ profile: BoardProfile) async throws {
        guard let path = line, let collector,
              let colon = collector.lastIndex(of: ":"),
              let address = IPAddress(String(collector[..<colon])), !address.isIPv6,
              let port = UInt16(collector[collector.index(after: colon)...]), port != 0, count > 0
        else {
            printError(failureLine(atom: "badarg", summary: "bad argument",
                                   notes: ["esp-at-client needs --line PATH and --collector IPv4:PORT, and --count above 0"]))
            throw ExitCode(Status.usage)
        }
        let link: any SerialLink
        do throws(SerialLinkError) {
            let device = try PTYLink(path: path, configuration: profile.serial)
            link = verbose ? Trace.wrap(device, boardSide: false, name: path) : device
        } catch {
            printError(failureLine(error))
            throw ExitCode(Status.failed)
        }
        let settings = TelemetrySettings(collector: address, port: port, count: count, interval: 250)
        let runner = BoardHost(
            link: link, runtime: RealRuntime.shared, seed: UInt64.random(in: 1...UInt64.max),
            limits: TelemetryFirmware.limits,
            interface: ModemInterface(dialect: ESPATDialect(), configuration: TelemetryFirmware.modem(ssid: ssid, password: password)),
            program: TelemetryClient(settings: settings),
            log: { line in printError("gentcp: board: \(line)") })
        printError("gentcp: running board program esp-at-client on \(path): \(count) readings to \(collector)")
        runner.start()
        let status: Int32
        do {
            status = try await runner.wait()
        } catch {
            printError(failureLine(atom: "eio", summary: "the module's line went away", notes: ["\(error)"]))
            throw ExitCode(Status.failed)
        }
        link.close()
        if status != 0 {
            printError("gentcp: esp-at-client stopped with status \(status) (1 no connection, 2 network down, 3 collector closed early, 4 wrong acknowledgement, 5 acknowledgements late)")
            throw ExitCode(status)
        }
        printError("gentcp: esp-at-client: \(count) readings acknowledged")
    }
}
