import GenTCPCore
import GenTCPWire

/// What an acknowledgment does: RTT samples (RFC 6298), the ACK field, congestion control (RFC
/// 5681, 6582), SACK and RACK loss detection (RFC 6675, 8985).
extension Connection {
    /// RFC 6298 §2.2–2.3, in milliseconds, with SRTT×8 and RTTVAR×4 kept as integers.
    mutating func sampleRTT(_ measured: Int64) {
        let r = max(measured, 0)
        if !hasRTTSample {
            srtt8 = r * 8
            rttvar4 = r * 2
            hasRTTSample = true
        } else {
            let delta = r - srtt8 / 8
            srtt8 += delta
            rttvar4 += (delta < 0 ? -delta : delta) - rttvar4 / 4
        }
        // RTO = SRTT + max(G, K·RTTVAR) with G = 1 ms, K = 4.
        rto = clampRTO(srtt8 / 8 + max(1, rttvar4))
    }

    /// The ACK field of a segment in a synchronized state (or the one completing SYN-RECEIVED).
    mutating func processAcknowledgment(_ segment: TCPHeader, payloadLength: Int, now: Int64) {
        let ack = segment.acknowledgmentNumber
        let seq = segment.sequenceNumber
        let oldWindow = sndWnd
        if sndUna < ack {
            let acked = Int(sndUna.distance(to: ack))
            // RTT sample (Karn: only segments sent once are timed; see emit).
            if timing, timedSequence <= ack {
                sampleRTT(now - timedAt)
                timing = false
            }
            // Drop acknowledged bytes from the send buffer (SYN and FIN are not in it).
            let dataAcked = min(max(Int(sendStart.distance(to: ack)), 0), sendBuffer.count)
            if dataAcked > 0 {
                sendBuffer.discard(dataAcked)
                sendStart = sendStart.advanced(by: dataAcked)
                if wantWritable, isWritable {
                    wantWritable = false
                    events.insert(.writable)
                }
            }
            deliverAcknowledged(upTo: ack, now: now)
            scoreboard.clearProbes()
            sndUna = ack
            if sndNxt < sndUna { sndNxt = sndUna }
            retransmitCount = 0
            retransmitStart = nil
            // The path delivers again: drop the timeout back-off now rather than at the next RTT
            // sample (Karn's rule keeps retransmitted segments from giving one). On a serial line
            // the round trip does not drift while a loss is repaired; a backed-off timer would
            // only make the next lost retransmission cost more.
            rto = hasRTTSample ? clampRTO(srtt8 / 8 + max(1, rttvar4)) : clampRTO(options.initialRTO.value)
            congestionOnNewAck(acked: acked, ack: ack)
            // RFC 6298 §5.2/§5.3: stop the timer when all is acknowledged, else restart it.
            rtoDeadline = sndUna == sndMax ? nil : now + rto
        } else if ack == sndUna, payloadLength == 0, !segment.flags.contains(.syn), !segment.flags.contains(.fin),
                  UInt32(segment.window) == oldWindow, sndMax != sndUna {
            congestionOnDuplicateAck()
        }
        if sackEnabled, !segment.sackBlocks.isEmpty {
            processSACK(segment.sackBlocks, now: now)
        }
        detectLosses(now: now)
        // Window update (RFC 9293 §3.10.7.4): only from a segment newer than the last one used.
        if sndWl1 < seq || (sndWl1 == seq && sndWl2 <= ack) {
            sndWnd = UInt32(segment.window)
            maxSndWnd = max(maxSndWnd, sndWnd)
            sndWl1 = seq
            sndWl2 = ack
            if sndWnd > 0, oldWindow == 0 {
                persistDeadline = nil
                persistInterval = 0
            }
        }
        // RFC 1122 §4.2.2.17: while the peer answers our zero-window probes, the connection
        // MUST NOT be dropped. A probe's byte lies beyond the window and is retransmitted on
        // the RTO like data, so an acceptable ACK that keeps the window shut restarts the
        // retransmission count and the user timeout (as Linux clears its probe count on any
        // ACK); only a silent peer runs them out.
        if sndWnd == 0, ack == sndUna, sndMax != sndUna {
            retransmitCount = 0
            retransmitStart = nil
        }
    }

