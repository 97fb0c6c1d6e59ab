/// One thing the lexer found in the modem's output.
public enum ATToken {
    /// A complete text line; read it with ``ATLexer/withLine(_:)`` before the next call.
    case line
    /// A `>` data prompt (only reported while ``ATLexer/expectsPrompt`` is set).
    case prompt
    /// A payload header; ``payload(_:)`` pieces follow, then ``payloadEnd``.
    case payloadStart(ATPayloadHeader)
    /// The next bytes of the payload: a view into the caller's input, never copied.
    case payload(UnsafeRawBufferPointer)
    /// The payload announced by the last header is complete.
    case payloadEnd
    /// Something was wrong; the lexer has already resynchronised (see ``ATLexerError``).
    case error(ATLexerError)
}

/// What the lexer rejected. After each, it skips to the next line end and carries on.
public enum ATLexerError: Equatable, Sendable {
    /// A line exceeded ``ATLexer/Configuration/maxLineLength``; the rest up to the line end
    /// was dropped.
    case lineTooLong
    /// A header announced more than ``ATLexer/Configuration/maxPayloadLength`` bytes
    /// (`+IPD,99999999:`). Nothing was allocated; the bytes that follow are read as lines again.
    case payloadTooLong(announced: Int)
    /// A payload header whose numbers did not parse (`+IPD,x:`).
    case malformedHeader
}

/// Counters kept by the lexer. They wrap instead of trapping.
public struct ATLexerStatistics: Equatable, Sendable {
    /// Text lines handed out.
    public var lines: UInt32 = 0
    /// Prompts handed out.
    public var prompts: UInt32 = 0
    /// Payloads completed.
    public var payloads: UInt32 = 0
    /// Payload bytes handed out.
    public var payloadBytes: UInt32 = 0
    /// Bytes skipped as garbage: junk between lines, lines with control bytes, the rest of
    /// overlong lines and of rejected headers.
    public var garbageBytes: UInt32 = 0
    /// Lines dropped because they held control bytes.
    public var garbageLines: UInt32 = 0
    /// Lines dropped for being longer than the maximum.
    public var overlongLines: UInt32 = 0
    /// Headers rejected because they announced too much.
    public var oversizedPayloads: UInt32 = 0
    /// Headers rejected because they did not parse.
    public var malformedHeaders: UInt32 = 0

    /// Every counter at zero.
    public init() {}
}

/// Splits the byte stream from an AT modem into lines, prompts and length-prefixed payloads.
///
/// Feed it chunks split anywhere (inside `\r\n`, inside a header, inside a payload); the tokens
/// are the same however the stream is cut, except that payload pieces follow the cuts.
///
/// * Lines end at LF; trailing CR and spaces are trimmed, so `AT\r\r\n` (3GPP echo) is `AT`.
///   Empty lines are skipped. Junk bytes before a line starts are skipped and counted; a line
///   containing control bytes is dropped and counted.
/// * Headers (see ``ATFraming``) switch to payload mode at once; payload bytes are handed out as
///   views of the input, at most ``Configuration/maxPieceLength`` at a time, and never buffered.
/// * Memory is fixed at init: one line buffer of ``Configuration/maxLineLength`` bytes.
///
/// Usage:
/// ```
/// var cursor = 0
/// while let token = lexer.next(chunk, cursor: &cursor) { ... }
/// ```
public struct ATLexer {
    /// Sizes and formats, fixed at init.
    public struct Configuration: Sendable {
        /// The longest line kept, in bytes (at least 16). Longer lines are dropped and counted.
        public var maxLineLength: Int
        /// The largest payload a header may announce (at least 1). Larger is ``ATLexerError/payloadTooLong(announced:)``.
        public var maxPayloadLength: Int
        /// The largest piece of payload handed out in one token (at least 1).
        public var maxPieceLength: Int
        /// The headers to recognise.
        public var framing: ATFraming

        /// Sizes as given, raised to their minimums (16, 1, 1); `framing` is the dialect's set.
        public init(maxLineLength: Int = 300, maxPayloadLength: Int = 8192, maxPieceLength: Int = 1024,
                    framing: ATFraming) {
            self.maxLineLength = max(16, maxLineLength)
            self.maxPayloadLength = max(1, maxPayloadLength)
            self.maxPieceLength = max(1, maxPieceLength)
            self.framing = framing
        }
    }

