import GenTCPCore
import GenTCPWire

extension Connection {
    /// Writes the next segment this connection wants to send at `now` into `buffer` (which
    /// starts where the TCP header goes) and returns its length, or nil when there is nothing.
    ///
    /// Order: SYN or SYN,ACK; a fast retransmission; new data or FIN (congestion window, peer
    /// window, Nagle); a zero-window probe; a keepalive probe; a bare ACK.
    mutating func emit(now: Int64, into buffer: UnsafeMutableRawBufferPointer, local: IPv4Address) -> Int? {
        if state == .closed || state == .listen || (state == .timeWait && !ackNow) { return nil }
        let room = buffer.count - TCPPacket.minimumHeaderLength
        guard room >= 0 else { return nil }

        if state == .synSent || state == .synReceived {
            if sndNxt == iss {
                let flags: TCPFlags = state == .synSent ? .syn : [.syn, .ack]
                let length = write(
                    sequence: iss, flags: flags, payloadOffset: 0, payloadLength: 0, withMSS: true,
                    into: buffer, local: local)
                noteSent(from: iss, length: 1, now: now)
                return length
            }
            if state == .synSent { return nil }
        }

        // An owed ACK goes out on its own ahead of a retransmission: the peer may already hold
        // the retransmitted bytes, find the segment unacceptable and drop it with the ACK it
        // carries (RFC 9293 §3.10.7.4). Two ends retransmitting to each other would then never
        // learn of each other's ACKs. While out-of-order data is held, the ACK goes out bare too,
        // so that it has room for the SACK blocks.
        let lost = state == .synReceived ? nil : scoreboard.firstLost
        if ackNow, lost != nil || sndNxt < sndMax || (sackEnabled && !assembler.isEmpty) {
            return write(
                sequence: pureAckSequence, flags: .ack, payloadOffset: 0, payloadLength: 0, withMSS: false,
                into: buffer, local: local)
        }

        if let lost, retransmitFirst || scoreboard.pipe + scoreboard[lost].length <= cwnd {
            retransmitFirst = false
            if let length = retransmit(lost, now: now, into: buffer, room: room, local: local) {
                return length
            }
        }

        if state != .synReceived, let length = emitData(now: now, into: buffer, room: room, local: local) {
            return length
        }

        if probePending {
            probePending = false
            let offset = Int(sendStart.distance(to: sndNxt))
            if offset >= 0, offset < sendBuffer.count {
                // RFC 9293 §3.8.6.1: probe with one byte beyond the closed window. SND.NXT stays;
                // if the peer takes the byte, its ACK moves SND.NXT past it.
                let length = write(
                    sequence: sndNxt, flags: [.ack, .psh], payloadOffset: offset, payloadLength: 1, withMSS: false,
                    into: buffer, local: local)
                if sndMax < sndNxt + 1 { sndMax = sndNxt + 1 }
                return length
            }
        }

        if keepalivePending {
            keepalivePending = false
            // RFC 9293 §3.8.4: SEG.SEQ = SND.NXT − 1 and no data elicits an ACK.
            return write(
                sequence: sndUna - 1, flags: .ack, payloadOffset: 0, payloadLength: 0, withMSS: false,
                into: buffer, local: local)
        }

        if ackNow || (ackDeadline.map { now >= $0 } ?? false) {
            return write(
                sequence: pureAckSequence, flags: .ack, payloadOffset: 0, payloadLength: 0, withMSS: false,
                into: buffer, local: local)
        }
        return nil
    }

    /// The sequence number of a bare ACK: SND.MAX (after a go-back-N rewind SND.NXT lies behind
    /// what the peer already has, and it would drop the ACK as unacceptable), kept inside the
    /// peer's window.
    @inline(__always)
    private var pureAckSequence: SequenceNumber {
        let windowEnd = sndUna.advanced(by: Int(sndWnd))
        let candidate = sndMax <= windowEnd ? sndMax : windowEnd
        return candidate >= sndNxt ? candidate : sndNxt
    }

    /// States in which new data or a FIN may go out.
    private var maySendData: Bool {
        switch state {
        case .established, .closeWait, .finWait1, .closing, .lastAck: true
        default: false
        }
    }

