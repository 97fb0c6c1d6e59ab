/// A byte ring of fixed capacity, allocated once. Holds the queued bytes (``count``) at its
/// front; the free part after them can be written at an offset (out-of-order data) before it is
/// committed.
///
/// The storage may be larger than the ring in use (``reuse(capacity:)``): a slot preallocated
/// by ``StackConfiguration/preallocate`` keeps its storage across connections.
struct ByteRing {
    private var storage: [UInt8]
    private var head = 0
    private(set) var count = 0
    /// The ring's size in use, at most the storage's.
    private(set) var capacity: Int

    init(capacity: Int) {
        storage = [UInt8](repeating: 0, count: max(capacity, 0))
        self.capacity = max(capacity, 0)
    }

    /// Bytes of storage held (what a later ``reuse(capacity:)`` may use).
    var storageSize: Int { storage.count }

    /// Empties the ring and makes it `capacity` bytes (at most ``storageSize``) on the same
    /// storage: nothing is allocated.
    mutating func reuse(capacity: Int) {
        head = 0
        count = 0
        self.capacity = min(max(capacity, 0), storage.count)
    }

    var free: Int { capacity - count }

    /// Appends as much of `bytes` as fits; returns how many.
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let n = min(bytes.count, free)
        guard n > 0 else { return 0 }
        write(at: 0, UnsafeRawBufferPointer(rebasing: bytes[0..<n]))
        count += n
        return n
    }

    /// Writes `bytes` into the free part, `offset` bytes after the queued data, without queueing
    /// them. The caller guarantees `offset + bytes.count <= free`.
    mutating func write(at offset: Int, _ bytes: UnsafeRawBufferPointer) {
        let cap = capacity
        guard cap > 0, !bytes.isEmpty else { return }
        var start = (head + count + offset) % cap
        storage.withUnsafeMutableBytes { dst in
            var done = 0
            while done < bytes.count {
                let run = min(bytes.count - done, cap - start)
                dst.baseAddress!.advanced(by: start).copyMemory(
                    from: bytes.baseAddress!.advanced(by: done), byteCount: run)
                done += run
                start = 0
            }
        }
    }

    /// Queues `n` bytes already written at the front of the free part.
    mutating func commit(_ n: Int) {
        count += n
    }

    /// Copies `into.count` queued bytes starting `offset` bytes from the front.
    func copy(from offset: Int, into dst: UnsafeMutableRawBufferPointer) {
        let cap = capacity
        guard cap > 0, !dst.isEmpty else { return }
        var start = (head + offset) % cap
        storage.withUnsafeBytes { src in
            var done = 0
            while done < dst.count {
                let run = min(dst.count - done, cap - start)
                dst.baseAddress!.advanced(by: done).copyMemory(
                    from: src.baseAddress!.advanced(by: start), byteCount: run)
                done += run
                start = 0
            }
        }
    }

    /// Drops `n` bytes from the front.
    mutating func discard(_ n: Int) {
        let n = min(n, count)
        guard n > 0 else { return }
        head = (head + n) % capacity
        count -= n
        // `head` must not be reset when the ring empties: out-of-order bytes may sit in the free
        // part at offsets from `head + count`.
    }

    /// Moves up to `dst.count` bytes out of the front; returns how many.
    mutating func read(into dst: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(dst.count, count)
        copy(from: 0, into: UnsafeMutableRawBufferPointer(rebasing: dst[0..<n]))
        discard(n)
        return n
    }
}
