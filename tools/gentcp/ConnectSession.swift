import GenTCP
import GenTCPModem
import GenTCPCore
import GenTCPPOSIX
import GenTCPSerial
import GenTCPAT
import GenTCPSLIP
import GenTCPTLS
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One `connect` run, inside a GenTCP process: connect, then copy both ways until the peer closes.
struct ConnectSession: Sendable {
    /// A modem on a serial line, for `--driver at`.
    struct Modem: Sendable {
        var path: String
        var dialect: ATDialect
        var serial: SerialConfiguration
        var apn: String
        var apnUser = ""
        var apnPassword = ""
        /// ESP-AT: the Wi-Fi network to join first, nil to keep the module's.
        var wifi: (ssid: String, password: String)?
        /// Time added to every command's timeout (the board profile's `latency`).
        var latency: Milliseconds = 0

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

    /// The at driver for `modem` on `link` (not started).
    static func makeATDriver(_ modem: Modem, link: any SerialLink) -> ATDriver {
        var engine = ATConfiguration.defaultEngine
        engine.extraLatency = modem.latency
        return ATDriver(link: link, configuration: ATConfiguration(
            dialect: modem.dialect, apn: modem.apn, apnUser: modem.apnUser, apnPassword: modem.apnPassword,
            wifi: modem.wifi, engine: engine))
    }

    /// Opens a line: symbolic links resolved, then a pty through termios and a port through
    /// libserialport (which refuses ptys), as the device itself says (``SerialDevice``); a path
    /// that is no serial device is `enotty`, a missing one `enoent`.
    static func openLink(_ path: String, _ serial: SerialConfiguration) throws(SerialLinkError) -> any SerialLink {
        try SerialDevice.open(path, configuration: serial)
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
        /// At the end of stdin on a driver that cannot half-close (at): close after this many
        /// seconds without data once the module took every byte; nil waits for the peer's close.
        var quitAfter: Double? = 5
        /// TLS: none, GenTCP's own over the driver, or the module's.
        var tls: TLSOptions.Choice = .none

        /// True with `--tls`.
        var usesTLS: Bool {
            if case .none = tls { return false }
            return true
        }

        /// The serial device and its speed, for drivers on a serial line.
        var serialLine: (path: String, baud: Int)? {
            if let modem { return (modem.path, modem.serial.baudRate) }
            if let line { return (line.path, line.serial.baudRate) }
            return nil
        }

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

    /// What a run opened, closed after it whatever its outcome.
    final class Held: @unchecked Sendable {
        var socket: Socket?
        var at: ATDriver?
    }

    /// Returns the exit status: ``Status/ok`` only when the stream ended with the peer's end of
    /// stream (`closed` from `recv`), or, on a driver that cannot half-close, when the `-q` wait
    /// after the end of stdin ran out; every other end is one line on stderr and a failure.
    func run() async -> Int32 {
        let held = Held()
        let status = await transfer(held)
        held.socket?.close()
        // A module outlives this program: let the close reach it (`AT+CIPCLOSE`) before stopping,
        // so the next run does not find the link still held.
        await held.at?.finish()
        return status
    }

    private func transfer(_ held: Held) async -> Int32 {
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
        // The driver's account of the link, for the failure line (serial drivers only).
        var incidents: (any SerialLinkIncidents)?
        do throws(SocketError) {
            switch settings.driver {
            case .posix:
                socket = try await open(options: options, driver: .posix)
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
                incidents = driver
                socket = try await open(options: options, driver: driver)
            case .at:
                guard let modem = settings.modem else { throw SocketError(.badArgument, "no modem") }
                let link: any SerialLink
                do throws(SerialLinkError) {
                    link = traced(try modem.openLink())
                } catch {
                    printError(failureLine(error))
                    return Status.failed
                }
                let driver = ConnectSession.makeATDriver(modem, link: link)
                held.at = driver
                incidents = driver
                driver.start()
                // A modem connection cannot half-close: at stdin's end the copy keeps receiving.
                socket = try await open(options: options.filter { $0.name != .nodelay }, driver: driver)
            }
        } catch {
            printError(connectFailureLine(error, incident: ConnectSession.linkIncident(incidents, for: error)))
            return Status.failed
        }
        held.socket = socket
        if settings.verbose {
            let peer = (try? socket.peername())?.description ?? "?"
            let local = (try? socket.sockname())?.description ?? "?"
            note("connected to \(peer) from \(local)")
            if let info = try? socket.connectionInformation() { note(ConnectSession.describe(info)) }
        }

        let stdin = BlockingThread()
        let stdout = BlockingThread()
        let upload = Upload()
        let verbose = settings.verbose
        let quitAfter = settings.quitAfter
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
            await ConnectSession.copyStdin(to: socket, through: stdin, upload: upload, verbose: verbose,
                                           quitAfter: quitAfter, progress: progress)
        }

        var received = 0
        while true {
            let payload: Payload
            do throws(SocketError) {
                payload = try await socket.recv(0)
            } catch {
                let incident = ConnectSession.linkIncident(incidents, for: error)
                switch upload.outcome {
                case .fileFailure(let line)?:
                    return finish(Status.failed, line)
                case .sendFailure(let sendError)?:
                    // The stream broke while stdin was going out: the same line as for a receive,
                    // with the receive's reason when it says more than the send's `closed`.
                    let shown = error.reason != .closed ? error : sendError
                    // The incident that explains the error shown (the send's, when the receive
                    // only saw `closed`).
                    return finish(Status.failed, transferFailureLine(shown, incident: ConnectSession.linkIncident(incidents, for: shown),
                                                                     received: received,
                                                                     hint: transferHint(for: shown)))
                case .quit(let seconds, let sent)? where error.reason == .closed:
                    // The -q wait ran out (its shutdown woke this recv): everything asked for went
                    // out and was accepted. A real error that raced it is reported below.
                    return finish(Status.ok, "no data for \(secondsText(seconds)) s after the end of stdin (\(sent) bytes sent, \(received) received); closed")
                case .quit?, nil:
                    break
                }
                if error.reason == .closed { return finish(Status.ok, "peer closed after sending \(received) bytes") }
                return finish(Status.failed, transferFailureLine(error, incident: incident, received: received,
                                                                 hint: transferHint(for: error)))
            }
            received += payload.count
            upload.received()
            let bytes = payload.bytes
            if case .failed(let code) = await stdout.run({ writeBlocking(1, bytes) }) {
                return finish(Status.failed, fileFailureLine(code, what: "writing stdout"))
            }
            progress?.add(received: bytes.count)
        }
    }