    /// New data and/or FIN at SND.NXT.
    private mutating func emitData(
        now: Int64, into buffer: UnsafeMutableRawBufferPointer, room: Int, local: IPv4Address
    ) -> Int? {
        guard maySendData else { return nil }
        let offset = Int(sendStart.distance(to: sndNxt))
        guard offset >= 0 else { return nil }
        let available = sendBuffer.count - offset
        let finPending = finQueued && sndNxt == finSequence
        guard available > 0 || finPending else { return nil }

        // A full scoreboard holds new data back until ACKs free slots.
        guard !scoreboard.isFull else { return nil }
        // The peer's window bounds everything outstanding; the congestion window bounds what is
        // still in the network (RFC 6675 pipe: SACKed and lost segments have left it).
        let usable = min(Int(sndWnd) - flightSize, cwnd - scoreboard.pipe)
        // Two-argument `min`s only: the variadic one allocates its rest array on every call in
        // Embedded Swift (tools/check-embedded.sh rejects it).
        var length = min(min(available, sendMSS), min(room, max(usable, 0)))
        if available > 0 {
            guard length > 0 else { return nil }
            // Nagle (RFC 9293 §3.7.4) with sender-side SWS avoidance (§3.8.6.2.1): send a full
            // segment; or everything queued when nothing is in flight, with nodelay, or when
            // closing; or at least half the largest window the peer offered.
            let idle = sndNxt == sndUna
            let full = length == sendMSS || length == room
            let all = length == available
            let half = maxSndWnd > 0 && length >= Int(maxSndWnd / 2)
            let allowed = full || (all && (idle || options.noDelay || finQueued))
                || (half && (idle || options.noDelay)) || (idle && length > 0)
            guard allowed else { return nil }
        } else {
            length = 0
        }
        let fin = finQueued && offset + length == sendBuffer.count
        var flags: TCPFlags = .ack
        if length > 0, offset + length == sendBuffer.count { flags.insert(.psh) }
        if fin { flags.insert(.fin) }
        let start = sndNxt
        let written = write(
            sequence: start, flags: flags, payloadOffset: offset, payloadLength: length, withMSS: false,
            into: buffer, local: local)
        noteSent(from: start, length: length + (fin ? 1 : 0), now: now)
        scoreboard.append(SentSegment(start: start, length: length + (fin ? 1 : 0), sentAt: now, order: nextOrder()))
        return written
    }

    /// The next transmission order value.
    private mutating func nextOrder() -> UInt32 {
        transmitCounter &+= 1
        return transmitCounter
    }

    /// Sends scoreboard entry `index` (deemed lost) again, as it was first cut: by fast
    /// retransmit (RFC 5681 §3.2, RFC 6582 partial ACK), SACK recovery (RFC 6675) or RACK
    /// (RFC 8985), or after a timeout.
    private mutating func retransmit(
        _ index: Int, now: Int64, into buffer: UnsafeMutableRawBufferPointer, room: Int, local: IPv4Address
    ) -> Int? {
        var segment = scoreboard[index]
        let offset = Int(sendStart.distance(to: segment.start))
        let fin = finQueued && segment.end == finSequence + 1
        let length = min(segment.length - (fin ? 1 : 0), room)
        guard offset >= 0, length >= 0, offset + length <= sendBuffer.count else { return nil }
        var flags: TCPFlags = .ack
        if fin { flags.insert(.fin) }
        if length > 0, offset + length == sendBuffer.count { flags.insert(.psh) }
        if !segment.lostByTimeout { fastRetransmissionsDelta += 1 }
        segment.sentAt = now
        segment.order = nextOrder()
        segment.lost = false
        segment.lostByTimeout = false
        segment.retransmitted = true
        scoreboard[index] = segment
        timing = false
        if rtoDeadline == nil { rtoDeadline = now + rto }
        // Check on this retransmission even if no ACK comes (see ``detectLosses(now:)``).
        if !segment.probed, let probe = retransmissionProbeInterval, rackDeadline.map({ now + probe < $0 }) ?? true {
            rackDeadline = now + probe
        }
        return write(
            sequence: segment.start, flags: flags, payloadOffset: offset, payloadLength: length, withMSS: false,
            into: buffer, local: local)
    }

    /// Bookkeeping after sending `length` sequence numbers from `start` at SND.NXT.
    private mutating func noteSent(from start: SequenceNumber, length: Int, now: Int64) {
        let end = start.advanced(by: length)
        // Only the SYN is timed here: data segments are timed from the scoreboard, each by its
        // own send time (see ``deliverAcknowledged``). Karn's rule (RFC 6298 §3): time only
        // segments sent once.
        if !timing, length > 0, start >= sndMax, retransmitCount == 0, !state.isSynchronized {
            timing = true
            timedSequence = end
            timedAt = now
        }
        sndNxt = end
        if sndMax < end { sndMax = end }
        // RFC 6298 §5.1: start the timer when it is not running.
        if length > 0, rtoDeadline == nil { rtoDeadline = now + rto }
    }

