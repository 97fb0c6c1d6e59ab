/// Which length-prefixed payload headers the lexer recognises. A dialect states its set as data.
///
/// Each header switches the lexer from lines to "exactly N raw bytes" the moment the header is
/// complete, so payload bytes that look like `OK`, `\r\n`, `+IPD` or `>` are never read as text.
public struct ATFraming: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// ESP-AT `+IPD,[<link>,]<len>[,"<ip>",<port>]:<data>` (active receive; no line end follows
    /// the data). The passive notice `+IPD,[<link>,]<len>` with a line end stays a line.
    public static let ipd = ATFraming(rawValue: 1 << 0)
    /// ESP-AT `+CIPRECVDATA:<len>,<data>` (2.x and later) and `+CIPRECVDATA,<len>:<data>` (1.7).
    public static let cipRecvData = ATFraming(rawValue: 1 << 1)
    /// With ``cipRecvData``: the `AT+CIPDINFO=1` form `+CIPRECVDATA:<len>,"<ip>",<port>,<data>`.
    /// Must match the module's setting: the two forms cannot be told apart from the bytes alone.
    public static let cipRecvDataRemoteInfo = ATFraming(rawValue: 1 << 2)
    /// Quectel `+QIRD: <len>\r\n<data>` (a single number; `+QIRD: a,b,c` stays a line).
    public static let qird = ATFraming(rawValue: 1 << 3)
    /// SIMCom `+CIPRXGET: 2,[<link>,]<len>,<left>\r\n<data>`.
    public static let cipRxGet = ATFraming(rawValue: 1 << 4)
    /// SIMCom's pushed form in multi-link mode, `+RECEIVE,<link>,<len>:\r\n<data>`: what a
    /// module sends when manual receive (`AT+CIPRXGET=1`) is not (or no longer) in force.
    public static let receive = ATFraming(rawValue: 1 << 5)
    /// Quectel's TLS read answer `+QSSLRECV: <len>\r\n<data>` (a single number), reported as a
    /// ``ATPayloadHeader/Kind/qird`` payload of the read in flight.
    public static let qsslRecv = ATFraming(rawValue: 1 << 6)
}

/// A parsed payload header: what follows is exactly ``length`` raw bytes.
public struct ATPayloadHeader: Equatable, Sendable {
    /// Which wire format announced the payload.
    public enum Kind: UInt8, Equatable, Sendable {
        /// The header's format, one case per ``ATFraming`` member: `ipd` is ESP-AT's `+IPD`,
        /// `cipRecvData` ESP-AT's `+CIPRECVDATA`, `qird` Quectel's `+QIRD`, `cipRxGet` SIMCom's
        /// `+CIPRXGET: 2`; `receive` SIMCom's pushed `+RECEIVE,<link>,<len>:`.
        case ipd, cipRecvData, qird, cipRxGet, receive
    }

    /// The format of the header.
    public var kind: Kind
    /// The link the header names, or nil when the format has none (`+IPD,<len>:`, `+QIRD`,
    /// `+CIPRECVDATA`); the engine then uses the link of the read in flight.
    public var link: Int?
    /// The number of payload bytes that follow.
    public var length: Int
    /// SIMCom's `<left>`: bytes still buffered in the module after this read, when given.
    public var leftInModule: Int?
    /// The sender the header names (ESP-AT `AT+CIPDINFO=1`, SIMCom `AT+CIPSRIP=1`, Quectel's
    /// `"UDP SERVICE"` reads), when it names one.
    public var remote: ModemEndpoint?

    /// A header with the given fields (the lexer makes them; tests may too).
    public init(kind: Kind, link: Int?, length: Int, leftInModule: Int? = nil, remote: ModemEndpoint? = nil) {
        self.kind = kind
        self.link = link
        self.length = length
        self.leftInModule = leftInModule
        self.remote = remote
    }
}
