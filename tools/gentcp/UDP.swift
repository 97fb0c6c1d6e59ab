import ArgumentParser
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import GenTCPSerial
import GenTCPSLIP
import GenTCPAT
#if canImport(Glibc)
import Glibc
#endif

/// `gentcp udp HOST PORT` / `gentcp udp --listen PORT`: netcat `-u` over GenTCP's gen_udp.
struct UDP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "udp",
        abstract: "Send each stdin line to HOST PORT as one UDP datagram; print each datagram received on its own line.",
        discussion: """
            Each line of stdin, without its newline, is one datagram (an empty line is an empty \
            datagram); with --size N, stdin is cut into N-byte datagrams instead (binary-safe). \
            Each datagram received is written to stdout followed by a newline (-v: after its \
            sender and a tab). The socket is connected to HOST PORT, so only its datagrams are \
            taken, and a closed port reported by ICMP is an error (econnrefused). After the end \
            of stdin, gentcp waits -q SECONDS (default 1) without a datagram, then exits 0. \
            With --listen PORT, gentcp binds PORT, waits for the first datagram, then connects \
            to its sender and answers it with stdin, as nc -u -l does. Exits 1 when a send, a \
            receive or stdout fails (one line on stderr), 64 for bad arguments. Through a modem \
            (--driver at) a datagram carries 1 to 1460 bytes: an empty line is refused (enotsup), \
            and SIM800 modules send only to the connected peer.

            Example: echo 'hello' | gentcp udp 127.0.0.1 7
            """)

    @OptionGroup var drivers: DriverOptions

    @ArgumentParser.Option(help: "Cut stdin into datagrams of N bytes (1...65507) instead of lines.")
    var size: Int?

    // A string, so that a bad value gets gentcp's own one-line error.
    @ArgumentParser.Option(
        name: [.customShort("q"), .customLong("quit-after")], parsing: .unconditional,
        help: ArgumentHelp("After the end of stdin, exit after SECONDS without a datagram (default 1).", valueName: "SECONDS"))
    var quitAfter: String?

    @ArgumentParser.Option(help: "Bind this port (on every address, or on HOST when given) and answer the first sender.")
    var listen: Int?

    @Flag(help: "Address family for a host name.")
    var family: AddressFamily?

    @Flag(name: .shortAndLong, help: "Print each datagram's sender before it (a tab between), and report steps on stderr.")
    var verbose = false

    @Argument(help: "Host name or IP address to send to (with --listen: the address to bind, optional).")
    var host: String?

    // A string, so that a bad value gets gentcp's own one-line error.
    @Argument(help: "UDP port, 1...65535.")
    var port: String?

    mutating func run() async throws {
        let settings: UDPSession.Settings
        switch settingsOrFailure() {
        case .success(let s): settings = s
        case .failure(let line):
            printError(line.text)
            throw ExitCode(Status.usage)
        }
        let status = try await Process.run { await UDPSession(settings).run() }
        if status != Status.ok { throw ExitCode(status) }
    }

    private func settingsOrFailure() -> Result<UDPSession.Settings, Connect.UsageFailure> {
        func bad(_ note: String) -> Result<UDPSession.Settings, Connect.UsageFailure> {
            .failure(Connect.UsageFailure(text: failureLine(atom: "badarg", summary: "bad argument", notes: [note])))
        }
        let choice: DriverOptions.Choice
        switch drivers.choice(target: host.map { Host($0) }) {
        case .success(let c): choice = c
        case .failure(let failure): return .failure(failure)
        }
        let line = choice.line
        if line != nil, family == .ipv6 { return bad("SLIP carries IPv4 only: --ipv6 does not go with --driver slip") }
        if choice.modem != nil, family == .ipv6 { return bad("the modems carry IPv4 UDP only: --ipv6 does not go with --driver at") }
        if let size, !(1...65507).contains(size) { return bad("--size must be 1...65507, got \(size)") }
        if let size, let line, size > line.mtu - 28 {
            return bad("--size \(size) does not fit one datagram on an MTU of \(line.mtu) (at most \(line.mtu - 28))")
        }
        if let size, choice.modem != nil, size > 1460 {
            return bad("--size \(size) does not fit one datagram through a modem (at most 1460)")
        }
        var quit = 1.0
        if let quitAfter {
            guard let seconds = Double(quitAfter), seconds.isFinite, (0...86_400).contains(seconds) else {
                return bad("-q/--quit-after must be seconds in 0...86400, got \"\(quitAfter)\"")
            }
            quit = seconds
        }
        var target: (Host, Int)?
        var bind: IPAddress?
        if let listen {
            guard (1...65535).contains(listen) else { return bad("--listen must be a port in 1...65535, got \(listen)") }
            if port != nil { return bad("--listen PORT takes at most one argument, the address to bind") }
            if let host {
                guard let address = IPAddress(host) else { return bad("with --listen, HOST must be an IP address to bind, got \"\(host)\"") }
                bind = address
            }
        } else {
            guard let host, !host.isEmpty else { return bad("HOST is missing (or use --listen PORT)") }
            guard let port, let number = Int(port), (1...65535).contains(number) else {
                return bad("PORT must be a number in 1...65535, got \"\(port ?? "")\"")
            }
            target = (Host(host), number)
        }
        var ipv6 = family == .ipv6
        if let bind { ipv6 = bind.isIPv6 }
        if case .address(let a)? = target?.0 {
            if family == .ipv4 && a.isIPv6 { return bad("--ipv4 given but \(a) is an IPv6 address") }
            if family == .ipv6 && !a.isIPv6 { return bad("--ipv6 given but \(a) is an IPv4 address") }
            ipv6 = a.isIPv6
        }
        return .success(UDPSession.Settings(
            target: target, listenPort: listen, bind: bind, ipv6: ipv6, size: size,
            quitAfter: quit, verbose: verbose, line: line, modem: choice.modem))
    }
}

