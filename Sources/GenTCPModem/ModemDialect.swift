import GenTCPCore

/// One AT dialect (ESP-AT, SIMCom SIM800, Quectel BG96...): mostly data, plus small hooks.
///
/// The engine is generic over it (``ModemEngine``), so there is no existential and no dynamic
/// dispatch; ``StandardDialect`` wraps the built-in ones for a choice made at run time.
///
/// A dialect is a value: it holds what it learned from the module (version, multiplexing,
/// passive mode) and forgets it in ``moduleDidReset()``.
public protocol ModemDialect {
    /// Sizes and timing facts.
    var limits: ModemLimits { get }
    /// The payload headers its module sends.
    var framing: ATFraming { get }
    /// What ends a command: `"\r\n"` for ESP-AT, `"\r"` (S3) for 3GPP modems.
    var commandTerminator: StaticString { get }
    /// Whether `connect` is answered `OK` at once and the result comes later as a URC.
    var connectsAsynchronously: Bool { get }
    /// Whether `resolve` is answered `OK` at once and the address comes later as a URC.
    var resolvesAsynchronously: Bool { get }
    /// Whether a link closed by the peer keeps its id until a local close (Quectel).
    var keepsLinkAfterPeerClose: Bool { get }

    /// Writes the command line for `command` (without terminator). Returns false when the
    /// dialect needs no command for it (it then succeeds at once). Throws
    /// ``ModemReason/invalidArgument`` or ``ModemReason/notSupported`` before writing anything
    /// the engine would send.
    func build(_ command: ModemCommand, into writer: inout CommandWriter) throws(ModemError) -> Bool

    /// Says what a line means, given what is in flight.
    func classify(_ line: ATLine, context: ModemLineContext) -> ModemLineMeaning

    /// Maps a failure of `command` to the reason gen_tcp would give.
    func reason(for failure: ModemFailure, of command: ModemCommandKind) -> ModemReason

    /// The default time the module gets to give a final result, in milliseconds.
    func timeout(for command: ModemCommand) -> UInt32

    /// Learns from a successful command (multiplexing on, passive mode on...).
    mutating func commandSucceeded(_ command: ModemCommand)

    /// Learns from information the module gave (its version, say).
    mutating func learn(_ information: ModemInformation)

    /// Forgets everything the module forgot when it restarted.
    mutating func moduleDidReset()

    /// The setting commands a TLS link on `link` to `host` needs before
    /// ``ModemCommand/connectSecure(link:host:port:)``, in order. Throws
    /// ``ModemReason/notSupported`` when the module cannot do what `settings` asks (no TLS, no
    /// CA choice, no ALPN...) and ``ModemReason/invalidArgument`` for strings that could inject AT.
    func tlsSteps(link: Int, host: String, settings: ModemTLSSettings) throws(ModemError) -> [ModemTLSStep]

    /// The setting commands a plain connect on `link` needs first (SIMCom turns `AT+CIPSSL` off
    /// after a TLS link); usually none.
    func plainConnectSteps(link: Int) -> [ModemTLSStep]
}

/// Sizes and timing facts of a dialect.
public struct ModemLimits: Sendable, Equatable {
    /// Link ids run `0..<maxLinks`.
    public var maxLinks: Int
    /// The most payload bytes one send command takes.
    public var maxSendLength: Int
    /// The most bytes one read command may ask for.
    public var maxReadLength: Int
    /// The most payload bytes a header may announce (the lexer's sanity bound).
    public var maxPayloadLength: Int
    /// The longest host name accepted in commands.
    public var maxHostLength: Int
    /// The longest APN, user name, password, SSID accepted in commands.
    public var maxCredentialLength: Int
    /// How long to wait for an asynchronous connect result after `OK`.
    public var asyncConnectTimeout: Milliseconds
    /// How long to wait for an asynchronous DNS result after `OK`.
    public var asyncResolveTimeout: Milliseconds

    /// Limits with every field as named (each dialect states its own).
    public init(maxLinks: Int, maxSendLength: Int, maxReadLength: Int, maxPayloadLength: Int,
                maxHostLength: Int, maxCredentialLength: Int,
                asyncConnectTimeout: Milliseconds, asyncResolveTimeout: Milliseconds) {
        self.maxLinks = maxLinks
        self.maxSendLength = maxSendLength
        self.maxReadLength = maxReadLength
        self.maxPayloadLength = maxPayloadLength
        self.maxHostLength = maxHostLength
        self.maxCredentialLength = maxCredentialLength
        self.asyncConnectTimeout = asyncConnectTimeout
        self.asyncResolveTimeout = asyncResolveTimeout
    }
}

/// Where the engine is when a line arrives.
public struct ModemLineContext: Sendable, Equatable {
    /// The phase of the command in flight.
    public enum Phase: UInt8, Sendable, Equatable {
        /// Nothing in flight.
        case idle
        /// Waiting for the final result (or for the prompt's preamble).
        case response
        /// A send command waits for `>`; an `OK` here is not final (ESP-AT sends `OK` then `>`).
        case awaitingPrompt
        /// The payload was written; only a send result (`SEND OK`...) or an error is final.
        case awaitingSendResult
    }

    /// The command in flight, or nil.
    public var command: ModemCommandKind?
    /// The link of the command in flight, if it has one.
    public var link: Int?
    /// How far the command in flight got.
    public var phase: Phase

    /// A context with every field as named (the engine makes them; dialect tests may too).
    public init(command: ModemCommandKind?, link: Int?, phase: Phase) {
        self.command = command
        self.link = link
        self.phase = phase
    }
}