    /// RFC 5681 §3.1 slow start and congestion avoidance, RFC 6582 §3.2 steps 3 and 4.
    private mutating func congestionOnNewAck(acked: Int, ack: SequenceNumber) {
        duplicateAcks = 0
        if inRecovery {
            if ack >= recover {
                // Full acknowledgment: deflate to min(ssthresh, FlightSize + SMSS) and leave.
                inRecovery = false
                if !congestionFree { cwnd = min(ssthresh, max(flightSize, 0) + sendMSS) }
            } else {
                // Partial acknowledgment. Without SACK (RFC 6582): resend the next hole, deflate
                // by what was acked, add back one SMSS if at least one was acked. With SACK the
                // scoreboard and RACK find the holes, and pipe already left out what was acked.
                if !sackEnabled {
                    markFirstHoleLost()
                    retransmitFirst = true
                    if !congestionFree {
                        cwnd = max(cwnd - acked, 0) + (acked >= sendMSS ? sendMSS : 0)
                        cwnd = max(cwnd, sendMSS)
                    }
                }
            }
            return
        }
        if cwnd < ssthresh {
            cwnd += min(acked, sendMSS)
        } else {
            cwnd += max(1, sendMSS * sendMSS / max(cwnd, 1))
        }
        // Beyond what the send buffer can fill, a bigger cwnd means nothing.
        cwnd = min(cwnd, max(sendBuffer.capacity, 0) + 4 * sendMSS)
    }

    /// Without SACK: deems the segment at SND.UNA lost (RFC 6582 §3.2), and on a dedicated link
    /// the one after it too.
    ///
    /// Deviation, dedicated link only: a receiver that delays the ACK for a segment filling a
    /// gap, against RFC 5681 §4.2's SHOULD, answers a lone retransmission only when its
    /// delayed-ACK timer runs (lwIP 2.1: `tcp_ack` on in-order data, its fast timer every
    /// 250 ms, unless the filled gap frees `TCP_WND_UPDATE_THRESHOLD`). With the send buffer full
    /// behind the hole nothing else is in flight to draw that ACK, and every hole costs up to a
    /// quarter second. A second segment makes any receiver answer at once: held out of order it
    /// is a duplicate (immediate ACK, RFC 5681 §4.2), next in order it is the second full
    /// segment (RFC 9293 §3.8.6.3). On a damaged line the segment after a hole is itself lost
    /// as often as any, so the copy is rarely wasted; and nothing queues on the link.
    mutating func markFirstHoleLost() {
        if !scoreboard.isEmpty, !scoreboard[0].lost { scoreboard[0].lost = true }
        if congestionFree, !sackEnabled, scoreboard.count > 1, !scoreboard[1].lost, !scoreboard[1].sacked {
            scoreboard[1].lost = true
        }
    }

    /// RFC 5681 §3.2 and RFC 6582 §3.2 steps 1 and 2: the third duplicate ACK deems the segment
    /// at SND.UNA lost.
    private mutating func congestionOnDuplicateAck() {
        duplicateAcks += 1
        if inRecovery {
            // NewReno inflation: each duplicate ACK says a segment left the network. With SACK
            // the scoreboard's pipe already counts that.
            if !sackEnabled, !congestionFree { cwnd += sendMSS }
            return
        }
        guard duplicateAcks == 3, !scoreboard.isEmpty, !scoreboard[0].sacked else { return }
        if enterRecovery() { markFirstHoleLost() }
    }