/// One `udp` run, inside a GenTCP process.
struct UDPSession: Sendable {
    struct Settings: Sendable {
        /// Where to send (nil with `--listen`: the first sender).
        var target: (Host, Int)?
        var listenPort: Int?
        var bind: IPAddress?
        var ipv6: Bool
        /// Datagrams of this many stdin bytes, or nil for lines.
        var size: Int?
        var quitAfter: Double
        var verbose: Bool
        /// The SLIP line for `--driver slip`; nil for posix.
        var line: ConnectSession.Line?
        /// The modem for `--driver at`.
        var modem: ConnectSession.Modem? = nil
    }

    let settings: Settings
    init(_ settings: Settings) { self.settings = settings }

    /// What a run opened, closed after it whatever its outcome.
    final class Held: @unchecked Sendable {
        var socket: UDPSocket?
        var slip: SLIPDriver?
        var at: ATDriver?
    }

    /// Exit status: ok after stdin ended and the quiet wait ran out; failed for any error.
    func run() async -> Int32 {
        let held = Held()
        let status = await transfer(held)
        held.socket?.close()
        held.slip?.close()
        // The module outlives this program: let the socket's close reach it before stopping.
        await held.at?.finish()
        return status
    }

    private func transfer(_ held: Held) async -> Int32 {
        var options: [GenTCPCore.Option] = [.binary, .active(.passive), .buffer(65_536)]
        // A big kernel queue on posix; the in-process stack and the modem driver allocate their
        // queues: 64 KiB there.
        options.append(.recbuf(settings.line == nil && settings.modem == nil ? 262_144 : 65_536))
        options.append(settings.ipv6 ? .inet6 : .inet)
        if let bind = settings.bind { options.append(.localAddress(bind)) }
        // Two threads: a read blocked on stdin must not hold up a write to stdout.
        let input = BlockingThread()
        let io = BlockingThread()
        do throws(SocketError) {
            let driver: any DatagramDriver
            if let line = settings.line {
                let link: any SerialLink
                do throws(SerialLinkError) {
                    link = try ConnectSession.openLink(line.path, line.serial)
                } catch {
                    printError(failureLine(error))
                    return Status.failed
                }
                let d = try SLIPDriver(link: link, configuration: SLIPConfiguration(local: line.local, peer: line.peer, mtu: line.mtu))
                held.slip = d
                driver = d
            } else if let modem = settings.modem {
                let link: any SerialLink
                do throws(SerialLinkError) {
                    link = try modem.openLink()
                } catch {
                    printError(failureLine(error))
                    return Status.failed
                }
                let d = ConnectSession.makeATDriver(modem, link: link)
                d.start()
                held.at = d
                driver = d
            } else {
                driver = POSIXDriver.shared
            }
            let socket = try await UDPSocket.open(port: settings.listenPort ?? 0, options: options, driver: driver)
            held.socket = socket
            note("bound \(try socket.sockname())")
            if let (host, port) = settings.target {
                try await socket.connect(host, port: port)
                note("sending to \(try socket.peername())")
            } else {
                let first = try await socket.recv()
                if let failure = await emit(first, io) { return failure }
                try await socket.connect(to: first.source)
                note("answering \(first.source)")
            }
            // Datagrams go to stdout while stdin is copied out; at the end of stdin the receiver
            // stops (a cancelled recv loses nothing) and the quiet wait takes over.
            let receiver = Task { () async -> Int32? in
                while true {
                    let d: Datagram
                    do throws(SocketError) { d = try await socket.recv() } catch {
                        return error.reason == .cancelled ? nil : fail(error)
                    }
                    if let failure = await emit(d, io) { return failure }
                }
            }
            if let failure = await copyStdin(to: socket, input) {
                receiver.cancel()
                _ = await receiver.value
                return failure
            }
            receiver.cancel()
            if let failure = await receiver.value { return failure }
            let quiet = Timeout.milliseconds(Int(settings.quitAfter * 1000))
            while true {
                let d: Datagram
                do throws(SocketError) { d = try await socket.recv(timeout: quiet) } catch {
                    if error.reason == .timeout { return Status.ok }
                    return fail(error)
                }
                if let failure = await emit(d, io) { return failure }
            }
        } catch {
            return fail(error)
        }
    }

