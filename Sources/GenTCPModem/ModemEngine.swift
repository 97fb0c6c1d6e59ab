import GenTCPCore

/// The AT engine: a sans-I/O state machine that drives one module through a ``ModemDialect``.
///
/// It does no I/O and reads no clock. The driver:
/// 1. submits work: ``submit(_:now:timeout:)`` for commands,
///    ``send(_:link:now:timeout:)-(UnsafeRawBufferPointer,_,_,_)`` for data (one command in flight at a time;
///    both throw before producing anything);
/// 2. writes what ``withPendingOutput(_:)`` (or ``drainOutput(into:)``) hands it to the UART;
/// 3. passes every chunk the UART gives to ``nextEvent(reading:cursor:now:)`` until it
///    returns nil, and acts on each ``ModemEvent``;
/// 4. calls ``nextEvent(now:)`` at ``nextDeadline`` (timeouts, `busy` retries, async connects).
///
/// Memory is fixed at init (line buffer, command buffer, output buffer of one command plus one
/// send chunk, response store, event ring); received payload is handed out as views of the
/// driver's input, never copied.
public struct ModemEngine<Dialect: ModemDialect> {
    struct InFlight {
        var command: ModemCommand
        var phase: ModemLineContext.Phase
        var deadline: MillisecondInstant
        var timeout: UInt32
        var backoffUntil: MillisecondInstant?
        var retries = 0
        var echoPending = true
        var hint: ModemFailure?
        var sendTimeout: UInt32 = 0
    }

    /// The dialect, with what it learned from the module.
    public internal(set) var dialect: Dialect
    /// The sizes and timings the engine was made with.
    public let configuration: ModemConfiguration
    /// What the engine counted so far.
    public internal(set) var statistics = ModemStatistics()
    /// Command timeouts in a row with no answer in between: probe with `AT`, then reset.
    public internal(set) var consecutiveTimeouts = 0

    var lexer: ATLexer
    var writer: CommandWriter
    var output: OutputBuffer
    var response: ResponseLines
    var events: EventQueue
    var inFlight: InFlight?
    var links: [ModemLinkState]
    /// Which links were opened by ``ModemCommand/openDatagram(link:host:port:localPort:)``.
    var datagramLinks: [Bool]
    var connectDeadlines: [Int64]
    var resolvePending = false
    var resolveDeadline: MillisecondInstant?
    var bootWindowUntil: MillisecondInstant?
    /// `ATE0` succeeded since the last reset: an echo now means the module restarted unseen
    /// (its banner lost, e.g. inside a payload), since a restart turns echo back on.
    var echoDisabled = false
    var bootWindowFromStart = true
    /// The link the current payload belongs to, or nil when it is discarded.
    var payloadLink: Int?
    /// Whether the current payload was pushed by the module (`+IPD,<id>,<len>:`), not read.
    var payloadPushed = false
    var payloadAnnounced = 0
    var payloadDelivered = 0
    let sendChunk: Int

    static var noDeadline: Int64 { Int64.max }
    /// Events a run of immediate completions may queue. The queue holds this plus the most one
    /// line or timer can produce (a reset: every link, plus four), so nothing is ever dropped.
    static var submitEventReserve: Int { 4 }

    /// An engine for `dialect`, idle, with every buffer allocated from `configuration` and the
    /// dialect's limits.
    public init(dialect: Dialect, configuration: ModemConfiguration = ModemConfiguration()) {
        let limits = dialect.limits
        self.dialect = dialect
        self.configuration = configuration
        sendChunk = max(1, min(configuration.maxSendChunk, limits.maxSendLength))
        lexer = ATLexer(configuration: ATLexer.Configuration(
            maxLineLength: configuration.maxLineLength,
            maxPayloadLength: limits.maxPayloadLength,
            maxPieceLength: configuration.maxPieceLength,
            framing: dialect.framing))
        let commandLength = max(32, configuration.maxCommandLength)
        writer = CommandWriter(capacity: commandLength)
        output = OutputBuffer(capacity: commandLength + 2 + sendChunk)
        response = ResponseLines(byteCapacity: configuration.maxResponseBytes,
                                 lineCapacity: configuration.maxResponseLines)
        let linkCount = max(1, min(limits.maxLinks, 32))
        events = EventQueue(capacity: linkCount + 4 + ModemEngine.submitEventReserve)
        links = [ModemLinkState](repeating: .closed, count: linkCount)
        datagramLinks = [Bool](repeating: false, count: linkCount)
        connectDeadlines = [Int64](repeating: ModemEngine.noDeadline, count: linkCount)
    }

