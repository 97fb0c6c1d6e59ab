import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPStack
import GenTCPWire

/// The `slip` driver: sockets to a board that speaks IP over a serial line, through GenTCP's own
/// IPv4/TCP stack (`GenTCPStack`'s `Stack`) and RFC 1055 SLIP framing.
///
/// ```swift
/// let port = try SerialPortLink(path: "/dev/ttyUSB0", configuration: SerialConfiguration(baudRate: 115_200))
/// let slip = try SLIPDriver(link: port, configuration: SLIPConfiguration(
///     local: IPAddress(192, 168, 190, 1), peer: IPAddress(192, 168, 190, 2)))
/// let s = try await Socket.connect("board", port: 7, options: [.binary], driver: slip)
/// let rtt = try await slip.ping()          // ICMP echo: a Duration
/// slip.close()                             // closes the link too
/// ```
///
/// One driver owns one link and one stack; every socket on it shares the line. Its clock is the
/// `runtime` it was made with: `RealRuntime.shared` for real lines, a `SimRuntime` for a
/// `MemoryLink` in simulation (then the stack's timers and the line's pacing run on virtual
/// time, and a seed replays exactly).
///
/// Mapping to `gen_tcp`:
/// - `buffer` sets the connection's receive buffer (the advertised window) when it is larger than
///   the configured floor (``SLIPConfiguration/tcp``); `nodelay` and `keepalive` go to the stack,
///   also on `setopts`; `linger {true, 0}` closes with RST.
/// - Errors: RST to our SYN (or port 0) is `econnrefused`, RST later `econnreset`, retransmissions or the
///   stack's connect limit giving up `etimedout`. A line that hangs up or fails under the driver
///   (the pty's other side closed, the adapter pulled) is `eio` (or the device's own reason),
///   never an end of stream: a socket first delivers what it had received, then fails with it
///   (`recv` returns it; active mode sends `tcp_error` then `tcp_closed`); pending connects and
///   pings fail with it, and ``lastIncident`` says what happened, e.g. "the serial line hung
///   up". The driver's own ``close()`` gives `enetdown` (the reason every stopped driver gives).
/// - Names: address literals, and ``SLIPConfiguration/peerName`` for the board; others `nxdomain`.
/// - `shutdown(read)` is local (reads see end of stream; the window stays as it is).
public final class SLIPDriver: Driver, Sendable {
    let engine: SLIPEngine

    /// Starts the driver on `link` (it takes the link's delegate and reads at once).
    /// - Throws: `eafnosupport` for IPv6 addresses, `einval` for a bad MTU, or the reason the
    ///   capture file cannot be created.
    public init(link: any SerialLink, configuration: SLIPConfiguration, runtime: any Runtime = RealRuntime.shared) throws(SocketError) {
        engine = try SLIPEngine(link: link, configuration: configuration, runtime: runtime)
        engine.start()
    }

    /// `slip`.
    public var name: String { "slip" }
    /// The clock given at creation: the stack's timers and the capture's timestamps run on it.
    public var runtime: any Runtime { engine.runtime }
    /// The addresses, MTU, limits and TCP tuning the driver was started with.
    public var configuration: SLIPConfiguration { engine.configuration }
    /// The serial link the driver runs on.
    public var link: any SerialLink { engine.link }

    /// Line and stack counters so far.
    public var statistics: SLIPStatistics { engine.snapshot }

    /// Closes (stops) the driver: open connections are reset (if the line takes it), the capture
    /// file is flushed and closed, and the link is closed. From then on every pending or new
    /// connect, ping and listen, and every recv, send and accept on its sockets, fails with
    /// `enetdown`: the one reason every stopped driver gives (see the README's driver contract).
    public func close() { engine.shutdown() }

    /// Writes buffered capture records to the file (it is also flushed at ``close()``).
    public func flushCapture() { engine.flushCapture() }

    /// Address literals resolve to themselves; ``SLIPConfiguration/peerName`` (any case) to the
    /// board's address, unless `preference` is `.ipv6Only`.
    /// - Throws: `nxdomain` for any other name.
    public func resolve(_ host: String, preference: IPVersionPreference) async throws(SocketError) -> [IPAddress] {
        if let literal = IPAddress(host) { return try preference.order([literal]) }
        if let name = configuration.peerName, name.lowercased() == host.lowercased() {
            return try preference.order([configuration.peerAddress])
        }
        throw SocketError(.nonExistentDomain)
    }

