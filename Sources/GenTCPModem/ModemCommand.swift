/// What the driver asks the module to do. A dialect turns each into its own AT command.
///
/// Strings (host names, APN, credentials) are checked before anything is written: a quote,
/// comma, backslash, CR, LF or other control byte, an empty string where one is required, or
/// more bytes than the dialect allows, is ``ModemReason/invalidArgument``.
public enum ModemCommand: Sendable {
    /// `AT`: is the module alive?
    case probe
    /// `ATE0`: stop echoing commands.
    case echoOff
    /// Restart the module (`AT+RST`, `AT+CFUN=1,1`). Completes on `OK`; the reboot itself is
    /// reported later as ``ModemEvent/moduleReset``.
    case restart
    /// Read the firmware version (`AT+GMR`, `ATI`). ESP-AT uses it to pick the passive-mode command.
    case version
    /// Allow several links (`AT+CIPMUX=1`); a no-op where the dialect always has them.
    case enableMultiplexing
    /// Pull mode: the module keeps received data until read (`AT+CIPRECVMODE=1` or
    /// `AT+CIPRECVTYPE=5,1` by version, `AT+CIPRXGET=1`; Quectel buffer mode needs nothing).
    case enablePassiveReceive
    /// Join a Wi-Fi network (ESP-AT `AT+CWJAP`).
    case joinNetwork(ssid: String, password: String)
    /// Configure the packet bearer (SIMCom `AT+CSTT`, Quectel `AT+QICSGP`).
    case configureBearer(apn: String, user: String, password: String)
    /// Bring the bearer up (SIMCom `AT+CIICR`, Quectel `AT+QIACT`).
    case activateBearer
    /// Tear the bearer down (SIMCom `AT+CIPSHUT`, Quectel `AT+QIDEACT`).
    case deactivateBearer
    /// Ask for the module's own IP address (`AT+CIFSR`, `AT+QIACT?`).
    case localAddress
    /// Resolve a host name (`AT+CIPDOMAIN`, `AT+CDNSGIP`, `AT+QIDNSGIP`).
    case resolve(host: String)
    /// Open a TCP link to `host:port` (`AT+CIPSTART`, `AT+QIOPEN`).
    case connect(link: Int, host: String, port: Int)
    /// Open a TLS link run by the module to `host:port` (ESP-AT `AT+CIPSTART=<id>,"SSL",...`,
    /// Quectel `AT+QSSLOPEN`, SIMCom `AT+CIPSTART` after `AT+CIPSSL=1`), after the dialect's
    /// ``ModemDialect/tlsSteps(link:host:settings:)``. Its kind is ``ModemCommandKind/connect``:
    /// it is reported like a connect.
    case connectSecure(link: Int, host: String, port: Int)
    /// One TLS setting for the next secure link on `link` (see ``ModemTLSStep``).
    case configureTLS(link: Int, step: ModemTLSStep)
    /// Write `count` bytes to the module's file `name` (Quectel `AT+QFUPL`, `CONNECT`, the bytes,
    /// `+QFUPL: <size>,<checksum>`), for a TLS link on `link`. Built by
    /// ``ModemEngine/upload(_:link:name:now:)`` only; its kind is ``ModemCommandKind/configureTLS``.
    case uploadFile(link: Int, name: String, count: Int)
    /// Open a UDP link bound to `localPort` (1–65535). With `port` 0 the link takes datagrams
    /// from anyone and every send names its destination: ESP-AT
    /// `AT+CIPSTART=<id>,"UDP","0.0.0.0",0,<local>,2`, Quectel `"UDP SERVICE"`. With a remote
    /// `host:port` the module's link is connected to it (ESP-AT keeps remote mode 2, Quectel
    /// `"UDP"`, SIMCom `"UDP"`, whose local port is set by ``bindLocalPort(link:port:)`` first).
    /// Reported like a connect: ``ModemEvent/connected(link:)`` or ``ModemEvent/connectFailed(link:reason:)``.
    case openDatagram(link: Int, host: String, port: Int, localPort: Int)
    /// SIMCom `AT+CLPORT=<n>,"UDP",<port>`: the local port of the next UDP link on `link`; a
    /// no-op elsewhere (their open command carries it).
    case bindLocalPort(link: Int, port: Int)
    /// Make the module name the sender of received data: ESP-AT `AT+CIPDINFO=1`, SIMCom
    /// `AT+CIPSRIP=1`; a no-op on Quectel, whose `"UDP SERVICE"` reads always name it.
    case enableRemoteInfo
    /// ESP-AT (v3.3 and later) `AT+CIPRECVTYPE=<id>,<mode>`: receive on one link pushed
    /// (`passive` false: one `+IPD` per datagram) or pulled; a no-op on the others. Throws
    /// ``ModemReason/notSupported`` on ESP-AT firmware without the per-link command.
    case setReceiveMode(link: Int, passive: Bool)
    /// Announce `count` payload bytes for `link`. Built by
    /// ``ModemEngine/send(_:link:now:timeout:)-(UnsafeRawBufferPointer,_,_,_)`` only;
    /// ``ModemEngine/submit(_:now:timeout:)`` refuses it.
    case send(link: Int, count: Int)
    /// Announce one datagram of `count` bytes for a UDP `link`, to `destination` (ESP-AT
    /// `AT+CIPSEND=<id>,<len>,"<ip>",<port>`, Quectel `AT+QISEND=<id>,<len>,"<ip>",<port>`).
    /// Built by ``ModemEngine/sendDatagram(_:link:to:now:timeout:)`` only. Its kind is ``ModemCommandKind/send``.
    case sendDatagram(link: Int, count: Int, to: ModemEndpoint)
    /// Read up to `maximum` buffered bytes of `link` (`AT+CIPRECVDATA`, `AT+CIPRXGET=2`, `AT+QIRD`).
    case read(link: Int, maximum: Int)
    /// Ask how many bytes `link` has buffered (`AT+CIPRECVLEN?`, `AT+CIPRXGET=4`, `AT+QIRD=<id>,0`).
    case queryAvailable(link: Int)
    /// Close `link` (`AT+CIPCLOSE`, `AT+QICLOSE`).
    case close(link: Int)
    /// Change the live UART rate (`AT+UART_CUR`, `AT+IPR`). `OK` comes at the old rate; the
    /// driver then switches its own port and probes.
    case setBaudRate(Int, hardwareFlowControl: Bool)
    /// A fixed command written as given (no terminator): for settings this engine does not model.
    case raw(StaticString)
    /// Ask the module about its readiness (`AT+CPIN?`, `AT+CGATT?`, `AT+CIPSTATUS`, `AT+CIPMUX?`);
    /// the answer comes as ``ModemEvent/status(_:)``. Dialects without the query throw
    /// ``ModemReason/notSupported``.
    case queryStatus(ModemStatusQuery)