    // MARK: Queries

    /// The number of links (ids `0..<linkCount`).
    public var linkCount: Int { links.count }
    /// The most bytes one ``send(_:link:now:timeout:)-(UnsafeRawBufferPointer,_,_,_)`` takes.
    public var maxSendChunk: Int { sendChunk }
    /// The lexer's counters.
    public var lexerStatistics: ATLexerStatistics { lexer.statistics }

    /// What the engine believes about `link` (``ModemLinkState/closed`` when out of range).
    public func linkState(_ link: Int) -> ModemLinkState {
        link >= 0 && link < links.count ? links[link] : .closed
    }

    /// Whether `link` was opened as a UDP link (its payloads come as ``ModemEvent/datagram(link:length:remote:)``).
    public func isDatagramLink(_ link: Int) -> Bool {
        link >= 0 && link < links.count && datagramLinks[link]
    }

    /// The command in flight, if any.
    public var commandInFlight: ModemCommandKind? { inFlight?.command.kind }

    /// The link of the read in flight, if a read is in flight.
    public var readInFlightLink: Int? {
        if case .read(let link, _)? = inFlight?.command { return link }
        return nil
    }

    /// Whether the payload being handed out was pushed by the module (`+IPD,<id>,<len>:<data>`,
    /// the active-receive form) rather than read: a driver that asked for passive receive sees
    /// here that the module did not keep to it.
    public var isReceivingPushedPayload: Bool { payloadLink != nil && payloadPushed }

    /// Whether a new command can be submitted now.
    public var isIdle: Bool { inFlight == nil && output.isEmpty }

    /// When to call ``nextEvent(now:)`` next, or nil when no timer runs.
    public var nextDeadline: MillisecondInstant? {
        var earliest: MillisecondInstant?
        func consider(_ instant: MillisecondInstant) {
            if let current = earliest, current <= instant { return }
            earliest = instant
        }
        if let inFlight { consider(inFlight.backoffUntil ?? inFlight.deadline) }
        for (i, d) in connectDeadlines.enumerated() where d != ModemEngine.noDeadline && links[i] == .connecting {
            consider(MillisecondInstant(milliseconds: d))
        }
        if let resolveDeadline { consider(resolveDeadline) }
        return earliest
    }

    /// Information lines collected for the last command (valid until the next submit).
    public var responseLineCount: Int { response.lineCount }

    /// Reads information line `index` of the last command.
    public func withResponseLine<R>(_ index: Int, _ body: (ATLine) -> R) -> R? {
        response.withLine(index, body)
    }

    /// Reads the line behind the last ``ModemEvent/unrecognisedLine``. Valid until the next
    /// call that reads input.
    public func withLastLine<R>(_ body: (ATLine) -> R) -> R { lexer.withLine(body) }

    // MARK: Output

    /// The size of the output buffer: one command line plus one send chunk. No write the engine
    /// asks for is ever longer, so a driver can size its UART transmit buffer from it.
    public var outputCapacity: Int { output.capacity }

    /// The number of bytes waiting to be written to the module.
    public var pendingOutputCount: Int { output.pending }

    /// Hands the bytes to write to `write`, which returns how many it wrote (short writes are fine).
    public mutating func withPendingOutput(_ write: (UnsafeRawBufferPointer) -> Int) {
        let written = output.storage.withUnsafeBytes { raw in
            write(UnsafeRawBufferPointer(rebasing: raw[output.start..<output.released]))
        }
        let n = min(max(written, 0), output.pending)
        output.consume(n)
        statistics.bytesOut &+= UInt32(truncatingIfNeeded: n)
    }

    /// Copies as many pending bytes as fit into `buffer` and marks them written.
    public mutating func drainOutput(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(buffer.count, output.pending)
        guard n > 0, let base = buffer.baseAddress else { return 0 }
        output.storage.withUnsafeBytes { raw in
            base.copyMemory(from: raw.baseAddress! + output.start, byteCount: n)
        }
        output.consume(n)
        statistics.bytesOut &+= UInt32(truncatingIfNeeded: n)
        return n
    }

    // MARK: Submitting work

