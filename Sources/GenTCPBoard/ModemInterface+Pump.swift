import GenTCPCore
import GenTCPModem

/// The bring-up and the choice of the next command: the engine runs one at a time.
extension ModemInterface {
    // MARK: Bring-up

    /// The bring-up steps, in order: index → command, nil for a step this configuration skips.
    func bringUpCommand(_ step: Int) -> ModemCommand? {
        switch step {
        case 0: return .probe
        case 1: return .echoOff
        case 2: return .version
        case 3:
            // Cellular: from whatever state the bearer is in (a lost context stays deactivated
            // until this, SIMCom's AT+CIPSHUT) back to the start, where AT+CIPMUX is accepted.
            guard configuration.apn != nil else { return nil }
            return .deactivateBearer
        case 4: return .enableMultiplexing
        case 5: return .enablePassiveReceive
        case 6:
            guard let ssid = configuration.wifiSSID else { return nil }
            return .joinNetwork(ssid: ssid, password: configuration.wifiPassword)
        case 7:
            guard let apn = configuration.apn else { return nil }
            return .configureBearer(apn: apn, user: configuration.apnUser, password: configuration.apnPassword)
        case 8:
            guard configuration.apn != nil else { return nil }
            return .activateBearer
        case 9: return .localAddress
        default: return nil
        }
    }

    static var bringUpSteps: Int { 10 }

    /// How long a restart may take to print its banner before the bring-up goes on without it.
    static var restartTimeout: Int64 { 15_000 }

    mutating func beginBringUp() {
        phase = .bringingUp(step: 0)
        probesFailed = 0
        retryAt = nil
        restartSent = false
        localAddress = .anyV4
    }

    /// The gen_tcp reason a failed step gives (as the host's at driver names them).
    func bringUpReason(_ command: ModemCommandKind, _ failure: ModemFailure, _ reason: ModemReason) -> SocketError {
        if failure == .timeout || failure == .busy {
            return SocketError(.connectionTimedOut, "the modem did not answer a bring-up command")
        }
        switch command {
        case .joinNetwork, .configureBearer, .activateBearer, .localAddress:
            return SocketError(.networkUnreachable, "the modem could not join its network")
        case .echoOff, .enableMultiplexing, .enablePassiveReceive:
            return SocketError(.protocolError, "the modem refused a bring-up setting")
        default:
            return SocketError(SocketError.Reason(reason), "modem bring-up failed")
        }
    }

    mutating func bringUpCompleted(step: Int, failure: ModemFailure?, reason: ModemReason, now: MillisecondInstant) {
        guard phase == .bringingUp(step: step) else { return }
        guard let command = bringUpCommand(step) else { return }
        if let failure {
            if failure == .moduleReset { return }  // `moduleReset` started over already
            if command.kind == .probe {
                probesFailed += 1
                if probesFailed < Swift.max(1, configuration.probeAttempts) {
                    retryAt = now.advanced(byMilliseconds: configuration.probeInterval.value)
                    return
                }
            }
            // The version is optional (ESP-AT then uses AT+CIPRECVMODE); so is the bearer's
            // shutdown (nothing to shut).
            if command.kind == .version || command.kind == .deactivateBearer { return advance(after: step) }
            bringUpFailed(bringUpReason(command.kind, failure, reason), now: now)
            return
        }
        if command.kind == .probe {
            probesFailed = 0
            if restartPending {
                // Back after a silence: its old links (and settings) are unknown; start clean.
                restartPending = false
                phase = .restarting
                retryAt = now.advanced(byMilliseconds: Self.restartTimeout)
                return
            }
        }
        if command.kind == .localAddress && localAddress == .anyV4 {
            // ESP-AT prints 0.0.0.0 while the station has no network: a connect would fail
            // with a bare ERROR, read as a refused host.
            bringUpFailed(SocketError(.networkUnreachable, "the modem has no network address (not joined)"), now: now)
            return
        }
        advance(after: step)
    }

    mutating func advance(after step: Int) {
        var next = step + 1
        while next < Self.bringUpSteps && bringUpCommand(next) == nil { next += 1 }
        if next < Self.bringUpSteps {
            phase = .bringingUp(step: next)
            return
        }
        phase = .up
        downPosted = false
        post(.up)
    }

    mutating func bringUpFailed(_ reason: SocketError, now: MillisecondInstant) {
        lastDownReason = reason
        if !downPosted {
            post(.down(reason))
            downPosted = true
        }
        phase = .waiting
        retryAt = now.advanced(byMilliseconds: Swift.max(configuration.retryDelay.value, 1))
    }

    // MARK: The next command

    /// Gives the engine its next command when it is idle: a bring-up step; then a probe that
    /// names a failure; closes; connects; reads and sends taking turns.
    mutating func pump(now: MillisecondInstant) {
        guard work == .none, engine.isIdle else { return }
        switch phase {
        case .idle, .waiting:
            return
        case .restarting:
            guard !restartSent else { return }
            restartSent = true
            if submit(.restart, now: now) {
                work = .restart
            } else {
                beginBringUp()
            }
            return
        case .bringingUp(let step):
            if let at = retryAt {
                guard now >= at else { return }
                retryAt = nil
            }
            guard let command = bringUpCommand(step) else { return advance(after: step) }
            if submit(command, now: now) {
                work = .bringUp(step: step)
            } else {
                bringUpFailed(SocketError(.invalidArgument, "the modem refused a bring-up setting (check SSID, password, APN)"),
                              now: now)
            }
            return
        case .up:
            break
        }
        if needProbe {
            needProbe = false
            if submit(.probe, now: now) {
                work = .probe
                return
            }
        }
        if needPassiveRestore {
            needPassiveRestore = false
            if submit(.enablePassiveReceive, now: now) {
                work = .restorePassive
                return
            }
        }
        if settleClosing(now: now) { return }
        if startConnect(now: now) { return }
        let sendFirst = preferSend
        if sendFirst ? startSend(now: now) || startRead(now: now) : startRead(now: now) || startSend(now: now) {
            preferSend.toggle()
        }
    }

