import GenTCPCore

extension ModemEngine {
    // MARK: Reading the module

    /// Reads modem output from `input` at `cursor` and returns the next event, advancing
    /// `cursor` past what it used. Call again with the same input until it returns nil: then
    /// every byte was consumed, every event handed out, and timers due at `now` have fired.
    ///
    /// Between calls the driver may submit commands. ``ModemEvent/received(link:bytes:)`` points
    /// into `input`.
    public mutating func nextEvent(reading input: UnsafeRawBufferPointer, cursor: inout Int,
                                   now: MillisecondInstant) -> ModemEvent? {
        if let event = events.pop() { return event }
        startBootWindowIfNeeded(now)
        while true {
            let before = cursor
            let token = lexer.next(input, cursor: &cursor)
            statistics.bytesIn &+= UInt32(truncatingIfNeeded: max(cursor - before, 0))
            guard let token else { break }
            if let direct = handle(token, now: now) { return direct }
            if let event = events.pop() { return event }
        }
        return nextEvent(now: now)
    }

    /// Fires timers due at `now` (command timeouts, `busy` retries, asynchronous connect and
    /// DNS timeouts) and returns the next queued event, or nil.
    public mutating func nextEvent(now: MillisecondInstant) -> ModemEvent? {
        if let event = events.pop() { return event }
        startBootWindowIfNeeded(now)
        fireTimers(now)
        return events.pop()
    }

    /// Feeds all of `input`, calling `handler` for each event; the handler may submit commands
    /// through the engine it is given.
    public mutating func receive(_ input: UnsafeRawBufferPointer, now: MillisecondInstant,
                                 _ handler: (inout ModemEngine, ModemEvent) -> Void) {
        var cursor = 0
        while let event = nextEvent(reading: input, cursor: &cursor, now: now) {
            handler(&self, event)
        }
    }

    /// Fires due timers, calling `handler` for each event.
    public mutating func advance(now: MillisecondInstant, _ handler: (inout ModemEngine, ModemEvent) -> Void) {
        while let event = nextEvent(now: now) {
            handler(&self, event)
        }
    }

    mutating func startBootWindowIfNeeded(_ now: MillisecondInstant) {
        if bootWindowFromStart {
            bootWindowFromStart = false
            bootWindowUntil = now.advanced(by: configuration.bootBannerWindow)
        }
    }

    // MARK: Tokens

    /// Handles one token; returns an event that must be handed out at once (payload pieces,
    /// which point into the input and are never queued).
    mutating func handle(_ token: ATToken, now: MillisecondInstant) -> ModemEvent? {
        switch token {
        case .line:
            handleLine(now: now)
        case .prompt:
            if var flight = inFlight, flight.phase == .awaitingPrompt, flight.backoffUntil == nil {
                output.releasePayload()
                flight.phase = .awaitingSendResult
                flight.deadline = now.advanced(by: flight.sendTimeout)
                inFlight = flight
                lexer.expectsPrompt = false
            } else {
                statistics.strays &+= 1
            }
        case .payloadStart(let header):
            payloadAnnounced = header.length
            payloadDelivered = 0
            payloadLink = linkForPayload(header)
            payloadPushed = header.kind == .ipd || header.kind == .receive
            if let link = payloadLink, let left = header.leftInModule, left >= 0 {
                // SIMCom says what stays in the module after this read: the total before it.
                // Saturating: a hostile <left> near Int.max must not trap (Int is 32 bits on a board).
                let total = left > Int.max - header.length ? Int.max : header.length + left
                push(.dataAvailable(link: link, length: total))
            }
            if let link = payloadLink, datagramLinks[link] {
                push(.datagram(link: link, length: header.length, remote: header.remote))
            }
        case .payload(let bytes):
            payloadDelivered += bytes.count
            if let link = payloadLink { return .received(link: link, bytes: bytes) }
            statistics.unexpectedPayloadBytes &+= UInt32(truncatingIfNeeded: bytes.count)
        case .payloadEnd:
            payloadLink = nil
            payloadPushed = false
        case .error(let error):
            push(.framingError(error))
        }
        return nil
    }

    func linkForPayload(_ header: ATPayloadHeader) -> Int? {
        var link: Int?
        switch header.kind {
        case .ipd, .receive:
            // Pushed data: the header names the link, or there is only link 0.
            link = header.link ?? 0
        case .cipRecvData, .qird, .cipRxGet:
            // An answer to a read: it belongs to the read in flight.
            if case .read(let readLink, _)? = inFlight?.command {
                link = header.link ?? readLink
            } else {
                link = nil
            }
        }
        guard let link, link >= 0, link < links.count else { return nil }
        return link
    }

