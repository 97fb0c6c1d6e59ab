import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPModem

/// The former name of `ATDialect` (module `GenTCPModem`).
@available(*, deprecated, renamed: "ATDialect")
public typealias ATDialectName = ATDialect

/// How an ``ATDriver`` runs its module.
public struct ATConfiguration: Sendable {
    /// The dialect.
    public var dialect: ATDialect
    /// The packet bearer's access point (SIM800, BG96); ignored by ESP-AT.
    public var apn: String
    /// The access point's user name, empty for none (SIM800, BG96).
    public var apnUser: String
    /// The access point's password, empty for none (SIM800, BG96).
    public var apnPassword: String
    /// ESP-AT only: join this Wi-Fi network during initialisation (nil: the module is already
    /// joined, as `AT+CWJAP_DEF` / the simulator leave it).
    public var wifi: (ssid: String, password: String)?
    /// Sizes and timings of the AT engine. `baudRate` is taken from the link when left at 0.
    public var engine: ModemConfiguration
    /// Bytes each connection's send buffer holds (default: two send chunks). A write is accepted
    /// into it (`.bytes(n)`) and goes to the module in chunks; when it is full, writes report
    /// `.wouldBlock` until the module has acknowledged a chunk with `SEND OK`.
    public var sendBufferSize: Int?
    /// The most bytes a connection's receive buffer may hold, whatever its `buffer` option says.
    public var maxReceiveBuffer: Int
    /// How long an `AT` probe waits for `OK` during initialisation (an integer literal is
    /// milliseconds; `.seconds(1)` works too).
    public var probeTimeout: Timeout
    /// How many probes go unanswered before the module is restarted (`AT+RST`).
    public var probeAttempts: Int
    /// Wait between initialisation attempts after a failure.
    public var retryDelay: Timeout
    /// How long a restart may take until the boot banner; after that the module is considered
    /// gone and initialisation starts over from a probe.
    public var restartTimeout: Timeout
    /// Upper bound on a name lookup, queueing included (`.infinity`: none).
    public var resolveTimeout: Timeout
    /// Upper bound on a connect without a caller timeout, queueing included (`.infinity`: none).
    public var connectTimeout: Timeout
    /// While connections or UDP sockets are open and the module has sent nothing for this long,
    /// it is asked how much it holds for each (`AT+CIPRECVLEN?`, `AT+CIPRXGET=4`,
    /// `AT+QIRD=<id>,0`; a UDP link is read, `AT` probes an ESP-AT with only UDP links): a lost
    /// data notice is found, and a module that stopped answering is found within this plus a
    /// command timeout and a probe, even on an idle connection. 0 or `.infinity` turns it off.
    public var livenessInterval: Timeout = .seconds(10)

    /// A configuration for `dialect`; every other setting has the default shown, and is
    /// described at the property of the same name. Times are `Timeout` values (GenTCPCore): integer
    /// literals are milliseconds, `.seconds(n)` and `Timeout(someDuration)` work too.
    public init(
        dialect: ATDialect, apn: String = "", apnUser: String = "", apnPassword: String = "",
        wifi: (ssid: String, password: String)? = nil, engine: ModemConfiguration = ATConfiguration.defaultEngine,
        sendBufferSize: Int? = nil, maxReceiveBuffer: Int = 64 * 1024,
        probeTimeout: Timeout = 1_000, probeAttempts: Int = 5, retryDelay: Timeout = 500,
        restartTimeout: Timeout = .seconds(10), resolveTimeout: Timeout = .seconds(60),
        connectTimeout: Timeout = .seconds(180)
    ) {
        self.dialect = dialect
        self.apn = apn
        self.apnUser = apnUser
        self.apnPassword = apnPassword
        self.wifi = wifi
        self.engine = engine
        self.sendBufferSize = sendBufferSize
        self.maxReceiveBuffer = maxReceiveBuffer
        self.probeTimeout = probeTimeout
        self.probeAttempts = probeAttempts
        self.retryDelay = retryDelay
        self.restartTimeout = restartTimeout
        self.resolveTimeout = resolveTimeout
        self.connectTimeout = connectTimeout
    }

