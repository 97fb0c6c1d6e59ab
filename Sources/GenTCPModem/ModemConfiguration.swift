import GenTCPCore

/// Sizes and timings of a ``ModemEngine``, fixed at init. Every buffer is allocated once from
/// these numbers; nothing grows with what the module sends.
public struct ModemConfiguration: Sendable {
    /// The longest line kept (default 300: a 256-byte command echo plus slack).
    public var maxLineLength = 300
    /// The longest command line built (default 256, ESP-AT's documented limit).
    public var maxCommandLength = 256
    /// The most payload bytes one send takes; clamped to the dialect's maximum (default 2048).
    /// The output buffer holds one command plus this many bytes.
    public var maxSendChunk = 2048
    /// Bytes of information kept per command; more are dropped and counted.
    public var maxResponseBytes = 512
    /// Lines of information kept per command; more are dropped and counted.
    public var maxResponseLines = 16
    /// The largest piece of payload handed out in one ``ModemEvent/received(link:bytes:)``.
    public var maxPieceLength = 1024
    /// How long to wait before retrying after `busy p...`.
    public var busyRetryDelay: Milliseconds = 250
    /// How many `busy p...` retries before the command fails with ``ModemFailure/busy``.
    public var maxBusyRetries = 8
    /// How long a send waits for `>` (Zephyr uses 5 s).
    public var promptTimeout: Milliseconds = 5_000
    /// Time added to every command's timeout, over the dialect's documented latency and the line
    /// time (a board profile's `latency`, for a module slower than its documents).
    public var extraLatency: Milliseconds = 0
    /// The UART rate, for send and read timeouts that grow with the length.
    public var baudRate = 115_200
    /// After a reset is reported, boot banner lines (`Call Ready`, `APP RDY`) within this long are
    /// part of that boot, not a new reset.
    public var bootBannerWindow: Milliseconds = 30_000

    /// The defaults shown at each property.
    public init() {}
}

/// Counters kept by the engine. They wrap instead of trapping.
public struct ModemStatistics: Equatable, Sendable {
    /// Bytes read from the module (lines and payload).
    public var bytesIn: UInt32 = 0
    /// Bytes written to the module (commands and payload).
    public var bytesOut: UInt32 = 0
    /// Commands started (sends included).
    public var commands: UInt32 = 0
    /// Unsolicited result codes understood.
    public var unsolicited: UInt32 = 0
    /// Command echoes skipped (before `ATE0` took effect, or after a restart).
    public var echoes: UInt32 = 0
    /// Commands sent again after `busy p...`.
    public var busyRetries: UInt32 = 0
    /// Commands that got no final result before their deadline.
    public var timeouts: UInt32 = 0
    /// Module restarts seen (`ready`, `RDY`, boot banners).
    public var resets: UInt32 = 0
    /// Final results, prompts and URCs that matched nothing the engine was waiting for.
    public var strays: UInt32 = 0
    /// Payload bytes with no link to give them to (a read answer with no read in flight).
    public var unexpectedPayloadBytes: UInt32 = 0
    /// Information lines that did not fit the response store.
    public var droppedResponseLines: UInt32 = 0
    /// Payload bytes an answer announced and never sent before its command timed out (the lexer
    /// went back to lines).
    public var abandonedPayloadBytes: UInt32 = 0
    /// Events dropped because the queue was full (never expected; counted to prove it).
    public var droppedEvents: UInt32 = 0

    /// Every counter at zero.
    public init() {}
}
