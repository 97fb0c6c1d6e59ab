import ArgumentParser
import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPModem

/// The driver and serial-line options `connect` and `udp` share: which driver, a board
/// profile, the serial line, the modem's dialect and bearer, the SLIP line's addresses.
struct DriverOptions: ParsableArguments {
    @ArgumentParser.Option(help: "The driver: posix, at (a modem on --serial) or slip (IP over SLIP on --serial).")
    var driver: DriverName?

    @ArgumentParser.Option(help: "A board profile (name in boards/ or a file): sets the driver, dialect and serial defaults.")
    var board: String?

    @ArgumentParser.Option(help: "Directory of board profiles.")
    var boards: String = "boards"

    @ArgumentParser.Option(help: "The serial port or pty of the board (at and slip drivers); any name for it (symbolic links such as /dev/serial/by-id/... are resolved, and the device itself says whether it is a pty).")
    var serial: String?

    @ArgumentParser.Option(help: "Line speed of --serial (default: the board's, else 115200).")
    var baud: Int?

    @ArgumentParser.Option(help: "AT dialect: esp-at, sim800 or bg96 (default: the board's).")
    var dialect: String?

    @ArgumentParser.Option(help: "Cellular access point name for SIM800/BG96 (default: the board's). No quotes, commas, backslashes or control characters: it goes into an AT command.")
    var apn: String?

    @ArgumentParser.Option(name: .customLong("apn-user"), help: "The access point's user name (SIM800, BG96), if it needs one.")
    var apnUser: String?

    @ArgumentParser.Option(name: .customLong("apn-password"), help: "The access point's password (SIM800, BG96), if it needs one.")
    var apnPassword: String?

    @ArgumentParser.Option(name: .customLong("wifi-ssid"), help: "ESP-AT: join this Wi-Fi network first (default: the module stays on the network it has joined).")
    var wifiSSID: String?

    @ArgumentParser.Option(name: .customLong("wifi-password"), help: "ESP-AT: the Wi-Fi network's password (with --wifi-ssid; empty for an open network).")
    var wifiPassword: String?

    @ArgumentParser.Option(name: .customLong("local-ip"), help: "slip: our IPv4 address on the line (default: the board's slip.localAddress).")
    var localIP: String?

    @ArgumentParser.Option(name: .customLong("peer-ip"), help: "slip: the board's IPv4 address (default: the board's slip.peerAddress).")
    var peerIP: String?

    @ArgumentParser.Option(help: "slip: the line's MTU (default: the board's, else 1006).")
    var mtu: Int?

    @ArgumentParser.Option(help: "slip: write the line's traffic to this pcap file (LINKTYPE_RAW).")
    var capture: String?

    /// The chosen driver and its line.
    struct Choice: Sendable {
        var driver: DriverName
        var modem: ConnectSession.Modem?
        var line: ConnectSession.Line?
    }

    /// Checks the options together: the driver (from `--driver`, else the board's link, else
    /// posix), its line, and the strings that would go into AT commands (`target` too, when it is
    /// a name). The failure is the one-line `badarg` gentcp prints.
    func choice(target: Host?) -> Result<Choice, Connect.UsageFailure> {
        func bad(_ note: String) -> Result<Choice, Connect.UsageFailure> {
            .failure(Connect.UsageFailure(text: failureLine(atom: "badarg", summary: "bad argument", notes: [note])))
        }
        var chosen = driver ?? .posix
        var profile: BoardProfile?
        if let board {
            do throws(BoardProfileError) {
                profile = try BoardProfile.find(board, in: boards)
            } catch {
                return bad("\(error)")
            }
            if driver == nil { chosen = profile?.link == .slip ? .slip : .at }
        }
        var line: ConnectSession.Line?
        if chosen == .slip {
            guard let serial else { return bad("--driver slip needs --serial PATH (the board's port or pty)") }
            guard let local = (localIP.flatMap { IPAddress($0) } ?? profile?.slip?.localAddress), !local.isIPv6 else {
                return bad("--driver slip needs --local-ip A.B.C.D (IPv4), got \"\(localIP ?? "")\"")
            }
            guard let peer = (peerIP.flatMap { IPAddress($0) } ?? profile?.slip?.peerAddress), !peer.isIPv6 else {
                return bad("--driver slip needs --peer-ip A.B.C.D (IPv4), got \"\(peerIP ?? "")\"")
            }
            let lineMTU = mtu ?? profile?.slip?.mtu ?? 1006
            guard (68...65535).contains(lineMTU) else { return bad("--mtu must be 68...65535, got \(lineMTU)") }
            let speed = baud ?? profile?.serial.baudRate ?? 115_200
            guard (50...4_000_000).contains(speed) else { return bad("--baud must be 50...4000000, got \(speed)") }
            line = ConnectSession.Line(
                path: serial, serial: SerialConfiguration(baudRate: speed, flowControl: profile?.serial.flowControl ?? .none),
                local: local, peer: peer, mtu: lineMTU, capture: capture)
        } else if localIP != nil || peerIP != nil || mtu != nil || capture != nil {
            return bad("--local-ip, --peer-ip, --mtu and --capture go with --driver slip")
        }
        var modem: ConnectSession.Modem?
        if chosen == .at {
            guard let serial else { return bad("--driver at needs --serial PATH (the modem's port or pty)") }
            let dialectName = dialect ?? profile?.dialect?.description ?? ""
            guard let parsed = ATDialect(name: dialectName) else {
                return bad("--dialect must be esp-at, sim800 or bg96, got \"\(dialectName)\"")
            }
            let speed = baud ?? profile?.serial.baudRate ?? 115_200
            guard (50...4_000_000).contains(speed) else { return bad("--baud must be 50...4000000, got \(speed)") }
            // Strings that go into AT commands are checked as the driver would, now rather than
            // as a refused command after the modem's bring-up.
            for (option, value) in [("--apn", apn), ("--apn-user", apnUser), ("--apn-password", apnPassword),
                                    ("--wifi-ssid", wifiSSID), ("--wifi-password", wifiPassword)] {
                if let value, let problem = Connect.atStringProblem(value) {
                    // A password is not repeated on the terminal.
                    let shown = option.hasSuffix("password") ? "" : "; got \(Connect.quoted(value))"
                    return bad("\(option) goes into an AT command and \(problem)\(shown)")
                }
            }
            if wifiPassword != nil && wifiSSID == nil { return bad("--wifi-password needs --wifi-ssid") }
            if wifiSSID == "" { return bad("--wifi-ssid is empty") }
            if case .name(let name)? = target, let problem = Connect.atStringProblem(name) {
                return bad("HOST goes to the modem in an AT command and \(problem); got \(Connect.quoted(name))")
            }
            modem = ConnectSession.Modem(
                path: serial, dialect: parsed,
                serial: SerialConfiguration(baudRate: speed, flowControl: profile?.serial.flowControl ?? .none),
                apn: apn ?? profile?.apn ?? "", apnUser: apnUser ?? "", apnPassword: apnPassword ?? "",
                wifi: wifiSSID.map { ($0, wifiPassword ?? "") }, latency: profile?.latency ?? 0)
        } else if dialect != nil || (serial != nil && chosen != .slip) {
            return bad("--serial and --dialect go with --driver at (or --serial with --driver slip)")
        } else if apn != nil || apnUser != nil || apnPassword != nil || wifiSSID != nil || wifiPassword != nil {
            return bad("--apn, --apn-user, --apn-password, --wifi-ssid and --wifi-password go with --driver at")
        }
        return .success(Choice(driver: chosen, modem: modem, line: line))
    }
}
