import GenTCPWire

/// Out-of-order bookkeeping for one receive ring: up to `capacity` disjoint runs of bytes that
/// arrived ahead of RCV.NXT, as offsets from RCV.NXT. The bytes themselves sit in the ring's
/// free part at those offsets; nothing is copied when a hole fills.
///
/// A segment that would need more runs than the table holds is dropped; the sender resends it.
struct Assembler {
    private var starts: [Int]
    private var ends: [Int]
    private(set) var count = 0
    /// Runs the table holds, at most its storage's (see ``reuse(capacity:)``).
    private(set) var capacity: Int

    init(capacity: Int) {
        starts = [Int](repeating: 0, count: max(capacity, 0))
        ends = [Int](repeating: 0, count: max(capacity, 0))
        self.capacity = max(capacity, 0)
    }

    /// Runs of storage held.
    var storageSize: Int { starts.count }

    /// Empties the table and makes it hold `capacity` runs (at most ``storageSize``), on the
    /// same storage.
    mutating func reuse(capacity: Int) {
        count = 0
        self.capacity = min(max(capacity, 0), starts.count)
    }

    var isEmpty: Bool { count == 0 }

    /// Records `start ..< end` (offsets from RCV.NXT, start > 0). Returns false, changing
    /// nothing, when the table is full and the run would need a new entry.
    mutating func add(start: Int, end: Int) -> Bool {
        guard start < end else { return true }
        // Find the first run that ends at or after `start` (touching runs merge).
        var i = 0
        while i < count, ends[i] < start { i += 1 }
        // Runs i..<j overlap or touch the new one.
        var j = i
        var newStart = start
        var newEnd = end
        while j < count, starts[j] <= end {
            newStart = min(newStart, starts[j])
            newEnd = max(newEnd, ends[j])
            j += 1
        }
        let merged = j - i
        if merged == 0 {
            guard count < capacity else { return false }
            var k = count
            while k > i {
                starts[k] = starts[k - 1]
                ends[k] = ends[k - 1]
                k -= 1
            }
            starts[i] = start
            ends[i] = end
            count += 1
            return true
        }
        starts[i] = newStart
        ends[i] = newEnd
        // Close the gap left by the runs folded into entry i.
        let removed = merged - 1
        if removed > 0 {
            var k = i + 1
            while k + removed < count {
                starts[k] = starts[k + removed]
                ends[k] = ends[k + removed]
                k += 1
            }
            count -= removed
        }
        return true
    }

    /// In-order data of `length` bytes has been written at offset 0. Returns how many bytes are
    /// now contiguous from RCV.NXT (at least `length`) and rebases the table on the new RCV.NXT.
    mutating func advance(inOrder length: Int) -> Int {
        var front = length
        var drop = 0
        while drop < count, starts[drop] <= front {
            front = max(front, ends[drop])
            drop += 1
        }
        var k = 0
        while k + drop < count {
            starts[k] = starts[k + drop] - front
            ends[k] = ends[k + drop] - front
            k += 1
        }
        count -= drop
        return front
    }

    /// The runs, as (start, end) offsets from RCV.NXT, for SACK blocks or tests.
    func run(_ index: Int) -> (start: Int, end: Int) {
        (starts[index], ends[index])
    }

    /// The runs as SACK blocks on sequence numbers from `base` (RCV.NXT): the run holding
    /// offset `latest` (the most recent out-of-order segment) first, then the others from the
    /// lowest (RFC 2018 §4); as many as the option can carry, at most `limit`.
    func sackBlocks(base: SequenceNumber, latest: Int, limit: Int) -> TCPSACKBlocks {
        var blocks = TCPSACKBlocks()
        guard limit > 0 else { return blocks }
        var first = -1
        for i in 0..<count where starts[i] <= latest && latest < ends[i] { first = i }
        if first >= 0 {
            blocks.append(TCPSACKBlock(left: base.advanced(by: starts[first]), right: base.advanced(by: ends[first])))
        }
        for i in 0..<count where i != first {
            guard blocks.count < limit,
                  blocks.append(TCPSACKBlock(left: base.advanced(by: starts[i]), right: base.advanced(by: ends[i])))
            else { break }
        }
        return blocks
    }
}