    /// Connects as the settings say: plain, TLS over the driver, or the module's TLS.
    private func open(options: [Option], driver: some Driver) async throws(SocketError) -> Socket {
        switch settings.tls {
        case .none:
            return try await Socket.connect(settings.host, port: settings.port, options: options,
                                            timeout: settings.timeout, driver: driver)
        case .host(let context):
            return try await Socket.connect(settings.host, port: settings.port, options: options, tls: context,
                                            timeout: settings.timeout, driver: driver)
        case .module(let tls):
            guard let offloading = driver as? any TLSOffloadingDriver else {
                throw SocketError(.notSupported, "this driver cannot run TLS in the module")
            }
            return try await Socket.connect(settings.host, port: settings.port, options: options, offloadedTLS: tls,
                                            timeout: settings.timeout, driver: offloading)
        }
    }

    /// `TLS 1.3, TLS_AES_256_GCM_SHA384, ALPN h2`: what -v says of a TLS connection.
    static func describe(_ info: TLSConnectionInformation) -> String {
        if info.offloaded { return "TLS run by the module (it reports no version, cipher or ALPN)" }
        var parts = [info.protocolVersion.map { "TLS \($0 == .v1_3 ? "1.3" : "1.2")" } ?? "TLS", info.cipherSuite ?? "?"]
        parts.append(info.negotiatedProtocol.map { "ALPN \($0)" } ?? "no ALPN protocol")
        return parts.joined(separator: ", ")
    }