    /// Writes the header (and copies the payload from the send buffer) into `buffer`; every
    /// segment but a SYN carries our ACK and window, which also settles any pending ACK.
    ///
    /// Never inlined: its header and temporaries then take stack space once, in its own frame,
    /// rather than once per call site in ``emit(now:into:local:)`` and its helpers (frame sizes:
    /// tools/stack-frames.sh).
    @inline(never)
    private mutating func write(
        sequence: SequenceNumber, flags: TCPFlags, payloadOffset: Int, payloadLength: Int, withMSS: Bool,
        into buffer: UnsafeMutableRawBufferPointer, local: IPv4Address
    ) -> Int {
        var header = TCPHeader(
            sourcePort: localPort, destinationPort: remotePort, sequenceNumber: sequence,
            acknowledgmentNumber: flags.contains(.ack) ? rcvNxt : SequenceNumber(0), flags: flags,
            window: 0, maximumSegmentSize: withMSS ? UInt16(clamping: receiveMSS) : nil)
        if withMSS {
            // RFC 2018 §2: offer SACK in a SYN; answer a SYN with it only when it was offered.
            header.sackPermitted = state == .synSent ? options.selectiveAcknowledgments : sackEnabled
        } else if sackEnabled, flags == .ack, payloadLength == 0, !assembler.isEmpty {
            // As many blocks as the segment has room for (NOP, NOP, kind, length, 8 bytes each).
            header.sackBlocks = sackBlocks(limit: (buffer.count - TCPPacket.minimumHeaderLength - 4) / 8)
        }
        let window = windowToAdvertise
        header.window = UInt16(window)
        if flags.contains(.ack) {
            lastAcknowledged = rcvNxt
            ackNow = false
            ackDeadline = nil
            unackedSegments = 0
            let edge = rcvNxt.advanced(by: Int(window))
            if rcvAdvertisedEdge < edge { rcvAdvertisedEdge = edge }
        }
        let headerLength = header.headerLength
        if payloadLength > 0 {
            sendBuffer.copy(
                from: payloadOffset,
                into: UnsafeMutableRawBufferPointer(rebasing: buffer[headerLength..<(headerLength + payloadLength)]))
        }
        do {
            return try header.emit(into: buffer, payloadLength: payloadLength, source: local, destination: remoteAddress)
        } catch {
            // Unreachable: the caller sized the payload to the buffer and our options fit.
            return 0
        }
    }

    /// The runs held out of order, as SACK blocks (see ``Assembler/sackBlocks(base:latest:limit:)``).
    @inline(__always)
    private func sackBlocks(limit: Int) -> TCPSACKBlocks {
        assembler.sackBlocks(base: rcvNxt, latest: Int(rcvNxt.distance(to: lastOutOfOrder)), limit: limit)
    }

    /// A bare RST <SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK> is built by the stack from a
    /// ``ResetReply``; see ``Connection/fail(_:sendReset:)``.

    // MARK: timers

    /// Fires every timer due at `now` (RFC 6298 §5.4–5.7, RFC 9293 §3.8.4, §3.8.6.1).
    mutating func onTimers(now: Int64) {
        if state == .closed { return }
        if let deadline = connectDeadline, now >= deadline {
            fail(.timedOut, sendReset: false)
            return
        }
        if let deadline = timeWaitDeadline, now >= deadline {
            // TIME-WAIT over (or FIN-WAIT-2 abandoned after close).
            enterClosed()
            events.insert(.finished)
            return
        }
        if let deadline = ackDeadline, now >= deadline {
            ackDeadline = nil
            ackNow = true
        }
        if let deadline = rtoDeadline, now >= deadline {
            retransmissionTimeout(now: now)
            if state == .closed { return }
        }
        if let deadline = rackDeadline, now >= deadline {
            rackDeadline = nil
            detectLosses(now: now)
        }
        if let deadline = persistDeadline, now >= deadline {
            probePending = true
            persistInterval = min(max(persistInterval * 2, rto), options.maximumRTO.value)
            persistDeadline = now + persistInterval
        }
        if let deadline = keepaliveDue, now >= deadline {
            if keepaliveProbes >= options.keepaliveCount {
                fail(.timedOut, sendReset: true)
                return
            }
            keepaliveProbes += 1
            keepalivePending = true
            // The next probe is due `interval` after this one.
            lastReceiveAt = now - options.keepaliveIdle.value
        }
        refreshTimers(now: now)
    }