    /// The engine defaults, with the send chunk raised to 4 KiB (each dialect clamps it to its
    /// own maximum: 8192 on ESP-AT, 1460 on SIM800 and BG96) and the baud rate left to the link.
    public static var defaultEngine: ModemConfiguration {
        var c = ModemConfiguration()
        c.maxSendChunk = 4096
        c.baudRate = 0
        return c
    }
}

/// The `at` driver: TCP through a serial-attached AT-command modem (ESP-AT, SIM800, BG96) that
/// runs TCP/IP itself.
///
/// ```swift
/// let link = try SerialPortLink(path: "/dev/ttyUSB0", configuration: SerialConfiguration(baudRate: 115_200))
/// let modem = ATDriver(link: link, configuration: ATConfiguration(dialect: .espAT))
/// modem.start()
/// let s = try await Socket.connect("example.com", port: 80, timeout: 10_000, driver: modem)
/// ```
///
/// One driver owns one module on one link. It initialises the module (`AT`, `ATE0`, version,
/// multiplexing, passive receive, bearer), then serves up to the dialect's number of links as
/// connections: one command in flight, work queued per link.
///
/// - **Names** are resolved by the module (`AT+CIPDOMAIN`, `AT+CDNSGIP`, `AT+QIDNSGIP`); strings
///   that could inject AT (quotes, commas, control bytes) are `einval` before any byte is written.
/// - **Receiving** uses the module's passive mode: each connection has a fixed receive buffer
///   of its `buffer` option's size (at most ``ATConfiguration/maxReceiveBuffer``), and the driver
///   reads from the module only while that buffer has room, never more than the room. A socket
///   nobody reads leaves its data in the module, whose full window stops the far peer.
/// - **Sending** copies into a fixed per-connection send buffer (`.bytes(n)` on acceptance,
///   `.wouldBlock` when full) and sends it in chunks of the dialect's size; a `SEND FAIL` or a
///   send timeout breaks the connection (the stream would have a hole).
/// - **Half-close** is not supported by these modules: `shutdown` gives `enotsup`.
/// - **Listening** is not supported yet: `listen` throws `enotsup`.
/// - **Failures**: a module reset (`ready`, `RDY`) ends every connection (buffered data, then end
///   of stream: `tcp_closed`) and initialises the module again; an unanswered command leads to an
///   `AT` probe, then to `AT+RST`; every wait has a timeout.
public final class ATDriver: Driver, @unchecked Sendable {
    let core: ATCore

    /// - Parameters:
    ///   - link: the serial link to the module; the driver becomes its delegate.
    ///   - configuration: dialect, bearer, buffers and timings.
    ///   - runtime: the clock and timers (the simulator's runtime for a simulated line).
    public init(link: any SerialLink, configuration: ATConfiguration, runtime: any Runtime = RealRuntime.shared) {
        core = ATCore(link: link, configuration: configuration, runtime: runtime)
    }

    /// `at`.
    public var name: String { "at" }
    /// The clock given at creation: timeouts, retries and the module's timers run on it.
    public var runtime: any Runtime { core.runtime }

    /// Starts initialising the module. Connects and lookups before it is ready wait (within their
    /// timeouts). Idempotent.
    public func start() { core.start() }

    /// Closes the link: every connection fails with `enetdown`, and so does every connect, lookup
    /// and listen after (the one reason every stopped driver gives: see the README's driver
    /// contract). Buffered bytes stay readable before the error. The driver is unusable after.
    public func stop() { core.stop() }

    /// Stops the driver once the module has been told to close what closed sockets left open
    /// (`AT+CIPCLOSE`, `AT+QICLOSE`), or after `timeout`: a module that outlives this program
    /// (real hardware, `gentcp simulate`) is then not left holding links (and, for UDP, local
    /// ports) nobody will close. Close the sockets first. ``stop()`` stops at once.
    public func finish(timeout: Duration = .seconds(2)) async {
        await core.finish(timeoutNanoseconds: timeout.clampedNanoseconds)
    }

