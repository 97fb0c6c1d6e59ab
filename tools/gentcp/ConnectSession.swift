import GenTCP
import GenTCPCore
import GenTCPPOSIX
import GenTCPSerial
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One `connect` run, inside a GenTCP process: connect, then copy both ways until the peer closes.
struct ConnectSession: Sendable {
    /// A modem on a serial line, for `--driver at`.
    struct Modem: Sendable {
        var path: String
        var dialect: ATDialectName
        var serial: SerialConfiguration
        var apn: String

        func openLink() throws(SerialLinkError) -> any SerialLink {
            try ConnectSession.openLink(path, serial)
        }
    }

    /// A SLIP line to a board, for `--driver slip`.
    struct Line: Sendable {
        var path: String
        var serial: SerialConfiguration
        var local: IPAddress
        var peer: IPAddress
        var mtu: Int
        var capture: String?
    }

    /// Opens a line: a pty through termios, anything else through libserialport (which refuses
    /// ptys).
    static func openLink(_ path: String, _ serial: SerialConfiguration) throws(SerialLinkError) -> any SerialLink {
        if path.hasPrefix("/dev/pts/") || path == "/dev/ptmx" {
            return try PTYLink(path: path, configuration: serial)
        }
        return try SerialPortLink(path: path, configuration: serial)
    }

    struct Settings: Sendable {
        var driver: DriverName
        var host: Host
        var port: Int
        var timeout: Timeout
        var preference: IPVersionPreference
        var verbose: Bool
        /// Show the progress line on stderr.
        var progress: Bool
        /// The modem for `--driver at`.
        var modem: Modem?
        /// The SLIP line for `--driver slip`.
        var line: Line?

        /// `host:port`, or `[::1]:port` for an IPv6 literal.
        var target: String {
            if case .address(let a) = host { return SocketAddress(a, port: port).description }
            return "\(host):\(port)"
        }
    }

    /// How much is read from stdin, and asked of a socket `recv`, at a time.
    static let chunkSize = 64 * 1024

    let settings: Settings

    init(_ settings: Settings) { self.settings = settings }

    /// Returns the exit status.
    func run() async -> Int32 {
        let options: [Option] = [
            .binary, .active(.passive), .buffer(ConnectSession.chunkSize),
            // Keep the socket writable after the peer's FIN, and the peer readable after ours.
            .exitOnClose(false),
            // A reset is a failure worth reporting, not a quiet close.
            .showEconnreset(true),
            // Each stdin read goes out at once: interactive use should not wait for Nagle.
            .nodelay(true),
            .ipVersion(settings.preference),
        ]
        note("connecting to \(settings.target) (driver \(settings.driver.rawValue))")
        let socket: Socket
        do throws(SocketError) {
            switch settings.driver {
            case .posix:
                socket = try await Socket.connect(settings.host, port: settings.port, options: options,
                                                  timeout: settings.timeout, driver: .posix)
            case .slip:
                guard let line = settings.line else { throw SocketError(.badArgument, "no line") }
                let link: any SerialLink
                do throws(SerialLinkError) {
                    link = traced(try ConnectSession.openLink(line.path, line.serial))
                } catch {
                    printError(failureLine(error))
                    return Status.failed
                }
                var configuration = SLIPConfiguration(local: line.local, peer: line.peer, mtu: line.mtu)
                configuration.capturePath = line.capture
                let driver = try SLIPDriver(link: link, configuration: configuration)
                socket = try await Socket.connect(settings.host, port: settings.port, options: options,
                                                  timeout: settings.timeout, driver: driver)
            case .at:
                guard let modem = settings.modem else { throw SocketError(.badArgument, "no modem") }
                let link: any SerialLink
                do throws(SerialLinkError) {
                    link = traced(try modem.openLink())
                } catch {
                    printError(failureLine(error))
                    return Status.failed
                }
                let driver = ATDriver(link: link, configuration: ATConfiguration(dialect: modem.dialect, apn: modem.apn))
                driver.start()
                // A modem connection cannot half-close: at stdin's end the copy keeps receiving.
                socket = try await Socket.connect(settings.host, port: settings.port,
                                                  options: options.filter { $0.name != .nodelay },
                                                  timeout: settings.timeout, driver: driver)
            }
        } catch {
            printError(failureLine(error, hint: hint(for: error)))
            return Status.failed
        }
        if settings.verbose {
            let peer = (try? socket.peername())?.description ?? "?"
            let local = (try? socket.sockname())?.description ?? "?"
            note("connected to \(peer) from \(local)")
        }

        let stdin = BlockingThread()
        let stdout = BlockingThread()
        let upload = Upload()
        let verbose = settings.verbose
        let progress = settings.progress
            ? ProgressReporter(sending: true, sentTotal: ConnectSession.stdinSize(), receiving: true) : nil
        /// Ends the progress line (left as a summary) before the last words.
        func finish(_ status: Int32, _ line: String) -> Int32 {
            progress?.finish(keep: true)
            if status == Status.ok { note(line) } else { printError(line) }
            return status
        }
        // Child task of this process: it acts as the process (send needs no ownership anyway).
        Task {
            let line = await ConnectSession.copyStdin(to: socket, through: stdin, upload: upload, verbose: verbose,
                                                      progress: progress)
            if let line {
                upload.fail(line)
                // Stop the download too: the run has failed.
                try? socket.shutdown(.readWrite)
            }
        }

        var received = 0
        while true {
            let payload: Payload
            do throws(SocketError) {
                payload = try await socket.recv(0)
            } catch {
                if let line = upload.failure { return finish(Status.failed, line) }
                if error.reason == .closed { return finish(Status.ok, "peer closed after sending \(received) bytes") }
                return finish(Status.failed, failureLine(error, hint: hint(for: error)))
            }
            received += payload.count
            let bytes = payload.bytes
            if case .failed(let code) = await stdout.run({ writeBlocking(1, bytes) }) {
                return finish(Status.failed, fileFailureLine(code, what: "writing stdout"))
            }
            progress?.add(received: bytes.count)
        }
    }

