import GenTCPCore
import GenTCPWire

/// Events a connection raised since the stack last looked.
struct ConnectionEvents: OptionSet {
    var rawValue: UInt8
    static let connected = ConnectionEvents(rawValue: 1)
    static let acceptable = ConnectionEvents(rawValue: 2)
    static let readable = ConnectionEvents(rawValue: 4)
    static let writable = ConnectionEvents(rawValue: 8)
    static let failed = ConnectionEvents(rawValue: 16)
    static let finished = ConnectionEvents(rawValue: 32)
}

/// A RST the stack must send on a connection's behalf (the connection may be gone by then).
struct ResetReply {
    var remote: IPv4Address
    var localPort: UInt16
    var remotePort: UInt16
    var sequence: SequenceNumber
    /// Set for <SEQ=..><ACK=..><CTL=RST,ACK>.
    var acknowledgment: SequenceNumber?
}

/// One TCP connection (RFC 9293): its state, buffers and timers. Fed segments and `now` by the
/// ``Stack``; asked for one segment at a time by ``emit(now:into:local:)``.
struct Connection {
    // MARK: slot
    var inUse = false
    var generation: UInt16 = 0
    /// The application holds a handle (false for not-yet-accepted and closed-by-app connections).
    var owned = false
    /// Listener slot of a connection not yet accepted, or -1.
    var listener = -1
    var acceptOrder: UInt32 = 0
    /// The application called close: data arriving now is answered with RST (RFC 9293 §3.10.7.4
    /// via RFC 1122 §4.2.2.13).
    var applicationClosed = false

    var state = TCPState.closed
    var options = ConnectionOptions()
    var localPort: UInt16 = 0
    var remotePort: UInt16 = 0
    var remoteAddress = IPv4Address.any
    var error: TCPError?

    // MARK: send sequence space (RFC 9293 §3.3.1)
    var sendBuffer = ByteRing(capacity: 0)
    /// The sequence number of the first byte in ``sendBuffer``.
    var sendStart = SequenceNumber(0)
    var iss = SequenceNumber(0)
    var sndUna = SequenceNumber(0)
    var sndNxt = SequenceNumber(0)
    /// The highest sequence number sent so far (SND.NXT before a go-back-N rewind).
    var sndMax = SequenceNumber(0)
    var sndWnd: UInt32 = 0
    var maxSndWnd: UInt32 = 0
    var sndWl1 = SequenceNumber(0)
    var sndWl2 = SequenceNumber(0)
    /// shutdown(write) or close: a FIN follows the queued data.
    var finQueued = false
    /// Largest segment payload we send: min(peer's MSS, our MTU − 40), whatever their size.
    var sendMSS = 536
    /// Our MSS option value: MTU − 40.
    var receiveMSS = 536
    var wantWritable = false

    // MARK: congestion control (RFC 5681, RFC 6582)
    var cwnd = 0
    var ssthresh = Int.max / 2
    var duplicateAcks = 0
    var inRecovery = false
    var recover = SequenceNumber(0)
    /// The far end is the peer of a dedicated link: losses are damage, not congestion (see
    /// ``StackConfiguration/dedicatedLink``), so the window is never cut.
    var congestionFree = false
    /// Send the oldest lost segment once, whatever the congestion window (RFC 5681 §3.2 step 4,
    /// RFC 6675 §5 step 4.3).
    var retransmitFirst = false

    // MARK: loss detection (RFC 2018 SACK, RFC 6675, RFC 8985 RACK)
    /// The segments in flight, with send times and what SACK blocks covered.
    var scoreboard = SendScoreboard(capacity: 0)
    /// Both ends offered SACK-permitted in their SYNs.
    var sackEnabled = false
    /// Transmission counter: every (re)transmission takes the next value.
    var transmitCounter: UInt32 = 0
    /// RACK: the last-sent segment known delivered (its order and round trip), if any.
    var hasRack = false
    var rackOrder: UInt32 = 0
    var rackRTT: Int64 = 0
    /// Smallest round trip measured from a segment sent once.
    var minRTT = Int64.max
    /// RACK's reordering timer: segments sent before a delivered one become lost at this time.
    var rackDeadline: Int64?
    /// Receiver: where the most recent out-of-order segment began (its run goes first in the
    /// SACK option, RFC 2018 §4).
    var lastOutOfOrder = SequenceNumber(0)

    // MARK: RTO (RFC 6298)
    var srtt8: Int64 = 0
    var rttvar4: Int64 = 0
    var hasRTTSample = false
    var rto: Int64 = 1000
    var timing = false
    var timedSequence = SequenceNumber(0)
    var timedAt: Int64 = 0
    var rtoDeadline: Int64?
    var retransmitCount = 0
    var retransmitStart: Int64?

