import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPModem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Failures (restart, silence, a lost line, a stop) and readiness handed to the port.
extension ATCore {
    // MARK: Failures

    func moduleReset() {
        // The engine already failed what was in flight and reports every link closed next.
        var banner = lastLineText
        if banner == lastCommandText { banner = "it echoes commands again" }
        // News only when it broke something (or ends a silence being probed): the banner at
        // power-on, or after the driver's own restart, is expected.
        let affected = slots.contains { slot in
            switch slot {
            case .open(let c): return !c.ended && !c.userClosed
            case .connecting(let request?): return request.submitted
            case .datagram(let e): return !e.userClosed
            default: return false
            }
        }
        if affected {
            incident = "the modem restarted (\(banner))"
            incidentFromBringUp = false
        } else if let silence {
            // Connections already failed on the silence that was the restart.
            incident = "the modem restarted (\(banner)); before that, \(silence)"
            incidentFromBringUp = false
        }
        for link in 0..<slots.count {
            if case .open(let c) = slots[link] {
                c.moduleOpen = false
                fail(c, .connectionAborted, incident: nil)
                slots[link] = .free
            }
        }
        failDatagrams(.connectionAborted, all: false)
        orphanCloses.removeAll()
        cancelPhaseTimer()
        needProbe = false
        needRestart = false
        needPassiveRestore = false
        silence = nil
        requeueConnects()
        beginInit()
    }

    /// Connects that were submitted when the module went away are lost; queued ones wait for the
    /// next initialisation.
    func requeueConnects() {
        for link in 0..<slots.count {
            if case .connecting(let request) = slots[link] {
                if let request, !request.submitted {
                    // Its settings (TLS, SIMCom's AT+CIPSSL) died with the module: again from the first.
                    request.steps = nil
                    request.nextStep = 0
                    request.stepInFlight = false
                    continue
                }
                slots[link] = .free
                if let request {
                    finishConnect(request, .failure(SocketError(.connectionAborted, "the modem restarted")))
                }
            }
        }
        connectQueue = connectQueue.filter { if case .connecting(.some) = slots[$0] { true } else { false } }
    }

    /// The serial line hung up or failed: the driver stops for good.
    func lineLost(_ result: LinkIO) {
        let reason = result.lossReason ?? .ioError
        let why: String
        switch result {
        case .failed(let r) where r != .closed: why = "the serial line failed (\(r.atom))"
        default: why = "the serial line hung up"
        }
        moduleLost(reason: reason, dead: true, incident: why)
    }

    /// The module stopped answering (restart timed out), the line failed or the driver stopped:
    /// every connection fails with `reason`, every waiter too. With `dead`, the driver stops for
    /// good; otherwise it starts over with a fresh engine.
    func moduleLost(reason: SocketError.Reason, dead: Bool, incident why: String?) {
        if phase == .dead { return }
        let lostDetail: StaticString = stopped ? "the at driver was stopped" : ATCore.staticDetail(reason)
        stats.moduleLost += 1
        if let why {
            incident = why
            incidentFromBringUp = false
        }
        for link in 0..<slots.count {
            switch slots[link] {
            case .open(let c):
                c.moduleOpen = false
                fail(c, reason, incident: nil)
            case .connecting(let request):
                // Queued connects wait for the next initialisation, within their own timeouts.
                if !dead, let request, !request.submitted { continue }
                if let request { finishConnect(request, .failure(SocketError(reason, lostDetail))) }
            case .datagram(let e):
                // A UDP socket still waiting for its setup waits for the next initialisation.
                if !dead, !e.linkOpen, !e.stepsStarted { continue }
            case .free:
                break
            }
            slots[link] = .free
        }
        failDatagrams(reason, all: dead)
        connectQueue = connectQueue.filter { if case .connecting(.some) = slots[$0] { true } else { false } }
        orphanCloses.removeAll()
        if let r = resolveActive {
            resolveActive = nil
            finishResolve(r, .failure(SocketError(reason, lostDetail)))
        }
        if dead {
            for r in resolveQueue { finishResolve(r, .failure(SocketError(reason, lostDetail))) }
            resolveQueue.removeAll()
        }
        cancelPhaseTimer()
        if let t = engineTimer { runtime.cancel(t) }
        engineTimer = nil
        engineTimerDeadline = nil
        if let t = livenessTimer { runtime.cancel(t) }
        livenessTimer = nil
        availabilityQueue.removeAll()
        needProbe = false
        needRestart = false
        needPassiveRestore = false
        silence = nil
        linkWriteArmed = false
        engine = ModemEngine(dialect: configuration.dialect.makeDialect(), configuration: configuration.engine)
        if dead {
            phase = .dead
        } else {
            retryInitLater()
        }
    }

