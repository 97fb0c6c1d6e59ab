import ArgumentParser
import GenTCP
import GenTCPCore

/// `gentcp connect HOST PORT`: netcat over GenTCP.
struct Connect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to HOST PORT; copy stdin to the socket and the socket to stdout.",
        discussion: """
            Bytes are copied unchanged both ways (binary-safe). At the end of stdin the sending \
            side is shut down, so the peer sees end of stream, and received bytes keep going to \
            stdout until the peer closes. Exits 0 when the peer closes cleanly, 1 when the \
            connection or a copy fails, 64 for bad arguments. Progress (-v) goes to stderr.

            Example: printf 'GET / HTTP/1.0\\r\\n\\r\\n' | gentcp connect localhost 8080
            """)

    @ArgumentParser.Option(help: "The driver to connect with.")
    var driver: DriverName = .posix

    // A string, so that a negative or malformed value gets gentcp's own one-line error.
    @ArgumentParser.Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Give up connecting after MS milliseconds, or never with `infinity` (default: the system's own limit).", valueName: "MS"))
    var timeout: String?

    @Flag(help: "Address family for a host name.")
    var family: AddressFamily?

    @Flag(name: .shortAndLong, help: "Report progress and byte counts on stderr.")
    var verbose = false

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
        return .success(ConnectSession.Settings(
            driver: driver, host: target, port: number,
            timeout: limit,
            preference: preference, verbose: verbose))
    }
}