    // MARK: Lines

    mutating func handleLine(now: MillisecondInstant) {
        if var flight = inFlight, flight.echoPending,
           lexer.lineEquals(writer.storage, count: writer.count) {
            if echoDisabled {
                // Echo was turned off and is back: the module restarted and its banner went
                // unseen (every ESP-AT, SIMCom and Quectel restart turns echo on again).
                statistics.echoes &+= 1
                handleReset(now: now)
                return
            }
            // The module echoed the command (echo is on until ATE0 takes effect).
            flight.echoPending = false
            inFlight = flight
            statistics.echoes &+= 1
            return
        }
        let context = currentContext()
        let dialect = self.dialect
        let meaning = lexer.withLine { dialect.classify($0, context: context) }
        switch meaning {
        case .reset:
            handleReset(now: now)
        case .bootBanner:
            if let until = bootWindowUntil, now <= until {
                return  // part of the boot already reported
            }
            handleReset(now: now)
        case .busy:
            handleBusy(now: now)
        case .success:
            guard let flight = inFlight, flight.backoffUntil == nil else {
                statistics.strays &+= 1
                return
            }
            // ESP-AT answers a send with OK before the prompt; only the prompt moves it on.
            if flight.phase == .awaitingPrompt { return }
            complete(.success, now: now)
        case .failure(let failure):
            guard let flight = inFlight, flight.backoffUntil == nil else {
                statistics.strays &+= 1
                return
            }
            complete(.failure(failure == .error ? (flight.hint ?? .error) : failure), now: now)
        case .information(let information):
            guard inFlight != nil else {
                push(.unrecognisedLine)
                return
            }
            collectLine()
            absorb(information)
        case .informationAndSuccess(let information):
            guard inFlight != nil else {
                push(.unrecognisedLine)
                return
            }
            collectLine()
            absorb(information)
            complete(.success, now: now)
        case .unsolicited(let urc):
            statistics.unsolicited &+= 1
            handleUnsolicited(urc)
        case .prompt:
            if var flight = inFlight, flight.phase == .awaitingPrompt, flight.backoffUntil == nil {
                output.releasePayload()
                flight.phase = .awaitingSendResult
                flight.deadline = now.advanced(by: flight.sendTimeout)
                inFlight = flight
                lexer.expectsPrompt = false
            } else {
                statistics.strays &+= 1
            }
        case .ignored:
            break
        case .unrecognised:
            if inFlight != nil { collectLine() } else { push(.unrecognisedLine) }
        }
    }

    func currentContext() -> ModemLineContext {
        guard let flight = inFlight else { return ModemLineContext(command: nil, link: nil, phase: .idle) }
        return ModemLineContext(command: flight.command.kind, link: flight.command.link, phase: flight.phase)
    }

    mutating func collectLine() {
        let before = response.dropped
        response.append(lexer.buffer, from: lexer.lineStart, to: lexer.lineEnd)
        if response.dropped != before { statistics.droppedResponseLines &+= 1 }
    }

    mutating func absorb(_ information: ModemInformation) {
        dialect.learn(information)
        switch information {
        case .version(let version): push(.version(version))
        case .resolved(let address): push(.resolved(address))
        case .localAddress(let address): push(.localAddress(address))
        case .available(let link, let length):
            if link >= 0, link < links.count { push(.dataAvailable(link: link, length: length)) }
        case .failureHint(let failure):
            inFlight?.hint = failure
        case .status(let status):
            push(.status(status))
        case .text:
            break
        }
    }

    mutating func handleBusy(now: MillisecondInstant) {
        guard var flight = inFlight, flight.backoffUntil == nil,
              flight.phase == .response || flight.phase == .awaitingPrompt else {
            return  // e.g. surplus payload bytes during a send: the module still answers SEND OK
        }
        flight.retries += 1
        statistics.busyRetries &+= 1
        if flight.retries > configuration.maxBusyRetries {
            inFlight = flight
            complete(.failure(.busy), now: now)
            return
        }
        flight.backoffUntil = now.advanced(by: configuration.busyRetryDelay)
        inFlight = flight
        lexer.expectsPrompt = false
    }