    /// Starts `command`. Throws, leaving no trace, when a command is in flight
    /// (``ModemReason/alreadyInProgress``), when the previous output has not been written or
    /// events have piled up untaken (``ModemReason/wouldBlock``), or when an argument is bad (``ModemReason/invalidArgument``:
    /// link out of range, port outside 1–65535, a read length outside 1–max, a string that
    /// could inject AT) or unsupported (``ModemReason/notSupported``).
    ///
    /// - Parameters:
    ///   - command: the command to start (anything but ``ModemCommand/send(link:count:)``).
    ///   - now: the driver's clock, in milliseconds.
    ///   - timeout: milliseconds for the final result; the dialect's default if nil.
    /// - Throws: ``ModemError`` as above.
    public mutating func submit(_ command: ModemCommand, now: MillisecondInstant, timeout: UInt32? = nil) throws(ModemError) {
        try checkReady()
        switch command {
        case .send, .sendDatagram:
            throw ModemError(.invalidArgument, "use send(_:link:now:timeout:) to send data")
        case .uploadFile:
            throw ModemError(.invalidArgument, "use upload(_:link:name:now:) to upload a file")
        case .connect(let link, _, let port), .connectSecure(let link, _, let port):
            try checkLink(link)
            guard port >= 1 && port <= 65_535 else { throw ModemError(.invalidArgument, "port must be 1...65535") }
            guard links[link] == .closed else { throw ModemError(.alreadyConnected, "link is in use; close it first") }
        case .openDatagram(let link, _, let port, let localPort):
            try checkLink(link)
            guard port >= 0 && port <= 65_535 else { throw ModemError(.invalidArgument, "port must be 0...65535") }
            guard localPort >= 1 && localPort <= 65_535 else {
                throw ModemError(.invalidArgument, "local port must be 1...65535")
            }
            guard links[link] == .closed else { throw ModemError(.alreadyConnected, "link is in use; close it first") }
        case .bindLocalPort(let link, let port):
            try checkLink(link)
            guard port >= 0 && port <= 65_535 else { throw ModemError(.invalidArgument, "port must be 0...65535") }
        case .setReceiveMode(let link, _):
            try checkLink(link)
        case .read(let link, let maximum):
            try checkLink(link)
            guard maximum >= 1 && maximum <= dialect.limits.maxReadLength else {
                throw ModemError(.invalidArgument, "read length outside 1...the dialect's maximum")
            }
        case .queryAvailable(let link), .close(let link), .configureTLS(let link, _):
            try checkLink(link)
        case .setBaudRate(let rate, _):
            guard rate >= 300 && rate <= 10_000_000 else { throw ModemError(.invalidArgument, "baud rate out of range") }
        default:
            break
        }
        let needed = try build(command)
        response.clear()
        statistics.commands &+= 1
        guard needed else {
            // Nothing to tell the module: done at once. The completion is queued, so a driver
            // that keeps submitting without taking events could fill the fixed queue; refuse.
            guard events.count < ModemEngine.submitEventReserve else {
                throw ModemError(.wouldBlock, "take the pending events first")
            }
            dialect.commandSucceeded(command)
            syncFraming()
            push(.commandCompleted(ModemCompletion(command: command.kind, link: command.link, outcome: .success)))
            return
        }
        let limit = timeout ?? lineTimeout(for: command)
        output.writeCommand(writer, terminator: dialect.commandTerminator)
        inFlight = InFlight(command: command, phase: .response, deadline: now.advanced(by: limit), timeout: limit)
        switch command {
        case .connect(let link, _, _), .connectSecure(let link, _, _), .openDatagram(let link, _, _, _):
            links[link] = .connecting
            datagramLinks[link] = command.kind == .openDatagram
            connectDeadlines[link] = ModemEngine.noDeadline
        case .resolve:
            resolvePending = dialect.resolvesAsynchronously
            resolveDeadline = nil
        default:
            break
        }
    }