    /// Whether the module is initialised and taking work.
    public var isReady: Bool { core.isReady }

    /// Counters: the engine's and the driver's own.
    public var statistics: ATStatistics { core.statisticsSnapshot }

    /// Asks the module to look `host` up (`AT+CIPDOMAIN`, `AT+CDNSGIP`, `AT+QIDNSGIP`), starting
    /// its initialisation first if needed; the module's answer is filtered and ordered by
    /// `preference` (modules answer IPv4, so `ipv6Only` finds nothing).
    /// - Throws: `einval` for a name that could inject AT; `nxdomain` when the module finds no
    ///   address in the families allowed (or the name is longer than it takes); `timeout` after
    ///   ``ATConfiguration/resolveTimeout``; `enetdown` after ``stop()``.
    public func resolve(_ host: String, preference: IPVersionPreference) async throws(SocketError) -> [IPAddress] {
        try preference.order(await core.resolve(host))
    }

    /// Opens a link on the module (`AT+CIPSTART`, `AT+QIOPEN`) once a link id is free, starting
    /// the module's initialisation first if needed.
    /// - Throws: `econnrefused`, `ehostunreach`... as the module reports them; `timeout` when
    ///   `timeout` passes, `etimedout` when ``ATConfiguration/connectTimeout`` passes
    ///   without a caller timeout; `system_limit` when every link of the module is in use;
    ///   `enetdown` after ``stop()``.
    public func connect(
        to address: SocketAddress, options: SocketOptions, timeout: Duration?,
        delegate: any ConnectionDelegate
    ) async throws(SocketError) -> any Connection {
        try await core.connect(to: address, options: options, timeoutNanoseconds: timeout?.clampedNanoseconds,
                               delegate: delegate)
    }

    /// Not supported yet (`enotsup`; `enetdown` after ``stop()``): the modules can serve, but one server per module and
    /// ESP-AT's passive-mode accept bugs make it a separate piece of work.
    public func listen(
        on address: SocketAddress, options: SocketOptions, delegate: any ListenerDelegate
    ) throws(SocketError) -> any Listener {
        if core.isStopped { throw SocketError(.networkDown, "the at driver was stopped") }
        throw SocketError(.notSupported, "the at driver does not listen")
    }
}

extension Driver where Self == ATDriver {
    /// An AT-modem driver on `link`: `driver: .at(link, dialect: .espAT)`. Call ``ATDriver/start()``
    /// or let the first connect start it.
    public static func at(_ link: any SerialLink, dialect: ATDialect,
                          runtime: any Runtime = RealRuntime.shared) -> ATDriver {
        let driver = ATDriver(link: link, configuration: ATConfiguration(dialect: dialect), runtime: runtime)
        driver.start()
        return driver
    }
}

/// Counters of an ``ATDriver``.
public struct ATStatistics: Sendable, Equatable {
    /// The engine's counters (bytes, commands, URCs, busy retries, timeouts, resets...).
    public var engine = ModemStatistics()
    /// Initialisations completed.
    public var initialisations = 0
    /// Payload bytes received from the module.
    public var payloadIn = 0
    /// Payload bytes sent to the module (acknowledged with `SEND OK`).
    public var payloadOut = 0
    /// Read commands issued.
    public var reads = 0
    /// Payload bytes a module sent beyond what was asked (dropped; the connection fails).
    public var overflowBytes = 0
    /// Payload bytes the module pushed (`+IPD,<id>,<len>:`) although passive receive was asked;
    /// they are delivered in order (the connection fails only when they do not fit).
    public var pushedBytes = 0
    /// Payload bytes of read answers that never ended in `OK` (the module restarted, went silent
    /// or broke its framing mid-answer): taken back, never delivered.
    public var unconfirmedBytes = 0
    /// `AT` probes sent after a command timed out.
    public var recoveryProbes = 0
    /// `AT+RST` restarts sent.
    public var restarts = 0
    /// Times the module was given up as gone (no boot banner within the restart timeout).
    public var moduleLost = 0
    /// Datagrams received and queued (or dropped by a full queue) on gen_udp sockets.
    public var datagramsIn = 0
    /// Datagrams the module confirmed sending (`SEND OK`).
    public var datagramsOut = 0
    /// Datagrams the module refused or never confirmed (dropped: UDP may lose them).
    public var datagramSendFailures = 0
    /// Datagrams the module framed with a sender that did not parse, or none (dropped).
    public var malformedDatagrams = 0
    /// Lines from the module that nobody claimed.
    public var unrecognisedLines = 0
    /// Framing errors: payload headers that did not parse or did not fit.
    public var framingErrors = 0
    /// The largest receive buffer any connection had, in bytes (buffers never grow).
    public var largestReceiveBuffer = 0
    /// The largest send buffer any connection had, in bytes.
    public var largestSendBuffer = 0

