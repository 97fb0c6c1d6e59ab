import ArgumentParser
import GenTCP
import GenTCPCore
import GenTCPModem
import GenTCPSerial
import GenTCPAT
#if canImport(Glibc)
import Glibc
#endif

/// `gentcp connect HOST PORT`: netcat over GenTCP.
struct Connect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to HOST PORT; copy stdin to the socket and the socket to stdout.",
        discussion: """
            Bytes are copied unchanged both ways (binary-safe). At the end of stdin the sending \
            side is shut down, so the peer sees end of stream, and received bytes keep going to \
            stdout until the peer closes. A modem (--driver at) cannot half-close: there, once \
            the module has taken every byte, the connection is closed after -q SECONDS without \
            data (like nc -q; default 5, -1 waits for the peer's close). A closed stdin is empty \
            input; a closed stdout is an error (ebadf). Exits 0 when the peer closes cleanly (or \
            the -q wait ran out), 1 when the connection, the serial line or a copy fails (one \
            line on stderr saying what happened and how many bytes arrived), 64 for bad \
            arguments. Notes (-v) go to stderr; on a \
            serial line (--driver at or slip) -v also traces every chunk on the line, in hex \
            and text, >> to the board and << from it. When stderr is a terminal and stdout is \
            not, a progress line shows the bytes sent and received (--progress, --no-progress).

            Example: printf 'GET / HTTP/1.0\\r\\n\\r\\n' | gentcp connect localhost 8080
            """)

    @ArgumentParser.Option(help: "The driver to connect with: posix, at (a modem on --serial) or slip (IP over SLIP on --serial).")
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

    // A string, so that -1 and bad values get gentcp's own handling and one-line error.
    @ArgumentParser.Option(
        name: [.customShort("q"), .customLong("quit-after")], parsing: .unconditional,
        help: ArgumentHelp("On a driver that cannot half-close (at): after the end of stdin, once the module took every byte, close after SECONDS without data from the peer (default 5; -1 waits for the peer's close).", valueName: "SECONDS"))
    var quitAfter: String?

    @ArgumentParser.Option(name: .customLong("local-ip"), help: "slip: our IPv4 address on the line (default: the board's slip.localAddress).")
    var localIP: String?

    @ArgumentParser.Option(name: .customLong("peer-ip"), help: "slip: the board's IPv4 address (default: the board's slip.peerAddress).")
    var peerIP: String?

    @ArgumentParser.Option(help: "slip: the line's MTU (default: the board's, else 1006).")
    var mtu: Int?

    @ArgumentParser.Option(help: "slip: write the line's traffic to this pcap file (LINKTYPE_RAW).")
    var capture: String?

    // A string, so that a negative or malformed value gets gentcp's own one-line error.
    @ArgumentParser.Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Give up connecting after MS milliseconds, or never with `infinity` (default: the system's own limit).", valueName: "MS"))
    var timeout: String?

    @Flag(help: "Address family for a host name.")
    var family: AddressFamily?

    @Flag(name: .shortAndLong, help: "Report each step and byte counts on stderr; on a serial line also a hex and text trace of the traffic (>> to the board, << from it).")
    var verbose = false

    @Flag(inversion: .prefixedNo, help: "Show a progress line on stderr (default: when stderr is a terminal and stdout is not).")
    var progress: Bool?

    @Argument(help: "Host name or IP address: localhost, 127.0.0.1, ::1...")
    var host: String

    // A string, not an Int, so that a bad value gets gentcp's own one-line error.
    @Argument(help: "TCP port, 1...65535.")
    var port: String

    mutating func run() async throws {
        let settings: ConnectSession.Settings
        switch settingsOrFailure() {
        case .success(let s): settings = s
        case .failure(let line):
            printError(line.text)
            throw ExitCode(Status.usage)
        }
        // The copy runs as a GenTCP process (a non-main task): see swift-platform.md §4.
        let status = try await Process.run { await ConnectSession(settings).run() }
        if status != Status.ok { throw ExitCode(status) }
    }

    struct UsageFailure: Error { var text: String }

    private func settingsOrFailure() -> Result<ConnectSession.Settings, UsageFailure> {
        func bad(_ note: String) -> Result<ConnectSession.Settings, UsageFailure> {
            .failure(UsageFailure(text: failureLine(atom: "badarg", summary: "bad argument", notes: [note])))
        }
        guard let number = Int(port), (1...65535).contains(number) else {
            return bad("port must be a number in 1...65535, got \"\(port)\"")
        }
        var limit = Timeout.infinity
        if let timeout, timeout != "infinity" {
            guard let ms = Int(timeout), ms >= 0 else {
                return bad("--timeout must be milliseconds >= 0 or infinity, got \"\(timeout)\"")
            }
            limit = .milliseconds(ms)
        }
        if host.isEmpty { return bad("HOST is empty") }
        let target = Host(host)
        if case .address(let address) = target {
            if family == .ipv4 && address.isIPv6 { return bad("--ipv4 given but \(host) is an IPv6 address") }
            if family == .ipv6 && !address.isIPv6 { return bad("--ipv6 given but \(host) is an IPv4 address") }
        }
        let preference: IPVersionPreference
        switch family {
        case nil: preference = .ipv4Preferred
        case .ipv4?: preference = .ipv4Only
        case .ipv6?: preference = .ipv6Only
        }
        var quit: Double? = 5
        if let quitAfter {
            guard let seconds = Double(quitAfter), seconds.isFinite, seconds == -1 || (0...86_400).contains(seconds) else {
                return bad("-q/--quit-after must be seconds in 0...86400, or -1 to wait for the peer's close, got \"\(quitAfter)\"")
            }
            quit = seconds < 0 ? nil : seconds
        }
        var modem: ConnectSession.Modem?
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
            if case .name(let name) = target, let problem = Connect.atStringProblem(name) {
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
        return .success(ConnectSession.Settings(
            driver: chosen, host: target, port: number,
            timeout: limit,
            preference: preference, verbose: verbose,
            progress: progress ?? (isatty(2) == 1 && isatty(1) == 0), modem: modem, line: line, quitAfter: quit))
    }

    /// What is wrong with a string that goes into an AT command (GenTCPModem's own check:
    /// no `"`, `,`, `\`, control characters or DEL), or nil when it is fine.
    static func atStringProblem(_ value: String) -> String? {
        do throws(ModemError) {
            try ModemValidation.check(value, maxLength: Int.max, allowEmpty: true)
            return nil
        } catch {
            return "must not contain a quote, comma, backslash or control character such as CR or LF"
        }
    }

    /// The value in double quotes with control characters, quotes and backslashes escaped, so the
    /// error stays one line.
    static func quoted(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\r": out += "\\r"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                out += "\\x" + String(scalar.value, radix: 16, uppercase: false).leftPadded(to: 2)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension String {
    /// The string with leading zeros up to `width` characters.
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
