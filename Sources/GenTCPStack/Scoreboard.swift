import GenTCPWire

/// One segment in flight: the sequence numbers it covers (a FIN counts one), when and in which
/// order it was last sent, and what the peer told us about it.
struct SentSegment {
    var start: SequenceNumber
    /// Sequence numbers covered, FIN included.
    var length: Int
    /// When it was last (re)transmitted.
    var sentAt: Int64
    /// Transmission order of the last (re)transmission: later sends have larger values, so
    /// "sent after" is exact even within one millisecond (RFC 8985 §6.1 compares send times).
    var order: UInt32
    /// Covered by a SACK block (RFC 2018): the peer holds it out of order.
    var sacked = false
    /// Deemed lost and not yet sent again: it no longer counts as in flight (RFC 6675 "pipe").
    var lost = false
    /// Deemed lost by a retransmission timeout (rather than by ACKs).
    var lostByTimeout = false
    /// Sent more than once: its ACK says nothing sure about when it arrived (Karn).
    var retransmitted = false
    /// Already sent again once because its retransmission went unanswered for a probe
    /// interval; only the RTO repeats it until ACKs show the path delivers.
    var probed = false

    var end: SequenceNumber { start.advanced(by: length) }
}

/// The segments in flight, oldest first, in a ring of fixed capacity allocated when the
/// connection opens. The sender's half of SACK loss recovery (RFC 6675) and RACK (RFC 8985):
/// each segment keeps its send time and order, and what SACK blocks covered. A full ring holds
/// back new data until ACKs free slots; retransmissions never need a slot.
struct SendScoreboard {
    private var slots: [SentSegment]
    private var head = 0
    private(set) var count = 0
    /// Segments the ring holds, at most its storage's (see ``reuse(capacity:)``). 0 for the
    /// empty scoreboard of a free slot, which holds no storage (and is always full).
    private(set) var capacity: Int

    init(capacity: Int) {
        let capacity = max(capacity, 0)
        slots = capacity == 0 ? []
            : [SentSegment](
                repeating: SentSegment(start: SequenceNumber(0), length: 0, sentAt: 0, order: 0), count: capacity)
        self.capacity = capacity
    }

    /// Segments of storage held.
    var storageSize: Int { slots.count }

    /// Empties the ring and makes it hold `capacity` segments (at most ``storageSize``), on the
    /// same storage.
    mutating func reuse(capacity: Int) {
        head = 0
        count = 0
        self.capacity = min(max(capacity, 0), slots.count)
    }

    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count == capacity }

    subscript(index: Int) -> SentSegment {
        get { slots[(head + index) % capacity] }
        set { slots[(head + index) % capacity] = newValue }
    }

    /// Records a segment sent at the right edge. False when the ring is full.
    @discardableResult
    mutating func append(_ segment: SentSegment) -> Bool {
        guard count < capacity else { return false }
        slots[(head + count) % capacity] = segment
        count += 1
        return true
    }

    /// Removes the front segment.
    mutating func removeFirst() {
        guard count > 0 else { return }
        head = (head + 1) % capacity
        count -= 1
    }

    mutating func removeAll() {
        head = 0
        count = 0
    }

    /// Index of the oldest segment deemed lost and not SACKed, if any.
    var firstLost: Int? {
        var i = 0
        while i < count {
            let s = self[i]
            if s.lost, !s.sacked { return i }
            i += 1
        }
        return nil
    }

    /// RFC 6675 "pipe": sequence numbers sent and still thought to be in the network (neither
    /// SACKed nor deemed lost).
    var pipe: Int {
        var total = 0
        var i = 0
        while i < count {
            let s = self[i]
            if !s.sacked, !s.lost { total += s.length }
            i += 1
        }
        return total
    }

    /// ACKs arrived: every segment may be probed again.
    mutating func clearProbes() {
        var i = 0
        while i < count {
            self[i].probed = false
            i += 1
        }
    }

    /// SACKed segments.
    var sackedCount: Int {
        var total = 0
        var i = 0
        while i < count {
            if self[i].sacked { total += 1 }
            i += 1
        }
        return total
    }
}