    /// Fails the connections whose command went unanswered, once the probe has spoken.
    func failAwaitingVerdict(_ reason: SocketError.Reason, incident why: String) {
        for link in 0..<slots.count {
            if case .open(let c) = slots[link], c.awaitingVerdict {
                c.awaitingVerdict = false
                fail(c, reason, incident: why)
            }
        }
    }

    /// Fails every open connection with `reason` (buffered bytes are still read first).
    func failOpenConnections(_ reason: SocketError.Reason, incident why: String) {
        incident = why
        incidentFromBringUp = false
        for link in 0..<slots.count {
            if case .open(let c) = slots[link] { fail(c, reason, incident: nil) }
        }
    }

    /// Fails the connects and lookups waiting for the module (not the open connections): the
    /// module cannot be brought up, so nobody should wait for their own timeout.
    func failWaiters(_ reason: SocketError.Reason, incident why: String) {
        incident = why
        incidentFromBringUp = true
        for link in 0..<slots.count {
            if case .connecting(let request?) = slots[link], !request.submitted {
                slots[link] = .free
                finishConnect(request, .failure(SocketError(reason, ATCore.staticDetail(reason))))
            }
        }
        connectQueue = connectQueue.filter { if case .connecting(.some) = slots[$0] { true } else { false } }
        for r in resolveQueue { finishResolve(r, .failure(SocketError(reason, ATCore.staticDetail(reason)))) }
        resolveQueue.removeAll()
        // UDP sockets still waiting for their first module command.
        for e in datagramEndpoints where !e.steps.isEmpty && datagramStepOwner !== e {
            datagramStepFailed(e, SocketError(reason, ATCore.staticDetail(reason)))
        }
    }

    /// The module lost its links (restart, silence) or the line is gone: UDP sockets that had a
    /// link open (or had begun setting one up) are dead with `reason`; with `all`, every one is.
    /// Sockets whose setup has not started wait for the next initialisation (the boot banner
    /// at power-on is a restart too).
    func failDatagrams(_ reason: SocketError.Reason, all: Bool) {
        datagramStepOwner = nil
        remoteInfoOn = false
        for e in datagramEndpoints where all || e.linkOpen || e.stepsStarted {
            if let link = e.link, case .datagram(let current) = slots[link], current === e { slots[link] = .free }
            e.link = nil
            e.linkOpen = false
            e.sendInFlight = false
            e.readInFlight = false
            failDatagram(e, reason)
        }
        if all {
            for link in 0..<slots.count {
                if case .datagram = slots[link] { slots[link] = .free }
            }
        }
    }

    /// How often a send the module had no room for (Quectel `SEND FAIL`) is tried again.
    static let maxSendRetries = 50
    /// The pause before it is, in ns.
    static let sendRetryDelay: UInt64 = 200_000_000

    /// What a connect or lookup on a dead driver gets: `enetdown`, after ``stop()`` or a lost line.
    static func deadError(stopped: Bool) -> SocketError {
        stopped ? SocketError(.networkDown, "the at driver was stopped") : SocketError(.networkDown, "the modem link is closed")
    }