    /// Sends stdin as datagrams; nil when stdin ended, a status when something failed.
    private func copyStdin(to socket: UDPSocket, _ io: BlockingThread) async -> Int32? {
        var pending: [UInt8] = []
        var sent = 0
        while true {
            let input = await io.run { readBlocking(0, count: 65_536) }
            var ended = false
            switch input {
            case .bytes(let b): pending += b
            case .endOfFile: ended = true
            case .failed(let code):
                if code == EBADF { ended = true } else {
                    printError(fileFailureLine(code, what: "reading stdin"))
                    return Status.failed
                }
            case .wrote: break
            }
            var datagrams: [[UInt8]] = []
            if let size = settings.size {
                var start = 0
                while pending.count - start >= size || (ended && start < pending.count) {
                    let end = min(start + size, pending.count)
                    datagrams.append(Array(pending[start..<end]))
                    start = end
                }
                pending.removeFirst(start)
            } else {
                while let newline = pending.firstIndex(of: 10) {
                    var line = Array(pending[..<newline])
                    if line.last == 13 { line.removeLast() }
                    datagrams.append(line)
                    pending.removeFirst(newline + 1)
                }
                if ended && !pending.isEmpty {
                    datagrams.append(pending)
                    pending = []
                }
            }
            for d in datagrams {
                do throws(SocketError) { try await socket.send(d) } catch { return fail(error) }
                sent += 1
            }
            if ended {
                note("end of stdin after \(sent) datagrams")
                return nil
            }
        }
    }

    /// Writes one datagram to stdout on its own line; a status when stdout failed.
    private func emit(_ d: Datagram, _ io: BlockingThread) async -> Int32? {
        var line: [UInt8] = []
        if settings.verbose { line += Array("\(d.source)\t".utf8) }
        line += d.payload.bytes
        line.append(10)
        let out = line
        if case .failed(let code) = await io.run({ writeBlocking(1, out) }) {
            printError(fileFailureLine(code, what: "writing stdout"))
            return Status.failed
        }
        if d.truncated { note("a datagram from \(d.source) was longer than 65536 bytes and was cut") }
        return nil
    }

    private func fail(_ error: SocketError) -> Int32 {
        var hint: String?
        if error.reason == .connectionRefused, let (host, port) = settings.target {
            hint = "nothing receives on \(host):\(port): its host answered ICMP port unreachable"
        }
        printError(failureLine(error, hint: hint))
        return Status.failed
    }

    private func note(_ text: String) {
        if settings.verbose { printError("gentcp: \(text)") }
    }
}
