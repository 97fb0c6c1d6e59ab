/// A fixed-size first-in first-out queue of datagrams, each with its sender: the receive queue of
/// a gen_udp socket on the in-process drivers (the simulated network, the slip stack, the at
/// driver's copy of a module's datagrams).
///
/// Memory is fixed when the queue is made: `byteCapacity` bytes of payload in one ring and room
/// for `datagramCapacity` entries. A datagram that does not fit whole is dropped whole and counted
/// in ``dropped``; what is queued is never cut, merged or reordered. Embedded-safe.
public struct DatagramQueue: Sendable {
    struct Entry: Sendable {
        var source: SocketAddress
        var length: Int
    }

    private var storage: [UInt8]
    private var entries: [Entry]
    /// Index in `storage` of the first queued byte.
    private var byteHead = 0
    private var bytesUsed = 0
    /// Index in `entries` of the oldest datagram.
    private var entryHead = 0
    /// Queued datagrams.
    public private(set) var count = 0
    /// Datagrams refused because the queue was full (by bytes or by count), since it was made.
    public private(set) var dropped: UInt64 = 0

    /// An empty queue for `byteCapacity` bytes of payload (0 allowed: only empty datagrams fit) and
    /// `datagramCapacity` datagrams (at least 1).
    public init(byteCapacity: Int, datagramCapacity: Int) {
        storage = [UInt8](repeating: 0, count: max(0, byteCapacity))
        let slots = max(1, datagramCapacity)
        entries = [Entry](repeating: Entry(source: SocketAddress(.anyV4, port: 0), length: 0), count: slots)
    }

    /// The payload bytes the queue can hold.
    public var byteCapacity: Int { storage.count }
    /// The datagrams the queue can hold.
    public var datagramCapacity: Int { entries.count }
    /// Payload bytes queued now.
    public var byteCount: Int { bytesUsed }
    /// True when no datagram is queued.
    public var isEmpty: Bool { count == 0 }
    /// The length and sender of the oldest datagram, without taking it.
    public var first: (length: Int, source: SocketAddress)? {
        guard count > 0 else { return nil }
        let e = entries[entryHead]
        return (e.length, e.source)
    }

    /// True when a datagram of `length` bytes would be queued now.
    public func fits(_ length: Int) -> Bool {
        count < entries.count && length <= storage.count - bytesUsed
    }

    /// Queues one datagram; false (and ``dropped`` counts it) when it does not fit whole.
    @discardableResult
    public mutating func push(_ payload: UnsafeRawBufferPointer, from source: SocketAddress) -> Bool {
        let length = payload.count
        guard fits(length) else {
            dropped &+= 1
            return false
        }
        var tail = byteHead + bytesUsed
        if tail >= storage.count { tail -= storage.count }
        var offset = 0
        storage.withUnsafeMutableBytes { ring in
            while offset < length {
                let run = min(length - offset, ring.count - tail)
                ring.baseAddress!.advanced(by: tail).copyMemory(
                    from: payload.baseAddress!.advanced(by: offset), byteCount: run)
                offset += run
                tail += run
                if tail == ring.count { tail = 0 }
            }
        }
        bytesUsed += length
        var slot = entryHead + count
        if slot >= entries.count { slot -= entries.count }
        entries[slot] = Entry(source: source, length: length)
        count += 1
        return true
    }

    /// Queues one datagram held in an array; see ``push(_:from:)-(UnsafeRawBufferPointer,_)``.
    @discardableResult
    public mutating func push(_ payload: [UInt8], from source: SocketAddress) -> Bool {
        payload.withUnsafeBytes { push($0, from: source) }
    }

    /// Takes the oldest datagram, copying at most `buffer.count` bytes of it into `buffer` (the
    /// rest of a longer datagram is discarded). Returns the bytes copied, the datagram's full
    /// length and its sender; nil when the queue is empty.
    public mutating func pop(into buffer: UnsafeMutableRawBufferPointer) -> (copied: Int, length: Int, source: SocketAddress)? {
        guard count > 0 else { return nil }
        let e = entries[entryHead]
        let copied = min(e.length, buffer.count)
        if copied > 0 {
            storage.withUnsafeBytes { ring in
                var offset = 0
                var from = byteHead
                while offset < copied {
                    let run = min(copied - offset, ring.count - from)
                    buffer.baseAddress!.advanced(by: offset).copyMemory(
                        from: ring.baseAddress!.advanced(by: from), byteCount: run)
                    offset += run
                    from += run
                    if from == ring.count { from = 0 }
                }
            }
        }
        discardFirst()
        return (copied, e.length, e.source)
    }

    /// Takes the oldest datagram whole, as an array; nil when the queue is empty.
    public mutating func pop() -> (bytes: [UInt8], source: SocketAddress)? {
        guard let length = first?.length else { return nil }
        var source = SocketAddress(.anyV4, port: 0)
        let bytes = [UInt8](unsafeUninitializedCapacity: length) { buffer, n in
            source = pop(into: UnsafeMutableRawBufferPointer(buffer))!.source
            n = length
        }
        return (bytes, source)
    }

    /// Drops the oldest datagram (not counted in ``dropped``: it was delivered or refused on
    /// purpose by the caller).
    public mutating func discardFirst() {
        guard count > 0 else { return }
        let e = entries[entryHead]
        byteHead += e.length
        if byteHead >= storage.count { byteHead -= storage.count }
        bytesUsed -= e.length
        entryHead += 1
        if entryHead == entries.count { entryHead = 0 }
        count -= 1
        if count == 0 {
            byteHead = 0
            entryHead = 0
        }
    }

    /// Empties the queue (the drop counter stays).
    public mutating func removeAll() {
        while count > 0 { discardFirst() }
    }

    /// A queue of new capacities holding the datagrams that fit, oldest first; the rest are
    /// dropped and counted. For `recbuf` changes on an open socket.
    public mutating func reshape(byteCapacity: Int, datagramCapacity: Int) {
        var next = DatagramQueue(byteCapacity: byteCapacity, datagramCapacity: datagramCapacity)
        next.dropped = dropped
        while let (bytes, source) = pop() { next.push(bytes, from: source) }
        self = next
    }
}