    /// A short static note for errors the module caused (the sentence is in ``lastIncident``).
    static func staticDetail(_ reason: SocketError.Reason) -> StaticString {
        switch reason {
        case .connectionAborted: "the modem restarted or lost its link; see the driver's lastIncident"
        case .connectionTimedOut: "the modem stopped answering; see the driver's lastIncident"
        case .ioError: "the serial line hung up or failed"
        case .protocolError: "the modem broke its framing; see the driver's lastIncident"
        case .closed: "the driver was stopped"
        default: "modem bring-up failed; see the driver's lastIncident"
        }
    }

    /// The connection's stream is broken: reads give what is buffered, then `failed(reason)`;
    /// writes fail; the module's link is closed. `incident`, when given, says what happened.
    func fail(_ c: ATConnection, _ reason: SocketError.Reason, incident why: String?) {
        if let why {
            incident = why
            incidentFromBringUp = false
        }
        if c.failure == nil && !c.ended { c.failure = reason }
        // The read in flight (if any) never finished: what it brought is not trusted.
        takeBackUnconfirmed(c)
        c.readInFlight = false
        c.sendInFlight = 0
        c.tx.removeAll()
        if c.moduleOpen { orphanCloses.insert(c.link) }
        endConnection(c, reason)
    }

    /// Takes back the bytes of a read answer that never ended in `OK` (held back in `rx`).
    func takeBackUnconfirmed(_ c: ATConnection) {
        let dropped = c.rx.dropHidden()
        c.readGot -= dropped
        stats.payloadIn -= dropped
        stats.unconfirmedBytes += dropped
    }

    func endConnection(_ c: ATConnection, _ reason: SocketError.Reason?) {
        c.ended = true
        c.peerClosed = false
        if let reason, c.failure == nil { c.failure = reason }
        c.readInFlight = false
        wake(c, read: true)
        wake(c, read: false)
    }

    // MARK: Readiness for the port

    func wake(_ c: ATConnection, read: Bool) {
        if read {
            guard c.wantRead, !c.rx.isEmpty || c.ended else { return }
            c.wantRead = false
        } else {
            guard c.wantWrite, c.tx.room > 0 || c.ended || c.peerClosed || c.writeFailure != nil else { return }
            c.wantWrite = false
        }
        post(c, read: read)
    }

    /// Tells the port from the runtime's context, never from inside one of its calls.
    func post(_ c: ATConnection, read: Bool) {
        later(c) { c in
            let delegate: (any ConnectionDelegate)? = c.core.locked { _ in c.userClosed ? nil : c.delegate }
            if read { delegate?.connectionReadable() } else { delegate?.connectionWritable() }
        }
    }

    /// Runs `body` on the runtime's context after `nanoseconds` (0: as soon as it can), unless
    /// `object` is gone by then; never from inside the caller's lock.
    func later<T: AnyObject & Sendable>(_ object: T, after nanoseconds: UInt64 = 0, _ body: @escaping @Sendable (T) -> Void) {
        _ = runtime.schedule(afterNanoseconds: nanoseconds) { [weak object] in
            if let object { body(object) }
        }
    }

    /// Quectel's `SEND FAIL`: the module's send buffer is full, so what `sender` is sending stays
    /// ours and goes again after a pause (TCP/IP AT Commands Manual, AT+QISEND). False once it
    /// was retried ``maxSendRetries`` times in a row.
    func retrySendLater(_ sender: some ATSender) -> Bool {
        guard sender.sendRetries < ATCore.maxSendRetries else { return false }
        sender.sendRetries += 1
        sender.sendHeld = true
        later(sender, after: ATCore.sendRetryDelay) { [weak self] sender in
            self?.locked { core in
                sender.sendHeld = false
                core.pump()
            }
        }
        return true
    }
}

/// A connection or UDP socket whose sends a module may refuse for a while (``ATCore/retrySendLater(_:)``).
protocol ATSender: AnyObject, Sendable {
    var sendRetries: Int { get set }
    var sendHeld: Bool { get set }
}

extension ATConnection: ATSender {}
extension ATDatagram: ATSender {}