    enum Mode: UInt8 { case line, discard, payload }

    /// The sizes and framing the lexer was made with. The engine changes ``Configuration/framing``
    /// when the module's setting changes (ESP-AT `AT+CIPDINFO`); the sizes never change.
    public internal(set) var configuration: Configuration
    /// Set while a `>` prompt may come: a `>` at the start of a line is then a prompt.
    /// Otherwise it is an ordinary byte, so a stray `>` never starts a data phase.
    public var expectsPrompt = false
    /// What the lexer skipped, dropped or rejected so far.
    public private(set) var statistics = ATLexerStatistics()

    var mode = Mode.line
    var buffer: [UInt8]
    var count = 0
    /// The trimmed bounds of the last `.line` token, valid until the next call to `next`.
    var lineStart = 0
    var lineEnd = 0
    var lineHandedOut = false
    var quoted = false
    var commas = 0
    /// How much of "+IPD," has been seen while discarding.
    var ipdMatch = 0
    var remaining = 0

    /// A lexer in line mode; allocates its one line buffer here.
    public init(configuration: Configuration) {
        self.configuration = configuration
        self.buffer = [UInt8](repeating: 0, count: configuration.maxLineLength)
    }

    /// Whether the lexer is inside a payload.
    public var isInPayload: Bool { mode == .payload }
    /// Payload bytes still to come for the current header (0 outside a payload).
    public var payloadRemaining: Int { mode == .payload ? remaining : 0 }

    /// Checks the lexer's internal consistency; nil when all is well. For tests and fuzzing.
    public func invariantViolation() -> StaticString? {
        if buffer.count != configuration.maxLineLength { return "line buffer resized" }
        if count < 0 || count > buffer.count { return "line overflow" }
        if lineStart < 0 || lineEnd < lineStart || lineEnd > buffer.count { return "line bounds out of order" }
        if remaining < 0 || remaining > configuration.maxPayloadLength { return "payload beyond the maximum" }
        if mode != .payload && remaining != 0 { return "payload count outside a payload" }
        return nil
    }

    /// Forgets any partial line or payload (after a module reset, say). Statistics are kept.
    public mutating func reset() {
        mode = .line
        resetLine()
        remaining = 0
        ipdMatch = 0
        expectsPrompt = false
    }

    /// Reads the line of the last `.line` token. Valid until the next call to ``next(_:cursor:)``.
    public func withLine<R>(_ body: (ATLine) -> R) -> R {
        buffer.withUnsafeBytes { raw in
            let start = min(lineStart, raw.count)
            let end = min(max(lineEnd, start), raw.count)
            return body(ATLine(UnsafeRawBufferPointer(rebasing: raw[start..<end])))
        }
    }

    /// Returns the next token from `input` starting at `cursor`, and advances `cursor` past the
    /// bytes it used. Returns nil when every byte of `input` has been consumed and no token is
    /// complete; keep calling until then.
    public mutating func next(_ input: UnsafeRawBufferPointer, cursor: inout Int) -> ATToken? {
        if cursor < 0 { cursor = 0 }
        if mode == .payload {
            if remaining == 0 {
                mode = .line
                resetLine()
                statistics.payloads &+= 1
                return .payloadEnd
            }
            guard cursor < input.count else { return nil }
            let n = min(min(remaining, input.count - cursor), configuration.maxPieceLength)
            let piece = UnsafeRawBufferPointer(rebasing: input[cursor..<(cursor + n)])
            cursor += n
            remaining -= n
            statistics.payloadBytes &+= UInt32(truncatingIfNeeded: n)
            return .payload(piece)
        }
        if lineHandedOut { resetLine() }
        while cursor < input.count {
            let byte = input[cursor]
            cursor += 1
            if let token = consume(byte) { return token }
        }
        return nil
    }

    mutating func resetLine() {
        count = 0
        quoted = false
        commas = 0
        lineHandedOut = false
        lineStart = 0
        lineEnd = 0
    }

