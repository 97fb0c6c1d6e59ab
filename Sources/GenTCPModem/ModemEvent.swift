/// Something the driver must know about. Returned one at a time by
/// ``ModemEngine/nextEvent(reading:cursor:now:)`` and ``ModemEngine/nextEvent(now:)``.
public enum ModemEvent {
    /// The command in flight finished (see ``ModemCompletion``). The next one may be submitted.
    case commandCompleted(ModemCompletion)
    /// `link` is connected (the answer to a connect, or a connection the module accepted).
    case connected(link: Int)
    /// Connecting `link` failed; the link is closed again. Every connect ends in exactly one
    /// `connected` or `connectFailed`.
    case connectFailed(link: Int, reason: ModemReason)
    /// `link` is no longer usable: remote close, local close, bearer loss or module reset.
    /// Sent once per connection. On Quectel a remote close still needs ``ModemCommand/close(link:)``
    /// before the id can be reused (``ModemLinkState/peerClosed``).
    case closed(link: Int)
    /// The module holds received data for `link` (passive mode); `length` is the total buffered
    /// when the module says. Read it with ``ModemCommand/read(link:maximum:)``.
    case dataAvailable(link: Int, length: Int?)
    /// Received bytes for `link`: a view into the input passed to `nextEvent(reading:...)`,
    /// valid until that input goes away. Payloads arrive in pieces; none is buffered.
    case received(link: Int, bytes: UnsafeRawBufferPointer)
    /// A datagram of `length` bytes begins on a UDP link (opened with
    /// ``ModemCommand/openDatagram(link:host:port:localPort:)``), from `remote` when the header
    /// named a sender that parsed. Exactly `length` bytes follow as ``received(link:bytes:)``
    /// pieces (none for an empty datagram), unless the answer breaks off (a timeout or reset).
    case datagram(link: Int, length: Int, remote: ModemEndpoint?)
    /// A host name resolved (`AT+CIPDOMAIN` answer or an asynchronous DNS report).
    case resolved(ModemAddress)
    /// Resolving failed (`nxdomain`, `timeout`).
    case resolveFailed(ModemReason)
    /// The module's own address.
    case localAddress(ModemAddress)
    /// The firmware version (ESP-AT `AT version:x.y.z.w`).
    case version(ModemVersion)
    /// Wi-Fi or bearer news.
    case network(ModemNetworkEvent)
    /// An answer to ``ModemCommand/queryStatus(_:)``: SIM, attach, TCP/IP state, multiplexing.
    case status(ModemStatus)
    /// The module restarted (`ready`, `RDY`, boot banner). Echo, multiplexing, passive mode and
    /// baud rate are back to their defaults; the in-flight command has failed and every link was
    /// reported closed. Run the init sequence again.
    case moduleReset
    /// A line nobody claimed, outside any command. Read it with ``ModemEngine/withLastLine(_:)``.
    case unrecognisedLine
    /// The lexer rejected something and resynchronised.
    case framingError(ATLexerError)
}

/// How a command ended.
public struct ModemCompletion: Equatable, Sendable {
    /// Which command ended.
    public var command: ModemCommandKind
    /// The command's link, if it has one.
    public var link: Int?
    /// Success, or the failure and its gen_tcp reason.
    public var outcome: ModemOutcome

    /// A completion with every field as named (the engine makes them; tests may too).
    public init(command: ModemCommandKind, link: Int?, outcome: ModemOutcome) {
        self.command = command
        self.link = link
        self.outcome = outcome
    }
}

/// Success, or what went wrong and the gen_tcp reason it maps to.
public enum ModemOutcome: Equatable, Sendable {
    /// The command's final result was a success (`OK`, `SEND OK`...).
    case success
    /// What the module said (or that it said nothing), and the gen_tcp reason for it.
    case failure(ModemFailure, ModemReason)

    /// True for ``success``.
    public var isSuccess: Bool { self == .success }
}

/// What the module (or its silence) said when a command failed.
public enum ModemFailure: Equatable, Sendable {
    /// `ERROR`.
    case error
    /// `+CME ERROR: <n>`; nil when the module gave text instead of a number.
    case cmeError(Int?)
    /// `+CMS ERROR: <n>`.
    case cmsError(Int?)
    /// `SEND FAIL`.
    case sendFailed
    /// `FAIL` (ESP-AT, e.g. joining Wi-Fi).
    case fail
    /// ESP-AT `ALREADY CONNECTED` or SIMCom `ALREADY CONNECT`.
    case alreadyConnected
    /// ESP-AT `link is not valid`.
    case linkInvalid
    /// ESP-AT `DNS Fail`.
    case dnsFailed
    /// No final result before the deadline: the module may be silent; probe with `AT`, then reset.
    case timeout
    /// `busy p...` on every retry.
    case busy
    /// The module restarted while the command was in flight.
    case moduleReset
}

/// Network-level news.
public enum ModemNetworkEvent: UInt8, Equatable, Sendable {
    /// ESP-AT `WIFI CONNECTED`.
    case wifiConnected
    /// ESP-AT `WIFI GOT IP`.
    case wifiGotIP
    /// ESP-AT `WIFI DISCONNECT`.
    case wifiDisconnected
    /// SIMCom `+PDP: DEACT`, Quectel `+QIURC: "pdpdeact"`: every link is dead (and reported closed).
    case bearerLost
}

/// A firmware version `major.minor.patch.build`; missing parts are 0.
public struct ModemVersion: Comparable, Sendable {
    /// The first number.
    public var major: Int
    /// The second number.
    public var minor: Int
    /// The third number (0 when missing).
    public var patch: Int
    /// The fourth number (0 when missing).
    public var build: Int

    /// `major.minor.patch.build`.
    public init(_ major: Int, _ minor: Int, _ patch: Int = 0, _ build: Int = 0) {
        self.major = major
        self.minor = minor
        self.patch = patch
        self.build = build
    }

    public static func < (a: ModemVersion, b: ModemVersion) -> Bool {
        if a.major != b.major { return a.major < b.major }
        if a.minor != b.minor { return a.minor < b.minor }
        if a.patch != b.patch { return a.patch < b.patch }
        return a.build < b.build
    }

    /// Parses `x.y.z.w` at the start of `line` (stops at the first other byte).
    public init?(text line: ATLine) {
        var parts = (0, 0, 0, 0)
        var index = 0
        var digits = 0
        var value = 0
        for b in line.bytes {
            if let d = ASCII.digit(b) {
                if value < 100_000 { value = value * 10 + Int(d) }
                digits += 1
            } else if b == ASCII.dot, digits > 0, index < 3 {
                ModemVersion.store(value, at: index, in: &parts)
                index += 1
                value = 0
                digits = 0
            } else {
                break
            }
        }
        guard digits > 0 || index > 0 else { return nil }
        if digits > 0 { ModemVersion.store(value, at: index, in: &parts) }
        self.init(parts.0, parts.1, parts.2, parts.3)
    }

    static func store(_ value: Int, at index: Int, in parts: inout (Int, Int, Int, Int)) {
        switch index {
        case 0: parts.0 = value
        case 1: parts.1 = value
        case 2: parts.2 = value
        default: parts.3 = value
        }
    }
}

/// What the engine believes about a link.
public enum ModemLinkState: UInt8, Equatable, Sendable {
    /// Free.
    case closed
    /// A connect was submitted; waiting for the result.
    case connecting
    /// Connected.
    case open
    /// The peer closed it, but the module keeps the id until a local close (Quectel).
    case peerClosed
}