    /// Every counter at zero.
    public init() {}
}


extension IPAddress {
    init(_ address: ModemAddress) {
        switch address {
        case .ipv4(let v): self = .v4(v)
        case .ipv6(let high, let low):
            func g(_ w: UInt64, _ i: Int) -> UInt16 { UInt16(truncatingIfNeeded: w >> UInt64(48 - 16 * i)) }
            self = .v6(g(high, 0), g(high, 1), g(high, 2), g(high, 3), g(low, 0), g(low, 1), g(low, 2), g(low, 3))
        }
    }
}

extension ATDriver: SerialLinkIncidents {
    /// What last went wrong on the modem's line, e.g. "the modem restarted (ready)".
    public var lastIncident: String? { core.lastIncident }
}

extension Timeout {
    /// Milliseconds for the modem engine's timers: `infinity` (and anything longer) is
    /// `UInt32.max` (49 days), a negative value 0.
    var engineMilliseconds: UInt32 {
        switch self {
        case .infinity: return .max
        case .milliseconds(let ms): return ms <= 0 ? 0 : UInt32(clamping: ms)
        }
    }
}

extension ATDriver: DatagramDriver {
    /// Opens a gen_udp socket on the module (IPv4 only). Port 0 picks a free port from
    /// 49152...65535 (the modules need one named to take datagrams from anyone), retrying
    /// another when the module says it is taken.
    ///
    /// - ESP-AT (v3.3 and later): one link, `AT+CIPSTART=<id>,"UDP","0.0.0.0",0,<port>,2`, then
    ///   pushed receive for it (`AT+CIPRECVTYPE=<id>,0`) with the sender named
    ///   (`AT+CIPDINFO=1`): one `+IPD` per datagram. Older firmware is `enotsup` (its passive
    ///   reads merge datagrams).
    /// - BG96: one `"UDP SERVICE"` socket; every send names its destination, reads return one
    ///   datagram with its sender.
    /// - SIM800: UDP links are connected, so a socket opens its link at `connect`; until then it
    ///   receives nothing, and sending to anyone but the connected peer is `enotsup`.
    ///
    /// On every dialect: datagrams of 1 to 1460 bytes (empty ones are `enotsup`, larger ones
    /// `emsgsize`); the connect filter is the driver's (the modules keep none, or none verified);
    /// the receive queue is bounded by `recbuf` (and ``ATConfiguration/maxReceiveBuffer``), whole
    /// datagrams dropped and counted when full; multicast membership is `enotsup`; a module restart
    /// or lost line makes the socket fail with `econnaborted` / the line's reason.
    /// - Throws: `eafnosupport` for IPv6, `eaddrinuse`, `system_limit` when every link is in use,
    ///   `enotsup` as above, `enetdown` after ``stop()``.
    public func openDatagram(
        on address: SocketAddress, options: DatagramOptions, delegate: any DatagramDelegate
    ) async throws(SocketError) -> any DatagramEndpoint {
        try await core.openDatagram(on: address, options: options, delegate: delegate)
    }
}
