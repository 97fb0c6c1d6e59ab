import GenTCPCore
import GenTCPWire

extension Connection {
    /// Processes one segment for this connection (RFC 9293 §3.10.7.3 and §3.10.7.4).
    mutating func process(_ segment: TCPHeader, payload: UnsafeRawBufferPointer, now: Int64) {
        switch state {
        case .closed, .listen:
            return
        case .synSent:
            processInSynSent(segment, now: now)
            return
        default:
            break
        }
        let flags = segment.flags
        let seq = segment.sequenceNumber

        // A retransmitted SYN while we are in SYN-RECEIVED: our SYN-ACK was lost; send it again.
        if state == .synReceived, flags.contains(.syn), !flags.contains(.ack), !flags.contains(.rst), seq == irs {
            sndNxt = iss
            return
        }

        // First: sequence number acceptability (RFC 9293 §3.10.7.4, the four cases).
        let segmentLength = payload.count + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
        let window = UInt32(min(receiveBuffer.free, 0xFFFF))
        let acceptable: Bool
        if segmentLength == 0 {
            acceptable = window == 0 ? seq == rcvNxt : seq.isInWindow(start: rcvNxt, size: window)
        } else if window == 0 {
            acceptable = false
        } else {
            acceptable = seq.isInWindow(start: rcvNxt, size: window)
                || seq.advanced(by: segmentLength - 1).isInWindow(start: rcvNxt, size: window)
        }
        if !acceptable {
            // "If an incoming segment is not acceptable, an acknowledgment should be sent in reply
            // (unless the RST bit is set)." A retransmitted FIN in TIME-WAIT restarts the timer.
            if !flags.contains(.rst) {
                ackNow = true
                if state == .timeWait, flags.contains(.fin) { timeWaitDeadline = now + options.timeWait.value }
            }
            return
        }
        lastReceiveAt = now
        keepaliveProbes = 0

        // Second: RST (RFC 5961 §3.2: only an exact match resets; otherwise a challenge ACK).
        if flags.contains(.rst) {
            guard seq == rcvNxt else {
                ackNow = true
                return
            }
            switch state {
            case .synReceived:
                // From a passive open the slot simply goes away (RFC 9293 "return to LISTEN");
                // from a simultaneous open the connect is refused.
                fail(listener >= 0 ? nil : .connectionRefused, sendReset: false)
            case .established, .finWait1, .finWait2, .closeWait:
                fail(.connectionReset, sendReset: false)
            default:
                fail(nil, sendReset: false)
            }
            return
        }

        // Fourth: SYN in a synchronized state → challenge ACK (RFC 5961 §4.2).
        if flags.contains(.syn) {
            ackNow = true
            return
        }

        // Fifth: the ACK field.
        guard flags.contains(.ack) else { return }
        let ack = segment.acknowledgmentNumber
        if state == .synReceived {
            guard sndUna < ack, ack <= sndMax else {
                outgoingReset = ResetReply(
                    remote: remoteAddress, localPort: localPort, remotePort: remotePort, sequence: ack,
                    acknowledgment: nil)
                return
            }
            state = finQueued ? .finWait1 : .established
            connectDeadline = nil
            initialWindow()
            sndWnd = UInt32(segment.window)
            maxSndWnd = max(maxSndWnd, sndWnd)
            sndWl1 = seq
            sndWl2 = ack
            events.insert(listener >= 0 ? .acceptable : .connected)
        }
        // RFC 5961 §5.2: an ACK for data never sent is answered and dropped; so is one far older
        // than anything in the window.
        if ack > sndMax {
            ackNow = true
            return
        }
        if ack < sndUna - max(maxSndWnd, 0xFFFF) {
            ackNow = true
            return
        }
        processAcknowledgment(segment, payloadLength: payload.count, now: now)

        switch state {
        case .finWait1 where finAcknowledged:
            state = .finWait2
        case .closing where finAcknowledged:
            enterTimeWait(now: now)
        case .lastAck where finAcknowledged:
            enterClosed()
            events.insert(.finished)
            return
        case .timeWait:
            if flags.contains(.fin) {
                ackNow = true
                timeWaitDeadline = now + options.timeWait.value
            }
            return
        default:
            break
        }

        // Seventh: segment text.
        var tailAccepted = true
        if !payload.isEmpty {
            switch state {
            case .established, .finWait1, .finWait2:
                if applicationClosed {
                    // Nobody will read this: abort (RFC 1122 §4.2.2.13).
                    fail(nil, sendReset: true)
                    return
                }
                tailAccepted = receiveText(seq: seq, payload: payload, now: now)
            default:
                break
            }
        }

        // Eighth: FIN. Its sequence number is the byte after the data; it counts only once
        // everything before it has arrived.
        if flags.contains(.fin), tailAccepted, !finReceived {
            pendingFin = seq.advanced(by: payload.count)
        }
        consumeFinIfReady(now: now)
    }

