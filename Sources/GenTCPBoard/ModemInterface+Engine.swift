import GenTCPCore
import GenTCPModem

/// The module's side: the engine's events, and the one command at a time the interface gives it.
extension ModemInterface {
    // MARK: Events out

    mutating func post(_ event: InterfaceEvent) {
        _ = events.push(event)  // never full: sized for the worst case
    }

    mutating func markReadable(_ link: Int) {
        if slots[link].isHeld { slots[link].readablePending = true }
    }

    mutating func markWritable(_ link: Int) {
        guard slots[link].isHeld, slots[link].wantWritable else { return }
        slots[link].wantWritable = false
        slots[link].writablePending = true
    }

    /// The connection's stream is broken: what was read stays readable, then `recv` throws
    /// `reason`; `send` throws it at once. Posted once.
    mutating func fail(_ link: Int, _ reason: SocketError) {
        var slot = slots[link]
        _ = slot.rx.dropHidden()
        slot.readInFlight = false
        slot.sendInFlight = 0
        slot.tx.reset()
        slot.awaitingVerdict = false
        let news = slot.failure == nil && !slot.ended && slot.isHeld
        if news { slot.failure = reason }
        slots[link] = slot
        if news {
            post(.failed(handle(for: link), reason))
            markReadable(link)
        }
    }

    /// Every connection fails with `reason`; links the program already closed are forgotten.
    mutating func failAll(_ reason: SocketError) {
        for link in 0..<slots.count {
            if slots[link].state == .closing {
                slots[link].clear()
            } else if slots[link].isHeld {
                fail(link, reason)
                slots[link].connectSubmitted = false
            }
        }
    }

    // MARK: Engine events

    mutating func handle(_ event: ModemEvent, now: MillisecondInstant) {
        switch event {
        case .commandCompleted(let completion):
            completed(completion, now: now)
        case .connected(let link):
            guard link < slots.count else { return }
            if slots[link].state == .connecting && slots[link].failure == nil {
                slots[link].state = .open
                post(.connected(handle(for: link)))
            } else if slots[link].state == .free {
                // A connect that timed out here and succeeded in the module after all: close it.
                slots[link].state = .closing
                slots[link].graceful = false
            }
        case .connectFailed(let link, let reason):
            guard link < slots.count else { return }
            if slots[link].state == .connecting {
                fail(link, SocketError(SocketError.Reason(reason)))
            }
        case .closed(let link):
            guard link < slots.count else { return }
            linkClosedByModule(link)
        case .dataAvailable(let link, let length):
            guard link < slots.count, slots[link].state == .open else { return }
            slots[link].available = length.map { Swift.max(0, $0) } ?? Int.max
        case .received(let link, let bytes):
            guard link < slots.count else { return }
            received(link, bytes)
        case .localAddress(let address):
            if case .ipv4(let v) = address { localAddress = .v4(v) }
        case .network(let news):
            if news == .wifiDisconnected || news == .bearerLost { networkLost() }
        case .moduleReset:
            moduleReset()
        case .framingError:
            if let link = engine.readInFlightLink {
                // A read's answer that did not parse: that stream has a hole.
                if link < slots.count, slots[link].state == .open {
                    fail(link, SocketError(.protocolError, "the modem broke its framing"))
                }
            } else {
                // A line that did not fit may have been a data notice (`+IPD,<id>,<len>`), and
                // ESP-AT sends the next one only after a read: try a read on every link (one
                // with nothing answers ERROR, which sets it back to nothing).
                for link in 0..<slots.count where slots[link].state == .open && !slots[link].peerClosed {
                    slots[link].available = Int.max
                }
            }
        case .datagram, .resolved, .resolveFailed, .version, .status, .unrecognisedLine:
            break
        }
    }

