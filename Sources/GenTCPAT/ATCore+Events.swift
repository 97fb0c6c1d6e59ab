import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPModem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The module's side: link readiness, the engine's events and completions, data, framing errors and closes.
extension ATCore {
    // MARK: Link readiness

    func linkIsReadable(_ link: any SerialLink) {
        locked { core in core.readLink() }
    }

    func linkIsWritable(_ link: any SerialLink) {
        locked { core in
            core.linkWriteArmed = false
            core.pump()
        }
    }

    func readLink() {
        guard phase != .dead else { return }
        var rounds = 0
        while rounds < 64 {
            rounds += 1
            let result = link.read(into: input)
            switch result {
            case .bytes(let n):
                if n > 0 { lastInput = runtime.now }
                let chunk = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[0..<n])
                var cursor = 0
                while let event = engine.nextEvent(reading: chunk, cursor: &cursor, now: now) {
                    handle(event)
                }
                pump()
                continue
            case .wouldBlock:
                link.armRead()
                pump()
                return
            case .hangUp, .failed:
                lineLost(result)
                return
            }
        }
        // Yield to others; come back at once.
        link.armRead()
        pump()
    }

    // MARK: Events

    func handle(_ event: ModemEvent) {
        switch event {
        case .commandCompleted(let completion):
            completed(completion)
        case .connected(let link):
            connected(link)
        case .connectFailed(let link, let reason):
            if case .datagram(let e) = slots[link] {
                datagramLinkFailed(e, link: link, reason: reason)
                return
            }
            guard case .connecting(let request) = slots[link] else { return }
            slots[link] = .free
            if let request {
                let r: SocketError.Reason = request.callerTimeout && (reason == .connectionTimedOut || reason == .timeout)
                    ? .timeout : .init(reason)
                finishConnect(request, .failure(SocketError(r)))
            }
        case .closed(let link):
            orphanCloses.remove(link)
            if case .datagram(let e) = slots[link] {
                datagramLinkClosed(e, link: link)
                return
            }
            guard case .open(let c) = slots[link] else { return }
            // Quectel keeps the id until QICLOSE; the others free it with the close.
            c.moduleOpen = engine.linkState(link) != .closed
            linkClosedByModule(c)
            if c.userClosed && !c.moduleOpen { slots[link] = .free }
        case .dataAvailable(let link, let length):
            if case .datagram(let e) = slots[link] {
                datagramAvailable(e, length: length)
                return
            }
            guard case .open(let c) = slots[link] else { return }
            if let length {
                // The module's total; bytes of a read in flight that already arrived are not in it.
                c.available = max(0, length)
            } else {
                c.available = Int.max
            }
        case .received(let link, let bytes):
            if case .datagram(let e) = slots[link] {
                datagramPieceArrived(e, bytes)
                return
            }
            received(link, bytes)
        case .datagram(let link, let length, let remote):
            if case .datagram(let e) = slots[link] { datagramBegins(e, length: length, remote: remote) }
        case .resolved(let address):
            resolveActive?.addresses.append(IPAddress(address))
            if engine.dialect.resolvesAsynchronously, let r = resolveActive {
                resolveActive = nil
                finishResolve(r, .success(r.addresses))
            }
        case .resolveFailed(let reason):
            if let r = resolveActive {
                resolveActive = nil
                finishResolve(r, .failure(SocketError(.init(reason))))
            }
        case .localAddress(let address):
            localIP = IPAddress(address)
        case .version:
            break
        case .status(let status):
            lastStatus = status
            lastStatusLine = lastLineText
            if case .bearer(let state) = status, case .awaitingState(let step) = phase {
                cancelPhaseTimer()
                planSIM800(state, step: step)
            }
        case .network(let news):
            if news == .bearerLost {
                // The engine reports every open link closed next, and nothing more comes for
                // them: whatever the module still held is gone.
                failOpenConnections(.connectionAborted, incident: "the modem lost its packet bearer (\(lastLineText))")
            }
        case .moduleReset:
            moduleReset()
        case .unrecognisedLine:
            stats.unrecognisedLines += 1
        case .framingError(let error):
            stats.framingErrors += 1
            framingError(error)
        }
    }

    /// The module's last line, as text (for incidents).
    var lastLineText: String {
        engine.withLastLine { line in String(decoding: line.bytes, as: UTF8.self) }
    }

    /// The last command line, as text (for incidents).
    var lastCommandText: String {
        engine.withLastCommand { bytes in String(decoding: bytes, as: UTF8.self) }
    }

    /// "AT+CIICR answered ERROR", "AT got no answer": the failed command and what the module said.
    func describe(_ failure: ModemFailure) -> String {
        let command = lastCommandText
        switch failure {
        case .timeout: return "\(command) got no answer"
        case .busy: return "\(command) answered busy p... on every retry"
        case .moduleReset: return "the modem restarted during \(command)"
        default: return "\(command) answered \(lastLineText)"
        }
    }

    func completed(_ completion: ModemCompletion) {
        let failure: (ModemFailure, ModemReason)?
        if case .failure(let f, let r) = completion.outcome { failure = (f, r) } else { failure = nil }

        if case .initialising(let step) = phase, step < initSteps.count, initSteps[step].kind == completion.command {
            if let failure {
                initStepFailed(completion.command, bringUpReason(completion.command, failure.0, failure.1),
                               answer: describe(failure.0))
            } else {
                initStepSucceeded(completion.command, step: step)
            }
            return
        }
        if datagramCompleted(completion, failure) { return }
        switch completion.command {
        case .probe:
            if failure?.0 == .timeout {
                needRestart = true
            } else if failure?.0 != .moduleReset {
                // Alive and not restarted: the connections it left unanswered failed on silence.
                if let silence { failAwaitingVerdict(.connectionTimedOut, incident: silence) }
                silence = nil
            }
        case .restart:
            if failure != nil, phase == .restarting {
                moduleLost(reason: .connectionTimedOut, dead: false,
                           incident: "the modem does not answer; no boot banner after a restart")
            }
        case .read:
            guard let link = completion.link, case .open(let c) = slots[link] else { break }
            c.readInFlight = false
            if let failure {
                // An answer that did not end in OK is not trusted: its bytes are taken back.
                takeBackUnconfirmed(c)
                if failure.0 == .timeout {
                    // The stream has a hole either way; the probe that follows tells a restart
                    // (echo back on, a banner) from plain silence, and names it.
                    silence = "the modem did not answer \(lastCommandText) in time"
                    c.awaitingVerdict = true
                } else if c.peerClosed, c.available != Int.max, c.available > 0 {
                    fail(c, .protocolError, incident: "the modem closed link \(link) announcing \(c.available) bytes, "
                         + "then refused to deliver them (\(describe(failure.0)))")
                }
                c.available = 0
            } else {
                c.rx.commit()
                if c.readGot < c.readAsked { c.available = 0 }
            }
            if c.peerClosed, !c.ended, c.available == 0 { endConnection(c, nil) }
            if c.readGot > 0 { wake(c, read: true) }
        case .send:
            guard let link = completion.link, case .open(let c) = slots[link] else { break }
            let n = c.sendInFlight
            c.sendInFlight = 0
            if let failure {
                if failure.0 == .timeout {
                    silence = "the modem did not confirm \(lastCommandText) in time"
                    c.awaitingVerdict = true
                    c.tx.removeAll()
                } else if failure.1 == .tryAgain, retrySendLater(c) {
                    // Quectel's SEND FAIL: the bytes stay ours and go again after a pause.
                } else {
                    // SEND FAIL or ERROR: the bytes did not go. Writes fail from now on (bytes
                    // already accepted are lost, as behind a reset TCP connection); reads go on
                    // until the module reports the link closed.
                    c.writeFailure = .closed
                    c.tx.removeAll()
                    incident = "the modem refused data on link \(link) (\(describe(failure.0)))"
                    wake(c, read: false)
                }
            } else {
                c.sendRetries = 0
                c.tx.drop(n)
                stats.payloadOut += n
                wake(c, read: false)
            }
        case .close:
            guard let link = completion.link else { break }
            orphanCloses.remove(link)
            if case .open(let c) = slots[link], c.userClosed {
                c.moduleOpen = false
                slots[link] = .free
            }
        case .configureTLS:
            guard let link = completion.link, case .connecting(let request) = slots[link] else { break }
            guard let request, request.stepInFlight else {
                if request == nil {
                    // The caller gave up before the link was opened: nothing to close.
                    slots[link] = .free
                    connectQueue.removeAll { $0 == link }
                }
                break
            }
            request.stepInFlight = false
            let optional = request.steps.map { request.nextStep < $0.count && $0[request.nextStep].isOptional } ?? false
            if let failure, !(optional && failure.0 != .timeout && failure.0 != .moduleReset) {
                // A module that refuses a TLS setting cannot do what was asked (its firmware
                // has no such command, or no TLS at all): enotsup, timeouts as timeouts.
                slots[link] = .free
                connectQueue.removeAll { $0 == link }
                let reason: SocketError.Reason = failure.0 == .timeout ? (request.callerTimeout ? .timeout : .connectionTimedOut)
                    : failure.0 == .moduleReset ? .closed : .notSupported
                incident = "the modem refused a TLS setting: \(describe(failure.0))"
                finishConnect(request, .failure(SocketError(reason, "the modem refused a TLS setting")))
            } else {
                request.nextStep += 1
            }
        case .resolve:
            guard let r = resolveActive else { break }
            if let failure {
                resolveActive = nil
                finishResolve(r, .failure(SocketError(.init(failure.1))))
            } else if !engine.dialect.resolvesAsynchronously {
                resolveActive = nil
                finishResolve(r, r.addresses.isEmpty ? .failure(SocketError(.nonExistentDomain)) : .success(r.addresses))
            }
        default:
            break
        }
        // A command the module never answered, while it should be alive: is it still there?
        if let failure, failure.0 == .timeout, phase == .ready,
           completion.command != .connect, completion.command != .resolve, completion.command != .probe {
            if silence == nil { silence = "\(describe(failure.0))" }
            needProbe = true
        }
    }

    func connected(_ link: Int) {
        if case .datagram(let e) = slots[link] {
            datagramLinkOpened(e, link: link)
            return
        }
        guard case .connecting(let request) = slots[link] else {
            // Nobody asked for it (or it was reported twice): close it.
            if case .free = slots[link] { orphanCloses.insert(link) }
            return
        }
        guard let request, let continuation = request.continuation else {
            slots[link] = .free
            orphanCloses.insert(link)
            return
        }
        let receive = min(max(1, request.options.buffer), configuration.maxReceiveBuffer)
        let local = localIP.map { SocketAddress($0, port: 0) }
        let c = ATConnection(core: self, link: link, remote: request.address, local: local,
                             delegate: request.delegate, receiveBuffer: receive, sendBuffer: sendBufferSize)
        stats.largestReceiveBuffer = max(stats.largestReceiveBuffer, c.rx.capacity)
        stats.largestSendBuffer = max(stats.largestSendBuffer, c.tx.capacity)
        slots[link] = .open(c)
        request.continuation = nil
        if let t = request.timer { runtime.cancel(t) }
        deferred.append { continuation.resume(returning: .success(c)) }
    }

    func received(_ link: Int, _ bytes: UnsafeRawBufferPointer) {
        guard case .open(let c) = slots[link], !c.userClosed, !c.ended else {
            stats.overflowBytes += bytes.count
            return
        }
        if !engine.isReceivingPushedPayload && !c.readInFlight {
            // The rest of a read's answer that already ended (timed out): not trusted.
            stats.unconfirmedBytes += bytes.count
            return
        }
        if engine.isReceivingPushedPayload {
            // Pushed data (`+IPD,<id>,<len>:`) although passive receive was asked: the module
            // reverted (or never took the mode). Its bytes are part of the stream: keep them in
            // order while they fit, fail the socket when they do not; ask for passive again.
            stats.pushedBytes += bytes.count
            needPassiveRestore = true
            let taken = c.rx.append(bytes)
            stats.payloadIn += taken
            if taken < bytes.count {
                stats.overflowBytes += bytes.count - taken
                fail(c, .protocolError, incident: "the modem pushed data on link \(link) (+IPD) in passive receive "
                     + "mode, \(bytes.count - taken) bytes more than the buffer holds")
            } else {
                wake(c, read: true)
            }
            return
        }
        // Never more than was asked (which was never more than the room): the module's numbers
        // do not size anything here. Held back until the read's final result: a module that
        // restarts in the middle of an answer would otherwise have its boot banner counted as
        // payload and handed to the program.
        let allowed = min(c.readAsked - c.readGot, c.rx.room)
        let taken = c.rx.append(UnsafeRawBufferPointer(rebasing: bytes[0..<min(allowed, bytes.count)]), hide: true)
        c.readGot += taken
        stats.payloadIn += taken
        if c.available != Int.max { c.available = max(0, c.available - bytes.count) }
        if taken < bytes.count {
            stats.overflowBytes += bytes.count - taken
            fail(c, .protocolError, incident: "the modem answered a read on link \(link) with more bytes than asked")
        }
    }

    /// A header or line the lexer refused: if a read was in flight, its answer (and the bytes it
    /// carried) is lost, so that stream has a hole; a refused payload header with no read in
    /// flight was pushed data for a link nobody can tell, so every stream may have one.
    func framingError(_ error: ATLexerError) {
        let what: String
        switch error {
        case .lineTooLong: what = "a line longer than \(engine.configuration.maxLineLength) bytes"
        case .payloadTooLong(let n): what = "a payload header announcing \(n) bytes"
        case .malformedHeader: what = "a payload header that does not parse"
        }
        if let link = engine.readInFlightLink {
            if case .open(let c) = slots[link] {
                fail(c, .protocolError, incident: "the modem answered \(lastCommandText) with \(what); its data is lost")
            }
            return
        }
        guard error != .lineTooLong else {
            // A long line outside a read carries no payload, but it may have been a data notice
            // (`+IPD,<id>,<len>`): ask every link again rather than wait for one that will not
            // come.
            askAvailability()
            return
        }
        failOpenConnections(.protocolError, incident: "the modem sent \(what); data for an unknown link is lost")
    }

    /// The module reported the link closed. Bytes it announced and still holds are read first
    /// (SIMCom and Quectel keep a closed link readable; ESP-AT holds `CLOSED` back until they
    /// were read); then the stream ends. A bearer loss leaves nothing to read: that is an error.
    func linkClosedByModule(_ c: ATConnection) {
        guard !c.ended else { return }
        c.peerClosed = true
        c.tx.removeAll()
        if c.available == 0 && !c.readInFlight {
            endConnection(c, nil)
        } else {
            wake(c, read: false)
        }
    }
}
