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
    /// Announce `count` payload bytes for `link`. Built by
    /// ``ModemEngine/send(_:link:now:timeout:)-(UnsafeRawBufferPointer,_,_,_)`` only;
    /// ``ModemEngine/submit(_:now:timeout:)`` refuses it.
    case send(link: Int, count: Int)
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
        case .connect: .connect
        case .send: .send
        case .read: .read
        case .queryAvailable: .queryAvailable
        case .close: .close
        case .setBaudRate: .setBaudRate
        case .raw: .raw
        }
    }

    /// The link the command is about, if any.
    public var link: Int? {
        switch self {
        case .connect(let link, _, _), .send(let link, _), .read(let link, _),
             .queryAvailable(let link), .close(let link):
            link
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
}
