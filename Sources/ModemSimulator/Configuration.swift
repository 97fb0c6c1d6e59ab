import GenTCPCore
import GenTCPModem

/// The former name of `ATDialect` (module `GenTCPModem`) in the simulator.
@available(*, deprecated, renamed: "ATDialect")
public typealias ModemSimulatorDialect = ATDialect

/// Network trouble a cellular module reports (the ``ModemFaults/noNetwork`` fault), as 3GPP TS
/// 27.007 words it. ESP-AT ignores it.
public enum ModemNetworkFault: String, Sendable, Hashable, CaseIterable {
    /// No usable SIM: `AT+CPIN?` answers `+CPIN: NOT READY` (the boot lines say so too), the
    /// module is not registered (`+CREG: 0,0`) nor attached (`+CGATT: 0`).
    case simNotReady
    /// SIM ready, still searching for a network: `+CREG: 0,2` (also `+CGREG`/`+CEREG`),
    /// `+CGATT: 0`.
    case notRegistered
    /// Registered (`+CREG: 0,1`) but not attached to the packet service: `+CGATT: 0`.
    case notAttached
}

/// How the ``ModemFaults/overlongHeaders`` fault pads the length field of data headers
/// (`+IPD`, `+CIPRECVDATA`, `+CIPRXGET: 2`, `+RECEIVE`, `+QIRD`, `+QIURC: "recv"`): the value
/// stays right, the header grows past what a bounded lexer takes.
public struct ModemHeaderPadding: Sendable, Hashable {
    /// What goes before the digits.
    public enum Fill: Sendable, Hashable {
        /// Leading zeros (`000…0006`): still a valid decimal number.
        case zeros
        /// Spaces (`     6`), as a sloppy `printf("%*d")` would give.
        case spaces
    }
    /// The padding character.
    public var fill: Fill
    /// Padding characters added to each affected length field.
    public var count: Int
    /// How many headers to pad, the first ones the module sends (nil: every header).
    public var headers: Int?

    /// Pads `headers` headers (nil: all) with `count` characters of `fill`.
    public init(fill: Fill = .zeros, count: Int = 300, headers: Int? = nil) {
        self.fill = fill
        self.count = count
        self.headers = headers
    }
}

/// Faults the simulator injects, every random choice drawn from the configuration's seed.
///
/// Delays run on the driver's runtime, so on the simulated network they are virtual time and a
/// seed replays byte for byte. Byte-count triggers (`resetAfterBytes`, `silenceAfterBytes`,
/// `portVanishesAfterBytes`) count the UART bytes of both directions since power-on (output
/// counts when delivered), cut the output at exactly that byte and fire once.
/// `docs/modem-behaviour.md` lists each fault with what the host sees.
public struct ModemFaults: Sendable, Hashable {
    /// Cut the module's output into fragments of 1...this many bytes (nil: as produced).
    public var maxFragmentLength: Int?
    /// Delay each fragment by a random 0...this (on the runtime clock).
    public var maxFragmentDelay: Duration
    /// Before each message that starts a line, insert a harmless documented URC (ESP-AT
    /// `WIFI CONNECTED` / `WIFI GOT IP`, cellular `+CREG: 1` / `+CGREG: 1`) or a bare CR-LF
    /// with this probability (0...1).
    public var noiseProbability: Double
    /// The module resets by itself once this many bytes have crossed the UART (both directions
    /// counted; output counts when delivered): links dropped without a close notice, output
    /// queue lost, then the dialect's boot lines (ESP-AT `ready`; SIM800 `RDY`, `+CFUN: 1`,
    /// `+CPIN: READY`, `Call Ready`, `SMS Ready`; BG96 `RDY` ... `APP RDY`). Fires once.
    public var resetAfterBytes: Int?
    /// Pace the output at this UART rate (10 bits per byte), delivered in pieces of about 10 ms
    /// of line time (at least 16 bytes), so a long answer trickles in as on a real line.
    /// `AT+UART_CUR` / `AT+IPR` change it.
    public var baudRate: Int?
    /// Start silent: the module takes input and never answers (see ``ModemSimulator/setSilent(_:)``).
    public var silent: Bool
    /// ESP-AT only: answer an incoming command with `busy p...` (ignoring it) with this
    /// probability, as the docs describe for commands sent too early or back to back.
    public var spuriousBusyProbability: Double
    /// The first connect succeeds (`CONNECT`+`OK`, `CONNECT OK`, `+QIOPEN: <id>,0` go out),
    /// then the module answers nothing more: input ignored, no URCs, its sockets left open. A
    /// reset (``ModemSimulator/reset()``, `resetAfterBytes`) or ``ModemSimulator/setSilent(_:)``
    /// ends it. Fires once.
    public var silentAfterConnect: Bool
    /// After this many UART bytes the module goes silent (as ``silentAfterConnect``), its output
    /// cut at exactly that byte, even mid-message. Fires once.
    public var silenceAfterBytes: Int?
    /// Once this many bytes of socket data have arrived for links in passive receive (ESP-AT
    /// `CIPRECVMODE`/`CIPRECVTYPE` 1, SIM800 `CIPRXGET=1`, BG96 buffer access), the module's
    /// receive mode reverts to push as if the setting had been lost: what it holds and all later
    /// data go out in the active form (`+IPD,<id>,<len>:<data>`, SIM800 `+RECEIVE,<n>,<len>:`,
    /// BG96 `+QIURC: "recv",<id>,<len>`), in order; reads then answer `ERROR` (ESP-AT) or
    /// nothing. 0: from the first byte. Fires once; a reset clears it.
    public var passiveRevertsAfterBytes: Int?
    /// Pad the length field of data headers (see ``ModemHeaderPadding``), for lexers that must
    /// refuse a header longer than their maximum without hanging.
    public var overlongHeaders: ModemHeaderPadding?
    /// After this many UART bytes the serial port vanishes (a USB adapter pulled): the module
    /// stops (links dropped abortively, output cut at exactly that byte) and the handler set
    /// with ``ModemSimulator/onPortVanished(_:)`` runs; ``ModemLinkBridge`` closes its end of
    /// the line, so the host reads a hang-up. Fires once.
    public var portVanishesAfterBytes: Int?
    /// SIM800 and BG96: the SIM or the network is missing (see ``ModemNetworkFault``); bearer
    /// activation (`AT+CIICR`, `AT+QIACT`) answers `ERROR`.
    public var noNetwork: ModemNetworkFault?
    /// SIM800 `AT+CIICR` (BG96 `AT+QIACT`) answers `ERROR` although SIM, registration and
    /// attach are fine (the network refuses the context; a SIM800 is left in `PDP DEACT`).
    public var rejectCIICR: Bool