    mutating func received(_ link: Int, _ bytes: UnsafeRawBufferPointer) {
        guard slots[link].state == .open, slots[link].failure == nil, !slots[link].ended else { return }
        if engine.isReceivingPushedPayload {
            // Pushed (`+IPD,<id>,<len>:`) although passive receive was asked: keep the bytes in
            // order while they fit; a stream that loses bytes is broken. Passive receive is
            // asked for again.
            needPassiveRestore = true
            let taken = slots[link].rx.append(bytes, hide: false, into: &receiveStorage)
            if taken < bytes.count {
                fail(link, SocketError(.protocolError, "the modem pushed more data than the buffer holds"))
            } else {
                markReadable(link)
            }
            return
        }
        guard slots[link].readInFlight else { return }  // the rest of an answer that timed out
        let allowed = Swift.min(slots[link].readAsked - slots[link].readGot, bytes.count)
        let taken = slots[link].rx.append(UnsafeRawBufferPointer(rebasing: bytes[0..<Swift.max(0, allowed)]),
                                          hide: true, into: &receiveStorage)
        slots[link].readGot += taken
        if slots[link].available != Int.max { slots[link].available = Swift.max(0, slots[link].available - bytes.count) }
        if taken < bytes.count {
            fail(link, SocketError(.protocolError, "the modem answered a read with more bytes than asked"))
        }
    }

    /// The module reported the link closed. ESP-AT holds the notice back until every buffered
    /// byte was read; SIMCom and Quectel keep a closed link readable: read what was announced,
    /// then end the stream.
    mutating func linkClosedByModule(_ link: Int) {
        var slot = slots[link]
        guard slot.state == .open, slot.failure == nil, !slot.ended else { return }
        slot.peerClosed = true
        slot.tx.reset()
        slot.sendInFlight = 0
        slots[link] = slot
        if slot.wantWritable {
            slots[link].wantWritable = false
            slots[link].writablePending = true
        }
        settleEnd(link)
    }

    /// The end of the stream, once the module's close came and nothing more is announced.
    mutating func settleEnd(_ link: Int) {
        let slot = slots[link]
        guard slot.peerClosed, !slot.ended, slot.failure == nil, !slot.readInFlight, slot.available == 0 else { return }
        slots[link].ended = true
        markReadable(link)
    }

    mutating func moduleReset() {
        // The engine already failed the command in flight; its completion (and the links'
        // closes) follow and are ignored: nothing of the old module is trusted.
        work = .none
        needProbe = false
        needPassiveRestore = false
        restartPending = false
        let wasUp = phase == .up
        failAll(SocketError(.connectionAborted, "the modem restarted"))
        if wasUp {
            lastDownReason = SocketError(.connectionAborted, "the modem restarted")
            post(.down(SocketError(.connectionAborted, "the modem restarted")))
            downPosted = true
        }
        // It just booted: bring it up again now.
        beginBringUp()
    }

    /// The board's UART to the module is gone (a hang-up, a USB adapter pulled): every
    /// connection fails with `eio`, ``InterfaceEvent/down(_:)`` follows, and the interface
    /// stays down until ``start(now:)`` is called again (on a fresh line). For the run loop,
    /// when its line reports a hang-up; nothing else calls it.
    public mutating func lineLost() {
        let reason = SocketError(.ioError, "the modem's line is gone")
        work = .none
        needProbe = false
        failAll(reason)
        lastDownReason = reason
        if phase == .up || !downPosted { post(.down(reason)) }
        downPosted = true
        phase = .idle
        retryAt = nil
        // Whatever the old engine had in flight or half-read is void.
        var dialect = engine.dialect
        dialect.moduleDidReset()
        engine = ModemEngine(dialect: dialect, configuration: configuration.engine)
    }

    mutating func networkLost() {
        guard phase == .up else { return }
        let reason = SocketError(.networkDown, "the modem lost its network")
        failAll(reason)
        lastDownReason = reason
        post(.down(reason))
        downPosted = true
        phase = .waiting
        retryAt = nil  // at once: the bring-up joins again (or waits for the module to)
        beginBringUp()
    }

    // MARK: Completions