    mutating func handleUnsolicited(_ urc: ModemUnsolicited) {
        switch urc {
        case .connected(let link):
            guard link >= 0, link < links.count else { return }
            if links[link] == .open {
                statistics.strays &+= 1
                return
            }
            links[link] = .open
            connectDeadlines[link] = ModemEngine.noDeadline
            push(.connected(link: link))
        case .connectFailed(let link, let reason):
            guard link >= 0, link < links.count, links[link] == .connecting else {
                statistics.strays &+= 1
                return
            }
            links[link] = .closed
            connectDeadlines[link] = ModemEngine.noDeadline
            push(.connectFailed(link: link, reason: reason))
        case .closed(let link):
            guard link >= 0, link < links.count else { return }
            switch links[link] {
            case .open:
                links[link] = dialect.keepsLinkAfterPeerClose ? .peerClosed : .closed
                push(.closed(link: link))
            case .connecting:
                links[link] = .closed
                connectDeadlines[link] = ModemEngine.noDeadline
                push(.connectFailed(link: link, reason: .connectionRefused))
            case .closed, .peerClosed:
                statistics.strays &+= 1
            }
        case .dataAvailable(let link, let length):
            guard link >= 0, link < links.count else { return }
            push(.dataAvailable(link: link, length: length))
        case .resolved(let address):
            guard resolvePending else {
                statistics.strays &+= 1
                return
            }
            resolvePending = false
            resolveDeadline = nil
            push(.resolved(address))
        case .resolveFailed(let reason):
            guard resolvePending else {
                statistics.strays &+= 1
                return
            }
            resolvePending = false
            resolveDeadline = nil
            push(.resolveFailed(reason))
        case .status(let status):
            push(.status(status))
        case .network(let event):
            push(.network(event))
            if event == .bearerLost { dropAllLinks(connectReason: .networkDown) }
        }
    }

    /// Every link is gone: open ones are reported closed, pending connects failed.
    mutating func dropAllLinks(connectReason: ModemReason) {
        for link in 0..<links.count {
            switch links[link] {
            case .open: push(.closed(link: link))
            case .connecting: push(.connectFailed(link: link, reason: connectReason))
            case .closed, .peerClosed: break
            }
            links[link] = .closed
            connectDeadlines[link] = ModemEngine.noDeadline
        }
    }

    // MARK: Completion, reset, timers

    enum CompletionResult {
        case success
        case failure(ModemFailure)
    }

    mutating func complete(_ result: CompletionResult, now: MillisecondInstant) {
        guard let flight = inFlight else { return }
        inFlight = nil
        lexer.expectsPrompt = false
        let command = flight.command
        let outcome: ModemOutcome
        switch result {
        case .success:
            outcome = .success
            consecutiveTimeouts = 0
            dialect.commandSucceeded(command)
            syncFraming()
            if case .echoOff = command { echoDisabled = true }
            switch command {
            case .connect(let link, _, _) where links[link] == .connecting,
                 .connectSecure(let link, _, _) where links[link] == .connecting,
                 .openDatagram(let link, _, _, _) where links[link] == .connecting:
                if dialect.connectsAsynchronously {
                    connectDeadlines[link] = now.advanced(by: dialect.limits.asyncConnectTimeout).milliseconds
                } else {
                    // Synchronous dialects print "<id>,CONNECT" first; accept OK alone too.
                    links[link] = .open
                    push(.commandCompleted(ModemCompletion(command: command.kind, link: link, outcome: outcome)))
                    push(.connected(link: link))
                    return
                }
            case .close(let link):
                let state = links[link]
                links[link] = .closed
                connectDeadlines[link] = ModemEngine.noDeadline
                if state == .open || state == .connecting {
                    push(.commandCompleted(ModemCompletion(command: command.kind, link: link, outcome: outcome)))
                    push(.closed(link: link))
                    return
                }
            case .resolve where resolvePending:
                resolveDeadline = now.advanced(by: dialect.limits.asyncResolveTimeout)
            default:
                break
            }
        case .failure(let failure):
            if failure == .timeout {
                consecutiveTimeouts += 1
                statistics.timeouts &+= 1
                if lexer.isInPayload {
                    // The answer stopped mid-payload (the module restarted or went silent):
                    // whatever comes next is not the rest of it. Back to lines, so a probe's
                    // answer is read as one.
                    statistics.abandonedPayloadBytes &+= UInt32(truncatingIfNeeded: lexer.payloadRemaining)
                    lexer.reset()
                    payloadLink = nil
                    payloadPushed = false
                    payloadAnnounced = 0
                    payloadDelivered = 0
                }
            } else {
                consecutiveTimeouts = 0
            }
            let reason = dialect.reason(for: failure, of: command.kind)
            outcome = .failure(failure, reason)
            // Bytes the driver never wrote, or a payload the prompt never released, are void.
            output.clear()
            if case .resolve = command, resolvePending {
                resolvePending = false
                resolveDeadline = nil
            }
            if let link = command.opensLink, links[link] == .connecting {
                links[link] = .closed
                connectDeadlines[link] = ModemEngine.noDeadline
                push(.commandCompleted(ModemCompletion(command: command.kind, link: link, outcome: outcome)))
                push(.connectFailed(link: link, reason: reason))
                return
            }
        }
        push(.commandCompleted(ModemCompletion(command: command.kind, link: command.link, outcome: outcome)))
    }