    /// Faults as named; the defaults inject nothing and leave the output unpaced.
    public init(
        maxFragmentLength: Int? = nil, maxFragmentDelay: Duration = .zero, noiseProbability: Double = 0,
        resetAfterBytes: Int? = nil, baudRate: Int? = nil, silent: Bool = false,
        spuriousBusyProbability: Double = 0, silentAfterConnect: Bool = false, silenceAfterBytes: Int? = nil,
        passiveRevertsAfterBytes: Int? = nil, overlongHeaders: ModemHeaderPadding? = nil,
        portVanishesAfterBytes: Int? = nil, noNetwork: ModemNetworkFault? = nil, rejectCIICR: Bool = false
    ) {
        self.maxFragmentLength = maxFragmentLength
        self.maxFragmentDelay = maxFragmentDelay
        self.noiseProbability = noiseProbability
        self.resetAfterBytes = resetAfterBytes
        self.baudRate = baudRate
        self.silent = silent
        self.spuriousBusyProbability = spuriousBusyProbability
        self.silentAfterConnect = silentAfterConnect
        self.silenceAfterBytes = silenceAfterBytes
        self.passiveRevertsAfterBytes = passiveRevertsAfterBytes
        self.overlongHeaders = overlongHeaders
        self.portVanishesAfterBytes = portVanishesAfterBytes
        self.noNetwork = noNetwork
        self.rejectCIICR = rejectCIICR
    }

    /// No faults.
    public static let none = ModemFaults()
}

/// How a ``ModemSimulator`` behaves.
public struct ModemSimulatorConfiguration: Sendable {
    /// The firmware family the module speaks.
    public var dialect: ATDialect
    /// ESP-AT: the `AT version` (`x.y.z.w`); below 3.3 passive receive is `AT+CIPRECVMODE`,
    /// from 3.3 on `AT+CIPRECVTYPE`; below 2.0 reads answer `+CIPRECVDATA,<n>:` and
    /// `AT+CIPDOMAIN` answers unquoted. SIM800: the `Revision:` text. BG96: the revision.
    public var firmware: String
    /// The module's own receive buffer per link, in bytes (passive mode). When it is full the
    /// simulator stops reading its socket, so the far peer is backpressured.
    public var linkBufferSize: Int
    /// Power-on (or reset) to boot banner.
    public var bootDelay: Duration
    /// `AT+RST` / `AT+CFUN=1,1` answer to the module going down.
    public var restartDelay: Duration
    /// Connect timeout when the command gives none.
    public var connectTimeout: Duration
    /// Print the boot banner (`ready`, `RDY`...). SIM800 prints none in its factory autobaud mode.
    public var printsBootBanner: Bool
    /// The module's own IP address as reported (`AT+CIFSR`, `AT+QIACT?`): text only.
    public var localAddress: String
    /// In push mode, stop reading sockets while this many output bytes wait for the UART.
    public var maxOutputBacklog: Int
    /// Seed of every random decision (fragmentation, delays, noise).
    public var seed: UInt64
    /// What the module does wrong on purpose (fragmented output, noise, resets, silence).
    public var faults: ModemFaults
    /// The most datagrams a UDP link's receive queue holds (its bytes are bounded by
    /// ``linkBufferSize``); further datagrams are dropped whole and counted.
    public var maxQueuedDatagrams = 64
    /// The module's TLS store: CA slots (ESP-AT), files (BG96), client certificates, and
    /// whether the firmware has TLS at all. Empty with TLS on by default: a TLS link that asks
    /// for verification fails its handshake until the store holds the CA it names.
    public var tlsStore = ModemTLSStore()