    mutating func completed(_ completion: ModemCompletion, now: MillisecondInstant) {
        let current = work
        work = .none
        var failure: ModemFailure?
        var reason = ModemReason.ioError
        if case .failure(let f, let r) = completion.outcome {
            failure = f
            reason = r
        }
        switch current {
        case .none:
            break
        case .bringUp(let step):
            bringUpCompleted(step: step, failure: failure, reason: reason, now: now)
        case .probe:
            if failure == nil || failure == .busy {
                // Alive and not restarted: the connections whose command went unanswered
                // failed on silence.
                for link in 0..<slots.count where slots[link].awaitingVerdict {
                    fail(link, SocketError(.connectionTimedOut, "the modem did not answer in time"))
                }
            } else if failure == .timeout {
                moduleSilent()
            }
        case .restorePassive:
            break
        case .restart:
            // Without an OK the module is still not itself: start over from the probe.
            if failure != nil { beginBringUp() }
        case .connect:
            break  // `connected` or `connectFailed` follows
        case .send(let link):
            sendCompleted(link, failure: failure)
        case .read(let link):
            readCompleted(link, failure: failure)
        case .close(let link):
            if slots[link].state == .closing { slots[link].clear() }
        }
        if failure == .timeout, phase == .up, current != .probe {
            needProbe = true
        }
    }

    mutating func sendCompleted(_ link: Int, failure: ModemFailure?) {
        let n = slots[link].sendInFlight
        slots[link].sendInFlight = 0
        guard slots[link].failure == nil else { return }
        switch failure {
        case nil:
            slots[link].tx.drop(n)
            if slots[link].sendRoom > 0 { markWritable(link) }
        case .timeout?:
            slots[link].awaitingVerdict = true
            slots[link].tx.reset()
        case .some:
            // SEND FAIL or ERROR: the bytes did not go. Writes fail from now on; reads go on
            // until the module reports the link closed.
            slots[link].writeFailure = SocketError(.closed, "the modem refused data on the link")
            slots[link].tx.reset()
            if slots[link].wantWritable {
                slots[link].wantWritable = false
                slots[link].writablePending = true
            }
        }
    }

    mutating func readCompleted(_ link: Int, failure: ModemFailure?) {
        guard slots[link].readInFlight else { return }
        slots[link].readInFlight = false
        switch failure {
        case nil:
            slots[link].rx.commit()
            if slots[link].readGot < slots[link].readAsked { slots[link].available = 0 }
            if slots[link].readGot > 0 { markReadable(link) }
        case .timeout?:
            _ = slots[link].rx.dropHidden()
            slots[link].available = 0
            slots[link].awaitingVerdict = true
        case .some:
            _ = slots[link].rx.dropHidden()
            if slots[link].peerClosed && slots[link].available > 0 {
                fail(link, SocketError(.protocolError, "the modem closed the link and refused its announced bytes"))
            }
            slots[link].available = 0
        }
        settleEnd(link)
    }

    /// An `AT` went unanswered after a read or send did: the module is gone. Every connection
    /// fails with `etimedout`, and the bring-up starts over (its probes wait for the module).
    mutating func moduleSilent() {
        let reason = SocketError(.connectionTimedOut, "the modem stopped answering")
        failAll(reason)
        restartPending = true
        if phase == .up {
            lastDownReason = reason
            post(.down(reason))
            downPosted = true
        }
        beginBringUp()
    }

    // MARK: Closing

    mutating func release(_ connection: InterfaceConnection, graceful: Bool, now: MillisecondInstant) {
        guard let link = link(of: connection) else { return }
        var slot = slots[link]
        let opened = slot.connectSubmitted
        slot.state = .closing
        slot.graceful = graceful && slot.failure == nil && slot.writeFailure == nil && !slot.peerClosed
        if !slot.graceful { slot.tx.reset() }
        slot.readablePending = false
        slot.writablePending = false
        slot.wantWritable = false
        slots[link] = slot
        if !opened { slots[link].clear() }
        pump(now: now)
    }

    /// Whether a command on `link` is in flight.
    func isBusy(_ link: Int) -> Bool {
        switch work {
        case .connect(let l), .send(let l), .read(let l), .close(let l): l == link
        default: false
        }
    }
}