    /// Copies stdin to the socket, then shuts down the sending side. Returns a failure line, or
    /// nil when stdin ended and the FIN went out.
    private static func copyStdin(to socket: Socket, through thread: BlockingThread, upload: Upload, verbose: Bool,
                                  progress: ProgressReporter?) async -> String? {
        var sent = 0
        while true {
            switch await thread.run({ readBlocking(0, count: ConnectSession.chunkSize) }) {
            case .bytes(let bytes):
                do throws(SocketError) {
                    try await socket.send(bytes)
                } catch {
                    return failureLine(error, hint: "while sending stdin")
                }
                sent += bytes.count
                progress?.add(sent: bytes.count)
            case .endOfFile:
                do throws(SocketError) {
                    try socket.shutdown(.write)
                } catch {
                    // AT modems have no half-close: keep receiving until the peer closes.
                    if error.reason == .notSupported {
                        if verbose { printError("gentcp: end of stdin after \(sent) bytes; this driver cannot half-close, waiting for the peer to close") }
                        return nil
                    }
                    return failureLine(error, hint: "while shutting down the sending side")
                }
                if verbose { printError("gentcp: end of stdin after \(sent) bytes; sending side shut down") }
                return nil
            case .failed(let code):
                return fileFailureLine(code, what: "reading stdin")
            case .wrote:
                return nil
            }
        }
    }

    /// The link itself, or with `--verbose` the link traced on stderr.
    private func traced(_ link: any SerialLink) -> any SerialLink {
        settings.verbose ? Trace.wrap(link) : link
    }

    /// Bytes left in stdin when it is a regular file (the upload's total), else nil.
    static func stdinSize() -> Int? {
        var info = stat()
        guard fstat(0, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        let offset = lseek(0, 0, SEEK_CUR)
        return max(0, Int(info.st_size) - Int(max(0, offset)))
    }

    private func note(_ text: String) {
        if settings.verbose { printError("gentcp: \(text)") }
    }

    /// A short hint for the failures people meet most.
    func hint(for error: SocketError) -> String? {
        switch error.reason {
        case .connectionRefused: return "is anything listening on \(settings.target)?"
        case .nonExistentDomain:
            switch settings.preference {
            case .ipv4Only: return "\(settings.host) has no IPv4 address"
            case .ipv6Only: return "\(settings.host) has no IPv6 address"
            default: return "cannot resolve \(settings.host)"
            }
        case .timeout:
            if case .milliseconds(let ms) = settings.timeout { return "no connection within \(ms) ms" }
            return nil
        case .connectionTimedOut: return "\(settings.target) did not answer"
        case .hostUnreachable, .networkUnreachable: return "no route to \(settings.target)"
        case .addressNotAvailable, .addressFamilyNotSupported:
            return "is this address family enabled here? try -4 or -6"
        case .connectionReset: return "the peer reset the connection"
        default: return nil
        }
    }
}

/// What the stdin copy reports to the download loop.
final class Upload: Sendable {
    private let state = Mutex<String?>(nil)
    func fail(_ line: String) { state.withLock { $0 = $0 ?? line } }
    var failure: String? { state.withLock { $0 } }
}