    /// A module of `dialect`; nil firmware, buffer size and address take the dialect's defaults
    /// (ESP-AT 2.2.0.0 with 5760-byte link buffers, SIM800 and BG96 with 4096).
    public init(
        dialect: ATDialect, firmware: String? = nil, linkBufferSize: Int? = nil,
        bootDelay: Duration = .milliseconds(20), restartDelay: Duration = .milliseconds(50),
        connectTimeout: Duration = .seconds(10), printsBootBanner: Bool = true,
        localAddress: String? = nil, maxOutputBacklog: Int = 16 * 1024, seed: UInt64 = 0,
        faults: ModemFaults = .none
    ) {
        self.dialect = dialect
        switch dialect {
        case .espAT:
            self.firmware = firmware ?? "2.2.0.0"
            self.linkBufferSize = linkBufferSize ?? 5760
            self.localAddress = localAddress ?? "192.168.4.2"
        case .sim800:
            self.firmware = firmware ?? "1418B04SIM800L24"
            self.linkBufferSize = linkBufferSize ?? 4096
            self.localAddress = localAddress ?? "10.170.12.34"
        case .bg96:
            self.firmware = firmware ?? "BG96MAR02A07M1G"
            self.linkBufferSize = linkBufferSize ?? 4096
            self.localAddress = localAddress ?? "10.64.3.7"
        }
        self.bootDelay = bootDelay
        self.restartDelay = restartDelay
        self.connectTimeout = connectTimeout
        self.printsBootBanner = printsBootBanner
        self.maxOutputBacklog = maxOutputBacklog
        self.seed = seed
        self.faults = faults
    }

    /// ESP-AT with `firmware` (default 2.2.0.0: `AT+CIPRECVMODE`; pass "3.3.0.0" or later for
    /// `AT+CIPRECVTYPE`).
    public static func espAT(firmware: String = "2.2.0.0", seed: UInt64 = 0, faults: ModemFaults = .none) -> Self {
        ModemSimulatorConfiguration(dialect: .espAT, firmware: firmware, seed: seed, faults: faults)
    }

    /// SIM800 with the default revision, every other setting at its default.
    public static func sim800(seed: UInt64 = 0, faults: ModemFaults = .none) -> Self {
        ModemSimulatorConfiguration(dialect: .sim800, seed: seed, faults: faults)
    }

    /// BG96 with the default revision, every other setting at its default.
    public static func bg96(seed: UInt64 = 0, faults: ModemFaults = .none) -> Self {
        ModemSimulatorConfiguration(dialect: .bg96, seed: seed, faults: faults)
    }

    /// The number of link ids (ESP-AT 5, SIM800 6, BG96 12).
    public var linkCount: Int {
        switch dialect {
        case .espAT: 5
        case .sim800: 6
        case .bg96: 12
        }
    }
}

/// Counters of a ``ModemSimulator``.
public struct ModemSimulatorStatistics: Sendable, Hashable {
    /// Bytes taken from the host (input while off, booting or silent is not counted).
    public var bytesIn = 0
    /// Bytes delivered to the host.
    public var bytesOut = 0
    /// Commands the module received.
    public var commands = 0
    /// `busy p...` answers (commands sent while one was running, and spurious ones).
    public var busyReplies = 0
    /// Restarts: `AT+RST`/`AT+CFUN=1,1`, the reset pin, the `resetAfterBytes` fault.
    public var resets = 0
    /// Links whose socket connected.
    public var linksOpened = 0
    /// Noise lines inserted before messages (the `noiseProbability` fault).
    public var noiseInserted = 0
    /// Datagrams that reached a UDP link's socket.
    public var datagramsReceived = 0
    /// Datagrams a UDP link sent.
    public var datagramsSent = 0
    /// Whole datagrams dropped: receive queue full (bytes or count), UART backlog full in push
    /// mode, larger than the dialect receives, or (ESP-AT passive) empty.
    public var datagramsDropped = 0
    /// Datagrams a connected UDP link (SIM800 normal mode, BG96 `"UDP"`) dropped because they
    /// came from someone other than its remote.
    public var datagramsFiltered = 0
    /// Datagrams that lost their tail to a read shorter than they were.
    public var datagramsTruncated = 0
    /// Every counter at zero.
    public init() {}
}

extension Duration {
    var nanosecondsClamped: UInt64 {
        let (s, atto) = components
        if s < 0 { return 0 }
        let (n, o) = UInt64(s).multipliedReportingOverflow(by: 1_000_000_000)
        if o { return UInt64.max }
        return n &+ UInt64(atto / 1_000_000_000)
    }
}

/// SplitMix64: the simulator's seeded generator.
struct SplitMix64: Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// 0..<n.
    mutating func below(_ n: UInt64) -> UInt64 { n <= 1 ? 0 : next() % n }
    mutating func chance(_ p: Double) -> Bool {
        if p <= 0 { return false }
        if p >= 1 { return true }
        return Double(next() >> 11) / Double(1 << 53) < p
    }
}