    mutating func consume(_ byte: UInt8) -> ATToken? {
        switch mode {
        case .payload:
            return nil  // not reached: `next` handles payload bytes in bulk
        case .discard:
            return discard(byte)
        case .line:
            break
        }
        if count == 0 {
            if byte == ASCII.lf || byte == ASCII.cr || byte == ASCII.space || byte == ASCII.tab { return nil }
            if byte == ASCII.greaterThan, expectsPrompt {
                statistics.prompts &+= 1
                return .prompt
            }
            if ASCII.isControl(byte) || byte >= 0x80 {
                statistics.garbageBytes &+= 1
                return nil
            }
        }
        if byte == ASCII.lf { return finishLine() }
        guard count < buffer.count else {
            statistics.overlongLines &+= 1
            statistics.garbageBytes &+= UInt32(truncatingIfNeeded: count + 1)
            startDiscarding(after: byte)
            return .error(.lineTooLong)
        }
        buffer[count] = byte
        count += 1
        if byte == ASCII.quote {
            quoted.toggle()
            return nil
        }
        if byte == ASCII.comma {
            if !quoted { commas += 1 }
            return commaInLine()
        }
        if byte == ASCII.colon, !quoted {
            return colonInLine()
        }
        return nil
    }

    mutating func startDiscarding(after byte: UInt8) {
        mode = .discard
        ipdMatch = 0
        resetLine()
        _ = trackIPD(byte)
    }

    /// Skips to the next line end, watching for a fresh `+IPD,` to resynchronise on.
    mutating func discard(_ byte: UInt8) -> ATToken? {
        if byte == ASCII.lf {
            mode = .line
            resetLine()
            return nil
        }
        statistics.garbageBytes &+= 1
        if trackIPD(byte) {
            // "+IPD" was counted as garbage; it is the start of a header after all.
            statistics.garbageBytes &-= 4
            mode = .line
            resetLine()
            setBufferToIPDPrefix()
        }
        return nil
    }

    /// Advances the "+IPD," matcher; true when it completes.
    mutating func trackIPD(_ byte: UInt8) -> Bool {
        guard configuration.framing.contains(.ipd) else { return false }
        let pattern = ATLexer.ipdPrefix
        if byte == pattern[ipdMatch] {
            ipdMatch += 1
            if ipdMatch == pattern.count {
                ipdMatch = 0
                return true
            }
        } else {
            ipdMatch = byte == ASCII.plus ? 1 : 0
        }
        return false
    }

    mutating func setBufferToIPDPrefix() {
        for (i, b) in ATLexer.ipdPrefix.enumerated() { buffer[i] = b }
        count = ATLexer.ipdPrefix.count
        commas = 1
        quoted = false
    }

    static let ipdPrefix: [UInt8] = [0x2B, 0x49, 0x50, 0x44, 0x2C]  // "+IPD,"

    func bufferHasPrefix(_ text: StaticString) -> Bool {
        let n = text.utf8CodeUnitCount
        guard n <= count else { return false }
        let p = text.utf8Start
        for i in 0..<n where buffer[i] != p[i] { return false }
        return true
    }

    // MARK: Headers that end inside a line

    mutating func commaInLine() -> ATToken? {
        let framing = configuration.framing
        if framing.contains(.cipRecvData), !quoted, bufferHasPrefix("+CIPRECVDATA:") {
            let needed = framing.contains(.cipRecvDataRemoteInfo) ? 3 : 1
            if commas == needed {
                // The length is the first field; with remote info, ip and port follow it.
                let parsed = withHeaderFields(from: 13, to: count - 1) { fields -> (Int?, ModemEndpoint?) in
                    let length = fields.nextInteger()
                    guard needed == 3 else { return (length, nil) }
                    let host = fields.nextString()
                    return (length, ModemEndpoint(address: host, port: fields.nextInteger()))
                }
                return beginPayload(kind: .cipRecvData, link: nil, length: parsed.0, left: nil, remote: parsed.1)
            }
            return nil
        }
        // A "+IPD," in the middle of a line: what came before it is garbage (atat #213).
        if framing.contains(.ipd), count > 5, !bufferHasPrefix("+IPD,") {
            let tail = count - 5
            var match = true
            for i in 0..<5 where buffer[tail + i] != ATLexer.ipdPrefix[i] {
                match = false
                break
            }
            if match {
                statistics.garbageBytes &+= UInt32(truncatingIfNeeded: tail)
                setBufferToIPDPrefix()
            }
        }
        return nil
    }