    /// Submits `command`; false when the engine refused it (a bad argument).
    mutating func submit(_ command: ModemCommand, now: MillisecondInstant, timeout: UInt32? = nil) -> Bool {
        do throws(ModemError) {
            try engine.submit(command, now: now, timeout: timeout)
            return true
        } catch {
            return false
        }
    }

    /// A closed link: its last bytes go out (graceful close), then `AT+CIPCLOSE`; the slot is
    /// free once the module's link is.
    mutating func settleClosing(now: MillisecondInstant) -> Bool {
        for link in 0..<slots.count where slots[link].state == .closing {
            let moduleLink = engine.linkState(link)
            if moduleLink == .closed {
                slots[link].clear()
                continue
            }
            if slots[link].graceful && slots[link].tx.count > 0 && moduleLink == .open {
                if startSend(link: link, now: now) { return true }
                slots[link].tx.reset()
            }
            if submit(.close(link: link), now: now) {
                work = .close(link: link)
                return true
            }
            slots[link].clear()
        }
        return false
    }

    mutating func startConnect(now: MillisecondInstant) -> Bool {
        for link in 0..<slots.count where slots[link].state == .connecting && !slots[link].connectSubmitted
            && slots[link].failure == nil {
            slots[link].connectSubmitted = true
            guard case .v4(let v) = slots[link].address else { continue }
            let command = ModemCommand.connect(link: link, host: Self.dotted(v), port: Int(slots[link].port))
            if submit(command, now: now, timeout: slots[link].connectTimeout) {
                work = .connect(link: link)
                return true
            }
            fail(link, SocketError(.connectionRefused, "the modem refused the connect command"))
        }
        return false
    }

    mutating func startRead(now: MillisecondInstant) -> Bool {
        let limit = engine.dialect.limits.maxReadLength
        for i in 0..<slots.count {
            let link = (serviceCursor + i) % slots.count
            let slot = slots[link]
            guard slot.state == .open, slot.failure == nil, !slot.ended, !slot.readInFlight, slot.available > 0 else { continue }
            let room = slot.receiveRoom
            // Wait for a useful amount of room (a quarter of the buffer, or all that is announced).
            guard room > 0, room >= Swift.min(slot.available, Swift.max(1, slot.receiveLimit / 4)) else { continue }
            let want = Swift.min(Swift.min(room, slot.available), limit)
            if submit(.read(link: link, maximum: want), now: now) {
                serviceCursor = (link + 1) % slots.count
                slots[link].readInFlight = true
                slots[link].readAsked = want
                slots[link].readGot = 0
                work = .read(link: link)
                return true
            }
            slots[link].available = 0
        }
        return false
    }

    mutating func startSend(now: MillisecondInstant) -> Bool {
        for i in 0..<slots.count {
            let link = (serviceCursor + i) % slots.count
            guard slots[link].state == .open, startSend(link: link, now: now) else { continue }
            serviceCursor = (link + 1) % slots.count
            return true
        }
        return false
    }

    /// Hands the first contiguous run of the link's send ring to the engine.
    mutating func startSend(link: Int, now: MillisecondInstant) -> Bool {
        let slot = slots[link]
        guard slot.failure == nil, slot.writeFailure == nil, !slot.peerClosed, slot.sendInFlight == 0, slot.tx.count > 0,
              engine.linkState(link) == .open else { return false }
        let run = slot.tx.firstRun
        // A local reference, so the engine can be changed while the ring's bytes are read.
        let storage = sendStorage
        let taken: Int = storage.withUnsafeBytes { raw in
            do throws(ModemError) {
                return try engine.send(UnsafeRawBufferPointer(rebasing: raw[run]), link: link, now: now)
            } catch {
                return 0
            }
        }
        guard taken > 0 else { return false }
        slots[link].sendInFlight = taken
        work = .send(link: link)
        return true
    }

    // MARK: Formatting

    /// `a.b.c.d` for the engine's `AT+CIPSTART`, without Foundation.
    static func dotted(_ address: UInt32) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { buffer in
            var n = 0
            for shift in stride(from: UInt32(24), through: 0, by: -8) {
                let octet = Int((address >> shift) & 0xFF)
                if octet >= 100 {
                    buffer[n] = UInt8(48 + octet / 100)
                    n += 1
                }
                if octet >= 10 {
                    buffer[n] = UInt8(48 + octet / 10 % 10)
                    n += 1
                }
                buffer[n] = UInt8(48 + octet % 10)
                n += 1
                if shift != 0 {
                    buffer[n] = 46  // "."
                    n += 1
                }
            }
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[0..<n]), as: UTF8.self)
        }
    }
}