    /// Sends up to ``maxSendChunk`` bytes of `payload` on an open `link`: the command now, the
    /// payload when the `>` prompt comes, exactly that many bytes. Returns how many bytes were
    /// taken (0 for an empty payload, with nothing sent); send the rest after the completion.
    ///
    /// Throws like ``submit(_:now:timeout:)``, and ``ModemReason/notConnected`` (or
    /// ``ModemReason/closed`` after a peer close) unless the link is open.
    /// - Parameters:
    ///   - payload: the bytes to send; only the first ``maxSendChunk`` are taken.
    ///   - link: an open link id.
    ///   - now: the driver's clock, in milliseconds.
    ///   - timeout: ms for the send result after the payload; by default 10 s plus the time the
    ///     payload takes on the wire at ``ModemConfiguration/baudRate``.
    /// - Returns: the bytes taken.
    /// - Throws: ``ModemError`` as above.
    @discardableResult
    public mutating func send(_ payload: UnsafeRawBufferPointer, link: Int, now: MillisecondInstant,
                              timeout: UInt32? = nil) throws(ModemError) -> Int {
        try checkReady()
        try checkLink(link)
        switch links[link] {
        case .open: break
        case .peerClosed: throw ModemError(.closed, "the peer closed the link")
        case .closed, .connecting: throw ModemError(.notConnected, "link is not open")
        }
        let count = min(payload.count, sendChunk)
        guard count > 0 else { return 0 }
        let command = ModemCommand.send(link: link, count: count)
        _ = try build(command)
        stage(command, payload: UnsafeRawBufferPointer(rebasing: payload[0..<count]), now: now, timeout: timeout)
        return count
    }

    /// Sends `payload` as one datagram on an open UDP link: to `destination`, or to the link's
    /// own remote when nil (a connected SIMCom or Quectel `"UDP"` link). The whole datagram or
    /// nothing: more than ``maxSendChunk`` bytes is ``ModemReason/messageTooLong``, and an empty one
    /// ``ModemReason/notSupported`` (the modules' send commands take a length of 1 or more, or
    /// read 0 as a query). Otherwise as ``send(_:link:now:timeout:)-(UnsafeRawBufferPointer,_,_,_)``.
    /// - Throws: ``ModemError`` as above.
    public mutating func sendDatagram(_ payload: UnsafeRawBufferPointer, link: Int, to destination: ModemEndpoint?,
                                      now: MillisecondInstant, timeout: UInt32? = nil) throws(ModemError) {
        try checkReady()
        try checkLink(link)
        guard links[link] == .open else { throw ModemError(.notConnected, "link is not open") }
        guard datagramLinks[link] else { throw ModemError(.invalidArgument, "not a UDP link") }
        guard payload.count <= sendChunk else { throw ModemError(.messageTooLong, "datagram larger than one send") }
        guard payload.count > 0 else { throw ModemError(.notSupported, "the module cannot send an empty datagram") }
        if let destination {
            guard destination.port >= 1 && destination.port <= 65_535 else {
                throw ModemError(.invalidArgument, "port must be 1...65535")
            }
        }
        let command: ModemCommand = destination.map { .sendDatagram(link: link, count: payload.count, to: $0) }
            ?? .send(link: link, count: payload.count)
        _ = try build(command)
        stage(command, payload: payload, now: now, timeout: timeout)
    }

    /// Uploads `payload` to the module's file `name` (Quectel `AT+QFUPL`) for a TLS link on
    /// `link`: the command now, the bytes when the module's `CONNECT` prompt comes. The whole
    /// file or nothing: more than ``maxSendChunk`` bytes is ``ModemReason/messageTooLong``, an
    /// empty one ``ModemReason/invalidArgument``; dialects without uploads throw
    /// ``ModemReason/notSupported``. Completes as a ``ModemCommandKind/configureTLS`` command.
    /// - Parameters:
    ///   - payload: the file's bytes.
    ///   - link: the link the TLS settings are for.
    ///   - name: the module's file name (`UFS:ca.pem`).
    ///   - now: the driver's clock, in milliseconds.
    /// - Throws: ``ModemError`` as above, and as ``submit(_:now:timeout:)``.
    public mutating func upload(_ payload: UnsafeRawBufferPointer, link: Int, name: String,
                                now: MillisecondInstant) throws(ModemError) {
        try checkReady()
        try checkLink(link)
        guard payload.count > 0 else { throw ModemError(.invalidArgument, "an empty file") }
        guard payload.count <= sendChunk else { throw ModemError(.messageTooLong, "file larger than one send") }
        let command = ModemCommand.uploadFile(link: link, name: name, count: payload.count)
        _ = try build(command)
        stage(command, payload: payload, now: now, timeout: nil)
    }

