import ArgumentParser
import GenTCP
import GenTCPBoard
import GenTCPBoardHost
import GenTCPBoardPrograms
import GenTCPCore
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
        guard name == "slip-echo" else {
            printError(failureLine(atom: "badarg", summary: "unknown board program",
                                   notes: ["--program \(name): the programs are slip-echo"]))
            throw ExitCode(Status.usage)
        }
        guard profile.link == .slip, let slip = profile.slip, case .v4(let board) = slip.peerAddress,
              case .v4(let host) = slip.localAddress
        else {
            printError(failureLine(atom: "einval", summary: "bad board profile",
                                   notes: ["slip-echo runs on a SLIP board with IPv4 addresses; \(profile.name) is not one"]))
            throw ExitCode(Status.usage)
        }
        let pair: PTYLink.PTYPair
        do throws(SerialLinkError) {
            pair = try PTYLink.openPair(configuration: profile.serial)
        } catch {
            printError(failureLine(error))
            throw ExitCode(Status.failed)
        }
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
        if let seconds {
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        } else {
            await BlockingThread().run { Simulate.waitForStdinToClose() }
        }
        runner.stop()
        pair.master.close()
        pair.slave.close()
    }
}
