/// Bytes a socket read from its connection and has not delivered yet: what an exact `recv` read
/// past its length (at most `buffer` bytes), or a timed-out exact `recv`'s partial data. Taken
/// from the front without moving what stays: a `recv(4)` on a 64 KiB read-ahead costs four
/// bytes' copy, not 64 KiB's.
package struct Stash {
    private var bytes: [UInt8] = []
    /// Where the undelivered bytes start in `bytes`.
    private var head = 0
    /// How many of the last bytes were read ahead, past any request (the rest were part of a
    /// `recv` that stopped waiting). Read-ahead bytes stand for bytes the kernel would still
    /// hold, had the socket read only what it was asked for.
    package private(set) var readAhead = 0

    /// Holds nothing.
    package init() {}

    /// True when every byte held was read ahead (or none is held).
    package var isAllReadAhead: Bool { readAhead == count }

    package var isEmpty: Bool { head == bytes.count }
    package var count: Int { bytes.count - head }

    /// Moves up to `limit` bytes into `data[offset...]` (which must have the room); returns how
    /// many.
    package mutating func take(upTo limit: Int, into data: inout [UInt8], at offset: Int) -> Int {
        let n = min(limit, count)
        guard n > 0 else { return 0 }
        data.withUnsafeMutableBufferPointer { to in
            bytes.withUnsafeBufferPointer { from in
                UnsafeMutableRawPointer(to.baseAddress! + offset)
                    .copyMemory(from: from.baseAddress! + head, byteCount: n)
            }
        }
        consume(n)
        return n
    }

    /// Takes up to `limit` bytes as an array of their own.
    package mutating func take(upTo limit: Int) -> [UInt8] {
        let n = min(limit, count)
        if head == 0 && n == bytes.count {
            defer { removeAll() }
            return bytes
        }
        let chunk = Array(bytes[head..<head + n])
        consume(n)
        return chunk
    }

    /// Takes everything.
    package mutating func takeAll() -> [UInt8] { take(upTo: count) }

    /// Puts `data[range]` in front of what is held (a `recv` that stops waiting gives back what
    /// it gathered).
    package mutating func putBack(_ data: [UInt8], _ range: Range<Int>) {
        guard !range.isEmpty else { return }
        if isEmpty { readAhead = 0 }
        var joined = [UInt8]()
        joined.reserveCapacity(range.count + count)
        joined.append(contentsOf: data[range])
        joined.append(contentsOf: bytes[head...])
        bytes = joined
        head = 0
    }

    /// Holds `whole[start..<end]`, taking `whole`'s storage (left empty; the stash must be empty):
    /// the bytes an exact `recv` read past its length, when they are more than it delivers.
    package mutating func adopt(_ whole: inout [UInt8], from start: Int, to end: Int) {
        precondition(isEmpty && start <= end && end <= whole.count)
        bytes = []
        swap(&bytes, &whole)
        if end < bytes.count { bytes.removeSubrange(end...) }
        head = start
        readAhead = count
        if head == bytes.count { removeAll() }
    }

    /// Holds `data[range]`, read past a request (the stash must be empty).
    package mutating func keepReadAhead(_ data: [UInt8], _ range: Range<Int>) {
        precondition(isEmpty)
        putBack(data, range)
        readAhead = count
    }

    /// Drops everything (and the storage).
    package mutating func removeAll() {
        bytes = []
        head = 0
        readAhead = 0
    }

    private mutating func consume(_ n: Int) {
        head += n
        readAhead = min(readAhead, count)
        // Emptied: give the storage back, so an idle socket holds none.
        if head == bytes.count { removeAll() }
    }
}