    mutating func colonInLine() -> ATToken? {
        let framing = configuration.framing
        if framing.contains(.ipd), bufferHasPrefix("+IPD,") {
            // Fields between "+IPD," and ":": len | link,len | len,ip,port | link,len,ip,port.
            let fieldCount = commas  // "+IPD," holds the first comma; each further one adds a field
            // A sender that does not parse leaves `remote` nil: the payload is still framed by
            // its length (and dropped by whoever needed the sender).
            let parsed = withHeaderFields(from: 5, to: count - 1) { fields -> (Int?, Int?, ModemEndpoint?) in
                switch fieldCount {
                case 1: return (nil, fields.nextInteger(), nil)
                case 2:
                    let link = fields.nextInteger()
                    return (link, fields.nextInteger(), nil)
                case 3:
                    let length = fields.nextInteger()
                    let host = fields.nextString()
                    return (nil, length, ModemEndpoint(address: host, port: fields.nextInteger()))
                case 4:
                    let link = fields.nextInteger()
                    let length = fields.nextInteger()
                    let host = fields.nextString()
                    return (link, length, ModemEndpoint(address: host, port: fields.nextInteger()))
                default: return (nil, nil, nil)
                }
            }
            if fieldCount == 2 || fieldCount == 4 {
                guard let link = parsed.0, link >= 0 else { return reject(.malformedHeader) }
            }
            return beginPayload(kind: .ipd, link: parsed.0, length: parsed.1, left: nil, remote: parsed.2)
        }
        if framing.contains(.cipRecvData), commas == 1, bufferHasPrefix("+CIPRECVDATA,") {
            let length = withHeaderFields(from: 13, to: count - 1) { $0.nextInteger() }
            return beginPayload(kind: .cipRecvData, link: nil, length: length, left: nil)
        }
        return nil
    }

    func withHeaderFields<R>(from start: Int, to end: Int, _ body: (inout ATFields) -> R) -> R {
        buffer.withUnsafeBytes { raw in
            let s = min(start, raw.count)
            let e = min(max(end, s), raw.count)
            var fields = ATLine(UnsafeRawBufferPointer(rebasing: raw[s..<e])).fields(after: 0)
            return body(&fields)
        }
    }

    /// `lineEnded`: the header was a whole line, so a rejection resumes at the next byte
    /// instead of skipping to the next line end.
    mutating func beginPayload(kind: ATPayloadHeader.Kind, link: Int?, length: Int?, left: Int?,
                               remote: ModemEndpoint? = nil, lineEnded: Bool = false) -> ATToken {
        guard let length, length >= 0 else { return reject(.malformedHeader, lineEnded: lineEnded) }
        if length > configuration.maxPayloadLength {
            statistics.oversizedPayloads &+= 1
            statistics.garbageBytes &+= UInt32(truncatingIfNeeded: count)
            mode = lineEnded ? .line : .discard
            ipdMatch = 0
            resetLine()
            return .error(.payloadTooLong(announced: length))
        }
        resetLine()
        mode = .payload
        remaining = length
        return .payloadStart(ATPayloadHeader(kind: kind, link: link, length: length, leftInModule: left, remote: remote))
    }

    mutating func reject(_ error: ATLexerError, lineEnded: Bool = false) -> ATToken {
        statistics.malformedHeaders &+= 1
        statistics.garbageBytes &+= UInt32(truncatingIfNeeded: count)
        mode = lineEnded ? .line : .discard
        ipdMatch = 0
        resetLine()
        return .error(error)
    }

    // MARK: Line end

