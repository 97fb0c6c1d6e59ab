import ArgumentParser
import GenTCP
import GenTCPPOSIX
import GenTCPSerial
import GenTCPSLIP
import ModemSimulator
#if canImport(Glibc)
import Glibc
#endif

/// `gentcp simulate BOARD`: a simulated board on a new pty, for any program to talk to.
struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a simulated board on a new pty and print the pty's path.",
        discussion: """
            BOARD is a profile name from boards/ (or a file) with "simulated": true. AT boards run \
            GenTCP's modem simulator (ESP-AT, SIM800 or BG96 as the profile says); the sockets the \
            simulated module opens are real, to loopback addresses only. SLIP boards run GenTCP's \
            own stack at the profile's board address with echo (7, TCP and UDP), discard (9) and source (19) \
            services. The first line printed is the pty's path; the board runs until stdin \
            closes, --seconds pass, or the process is interrupted. -v prints every chunk on the \
            pty to stderr in hex and text, >> from the host to the board and << back.

            Example: gentcp simulate sim-esp-at   then, elsewhere:   gentcp connect --driver at \
            --dialect esp-at --serial /dev/pts/N 127.0.0.1 7
            """)

    @Argument(help: "A simulated board: sim-esp-at, sim-sim800, sim-bg96, sim-slip (see boards/).")
    var board: String

    @ArgumentParser.Option(help: "Directory of board profiles.")
    var boards: String = "boards"

    @ArgumentParser.Option(help: "Seed of the simulated module's random choices (faults).")
    var seed: UInt64 = 1

    @Flag(help: "Seeded faults: output in random fragments with delays, and URC noise between messages.")
    var faults = false

    @Flag(help: "Do not pace the module's output at the board's baud rate.")
    var noPacing = false

    @ArgumentParser.Option(help: "Stop after this many seconds (default: when stdin closes).")
    var seconds: Double?

    @Flag(name: .shortAndLong, help: "Trace the board's serial traffic on stderr in hex and text (>> host to board, << back).")
    var verbose = false

    @ArgumentParser.Option(name: .customLong("module-ca-slot"), help: ArgumentHelp(
        "ESP-AT: put the CA certificates of a PEM file in the module's CA slot N, for TLS links that check the server (AT+CIPSSLCCONF). Repeatable.",
        valueName: "N=PEM"))
    var moduleCASlots: [String] = []

    @ArgumentParser.Option(name: .customLong("module-file"), help: ArgumentHelp(
        "BG96: put a PEM file in the module's storage under NAME (UFS:cacert.pem), for AT+QSSLCFG=\"cacert\". Repeatable.",
        valueName: "NAME=PEM"))
    var moduleFiles: [String] = []

    @ArgumentParser.Option(help: ArgumentHelp(
        "Run a board program's firmware source: slip-echo (echo 7, discard 9, source 19 on a new pty, for a SLIP board) or esp-at-client (the telemetry client, its line --line to an ESP-AT module, e.g. another gentcp simulate sim-esp-at).",
        valueName: "PROGRAM"))
    var program: String?

    @ArgumentParser.Option(help: ArgumentHelp("esp-at-client: the serial device of its ESP-AT module.", valueName: "PATH"))
    var line: String?

    @ArgumentParser.Option(help: ArgumentHelp("esp-at-client: the collector's IPv4 address and port.", valueName: "ADDRESS:PORT"))
    var collector: String?

    @ArgumentParser.Option(help: "esp-at-client: readings to send.")
    var count: Int = 8

    @ArgumentParser.Option(help: "esp-at-client: the Wi-Fi network the module joins (none: it stays on its own).")
    var ssid: String?

    @ArgumentParser.Option(help: "esp-at-client: the Wi-Fi password.")
    var password: String = ""

    mutating func run() async throws {
        let profile: BoardProfile
        do {
            profile = try BoardProfile.find(board, in: boards)
        } catch {
            printError(failureLine(atom: "einval", summary: "bad board profile", notes: ["\(error)"]))
            throw ExitCode(Status.usage)
        }
        if let program {
            try await runProgram(program, profile)
            return
        }
        guard profile.simulated else {
            printError(failureLine(atom: "einval", summary: "not a simulated board",
                                   notes: ["\(profile.name) is real hardware; pick one with \"simulated\": true, e.g. sim-esp-at"]))
            throw ExitCode(Status.usage)
        }
        if profile.link == .slip {
            try await runSLIPBoard(profile)
            return
        }
        guard let dialect = profile.dialect else {
            printError(failureLine(atom: "einval", summary: "bad board profile", notes: ["\(profile.source): no dialect"]))
            throw ExitCode(Status.usage)
        }

        let pair = try openPTY(profile)

        var faultSettings = ModemFaults(baudRate: noPacing ? nil : profile.serial.baudRate)
        if faults {
            faultSettings.maxFragmentLength = 16
            faultSettings.maxFragmentDelay = .milliseconds(5)
            faultSettings.noiseProbability = 0.1
        }
        // An ESP32 runs current ESP-AT (v3.3 and later: per-link receive modes, which gen_udp
        // needs to keep datagram boundaries, ESP-U5); the cellular modules have one firmware each.
        let firmware: String? = dialect == .espAT ? "3.3.0.0" : nil
        var configuration = ModemSimulatorConfiguration(dialect: dialect, firmware: firmware, seed: seed, faults: faultSettings)
        switch Simulate.tlsStore(slots: moduleCASlots, files: moduleFiles) {
        case .success(let store): configuration.tlsStore = store
        case .failure(let note):
            printError(failureLine(atom: "badarg", summary: "bad argument", notes: [note.text]))
            throw ExitCode(Status.usage)
        }
        printError("gentcp: simulating \(profile.name) (\(dialect.description)) on \(pair.slavePath) at \(profile.serial.baudRate) baud, seed \(seed)")
        // The module on the master end; the slave end stays open here, so programs can come and
        // go on its path without the master seeing a hang-up.
        let link: any SerialLink = verbose ? Trace.wrap(pair.master, boardSide: true, name: pair.slavePath) : pair.master
        // The simulated module reaches loopback only, so its name lookups (`AT+CIPDOMAIN`...)
        // read /etc/hosts and never send a DNS query.
        let bridge = ModemLinkBridge(link: link, configuration: configuration, driver: POSIXDriver(lookup: .hostsFile()))
        bridge.modem.powerOn()
        print(pair.slavePath)
        fflush(nil)

        await Simulate.runUntilStopped(seconds: seconds)
        bridge.close()
        pair.slave.close()
    }

    /// A SLIP board on the master side of a new pty: GenTCP's own stack at the profile's peer
    /// address, serving echo (7, TCP and UDP), discard (9) and source (19: 1 MiB of a fixed
    /// pattern, then close). The host side is the pty's slave path, printed first.
    func runSLIPBoard(_ profile: BoardProfile) async throws {
        guard let slip = profile.slip else {
            printError(failureLine(atom: "einval", summary: "bad board profile", notes: ["\(profile.source): no slip settings"]))
            throw ExitCode(Status.usage)
        }
        let pair = try openPTY(profile)
        // The board's end: its address is the profile's peer address, its peer is the host.
        var configuration = SLIPConfiguration(local: slip.peerAddress, peer: slip.localAddress, mtu: slip.mtu)
        configuration.seed = seed
        printError("gentcp: simulating \(profile.name) (SLIP, \(slip.peerAddress), MTU \(slip.mtu)) on \(pair.slavePath): echo 7 (TCP and UDP), discard 9, source 19; host side \(slip.localAddress)")
        let link: any SerialLink = verbose ? Trace.wrap(pair.master, boardSide: true, name: pair.slavePath) : pair.master
        let board = try SLIPDriver(link: link, configuration: configuration)
        print(pair.slavePath)
        fflush(nil)
        let seconds = self.seconds
        try await Process.run {
            for (port, service) in [(7, Service.echo), (9, .discard), (19, .source)] {
                let listener = try ListenSocket.listen(port: port, options: [.binary, .active(.passive)], driver: board)
                Process.spawn { await Simulate.serve(listener, service) }
            }
            let udpEcho = try await UDPSocket.open(port: 7, options: [.binary, .active(.passive)], driver: board)
            let echoer = Process.spawn { await Simulate.echoDatagrams(udpEcho) }
            try udpEcho.controllingProcess(echoer)
            await Simulate.runUntilStopped(seconds: seconds)
        }
        board.close()
        pair.slave.close()
    }

    enum Service: Sendable { case echo, discard, source }

    /// Accepts forever, one process per connection.
    static func serve(_ listener: ListenSocket, _ service: Service) async {
        while let socket = try? await listener.accept() {
            let me = Process.spawn {
                switch service {
                case .echo:
                    while let chunk = try? await socket.recv(0) {
                        guard (try? await socket.send(chunk.bytes)) != nil else { break }
                    }
                case .discard:
                    while (try? await socket.recv(0)) != nil {}
                case .source:
                    var x: UInt32 = 0x1234_5678
                    var block = [UInt8](repeating: 0, count: 4096)
                    for _ in 0..<256 {
                        for i in 0..<block.count {
                            x ^= x << 13; x ^= x >> 17; x ^= x << 5
                            block[i] = UInt8(truncatingIfNeeded: x)
                        }
                        guard (try? await socket.send(block)) != nil else { break }
                    }
                }
                socket.close()
            }
            try? socket.controllingProcess(me)
        }
    }

    /// UDP echo (RFC 862): every datagram back to its sender, until the socket closes.
    static func echoDatagrams(_ socket: UDPSocket) async {
        while let d = try? await socket.recv() {
            _ = try? await socket.send(d.payload.bytes, to: d.source)
        }
    }

    /// Reads stdin until it closes (the board's lifetime when no --seconds is given).
    /// A new pty pair at the profile's line settings; a failure is printed and ends the command.
    func openPTY(_ profile: BoardProfile) throws -> PTYLink.PTYPair {
        do throws(SerialLinkError) {
            return try PTYLink.openPair(configuration: profile.serial)
        } catch {
            printError(failureLine(error))
            throw ExitCode(Status.failed)
        }
    }

    /// How long a simulated board runs: `--seconds`, or until stdin closes.
    static func runUntilStopped(seconds: Double?) async {
        if let seconds {
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        } else {
            await BlockingThread().run { Simulate.waitForStdinToClose() }
        }
    }

    static func waitForStdinToClose() {
        var byte: UInt8 = 0
        while read(0, &byte, 1) > 0 {}
    }
}

extension Simulate {
    /// Why a `--module-ca-slot` or `--module-file` value was refused.
    struct StoreNote: Error {
        let text: String
    }

    /// The simulated module's TLS store from `N=PEM` slots and `NAME=PEM` files.
    static func tlsStore(slots: [String], files: [String]) -> Result<ModemTLSStore, StoreNote> {
        var store = ModemTLSStore()
        for entry in slots {
            guard let eq = entry.firstIndex(of: "="), let n = Int(entry[..<eq]), n >= 0, eq < entry.index(before: entry.endIndex) else {
                return .failure(StoreNote(text: "--module-ca-slot takes N=PEM (a slot number and a file), got \"\(entry)\""))
            }
            store.caSlots[n] = String(entry[entry.index(after: eq)...])
        }
        for entry in files {
            guard let eq = entry.firstIndex(of: "="), eq > entry.startIndex, eq < entry.index(before: entry.endIndex) else {
                return .failure(StoreNote(text: "--module-file takes NAME=PEM, got \"\(entry)\""))
            }
            store.files[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
        }
        return .success(store)
    }
}