    /// SYN-SENT (RFC 9293 §3.10.7.3).
    private mutating func processInSynSent(_ segment: TCPHeader, now: Int64) {
        let flags = segment.flags
        let ack = segment.acknowledgmentNumber
        if flags.contains(.ack) {
            // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit is set)."
            if ack <= iss || ack > sndMax {
                if !flags.contains(.rst) {
                    outgoingReset = ResetReply(
                        remote: remoteAddress, localPort: localPort, remotePort: remotePort, sequence: ack,
                        acknowledgment: nil)
                }
                return
            }
        }
        if flags.contains(.rst) {
            // Acceptable only with an ACK of our SYN: "connection reset" → refused.
            if flags.contains(.ack) { fail(.connectionRefused, sendReset: false) }
            return
        }
        guard flags.contains(.syn) else { return }
        irs = segment.sequenceNumber
        rcvNxt = irs + 1
        rcvAdvertisedEdge = rcvNxt
        applyPeerOptions(segment)
        lastReceiveAt = now
        if flags.contains(.ack) {
            // Our SYN is acknowledged: ESTABLISHED.
            if timing, retransmitCount == 0 { sampleRTT(now - timedAt) }
            timing = false
            sndUna = ack
            if sndNxt < sndUna { sndNxt = sndUna }
            rtoDeadline = nil
            retransmitCount = 0
            retransmitStart = nil
            sndWnd = UInt32(segment.window)
            maxSndWnd = sndWnd
            sndWl1 = segment.sequenceNumber
            sndWl2 = ack
            state = finQueued ? .finWait1 : .established
            connectDeadline = nil
            ackNow = true
            initialWindow()
            events.insert(.connected)
        } else {
            // Simultaneous open (RFC 9293 MUST-10): SYN-RECEIVED, send SYN,ACK.
            state = .synReceived
            sndNxt = iss
            sndWnd = UInt32(segment.window)
            sndWl1 = segment.sequenceNumber
        }
    }

    /// MSS from a SYN (RFC 9293 §3.7.1: 536 when absent), honoured as the peer sent it and
    /// capped by our own MTU − 40: no floor, since a floor above either would send segments
    /// that do not fit one of the two lines (a peer on a 68-byte MTU asks for 28).
    mutating func applyPeerOptions(_ segment: TCPHeader) {
        let peerMSS = Int(segment.maximumSegmentSize ?? 536)
        sendMSS = max(min(peerMSS, receiveMSS), 1)
        // RFC 2018 §2: SACK only when both SYNs carry SACK-permitted.
        sackEnabled = options.selectiveAcknowledgments && segment.sackPermitted
    }

    /// RFC 5681 §3.1 initial window: 4 segments up to MSS 1095, 3 up to 2190, else 2.
    mutating func initialWindow() {
        let segments = sendMSS > 2190 ? 2 : (sendMSS > 1095 ? 3 : 4)
        cwnd = segments * sendMSS
        ssthresh = Int.max / 2
    }

    /// Consumes a FIN once RCV.NXT reaches it (RFC 9293 §3.10.7.4, "eighth").
    mutating func consumeFinIfReady(now: Int64) {
        guard let fin = pendingFin, fin == rcvNxt, !finReceived else { return }
        pendingFin = nil
        finReceived = true
        rcvNxt = rcvNxt + 1
        ackNow = true
        events.insert(.readable)
        switch state {
        case .synReceived, .established:
            state = .closeWait
        case .finWait1:
            if finAcknowledged { enterTimeWait(now: now) } else { state = .closing }
        case .finWait2:
            enterTimeWait(now: now)
        default:
            break
        }
    }

    /// Segment text in ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2. Returns false when the tail of the
    /// segment did not fit (so a FIN after it must wait for a retransmission).
    mutating func receiveText(seq: SequenceNumber, payload: UnsafeRawBufferPointer, now: Int64) -> Bool {
        var data = payload
        var offset = Int(rcvNxt.distance(to: seq))
        if offset < 0 {
            // Already received in part: trim the front.
            let skip = min(-offset, data.count)
            data = UnsafeRawBufferPointer(rebasing: data[skip...])
            offset = 0
        }
        let room = receiveBuffer.free - offset
        var tailAccepted = true
        if data.count > room {
            tailAccepted = false
            data = UnsafeRawBufferPointer(rebasing: data[0..<max(room, 0)])
        }
        guard !data.isEmpty else {
            ackNow = true
            return tailAccepted
        }
        if offset == 0 {
            let hadHoles = !assembler.isEmpty
            receiveBuffer.write(at: 0, data)
            let contiguous = assembler.advance(inOrder: data.count)
            receiveBuffer.commit(contiguous)
            rcvNxt = rcvNxt.advanced(by: contiguous)
            events.insert(.readable)
            // RFC 9293 §3.8.6.3 / RFC 5681 §4.2: ACK at least every second full segment, and at
            // once when a hole was filled (the sender is in recovery and waits for this).
            unackedSegments += 1
            if hadHoles || unackedSegments >= 2 || options.ackDelay.value == 0 {
                ackNow = true
            } else if ackDeadline == nil {
                ackDeadline = now + options.ackDelay.value
            }
        } else {
            // Out of order: hold it if the run table allows, and send a duplicate ACK at once
            // (RFC 5681 §4.2) so the sender can fast-retransmit.
            if assembler.add(start: offset, end: offset + data.count) {
                receiveBuffer.write(at: offset, data)
                lastOutOfOrder = rcvNxt.advanced(by: offset)
            } else {
                outOfOrderDroppedDelta += 1
                tailAccepted = false
            }
            ackNow = true
        }
        return tailAccepted
    }
}
