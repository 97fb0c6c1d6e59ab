import GenTCPCore
import GenTCPModem

/// A byte ring inside a storage array the owner keeps (one array for every link's ring, made at
/// init). Bytes past `count` and before `count + hidden` were appended but are not yet readable:
/// a read's answer is held back until its final `OK`, so a module that restarts in the middle
/// of an answer never has its banner taken for payload.
struct ModemRing {
    /// Where the ring starts in the storage array.
    let base: Int
    /// Its size in bytes.
    let capacity: Int
    var start = 0
    var count = 0
    var hidden = 0

    init(base: Int, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    /// Bytes that can still be appended.
    var room: Int { capacity - count - hidden }

    mutating func reset() {
        start = 0
        count = 0
        hidden = 0
    }

    /// Appends up to `room` bytes of `bytes` (hidden when `hide`); returns how many.
    mutating func append(_ bytes: UnsafeRawBufferPointer, hide: Bool, into storage: inout [UInt8]) -> Int {
        let n = Swift.min(bytes.count, room)
        guard n > 0 else { return 0 }
        var end = (start + count + hidden) % capacity
        let base = self.base
        storage.withUnsafeMutableBytes { raw in
            var done = 0
            while done < n {
                let run = Swift.min(n - done, capacity - end)
                (raw.baseAddress! + base + end).copyMemory(from: bytes.baseAddress! + done, byteCount: run)
                done += run
                end = (end + run) % capacity
            }
        }
        if hide { hidden += n } else { count += n }
        return n
    }

    /// Makes the hidden bytes readable.
    mutating func commit() {
        count += hidden
        hidden = 0
    }

    /// Forgets the hidden bytes; returns how many.
    mutating func dropHidden() -> Int {
        defer { hidden = 0 }
        return hidden
    }

    /// Moves up to `buffer.count` readable bytes out; returns how many.
    mutating func take(into buffer: UnsafeMutableRawBufferPointer, from storage: [UInt8]) -> Int {
        let n = Swift.min(buffer.count, count)
        guard n > 0 else { return 0 }
        let base = self.base
        var from = start
        storage.withUnsafeBytes { raw in
            var done = 0
            while done < n {
                let run = Swift.min(n - done, capacity - from)
                (buffer.baseAddress! + done).copyMemory(from: raw.baseAddress! + base + from, byteCount: run)
                done += run
                from = (from + run) % capacity
            }
        }
        drop(n)
        return n
    }

    /// Forgets the first `n` readable bytes.
    mutating func drop(_ n: Int) {
        let k = Swift.min(n, count)
        start = (start + k) % capacity
        count -= k
        if count == 0 && hidden == 0 { start = 0 }
    }

    /// The storage indices of the first contiguous run of readable bytes.
    var firstRun: Range<Int> {
        let run = Swift.min(count, capacity - start)
        return (base + start)..<(base + start + run)
    }
}

/// What one link of a ``ModemInterface`` holds: its program-side state, its rings, what the
/// module announced and what is in flight.
struct ModemLinkSlot {
    enum State: UInt8 {
        /// Nobody uses it (the module's link may still be closing).
        case free
        /// `connect` was called; the open is queued or in flight.
        case connecting
        /// Connected (or failed or ended: see `failure` and `ended`); the program holds it.
        case open
        /// The program closed it: queued bytes go out (graceful), then `AT+CIPCLOSE`.
        case closing
    }

    var state = State.free
    /// Bumped at each connect, so an old handle is recognised.
    var generation: UInt32 = 0
    var address = IPAddress.anyV4
    var port: UInt16 = 0
    var connectTimeout: UInt32?
    var connectSubmitted = false
    var rx: ModemRing
    var tx: ModemRing
    /// The receive ring's usable size for this connection (settings may ask for less).
    var receiveLimit: Int
    /// The send ring's usable size for this connection.
    var sendLimit: Int
    /// Bytes of the send in flight (still counted in `tx`).
    var sendInFlight = 0
    /// What the module holds for the link, as it last said (`Int.max` when it did not say how much).
    var available = 0
    var readInFlight = false
    var readAsked = 0
    var readGot = 0
    /// The module reported the link closed: the stream ends once every announced byte is read.
    var peerClosed = false
    /// Every byte was read after the close: `recv` gives `.end` once the ring is empty.
    var ended = false
    /// The connection failed: `recv` throws it once the ring is empty; `send` at once.
    var failure: SocketError?
    /// The module refused data: `send` throws this; reads go on.
    var writeFailure: SocketError?
    /// A read or send went unanswered: the probe that follows names the failure.
    var awaitingVerdict = false
    /// A send was short: post `writable` when room frees.
    var wantWritable = false
    /// Coalesced events not yet handed out.
    var readablePending = false
    var writablePending = false
    /// `close` (true) or `abort` (false) was asked.
    var graceful = true

    init(link: Int, receiveCapacity: Int, sendCapacity: Int) {
        rx = ModemRing(base: link * receiveCapacity, capacity: receiveCapacity)
        tx = ModemRing(base: link * sendCapacity, capacity: sendCapacity)
        receiveLimit = receiveCapacity
        sendLimit = sendCapacity
    }

    /// Back to free, keeping the generation and the rings' places.
    mutating func clear() {
        let generation = self.generation
        let rx = ModemRing(base: self.rx.base, capacity: self.rx.capacity)
        let tx = ModemRing(base: self.tx.base, capacity: self.tx.capacity)
        self = ModemLinkSlot(link: 0, receiveCapacity: rx.capacity, sendCapacity: tx.capacity)
        self.generation = generation
        self.rx = rx
        self.tx = tx
        receiveLimit = rx.capacity
        sendLimit = tx.capacity
    }

    /// The program holds it (a handle to it is not stale).
    var isHeld: Bool { state == .connecting || state == .open }

    /// Readable bytes are waiting or the stream is over (end or failure).
    var hasNews: Bool { rx.count > 0 || ended || failure != nil }

    /// Receive room for this connection's limit.
    var receiveRoom: Int { Swift.max(0, Swift.min(rx.room, receiveLimit - rx.count - rx.hidden)) }

    /// Send room for this connection's limit.
    var sendRoom: Int { Swift.max(0, Swift.min(tx.room, sendLimit - tx.count)) }
}