    mutating func finishLine() -> ATToken? {
        var end = count
        while end > 0, buffer[end - 1] == ASCII.cr || buffer[end - 1] == ASCII.space || buffer[end - 1] == ASCII.tab {
            end -= 1
        }
        if end == 0 {
            resetLine()
            return nil
        }
        for i in 0..<end where ASCII.isControl(buffer[i]) {
            statistics.garbageLines &+= 1
            statistics.garbageBytes &+= UInt32(truncatingIfNeeded: count)
            resetLine()
            return nil
        }
        let framing = configuration.framing
        if framing.contains(.qsslRecv), bufferHasPrefix("+QSSLRECV:") {
            // BG-T4: "+QSSLRECV: <len>" announces data; anything else there is malformed.
            let length = withHeaderFields(from: 10, to: end) { fields -> Int?? in
                let length = fields.nextInteger()
                return fields.isAtEnd ? length : nil
            }
            guard let length else { return reject(.malformedHeader, lineEnded: true) }
            return beginPayload(kind: .qird, link: nil, length: length, left: nil, remote: nil, lineEnded: true)
        }
        if framing.contains(.qird), bufferHasPrefix("+QIRD:") {
            // "+QIRD: <len>" announces data, and so does a "UDP SERVICE" read's
            // "+QIRD: <len>,"<ip>",<port>"; "+QIRD: <total>,<read>,<unread>" does not.
            let header = withHeaderFields(from: 6, to: end) { fields -> (Int?, ModemEndpoint?, Bool)? in
                let length = fields.nextInteger()
                if fields.isAtEnd { return (length, nil, false) }
                guard fields.nextByte == ASCII.quote else { return nil }
                let host = fields.nextString()
                let port = fields.nextInteger()
                guard fields.isAtEnd else { return (length, nil, true) }
                let remote = ModemEndpoint(address: host, port: port)
                return (length, remote, remote == nil)
            }
            if let header {
                if header.2 { return reject(.malformedHeader, lineEnded: true) }
                return beginPayload(kind: .qird, link: nil, length: header.0, left: nil, remote: header.1, lineEnded: true)
            }
        }
        if framing.contains(.cipRxGet), bufferHasPrefix("+CIPRXGET:") {
            // "+CIPRXGET: 2,<link>,<len>,<left>" or, in single-link mode, "+CIPRXGET: 2,<len>,<left>";
            // with AT+CIPSRIP=1 the sender follows as "<ip>:<port>".
            let header = withHeaderFields(from: 10, to: end) { fields -> (Bool, Int?, Int?, Int?, ModemEndpoint?, Bool) in
                guard fields.nextInteger() == 2 else { return (false, nil, nil, nil, nil, false) }
                // Up to three numbers (no array: a header must not allocate), then the sender.
                var numbers: (Int?, Int?, Int?) = (nil, nil, nil)
                var counted = 0
                var remote: ModemEndpoint?
                var badRemote = false
                while !fields.isAtEnd, counted < 4 {
                    if fields.fieldHasAddressPunctuation {
                        let text = fields.nextString()
                        remote = ModemEndpoint(colonSeparated: text)
                        badRemote = remote == nil
                        break
                    }
                    let value = fields.nextInteger()
                    switch counted {
                    case 0: numbers.0 = value
                    case 1: numbers.1 = value
                    case 2: numbers.2 = value
                    default: break
                    }
                    counted += 1
                }
                guard fields.isAtEnd else { return (true, nil, nil, nil, nil, true) }
                switch counted {
                case 2: return (true, nil, numbers.0, numbers.1, remote, badRemote)
                case 3: return (true, numbers.0, numbers.1, numbers.2, remote, badRemote)
                default: return (true, nil, nil, nil, nil, true)
                }
            }
            if header.0 {
                if header.5 { return reject(.malformedHeader, lineEnded: true) }
                if let link = header.1, link < 0 { return reject(.malformedHeader, lineEnded: true) }
                return beginPayload(kind: .cipRxGet, link: header.1, length: header.2, left: header.3,
                                    remote: header.4, lineEnded: true)
            }
        }
        if framing.contains(.receive), bufferHasPrefix("+RECEIVE,"), buffer[end - 1] == ASCII.colon {
            // "+RECEIVE,<link>,<len>:" then CR-LF and the data.
            let header = withHeaderFields(from: 9, to: end - 1) { fields -> (Int?, Int?)? in
                let link = fields.nextInteger()
                let length = fields.nextInteger()
                return fields.isAtEnd ? (link, length) : nil
            }
            if let header {
                guard let link = header.0, link >= 0 else { return reject(.malformedHeader, lineEnded: true) }
                return beginPayload(kind: .receive, link: link, length: header.1, left: nil, lineEnded: true)
            }
        }
        statistics.lines &+= 1
        lineStart = 0
        lineEnd = end
        lineHandedOut = true
        return .line
    }
}