    /// Opens a TCP connection through the stack (SYN on the line; the socket's `buffer` sets the
    /// advertised window when larger than the configured floor).
    /// - Throws: `econnrefused` for an RST (or port 0), `timeout` when `timeout` passes,
    ///   `etimedout` when the SYN retransmissions give up, `eafnosupport` for IPv6, `emfile` when
    ///   every connection slot is taken, `enetdown` after ``close()``, `eio` (or the line's own
    ///   reason) once the line hung up or failed.
    public func connect(
        to address: SocketAddress, options: SocketOptions, timeout: Duration?,
        delegate: any ConnectionDelegate
    ) async throws(SocketError) -> any Connection {
        guard let remote = SLIPConfiguration.v4(address.address) else {
            throw SocketError(.addressFamilyNotSupported, "SLIP carries IPv4 only")
        }
        guard address.port >= 0, address.port <= 65535 else { throw SocketError(.invalidArgument, "bad port") }
        // Nobody can listen on port 0 (a kernel sends the SYN and gets RST): refused, as
        // gen_tcp reports it (semantics §3). The stack itself refuses to put port 0 on the wire.
        if address.port == 0 { throw SocketError(.connectionRefused) }
        let engine = self.engine
        let tcp = connectionOptions(options)
        let result: Result<SLIPConnection, SocketError> = await withUnsafeContinuation { continuation in
            engine.locked { fx in
                if let failure = engine.linkFailure {
                    fx.resumes.append { continuation.resume(returning: .failure(SocketError(failure))) }
                    return
                }
                do throws(TCPError) {
                    let handle = try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in
                        try stack.connect(to: remote, port: UInt16(address.port), localPort: UInt16(options.localPort),
                                          options: tcp, now: engine.nowMilliseconds)
                    }
                    engine.startConnect(handle, remote: address, timeoutNanoseconds: timeout?.clampedNanoseconds,
                                        delegate: delegate, continuation: continuation, &fx)
                } catch {
                    fx.resumes.append { continuation.resume(returning: .failure(SocketError(error.reason))) }
                }
            }
        }
        return try result.get()
    }

    /// Listens on our address on the line (port 0: a free port from 49152...65535, chosen from
    /// the seed), so the board can connect to us.
    /// - Throws: `eaddrnotavail` for an address other than ours or the any address,
    ///   `eafnosupport` for IPv6, `eaddrinuse` when the port (or every ephemeral port) is taken.
    public func listen(
        on address: SocketAddress, options: SocketOptions, delegate: any ListenerDelegate
    ) throws(SocketError) -> any Listener {
        let local = configuration.localAddress
        switch address.address {
        case .v4(0), local: break
        case .v4: throw SocketError(.addressNotAvailable)
        case .v6: throw SocketError(.addressFamilyNotSupported, "SLIP carries IPv4 only")
        }
        let engine = self.engine
        let tcp = connectionOptions(options)
        let backlog = max(1, options.backlog)
        let result: Result<SLIPListener, SocketError> = engine.locked { fx in
            if let failure = engine.linkFailure { return .failure(SocketError(failure)) }
            var ports: [UInt16] = []
            if address.port != 0 {
                ports = [UInt16(address.port)]
            } else {
                // Ephemeral: walk the range from a seeded start until a port is free.
                let start = Int(engine.configuration.seed % 16384)
                ports = (0..<16384).map { UInt16(49152 + (start + $0 * 7919) % 16384) }
            }
            for port in ports {
                do throws(TCPError) {
                    let handle = try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in
                        try stack.listen(port: port, backlog: backlog, options: tcp)
                    }
                    engine.addListener(handle, delegate: delegate)
                    return .success(SLIPListener(engine: engine, handle: handle, address: SocketAddress(local, port: Int(port))))
                } catch .addressInUse where address.port == 0 {
                    continue
                } catch {
                    return .failure(SocketError(error.reason))
                }
            }
            return .failure(SocketError(.addressInUse))
        }
        return try result.get()
    }

    /// Sends an ICMP echo request (RFC 792) and waits for the reply.
    /// - Parameters:
    ///   - address: the destination; the board by default.
    ///   - payloadSize: data bytes after the ICMP header (56 as `ping(8)`); at most MTU − 28.
    ///   - timeout: how long to wait on the driver's clock (2 s by default; `.seconds(5)`,
    ///     `500` milliseconds, or `.infinity`).
    /// - Returns: the round-trip time on the driver's clock.
    /// - Throws: `timeout`, `emsgsize` for a payload that does not fit, `badarg` for a negative
    ///   timeout, `enetdown` after ``close()``, `eio` (or the line's own reason) when the line
    ///   hangs up or fails, also while waiting.
    public func ping(
        _ address: IPAddress? = nil, payloadSize: Int = 56, timeout: Timeout = .seconds(2)
    ) async throws(SocketError) -> Duration {
        let limit = try timeout.validated().nanoseconds
        guard let destination = SLIPConfiguration.v4(address ?? configuration.peerAddress) else {
            throw SocketError(.addressFamilyNotSupported)
        }
        guard payloadSize >= 0, payloadSize + 28 <= configuration.mtu else { throw SocketError(.messageTooLong) }
        let engine = self.engine
        let result: Result<UInt64, SocketError> = await withUnsafeContinuation { continuation in
            engine.locked { fx in
                engine.startPing(to: destination, payload: payloadSize, timeoutNanoseconds: limit,
                                 continuation: continuation, &fx)
            }
        }
        return .nanoseconds(Int64(clamping: try result.get()))
    }

    /// ``ping(_:payloadSize:timeout:)`` with the timeout and the answer in nanoseconds.
    @available(*, deprecated, message: "use ping(_:payloadSize:timeout:), which takes a Timeout and answers a Duration")
    public func ping(
        _ address: IPAddress? = nil, payloadSize: Int = 56, timeoutNanoseconds: UInt64
    ) async throws(SocketError) -> UInt64 {
        let rtt = try await ping(address, payloadSize: payloadSize,
                                 timeout: Timeout(.nanoseconds(Int64(clamping: timeoutNanoseconds))))
        let (seconds, attoseconds) = rtt.components
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }

    /// The stack options of a new connection: the configured tuning plus the socket's options.
    func connectionOptions(_ options: SocketOptions) -> ConnectionOptions {
        // The stack's serial-line rule (shared with firmware): an RTO floor of four frame times,
        // so that a slow line's queueing never looks like a loss (ELKS raised its floor for SLIP
        // for the same reason), and buffers of at least four segments; larger settings stay.
        var tcp = configuration.tcp.tunedForSerialLine(baud: link.configuration.baudRate, mtu: configuration.mtu)
        tcp.receiveBufferSize = max(tcp.receiveBufferSize, options.buffer)
        tcp.noDelay = options.nodelay
        tcp.keepalive = options.keepalive
        return tcp
    }
}

extension SLIPDriver: SerialLinkIncidents {
    /// What last went wrong on the SLIP line, e.g. "the serial line hung up".
    public var lastIncident: String? { engine.lastIncident }
}