    /// Starts fast recovery after a loss found by ACKs: halve (RFC 5681 §3.2 step 2, RFC 6675
    /// §5 step 4.2) and send the oldest lost segment at once. Only when the ACKs have passed
    /// `recover` (RFC 6582 §3.2 step 2): losses among segments sent before the last reduction
    /// belong to that episode and are repaired without halving again. Returns false then.
    @discardableResult
    private mutating func enterRecovery() -> Bool {
        guard !inRecovery, sndUna >= recover else { return false }
        recover = sndMax
        inRecovery = true
        if !congestionFree {
            ssthresh = max(flightSize / 2, 2 * sendMSS)
            cwnd = sackEnabled ? ssthresh : ssthresh + 3 * sendMSS
        }
        retransmitFirst = true
        timing = false
        return true
    }

    /// Drops the segments a cumulative ACK covers from the scoreboard (trimming one it covers
    /// in part), learning RACK's delivery order and round trip from them.
    /// The newest segment sent once among them gives an RTT sample (RFC 6298 §3, Karn: never
    /// a retransmitted one), one per ACK, as RFC 7323 §4 times every ACK with timestamps; but
    /// toward a peer without SACK, none when the ACK also covers a retransmitted segment: that
    /// ACK may have been sent for the retransmission, and the segments after it, held by the
    /// receiver out of order, were sent long before. Their send times measured the repair of
    /// every hole, not the path (against lwIP on a lossy line SRTT grew to seconds and the RTO
    /// to its ceiling). Linux skips the sample likewise (`FLAG_RETRANS_DATA_ACKED`). With SACK the
    /// held segments were SACKed and give no sample here anyway; skipping the rest too only cost
    /// samples there (two stacks at 0.1 % loss, MTU 1006: download 0.34 → 0.27 of the line), so
    /// the rule applies to peers without SACK.
    private mutating func deliverAcknowledged(upTo ack: SequenceNumber, now: Int64) {
        var sample: Int64?
        var coversRetransmission = false
        while !scoreboard.isEmpty {
            var segment = scoreboard[0]
            if segment.end <= ack {
                if !segment.sacked { rackDelivered(segment, now: now) }
                if !sackEnabled, segment.retransmitted { coversRetransmission = true }
                if !segment.retransmitted, !segment.sacked { sample = now - segment.sentAt }
                scoreboard.removeFirst()
            } else {
                if !sackEnabled, segment.start < ack, segment.retransmitted { coversRetransmission = true }
                if coversRetransmission { sample = nil }
                if let sample { sampleRTT(sample) }
                if segment.start < ack {
                    let covered = Int(segment.start.distance(to: ack))
                    segment.start = ack
                    segment.length -= covered
                    scoreboard[0] = segment
                }
                return
            }
        }
        if coversRetransmission { sample = nil }
        if let sample { sampleRTT(sample) }
    }

    /// Marks the segments SACK blocks cover (RFC 2018 §3). Blocks outside SND.UNA..SND.MAX (a
    /// D-SACK, RFC 2883, or a bogus one) are ignored. The newest newly SACKed segment sent once
    /// gives an RTT sample, as a cumulative ACK would (Linux times SACKed segments too): on a
    /// lossy line most segments are SACKed long before SND.UNA reaches them.
    private mutating func processSACK(_ blocks: TCPSACKBlocks, now: Int64) {
        var sample: Int64?
        var newest: UInt32 = 0
        var progressed = false
        defer {
            if let sample { sampleRTT(sample) }
            if progressed { scoreboard.clearProbes() }
        }
        for block in blocks {
            guard sndUna < block.left, block.left < block.right, block.right <= sndMax else { continue }
            var i = 0
            while i < scoreboard.count {
                var segment = scoreboard[i]
                if segment.start >= block.right { break }
                if !segment.sacked, block.left <= segment.start, segment.end <= block.right {
                    segment.sacked = true
                    segment.lost = false
                    scoreboard[i] = segment
                    progressed = true
                    rackDelivered(segment, now: now)
                    if !segment.retransmitted, sample == nil || Int32(bitPattern: segment.order &- newest) > 0 {
                        sample = now - segment.sentAt
                        newest = segment.order
                    }
                }
                i += 1
            }
        }
    }