    mutating func handleReset(now: MillisecondInstant) {
        statistics.resets &+= 1
        push(.moduleReset)
        if let flight = inFlight {
            if case .restart = flight.command {
                complete(.success, now: now)
            } else {
                complete(.failure(.moduleReset), now: now)
            }
        }
        if resolvePending {
            resolvePending = false
            resolveDeadline = nil
            push(.resolveFailed(.closed))
        }
        dropAllLinks(connectReason: .closed)
        dialect.moduleDidReset()
        syncFraming()
        echoDisabled = false
        output.clear()
        lexer.expectsPrompt = false
        bootWindowUntil = now.advanced(by: configuration.bootBannerWindow)
    }

    mutating func fireTimers(_ now: MillisecondInstant) {
        if var flight = inFlight {
            if let until = flight.backoffUntil {
                if now >= until {
                    // Retry: write the command again.
                    flight.backoffUntil = nil
                    flight.echoPending = true
                    flight.deadline = now.advanced(by: flight.timeout)
                    inFlight = flight
                    if output.isEmpty {
                        output.writeCommand(writer, terminator: dialect.commandTerminator)
                    } else {
                        output.rewindCommand()  // a send: the payload is still staged behind it
                    }
                    lexer.expectsPrompt = flight.phase == .awaitingPrompt
                }
            } else if now >= flight.deadline {
                complete(.failure(.timeout), now: now)
            }
        }
        for link in 0..<links.count where links[link] == .connecting && connectDeadlines[link] != ModemEngine.noDeadline {
            if now.milliseconds >= connectDeadlines[link] {
                links[link] = .closed
                connectDeadlines[link] = ModemEngine.noDeadline
                push(.connectFailed(link: link, reason: .connectionTimedOut))
            }
        }
        if let deadline = resolveDeadline, now >= deadline {
            resolvePending = false
            resolveDeadline = nil
            push(.resolveFailed(.timeout))
        }
    }

    // MARK: Self-check

    /// Checks the engine's internal consistency; nil when all is well, otherwise what is wrong.
    /// Used by tests and the fuzz harness; cheap enough for debug builds of a driver.
    public func invariantViolation() -> StaticString? {
        if output.storage.count != output.capacity { return "output buffer resized" }
        if !(0 <= output.start && output.start <= output.released && output.released <= output.end
            && output.end <= output.storage.count) {
            return "output indices out of order"
        }
        if output.holdsPayload && inFlight?.phase != .awaitingPrompt { return "payload held outside a send" }
        if lexer.expectsPrompt != (inFlight?.phase == .awaitingPrompt && inFlight?.backoffUntil == nil) {
            return "prompt expectation out of step"
        }
        if lexer.buffer.count != lexer.configuration.maxLineLength { return "line buffer resized" }
        if lexer.count > lexer.buffer.count { return "line overflow" }
        if lexer.payloadRemaining > lexer.configuration.maxPayloadLength { return "payload beyond the maximum" }
        if payloadDelivered > payloadAnnounced { return "payload beyond the announced length" }
        if events.count > events.storage.count { return "event queue overflow" }
        if links.count != connectDeadlines.count { return "link tables differ" }
        for i in 0..<links.count where connectDeadlines[i] != ModemEngine.noDeadline && links[i] != .connecting {
            return "connect deadline on a link that is not connecting"
        }
        if response.lineCount > response.ends.count || response.used > response.storage.count {
            return "response store overflow"
        }
        if writer.count > writer.storage.count { return "command overflow" }
        if resolveDeadline != nil && !resolvePending { return "resolve deadline without a resolve" }
        return nil
    }
}

extension ATLexer {
    /// Whether the last line equals `bytes[0..<count]`.
    func lineEquals(_ bytes: [UInt8], count: Int) -> Bool {
        guard lineEnd - lineStart == count, count <= bytes.count else { return false }
        for i in 0..<count where buffer[lineStart + i] != bytes[i] { return false }
        return true
    }
}
