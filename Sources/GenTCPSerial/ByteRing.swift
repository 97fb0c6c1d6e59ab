/// A fixed-capacity FIFO of bytes (a ring buffer): the bounded buffers of ``MemoryLink``.
struct ByteRing: Sendable {
    private var storage: [UInt8]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        storage = [UInt8](repeating: 0, count: max(1, capacity))
    }

    var capacity: Int { storage.count }
    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count == storage.count }
    var room: Int { storage.count - count }

    /// Appends one byte; the caller checks ``isFull`` first.
    mutating func append(_ byte: UInt8) {
        precondition(count < storage.count, "ByteRing overflow")
        storage[(head + count) % storage.count] = byte
        count += 1
    }

    /// Appends as many of `bytes` as fit; returns how many.
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let n = min(room, bytes.count)
        for i in 0..<n { append(bytes[i]) }
        return n
    }

    /// Removes and returns the first byte.
    mutating func removeFirst() -> UInt8? {
        guard count > 0 else { return nil }
        let byte = storage[head]
        head = (head + 1) % storage.count
        count -= 1
        return byte
    }

    /// Moves up to `buffer.count` bytes out into `buffer`; returns how many.
    mutating func remove(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(count, buffer.count)
        for i in 0..<n {
            buffer[i] = storage[head]
            head = (head + 1) % storage.count
        }
        count -= n
        return n
    }

    mutating func removeAll() {
        head = 0
        count = 0
    }
}