    /// The command without its arguments.
    public var kind: ModemCommandKind {
        switch self {
        case .probe: .probe
        case .echoOff: .echoOff
        case .restart: .restart
        case .version: .version
        case .enableMultiplexing: .enableMultiplexing
        case .enablePassiveReceive: .enablePassiveReceive
        case .joinNetwork: .joinNetwork
        case .configureBearer: .configureBearer
        case .activateBearer: .activateBearer
        case .deactivateBearer: .deactivateBearer
        case .localAddress: .localAddress
        case .resolve: .resolve
        case .connect, .connectSecure: .connect
        case .configureTLS, .uploadFile: .configureTLS
        case .openDatagram: .openDatagram
        case .bindLocalPort: .bindLocalPort
        case .enableRemoteInfo: .enableRemoteInfo
        case .setReceiveMode: .setReceiveMode
        case .send, .sendDatagram: .send
        case .read: .read
        case .queryAvailable: .queryAvailable
        case .close: .close
        case .setBaudRate: .setBaudRate
        case .raw: .raw
        case .queryStatus: .queryStatus
        }
    }

    /// The link the command is about, if any.
    public var link: Int? {
        switch self {
        case .connect(let link, _, _), .connectSecure(let link, _, _), .configureTLS(let link, _), .uploadFile(let link, _, _),
             .send(let link, _), .read(let link, _),
             .queryAvailable(let link), .close(let link), .openDatagram(let link, _, _, _),
             .bindLocalPort(let link, _), .setReceiveMode(let link, _), .sendDatagram(let link, _, _):
            link
        default: nil
        }
    }

    /// The link a connect or a UDP open is about to open, if this is one.
    public var opensLink: Int? {
        switch self {
        case .connect(let link, _, _), .connectSecure(let link, _, _), .openDatagram(let link, _, _, _): link
        default: nil
        }
    }
}