    /// RFC 8985 §6.2 step 2: remembers the most recently sent segment known delivered. A
    /// retransmitted segment acknowledged sooner than the smallest round trip was delivered by
    /// its first transmission, which says nothing about the later one.
    private mutating func rackDelivered(_ segment: SentSegment, now: Int64) {
        let rtt = now - segment.sentAt
        if segment.retransmitted {
            guard minRTT != .max, rtt >= minRTT else { return }
        } else {
            minRTT = min(minRTT, max(rtt, 0))
        }
        if !hasRack || Int32(bitPattern: segment.order &- rackOrder) > 0 {
            hasRack = true
            rackOrder = segment.order
            rackRTT = max(rtt, 0)
        }
    }

    /// RACK's reordering allowance (RFC 8985 §6.2 step 4): a quarter of the smallest round trip,
    /// at least 1 ms.
    private var reorderingAllowance: Int64 {
        max(1, (minRTT == .max ? 0 : minRTT) / 4)
    }

    /// How long a retransmission may go unacknowledged before it is deemed lost again: two
    /// smoothed round trips plus a quarter of the smallest (RFC 8985 §7.2's PTO with RACK's
    /// allowance). Nil before the first RTT sample.
    @inline(__always)
    var retransmissionProbeInterval: Int64? {
        guard hasRTTSample else { return nil }
        return max(2 * (srtt8 / 8), 2) + reorderingAllowance
    }

    /// Loss detection by time, after each ACK and on its own timer.
    ///
    /// RACK (RFC 8985 §6.2 step 5): a segment sent before one that was delivered, and
    /// outstanding for longer than that one's round trip plus a reordering allowance, is lost.
    /// The allowance is a quarter of the smallest round trip, none once in recovery or with
    /// three segments SACKed (as RFC 8985 §6.2 step 4 without D-SACK). It needs SACK: peers
    /// without it report only cumulative ACKs.
    ///
    /// A retransmission unacknowledged after two smoothed round trips is lost again, and goes
    /// once more ahead of the congestion window, as RACK's tail loss probe would (RFC 8985 §7,
    /// PTO = 2·SRTT). When the window is full of held data nothing sent later can show it lost,
    /// and waiting for the RTO would also collapse the window and resend what is still on its
    /// way. A hole retransmitted onto a lossy line is lost as often as the first copy was. Each
    /// segment is probed once until an ACK shows progress, so a silent peer sees one extra
    /// segment and then only the RTO's backed-off retransmissions.
    mutating func detectLosses(now: Int64) {
        guard !scoreboard.isEmpty, state.isSynchronized else {
            rackDeadline = nil
            return
        }
        let allowance: Int64 = inRecovery || scoreboard.sackedCount >= 3 ? 0 : reorderingAllowance
        let probeAfter = retransmissionProbeInterval
        var found = false
        var probe = false
        var next: Int64?
        for i in 0..<scoreboard.count {
            var segment = scoreboard[i]
            guard !segment.sacked, !segment.lost else { continue }
            var due: Int64?
            var byProbe = false
            if sackEnabled, hasRack, Int32(bitPattern: rackOrder &- segment.order) > 0 {
                due = segment.sentAt + rackRTT + allowance
            }
            if segment.retransmitted, !segment.probed, let probeAfter, due.map({ segment.sentAt + probeAfter < $0 }) ?? true {
                due = segment.sentAt + probeAfter
                byProbe = true
            }
            guard let due else { continue }
            if due <= now {
                segment.lost = true
                if byProbe {
                    segment.probed = true
                    probe = true
                }
                scoreboard[i] = segment
                found = true
            } else if next.map({ due < $0 }) ?? true {
                next = due
            }
        }
        rackDeadline = next
        if found { enterRecovery() }
        if probe { retransmitFirst = true }
    }
}