    /// Copies stdin to the socket, then shuts down the sending side. On a driver that cannot
    /// half-close (at), it waits instead until the module has taken every byte (`send_pend` 0)
    /// and then for `quitAfter` seconds without received data, and ends the run (`nc -q`).
    /// Failures, and the end of that wait, go to `upload`; the receive loop is woken by a
    /// `shutdown(read_write)` and reports them.
    private static func copyStdin(to socket: Socket, through thread: BlockingThread, upload: Upload, verbose: Bool,
                                  quitAfter: Double?, progress: ProgressReporter?) async {
        var sent = 0
        func stop(_ outcome: Upload.Outcome) {
            upload.end(outcome)
            // Stop the download too: the run is over.
            try? socket.shutdown(.readWrite)
        }
        while true {
            switch await thread.run({ readBlocking(0, count: ConnectSession.chunkSize) }) {
            case .bytes(let bytes):
                do throws(SocketError) {
                    try await socket.send(bytes)
                } catch {
                    return stop(.sendFailure(error))
                }
                sent += bytes.count
                progress?.add(sent: bytes.count)
            case .endOfFile:
                do throws(SocketError) {
                    try socket.shutdown(.write)
                } catch {
                    guard error.reason == .notSupported else {
                        return stop(.sendFailure(error))
                    }
                    // AT modems have no half-close.
                    guard let quitAfter else {
                        if verbose { printError("gentcp: end of stdin after \(sent) bytes; this driver cannot half-close, waiting for the peer to close (-q -1)") }
                        return
                    }
                    if verbose { printError("gentcp: end of stdin after \(sent) bytes; this driver cannot half-close: waiting until the module took every byte, then for the peer's close or \(secondsText(quitAfter)) s without data (-q)") }
                    guard await waitUntilSent(socket) else { return }
                    await upload.waitForSilence(seconds: quitAfter)
                    return stop(.quit(seconds: quitAfter, sent: sent))
                }
                if verbose { printError("gentcp: end of stdin after \(sent) bytes; sending side shut down") }
                return
            case .failed(let code):
                return stop(.fileFailure(fileFailureLine(code, what: "reading stdin")))
            case .wrote:
                return
            }
        }
    }