    /// RFC 6298 §5.4–5.6 and RFC 5681 §3.1 (loss window), RFC 6582 §3.2 step 4.
    private mutating func retransmissionTimeout(now: Int64) {
        retransmitCount += 1
        if retransmitStart == nil { retransmitStart = now }
        let handshake = state == .synSent || state == .synReceived
        let limit = handshake ? options.synRetries : options.maximumRetransmissions
        if retransmitCount > limit || now - (retransmitStart ?? now) >= options.userTimeout.value {
            let passive = state == .synReceived && listener >= 0
            fail(passive ? nil : .timedOut, sendReset: state.isSynchronized)
            return
        }
        if !handshake {
            // On a dedicated link a timeout means lost segments or lost ACKs, not a queue: the
            // window stays, and what was lost goes again at once.
            if !congestionFree {
                ssthresh = max(flightSize / 2, 2 * sendMSS)
                cwnd = sendMSS
            }
            inRecovery = false
            duplicateAcks = 0
            recover = sndMax
        }
        if !handshake, !scoreboard.isEmpty, congestionFree, !sackEnabled {
            // On a dedicated link to a peer without SACK, only the earliest segment goes again
            // (RFC 6298 §5.4 asks no more; with the one after it, see `markFirstHoleLost`) and
            // the repair goes on as in NewReno's recovery, each partial ACK pointing at the next
            // hole. Deviation: RFC 6582 §3.2 leaves recovery on a timeout, and go-back-N would
            // then resend the whole window at once, as the unreduced window allows, although a
            // receiver holding out-of-order data (RFC 9293 §3.10.7.4; lwIP, Linux) has most of
            // it: against lwIP at 0.1 % byte loss that sent 1.6 times as many frames for the
            // same 1 MiB. (With standard congestion control the loss window of one segment
            // paces go-back-N by the ACKs instead.)
            markFirstHoleLost()
            for i in 0..<min(2, scoreboard.count) where scoreboard[i].lost { scoreboard[i].lostByTimeout = true }
            inRecovery = true
            retransmitFirst = true
            rackDeadline = nil
        } else if handshake || scoreboard.isEmpty {
            // Go back to SND.UNA: the SYN (or a zero-window probe's byte) goes again.
            sndNxt = sndUna
            retransmitFirst = false
        } else {
            // Everything not SACKed is deemed lost and goes again, oldest first, as ACKs open
            // cwnd (RFC 6675 §5.1). A SACKed segment at SND.UNA means the peer reneged on its
            // SACKs (RFC 2018 §8): forget them all.
            if scoreboard[0].sacked {
                for i in 0..<scoreboard.count { scoreboard[i].sacked = false }
            }
            for i in 0..<scoreboard.count where !scoreboard[i].sacked {
                scoreboard[i].lost = true
                scoreboard[i].lostByTimeout = true
            }
            retransmitFirst = true
            rackDeadline = nil
        }
        timing = false
        rto = min(rto * 2, options.maximumRTO.value)
        rtoDeadline = now + rto
        timeoutRetransmissionsDelta += 1
    }

    /// When the next keepalive probe is due, if keepalive applies now.
    @inline(__always)
    private var keepaliveDue: Int64? {
        guard options.keepalive, state == .established || state == .closeWait, sndUna == sndMax,
              !keepalivePending
        else { return nil }
        return lastReceiveAt + options.keepaliveIdle.value + (keepaliveProbes > 0 ? options.keepaliveInterval.value : 0)
    }

    /// Arms or disarms the timers that depend on the state after input or output.
    mutating func refreshTimers(now: Int64) {
        // Persist: a zero window with data waiting and nothing in flight to bring an ACK.
        let offset = Int(sendStart.distance(to: sndNxt))
        let waiting = offset >= 0 && offset < sendBuffer.count
        if sndWnd == 0, waiting, sndNxt == sndUna, state.isSynchronized {
            if persistDeadline == nil {
                persistInterval = max(rto, options.minimumRTO.value)
                persistDeadline = now + persistInterval
            }
        } else if persistDeadline != nil, sndWnd > 0 || !waiting {
            persistDeadline = nil
            persistInterval = 0
        }
        // A FIN-WAIT-2 nobody will read from does not last forever (as Linux's tcp_fin_timeout).
        if state == .finWait2, applicationClosed, timeWaitDeadline == nil {
            timeWaitDeadline = now + max(options.timeWait.value, options.userTimeout.value / 2)
        }
    }

    /// The earliest time anything here must happen.
    @inline(__always)
    var nextDeadline: Int64? {
        guard state != .closed else { return nil }
        var earliest: Int64?
        func consider(_ value: Int64?) {
            guard let value else { return }
            if earliest.map({ value < $0 }) ?? true { earliest = value }
        }
        consider(connectDeadline)
        consider(timeWaitDeadline)
        consider(ackDeadline)
        consider(rtoDeadline)
        consider(rackDeadline)
        consider(persistDeadline)
        consider(keepaliveDue)
        return earliest
    }
}