    // MARK: persist (zero window, RFC 9293 §3.8.6.1)
    var persistDeadline: Int64?
    var persistInterval: Int64 = 0
    var probePending = false

    // MARK: receive sequence space
    var receiveBuffer = ByteRing(capacity: 0)
    var assembler = Assembler(capacity: 0)
    var irs = SequenceNumber(0)
    var rcvNxt = SequenceNumber(0)
    /// RCV.NXT + the window last advertised: never moved left (RFC 9293 §3.8.6.2.2).
    var rcvAdvertisedEdge = SequenceNumber(0)
    /// The ACK number we sent last.
    var lastAcknowledged = SequenceNumber(0)
    /// The peer's FIN has been consumed (end of stream after the buffered bytes).
    var finReceived = false
    /// A FIN that arrived ahead of missing data.
    var pendingFin: SequenceNumber?

    // MARK: ACK policy (RFC 9293 §3.8.6.3)
    var ackNow = false
    var ackDeadline: Int64?
    var unackedSegments = 0

    // MARK: other timers
    var connectDeadline: Int64?
    var timeWaitDeadline: Int64?
    var lastReceiveAt: Int64 = 0
    var keepaliveProbes = 0
    var keepalivePending = false
    var keepaliveDeadline: Int64?

    // MARK: effects the stack collects
    var events = ConnectionEvents()
    var outgoingReset: ResetReply?
    var timeoutRetransmissionsDelta = 0
    var fastRetransmissionsDelta = 0
    var outOfOrderDroppedDelta = 0

    init() {}

    /// Sets up a fresh connection in `state` with buffers sized by `options`: on the slot's
    /// own storage when `preallocated` (the stack checked that `options` fit it), else newly
    /// allocated.
    ///
    /// Never inlined: the fresh `Connection()` it starts from is a temporary of the whole
    /// struct, which would otherwise sit in the frames of `connect` and `receiveOnListener`.
    @inline(never)
    mutating func open(
        state: TCPState, options: ConnectionOptions, localPort: UInt16, remote: IPv4Address,
        remotePort: UInt16, iss: SequenceNumber, mtu: Int, now: Int64, congestionFree: Bool = false,
        preallocated: Bool = false
    ) {
        let generation = self.generation
        var sendBuffer = ByteRing(capacity: 0)
        var receiveBuffer = ByteRing(capacity: 0)
        var assembler = Assembler(capacity: 0)
        var scoreboard = SendScoreboard(capacity: 0)
        if preallocated {
            // Take the storage out first, so that each buffer is uniquely held when reused.
            swap(&sendBuffer, &self.sendBuffer)
            swap(&receiveBuffer, &self.receiveBuffer)
            swap(&assembler, &self.assembler)
            swap(&scoreboard, &self.scoreboard)
            sendBuffer.reuse(capacity: options.sendBufferSize)
            receiveBuffer.reuse(capacity: options.receiveBufferSize)
            assembler.reuse(capacity: options.outOfOrderRuns)
            scoreboard.reuse(capacity: Connection.scoreboardCapacity(options))
        } else {
            sendBuffer = ByteRing(capacity: options.sendBufferSize)
            receiveBuffer = ByteRing(capacity: options.receiveBufferSize)
            assembler = Assembler(capacity: options.outOfOrderRuns)
            scoreboard = SendScoreboard(capacity: Connection.scoreboardCapacity(options))
        }
        self = Connection()
        self.generation = generation
        self.sendBuffer = sendBuffer
        self.receiveBuffer = receiveBuffer
        self.assembler = assembler
        self.scoreboard = scoreboard
        self.inUse = true
        self.state = state
        self.options = options
        self.localPort = localPort
        self.remoteAddress = remote
        self.remotePort = remotePort
        self.iss = iss
        self.sndUna = iss
        self.sndNxt = iss
        self.sndMax = iss
        self.sendStart = iss + 1
        self.recover = iss
        // Exactly what fits one datagram (20 bytes of IPv4 header, 20 of TCP; data segments
        // carry no options). No floor above it: at MTU 68 that is 28, and advertising more makes
        // a peer send segments the line cannot carry (dropped as too big, the transfer stalls).
        self.receiveMSS = max(mtu - 40, 1)
        self.sendMSS = min(536, receiveMSS)
        self.rto = clampRTO(options.initialRTO.value)
        self.lastReceiveAt = now
        self.congestionFree = congestionFree
    }

    /// Segments in flight at most: one per 128 bytes of send buffer (a full buffer of segments
    /// down to a quarter of the smallest common MSS), at least 16.
    static func scoreboardCapacity(_ options: ConnectionOptions) -> Int {
        max(16, options.sendBufferSize / 128 + 4)
    }