    /// Polls `send_pend` (every 20 ms) until the driver holds no unsent byte. False when the
    /// socket went away meanwhile (the receive loop reports why).
    private static func waitUntilSent(_ socket: Socket) async -> Bool {
        while true {
            guard let stats = try? socket.getstat() else { return false }
            if stats.sendPend == 0 { return true }
            try? await Task.sleep(for: .milliseconds(20))
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

    /// The driver's account of the link, for errors the link can cause (a reset, silence, a
    /// hang-up, bad framing, a bearer that will not come up, a connect that ran out of time while
    /// it did not); nil for errors about the remote host (`econnrefused`, `nxdomain`), which an
    /// earlier link incident does not explain.
    static func linkIncident(_ incidents: (any SerialLinkIncidents)?, for error: SocketError) -> String? {
        switch error.reason {
        case .connectionAborted, .connectionTimedOut, .ioError, .protocolError, .networkDown, .networkUnreachable,
             .timeout, .noSuchDeviceOrAddress, .noSuchDevice:
            return incidents?.lastIncident
        default:
            return nil
        }
    }

    /// The line for a failed connect: on a serial line, what happened on the link (when the
    /// driver knows) instead of the reason's summary.
    func connectFailureLine(_ error: SocketError, incident: String?) -> String {
        guard let incident, !incident.isEmpty else { return failureLine(error, hint: hint(for: error)) }
        // The incident says what the error's static detail would only point to.
        return failureLine(atom: "\(error.reason.atom)", summary: incident, notes: [hint(for: error) ?? ""])
    }

    /// A short hint for the failures people meet most, while connecting.
    func hint(for error: SocketError) -> String? {
        if case .module = settings.tls {
            // The module reports no TLS alert: say what its answer can mean (before the serial
            // line's hints, which would blame the line for a refused handshake).
            switch error.reason {
            case .connectionRefused:
                return "the module refused the link or its TLS handshake (it does not say which): is anything listening on \(settings.target), with a certificate the module's CA signed?"
            case .protocolError:
                return "the module's TLS handshake failed: a server certificate its CA did not sign, or no TLS version both support"
            case .notSupported:
                return "the module cannot do what --tls module asks (ESP-AT: CA slots, SNI, up to 3 ALPN names; BG96: CA files, no ALPN; SIM800: --insecure only)"
            default: break
            }
        }
        if let serial = settings.serialLine, let hint = ConnectSession.serialHint(for: error.reason, path: serial.path,
                                                                                 baud: serial.baud, connecting: true,
                                                                                 target: settings.target) {
            return hint
        }
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
        case .connectionAborted: return "the connection was aborted on this host"
        case .protocolError: return "the peer broke the protocol"
        case .tlsAlert: return error.alert?.connectHint
        case .closed where settings.usesTLS: return "the peer closed the connection during the TLS handshake (does it speak TLS on this port?)"
        default: return nil
        }
    }

    /// A short hint for a connection that broke during the transfer.
    func transferHint(for error: SocketError) -> String? {
        if let serial = settings.serialLine, let hint = ConnectSession.serialHint(for: error.reason, path: serial.path,
                                                                                 baud: serial.baud, connecting: false,
                                                                                 target: settings.target) {
            return hint
        }
        switch error.reason {
        case .connectionReset: return "the peer reset the connection; what reached stdout is incomplete"
        case .connectionAborted: return "the connection was aborted on this host; what reached stdout is incomplete"
        case .connectionTimedOut: return "\(settings.target) stopped answering; what reached stdout is incomplete"
        case .protocolError: return "the peer broke the protocol; what reached stdout is incomplete"
        case .truncated: return "the peer ended the TLS stream without close_notify; what reached stdout may be cut short"
        case .tlsAlert: return "the TLS connection failed; what reached stdout is incomplete"
        default: return "what reached stdout is incomplete"
        }
    }

    /// The hint for a failure on a serial line (at, slip), or nil for reasons that mean the same
    /// on every driver. Pure, for tests.
    static func serialHint(for reason: SocketError.Reason, path: String, baud: Int, connecting: Bool,
                           target: String) -> String? {
        let incomplete = connecting ? "" : "; what reached stdout is incomplete"
        let trace = "-v traces the line"
        switch reason {
        case .connectionAborted:
            return "the board restarted or lost its network\(incomplete); check its power supply and antenna or Wi-Fi, \(trace)"
        case .connectionTimedOut:
            if connecting {
                return "neither the board on \(path) nor \(target) through it answered in time; check the board's power, cable and --baud (\(baud)), \(trace)"
            }
            return "the board on \(path) stopped answering\(incomplete); check its power, cable and --baud (\(baud)), \(trace)"
        case .ioError, .noSuchDevice, .noSuchDeviceOrAddress, .brokenPipe:
            return "the serial line \(path) went away (adapter unplugged, or the program behind the pty exited)\(incomplete)"
        case .protocolError:
            return "the board sent what the driver cannot parse on \(path) (wrong --dialect or --baud? noise on the line?)\(incomplete); \(trace)"
        default:
            return nil
        }
    }
}

/// What the stdin copy reports to the receive loop.
final class Upload: Sendable {
    enum Outcome: Sendable {
        /// Reading stdin failed: the whole line.
        case fileFailure(String)
        /// A send (or the half-close) failed.
        case sendFailure(SocketError)
        /// The `-q` wait after the end of stdin ran out (a clean end).
        case quit(seconds: Double, sent: Int)
    }

    private struct State {
        var outcome: Outcome?
        /// When data last arrived (or the copy started), for the `-q` silence.
        var lastData = ContinuousClock.now
    }

    private let state = Mutex(State())

    /// Records how the upload ended (the first outcome wins).
    func end(_ outcome: Outcome) { state.withLock { if $0.outcome == nil { $0.outcome = outcome } } }

    var outcome: Outcome? { state.withLock { $0.outcome } }

    /// Notes that data arrived (the `-q` silence starts over).
    func received() { state.withLock { $0.lastData = ContinuousClock.now } }

    /// Returns once `seconds` passed without data, counted from now or from the last data,
    /// whichever is later.
    func waitForSilence(seconds: Double) async {
        let quiet = Duration.milliseconds(Int64((max(0, seconds) * 1000).rounded()))
        let start = ContinuousClock.now
        while true {
            let deadline = max(start, state.withLock { $0.lastData }) + quiet
            if ContinuousClock.now >= deadline { return }
            try? await Task.sleep(until: deadline, clock: .continuous)
        }
    }
}

/// `5`, `0.25`: seconds as people write them.
func secondsText(_ seconds: Double) -> String {
    if seconds == seconds.rounded(), abs(seconds) < 1e9 { return String(Int(seconds)) }
    return String(seconds)
}
