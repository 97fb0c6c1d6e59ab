import ArgumentParser

/// `gentcp`: the command-line face of GenTCP. Subcommands: `connect`, `demo` (more to come:
/// `ports`, `simulate`, `capture`, `bench`).
@main
struct GenTCPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gentcp",
        abstract: "Erlang's gen_tcp for Swift, from the command line.",
        discussion: """
            Errors are reported as one line on stderr, `gentcp: <reason>: <summary>`, where \
            <reason> is the Erlang atom gen_tcp would return (econnrefused, timeout, nxdomain...).
            """,
        subcommands: [Connect.self, Demo.self, Ports.self, Simulate.self, Capture.self, Bench.self])
}

/// The drivers `--driver` accepts.
enum DriverName: String, ExpressibleByArgument, CaseIterable, Sendable {
    case posix
    case at
    case slip
}

/// `-4/--ipv4`, `-6/--ipv6`: which address family to use for a host name.
enum AddressFamily: String, EnumerableFlag, Sendable {
    case ipv4
    case ipv6

    static func name(for value: AddressFamily) -> NameSpecification {
        switch value {
        case .ipv4: return [.customShort("4"), .long]
        case .ipv6: return [.customShort("6"), .long]
        }
    }

    static func help(for value: AddressFamily) -> ArgumentHelp? {
        switch value {
        case .ipv4: return "Use only IPv4 addresses of HOST (default: IPv4 first, then IPv6)."
        case .ipv6: return "Use only IPv6 addresses of HOST."
        }
    }
}
