import ArgumentParser
import GenTCP
import GenTCPCore
import GenTCPModem
import GenTCPSerial
import GenTCPAT
import GenTCPTLS
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

            With --tls the connection runs TLS (GenTCP's OpenSSL over any driver; --tls module \
            on --driver at lets the modem run it): the server's certificate is checked against \
            the system's CA store (--cacert FILE for your own CA) and against HOST (--sni NAME \
            for another name) unless --insecure says not to. A refused handshake is one line \
            naming the TLS alert (gentcp: tls_alert: unknown_ca, generated). At the end of \
            stdin a close_notify goes out before the half-close; a peer that ends the stream \
            without its close_notify is reported as truncated, exit 1. With -v the version, \
            cipher suite and ALPN protocol are printed once connected.

            Example: printf 'GET / HTTP/1.0\\r\\n\\r\\n' | gentcp connect localhost 8080
            Example: gentcp connect --tls --alpn http/1.1 --cacert ca.pem localhost 8443
            """)

    @OptionGroup var drivers: DriverOptions

    @OptionGroup var tlsOptions: TLSOptions

    // A string, so that -1 and bad values get gentcp's own handling and one-line error.
    @ArgumentParser.Option(
        name: [.customShort("q"), .customLong("quit-after")], parsing: .unconditional,
        help: ArgumentHelp("On a driver that cannot half-close (at): after the end of stdin, once the module took every byte, close after SECONDS without data from the peer (default 5; -1 waits for the peer's close).", valueName: "SECONDS"))
    var quitAfter: String?

    // A string, so that a negative or malformed value gets gentcp's own one-line error.
    @ArgumentParser.Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Give up connecting after MS milliseconds, or never with `infinity` (default: the system's own limit; with --tls 30000 for the connect and the handshake together, 60000 with --tls module).", valueName: "MS"))
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
        if tlsOptions.tls == .host { limit = TLSDefaults.handshakeTimeout }
        if tlsOptions.tls == .module { limit = .seconds(60) }
        if timeout == "infinity" { limit = .infinity }
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
        let choice: DriverOptions.Choice
        switch drivers.choice(target: target) {
        case .success(let c): choice = c
        case .failure(let failure): return .failure(failure)
        }
        let tls: TLSOptions.Choice
        switch tlsOptions.choice(driver: choice.driver) {
        case .success(let t): tls = t
        case .failure(let failure): return .failure(failure)
        }
        return .success(ConnectSession.Settings(
            driver: choice.driver, host: target, port: number,
            timeout: limit,
            preference: preference, verbose: verbose,
            progress: progress ?? (isatty(2) == 1 && isatty(1) == 0), modem: choice.modem, line: choice.line,
            quitAfter: quit, tls: tls))
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
