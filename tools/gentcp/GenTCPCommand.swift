import ArgumentParser
import GenTCPCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `gentcp`: the command-line face of GenTCP. Subcommands: `connect`, `demo`, `ports`,
/// `simulate`, `capture`, `bench`.
@main
struct GenTCPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gentcp",
        abstract: "Erlang's gen_tcp for Swift, from the command line.",
        discussion: """
            Errors are reported as one line on stderr, `gentcp: <reason>: <summary>`, where \
            <reason> is the Erlang atom gen_tcp would return (econnrefused, timeout, nxdomain...).
            """,
        subcommands: [Connect.self, UDP.self, Demo.self, Ports.self, Simulate.self, Capture.self, Bench.self])

    /// ArgumentParser's `main`, with two changes: what ``Console`` queued (traces, progress) is
    /// written before the exit, and every error is one stderr line with a hint, as gentcp's own
    /// are (`gentcp: badarg: bad argument (missing expected argument '<host>'; see gentcp
    /// connect --help)`),
    /// instead of the parser's error, help and usage lines. `--help` itself is unchanged.
    static func main() async {
        let closed = StandardStreams.reopenClosed()
        do {
            // `--tls` takes an optional value, which the parser cannot: spell it as it can.
            var command = try parseAsRoot(TLSOptions.normalizedArguments(Array(CommandLine.arguments.dropFirst())))
            if closed.stdout {
                // Whatever the command prints would be lost (and the descriptor is /dev/null now).
                printError(failureLine(atom: "ebadf", summary: "stdout is closed",
                                       notes: ["gentcp writes what it receives there; run it without >&-, or send stdout to /dev/null"]))
                exitNow(Status.failed)
            }
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            Console.shared.flush()
        } catch let code as ExitCode {
            Console.shared.flush()
            exitNow(code.rawValue)
        } catch let error as SocketError {
            printError(failureLine(error))
            exitNow(Status.failed)
        } catch {
            Console.shared.flush()
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }   // --help, --version: as the parser prints them
            if code == .validationFailure {
                printError(failureLine(atom: "badarg", summary: "bad argument",
                                       notes: [oneLine(message(for: error)), "see \(helpCommand()) --help"]))
            } else {
                printError(failureLine(atom: "error", summary: oneLine(message(for: error)), notes: []))
            }
            exitNow(code.rawValue)
        }
    }

    /// `gentcp connect` when the arguments name a subcommand, else `gentcp`.
    static func helpCommand() -> String {
        let names = configuration.subcommands.map { $0._commandName }
        let arguments = CommandLine.arguments.dropFirst()
        if let first = arguments.first, names.contains(first) { return "gentcp \(first)" }
        return "gentcp"
    }

    /// The first line of a message, without the parser's `Error: ` prefix and final period,
    /// starting in lower case like gentcp's own notes.
    static func oneLine(_ message: String) -> String {
        var line = message.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        if line.hasPrefix("Error: ") { line.removeFirst("Error: ".count) }
        if line.hasSuffix(".") { line.removeLast() }
        if let first = line.first, first.isUppercase, line.dropFirst().first?.isLowercase == true {
            line = first.lowercased() + line.dropFirst()
        }
        return line
    }
}

/// `exit(3)`, under a name the commands' own `exit(withError:)` does not hide.
private func exitNow(_ status: Int32) -> Never {
    exit(status)
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

/// The standard descriptors as gentcp found them.
enum StandardStreams {
    /// Opens `/dev/null` on each of stdin, stdout and stderr that was closed at start (`<&-`,
    /// `>&-`, `2>&-`), so that no device, socket or event descriptor gentcp opens later takes
    /// its number (reading "stdin" from a serial port, or writing received bytes into one).
    /// A closed stdin then reads as empty input. Returns which ones were closed.
    static func reopenClosed() -> (stdin: Bool, stdout: Bool, stderr: Bool) {
        var closed = [false, false, false]
        for fd in Int32(0)...2 where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            closed[Int(fd)] = true
            let null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY)
            if null >= 0 && null != fd {
                _ = dup2(null, fd)
                _ = close(null)
            }
        }
        return (closed[0], closed[1], closed[2])
    }
}