/// What a line means.
public enum ModemLineMeaning: Equatable, Sendable {
    /// The command in flight succeeded (`OK`, `SEND OK`, `CLOSE OK`...).
    case success
    /// The command in flight failed.
    case failure(ModemFailure)
    /// An information line of the command in flight.
    case information(ModemInformation)
    /// An information line that is also the final result (SIMCom `AT+CIFSR` answers a bare address).
    case informationAndSuccess(ModemInformation)
    /// An unsolicited result code, whatever is in flight.
    case unsolicited(ModemUnsolicited)
    /// A data prompt given as a line (Quectel's `CONNECT` after `AT+QFUPL`): the staged payload
    /// goes out now, as after `>`.
    case prompt
    /// `busy p...`: the command was ignored; retry after a back-off.
    case busy
    /// The module restarted (`ready`, `RDY`).
    case reset
    /// A boot banner line (`Call Ready`, `APP RDY`): a restart unless one was just reported.
    case bootBanner
    /// Known noise (`Recv 5 bytes`, `ERR CODE:...`).
    case ignored
    /// Nobody knows this line.
    case unrecognised
}

/// Information lines a dialect understands.
public enum ModemInformation: Equatable, Sendable {
    /// The firmware version (ESP-AT's `AT version:` line in the `AT+GMR` answer).
    case version(ModemVersion)
    /// The address of a name looked up synchronously (`+CIPDOMAIN:`).
    case resolved(ModemAddress)
    /// The module's own address (`+CIFSR:STAIP`, a bare SIMCom address, `+QIACT:`).
    case localAddress(ModemAddress)
    /// Bytes buffered for a link (answer to ``ModemCommand/queryAvailable(link:)``).
    case available(link: Int, length: Int)
    /// A line that explains the `ERROR` that follows (`ALREADY CONNECTED`, `DNS Fail`).
    case failureHint(ModemFailure)
    /// The answer to a readiness query (`+CPIN: READY`, `+CGATT: 1`, `+CIPMUX: 1`).
    case status(ModemStatus)
    /// Anything else worth keeping with the response.
    case text
}

/// Unsolicited result codes a dialect understands.
public enum ModemUnsolicited: Equatable, Sendable {
    /// A connect succeeded (`<n>,CONNECT`, `<n>, CONNECT OK`, `+QIOPEN: <n>,0`).
    case connected(link: Int)
    /// An asynchronous connect failed, with the gen_tcp reason (`CONNECT FAIL`, `+QIOPEN: <n>,<err>`).
    case connectFailed(link: Int, reason: ModemReason)
    /// The link closed, by the peer or the module (`<n>,CLOSED`, `+QIURC: "closed"`).
    case closed(link: Int)
    /// Data waits in the module for `link` (passive-receive notices); the length when given.
    case dataAvailable(link: Int, length: Int?)
    /// An asynchronous name lookup answered (`+CDNSGIP: 1,...`, `+QIURC: "dnsgip"`).
    case resolved(ModemAddress)
    /// An asynchronous name lookup failed.
    case resolveFailed(ModemReason)
    /// Network-level news: Wi-Fi joined or lost, bearer lost.
    case network(ModemNetworkEvent)
    /// Readiness news that comes after the command's `OK` (SIMCom's `STATE:` line).
    case status(ModemStatus)
}

/// Parsing pieces shared by the dialects.
public enum ATCommon {
    /// The 3GPP readiness answers: `+CPIN: <code>`, `+CGATT: <n>`; nil for other lines.
    public static func status(_ line: ATLine) -> ModemStatus? {
        if let fields = line.fields(afterPrefix: "+CPIN:") {
            var i = fields.position
            while i < line.count, line.bytes[i] == ASCII.space { i += 1 }
            let rest = ATLine(UnsafeRawBufferPointer(rebasing: line.bytes[i...]))
            return .simReady(rest.equals("READY"))
        }
        if var fields = line.fields(afterPrefix: "+CGATT:") { return .attached(fields.nextInteger() == 1) }
        return nil
    }

    /// The 3GPP/V.25ter finals: `OK`, `ERROR`, `+CME ERROR: <n>`, `+CMS ERROR: <n>`.
    public static func finalResult(_ line: ATLine) -> ModemLineMeaning? {
        if line.equals("OK") { return .success }
        if line.equals("ERROR") { return .failure(.error) }
        if var fields = line.fields(afterPrefix: "+CME ERROR:") { return .failure(.cmeError(fields.nextInteger())) }
        if var fields = line.fields(afterPrefix: "+CMS ERROR:") { return .failure(.cmsError(fields.nextInteger())) }
        return nil
    }

    /// Matches `<link>,<text>`, `<link>, <text>` (SIMCom's space) or a bare `<text>` (single-link
    /// mode, link 0). Returns the link, or nil when the line is something else.
    public static func link(in line: ATLine, before text: StaticString) -> Int? {
        if line.equals(text) { return 0 }
        var i = 0
        var link = 0
        while i < line.count, i < 3, let d = ASCII.digit(line.bytes[i]) {
            link = link * 10 + Int(d)
            i += 1
        }
        guard i > 0, i < line.count, line.bytes[i] == ASCII.comma else { return nil }
        i += 1
        while i < line.count, line.bytes[i] == ASCII.space { i += 1 }
        let rest = ATLine(UnsafeRawBufferPointer(rebasing: line.bytes[i...]))
        return rest.equals(text) ? link : nil
    }
}