/// A ``ModemCommand`` without its arguments, for events and tables.
public enum ModemCommandKind: UInt8, Sendable, Hashable, CaseIterable {
    /// Module set-up, one case per ``ModemCommand`` case of the same name: `probe` (`AT`),
    /// `echoOff` (`ATE0`), `restart`, `version`, `enableMultiplexing`, `enablePassiveReceive`.
    case probe, echoOff, restart, version, enableMultiplexing, enablePassiveReceive
    /// Network set-up, one case per ``ModemCommand`` case of the same name: `joinNetwork`
    /// (Wi-Fi), `configureBearer`, `activateBearer`, `deactivateBearer` (cellular), `localAddress`.
    case joinNetwork, configureBearer, activateBearer, deactivateBearer, localAddress
    /// Sockets and the rest, one case per ``ModemCommand`` case of the same name: `resolve`,
    /// `connect`, `send`, `read`, `queryAvailable`, `close`, `setBaudRate`, `raw`.
    case resolve, connect, send, read, queryAvailable, close, setBaudRate, raw
    /// ``ModemCommand/queryStatus(_:)``.
    case queryStatus
    /// UDP, one case per ``ModemCommand`` case of the same name: `openDatagram`,
    /// `bindLocalPort`, `enableRemoteInfo`, `setReceiveMode`.
    case openDatagram, bindLocalPort, enableRemoteInfo, setReceiveMode
    /// ``ModemCommand/configureTLS(link:step:)``.
    case configureTLS
}

/// What ``ModemCommand/queryStatus(_:)`` asks.
public enum ModemStatusQuery: UInt8, Sendable, Hashable, CaseIterable {
    /// Is the SIM ready (`AT+CPIN?` answering `+CPIN: READY`)?
    case sim
    /// Is the module attached to the packet service (`AT+CGATT?` answering `+CGATT: 1`)?
    case attach
    /// Where is the module's TCP/IP bring-up (SIMCom `AT+CIPSTATUS`: `STATE: IP INITIAL`...)?
    case bearer
    /// Is multi-link mode on (`AT+CIPMUX?` answering `+CIPMUX: 1`)?
    case multiplexing
}

/// What the module said about its readiness (``ModemEvent/status(_:)``).
public enum ModemStatus: Equatable, Sendable {
    /// `+CPIN: READY` (true) or any other `+CPIN:` answer (`SIM PIN`, `NOT READY`...).
    case simReady(Bool)
    /// `+CGATT: 1` (true) or `+CGATT: 0`.
    case attached(Bool)
    /// SIMCom's TCP/IP state (`STATE: ...`, which `AT+CIPSTATUS` prints after its `OK`).
    case bearer(ModemBearerState)
    /// `+CIPMUX: 1` (true) or `+CIPMUX: 0`.
    case multiplexing(Bool)
}

/// SIMCom's TCP/IP application states (SIM800 AT manual §8, `AT+CIPSTATUS`), in bring-up order.
public enum ModemBearerState: UInt8, Sendable, Hashable, CaseIterable {
    /// `IP INITIAL`: nothing set up; `AT+CSTT` (and `AT+CIPMUX`) are accepted here only.
    case initial
    /// `IP START`: the APN is set (`AT+CSTT` done); `AT+CIICR` is next.
    case started
    /// `IP CONFIG`: `AT+CIICR` is bringing the context up.
    case configuring
    /// `IP GPRSACT`: the context is up; `AT+CIFSR` is next.
    case active
    /// `IP STATUS`: the address was read; links can be opened.
    case ready
    /// A link exists or is being opened or closed (`IP PROCESSING`, `CONNECT OK`,
    /// `TCP CONNECTING`, `TCP CLOSING`, `TCP CLOSED`, ...).
    case linked
    /// `PDP DEACT`: the context was lost; only `AT+CIPSHUT` leads back to `IP INITIAL`.
    case deactivated

    /// The state named by a `STATE:` line's text, or nil.
    public init?(text: ATLine) {
        if text.equals("IP INITIAL") { self = .initial }
        else if text.equals("IP START") { self = .started }
        else if text.equals("IP CONFIG") { self = .configuring }
        else if text.equals("IP GPRSACT") { self = .active }
        else if text.equals("IP STATUS") { self = .ready }
        else if text.equals("PDP DEACT") { self = .deactivated }
        else if text.count > 0 { self = .linked }
        else { return nil }
    }
}