    /// Writes `command` (already built) and stages `payload` until the prompt.
    mutating func stage(_ command: ModemCommand, payload: UnsafeRawBufferPointer, now: MillisecondInstant, timeout: UInt32?) {
        let count = payload.count
        response.clear()
        statistics.commands &+= 1
        output.writeCommand(writer, terminator: dialect.commandTerminator)
        output.stagePayload(payload)
        // The prompt comes after the command crossed the line; the result after the payload did.
        let commandWire = ModemEngine.wireMilliseconds(writer.count + 16, baud: configuration.baudRate)
        let promptTimeout = ModemEngine.sum(configuration.promptTimeout.clampedUInt32, configuration.extraLatency.clampedUInt32, commandWire)
        let wire = ModemEngine.wireMilliseconds(count + 32, baud: configuration.baudRate)
        var flight = InFlight(command: command, phase: .awaitingPrompt,
                              deadline: now.advanced(by: promptTimeout),
                              timeout: promptTimeout)
        flight.sendTimeout = timeout ?? ModemEngine.sum(10_000, configuration.extraLatency.clampedUInt32, wire)
        inFlight = flight
        lexer.expectsPrompt = true
    }

    /// The lexer follows the dialect's framing, which may change with a setting (`AT+CIPDINFO`).
    mutating func syncFraming() {
        let framing = dialect.framing
        if lexer.configuration.framing != framing { lexer.configuration.framing = framing }
    }

    /// ``send(_:link:now:timeout:)-(UnsafeRawBufferPointer,_,_,_)`` for an array.
    @discardableResult
    public mutating func send(_ payload: [UInt8], link: Int, now: MillisecondInstant, timeout: UInt32? = nil) throws(ModemError) -> Int {
        var result: Result<Int, ModemError> = .success(0)
        payload.withUnsafeBytes { raw in
            do throws(ModemError) {
                result = .success(try send(raw, link: link, now: now, timeout: timeout))
            } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    /// The time the module gets for `command` by default: the dialect's documented latency,
    /// plus ``ModemConfiguration/extraLatency``, plus the time the bytes the command moves take on
    /// the line at ``ModemConfiguration/baudRate`` (the command itself and its answer: for a
    /// read, the most payload it may bring). A slow line never turns a long answer into a
    /// timeout.
    public func lineTimeout(for command: ModemCommand) -> UInt32 {
        let answer: Int
        switch command {
        case .read(_, let maximum): answer = maximum + 128
        default: answer = 256
        }
        let wire = ModemEngine.wireMilliseconds(writer.count + 2 + answer, baud: configuration.baudRate)
        let total = UInt64(dialect.timeout(for: command)) + UInt64(configuration.extraLatency.clampedUInt32) + UInt64(wire)
        return UInt32(min(total, UInt64(UInt32.max)))
    }

    /// `a + b + c`, saturating at `UInt32.max` (settings are the caller's, and must not trap).
    static func sum(_ a: UInt32, _ b: UInt32, _ c: UInt32) -> UInt32 {
        UInt32(min(UInt64(a) + UInt64(b) + UInt64(c), UInt64(UInt32.max)))
    }

    /// Milliseconds `bytes` take on a line at `baud` (10 bits a byte), rounded up; at least 1.
    public static func wireMilliseconds(_ bytes: Int, baud: Int) -> UInt32 {
        let rate = max(baud, 300)
        let ms = (max(bytes, 0) * 10_000 + rate - 1) / rate
        return UInt32(min(max(ms, 1), 3_600_000))
    }

    /// The text of the last command line built (without its terminator), for error messages.
    public func withLastCommand<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        writer.storage.withUnsafeBytes { raw in body(UnsafeRawBufferPointer(rebasing: raw[0..<writer.count])) }
    }

    func checkReady() throws(ModemError) {
        guard inFlight == nil else { throw ModemError(.alreadyInProgress, "a command is in flight") }
        guard output.isEmpty else { throw ModemError(.wouldBlock, "write the pending output first") }
    }

    func checkLink(_ link: Int) throws(ModemError) {
        guard link >= 0 && link < links.count else { throw ModemError(.invalidArgument, "link id out of range") }
    }

    mutating func build(_ command: ModemCommand) throws(ModemError) -> Bool {
        writer.clear()
        do throws(ModemError) {
            return try dialect.build(command, into: &writer)
        } catch {
            writer.clear()
            throw error
        }
    }

    mutating func push(_ event: ModemEvent) {
        let before = events.dropped
        events.push(event)
        if events.dropped != before { statistics.droppedEvents &+= 1 }
    }
}

extension Milliseconds {
    /// The span as the engine's `UInt32` milliseconds: 0 when negative, saturating.
    var clampedUInt32: UInt32 { UInt32(clamping: max(0, value)) }
}