    @inline(__always)
    func clampRTO(_ value: Int64) -> Int64 {
        min(max(value, options.minimumRTO.value), options.maximumRTO.value)
    }

    // MARK: derived values
    //
    // The getters below that are not trivially inlined are `@inline(__always)`: a call to a
    // non-mutating getter from a mutating method passes `self` by value, and for this ~590-byte
    // struct that is a copy in the caller's frame (tools/stack-frames.sh shows it).

    /// Made by a listener for a SYN and still waiting for the handshake's last ACK.
    var isHalfOpen: Bool { listener >= 0 && state == .synReceived }

    /// Bytes in flight, SYN and FIN included.
    var flightSize: Int { Int(sndUna.distance(to: sndNxt)) }
    var finSequence: SequenceNumber { sendStart.advanced(by: sendBuffer.count) }
    var finAcknowledged: Bool { finQueued && sndUna == finSequence + 1 }

    /// The window we would advertise now, with receiver-side silly window avoidance
    /// (RFC 9293 §3.8.6.2.2): the right edge moves only by at least min(buffer / 2, MSS).
    ///
    /// While out-of-order data is held and RCV.NXT has not moved since the last ACK, the right
    /// edge stays where it was: the ACK then is a duplicate ACK by RFC 5681's definition (same
    /// window), which a sender without SACK needs three of to fast-retransmit. Growing the window
    /// because the application read in between would make the sender ignore them and wait for
    /// its RTO.
    @inline(__always)
    var windowToAdvertise: UInt32 {
        let free = UInt32(min(receiveBuffer.free, 0xFFFF))
        let promised = UInt32(max(0, Int(rcvNxt.distance(to: rcvAdvertisedEdge))))
        if !assembler.isEmpty, rcvNxt == lastAcknowledged { return min(promised, free) }
        let threshold = UInt32(min(receiveBuffer.capacity / 2, receiveMSS))
        if free >= promised + threshold || free == UInt32(min(receiveBuffer.capacity, 0xFFFF)) { return free }
        return min(promised, free)
    }

    /// The window last advertised had shrunk below half the buffer and can now grow by at least
    /// min(buffer / 2, MSS): worth a window update of its own (RFC 9293 §3.8.6.2.2). Not while
    /// out-of-order data is held (the window stays put then, see ``windowToAdvertise``).
    @inline(__always)
    var windowUpdateWorthwhile: Bool {
        guard assembler.isEmpty || rcvNxt != lastAcknowledged else { return false }
        let capacity = min(receiveBuffer.capacity, 0xFFFF)
        let free = min(receiveBuffer.free, 0xFFFF)
        let promised = max(0, Int(rcvNxt.distance(to: rcvAdvertisedEdge)))
        let threshold = min(receiveBuffer.capacity / 2, receiveMSS)
        return promised < capacity / 2 && free - promised >= threshold
    }

    /// shutdown(write) and close: queue a FIN after the data (RFC 9293 §3.10.4).
    mutating func beginClose() {
        guard !finQueued else { return }
        finQueued = true
        switch state {
        case .established: state = .finWait1
        case .closeWait: state = .lastAck
        default: break  // SYN-SENT / SYN-RECEIVED move on once established.
        }
    }

    var isReadable: Bool { receiveBuffer.count > 0 || finReceived || error != nil }
    @inline(__always)
    var isWritable: Bool {
        (state == .established || state == .closeWait) && !finQueued && sendBuffer.free > 0
    }

    // MARK: failures

    /// Ends the connection with `reason`, optionally sending RST <SEQ=SND.NXT><ACK=RCV.NXT>.
    mutating func fail(_ reason: TCPError?, sendReset: Bool) {
        if sendReset, state != .closed, state != .synSent, state != .listen {
            outgoingReset = ResetReply(
                remote: remoteAddress, localPort: localPort, remotePort: remotePort, sequence: sndNxt,
                acknowledgment: rcvNxt)
        }
        if let reason, error == nil {
            error = reason
            events.insert(.failed)
        }
        enterClosed()
    }

    mutating func enterClosed() {
        state = .closed
        rtoDeadline = nil
        ackDeadline = nil
        persistDeadline = nil
        connectDeadline = nil
        timeWaitDeadline = nil
        keepaliveDeadline = nil
        ackNow = false
        retransmitFirst = false
        probePending = false
        keepalivePending = false
        rackDeadline = nil
    }

    mutating func enterTimeWait(now: Int64) {
        state = .timeWait
        rtoDeadline = nil
        rackDeadline = nil
        persistDeadline = nil
        keepaliveDeadline = nil
        timeWaitDeadline = now + options.timeWait.value
        events.insert(.finished)
    }
}
