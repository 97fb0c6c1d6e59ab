import GenTCPSerial
import GenTCP
import GenTCPCore

/// A fixed-capacity byte ring, allocated once. Used for a connection's receive and send buffers.
struct ATRing {
    private(set) var storage: [UInt8]
    private(set) var head = 0
    private(set) var count = 0
    /// The last `hidden` bytes are held back: appended, not yet readable (a read's answer until
    /// the module's final `OK` shows it was whole). ``commit()`` shows them, ``dropHidden()``
    /// takes them back.
    private(set) var hidden = 0

    init(capacity: Int) { storage = [UInt8](repeating: 0, count: max(1, capacity)) }

    var capacity: Int { storage.count }
    var room: Int { storage.count - count }
    /// Nothing readable (held-back bytes do not count).
    var isEmpty: Bool { count - hidden == 0 }

    /// Appends what fits of `bytes`, held back when `hide`; returns how many.
    mutating func append(_ bytes: UnsafeRawBufferPointer, hide: Bool) -> Int {
        let n = append(bytes)
        if hide { hidden += n }
        return n
    }

    /// Makes the held-back bytes readable.
    mutating func commit() { hidden = 0 }

    /// Takes the held-back bytes back out; returns how many.
    @discardableResult
    mutating func dropHidden() -> Int {
        let n = hidden
        count -= n
        hidden = 0
        if count == 0 { head = 0 }
        return n
    }

    /// Appends what fits of `bytes`; returns how many.
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let n = min(bytes.count, room)
        guard n > 0, let src = bytes.baseAddress else { return 0 }
        let cap = storage.count
        let tail = (head + count) % cap
        let first = min(n, cap - tail)
        storage.withUnsafeMutableBytes { raw in
            (raw.baseAddress! + tail).copyMemory(from: src, byteCount: first)
            if n > first { raw.baseAddress!.copyMemory(from: src + first, byteCount: n - first) }
        }
        count += n
        return n
    }

    /// Removes up to `buffer.count` readable bytes into `buffer`; returns how many.
    mutating func remove(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(buffer.count, count - hidden)
        guard n > 0, let dst = buffer.baseAddress else { return 0 }
        let cap = storage.count
        let first = min(n, cap - head)
        storage.withUnsafeBytes { raw in
            dst.copyMemory(from: raw.baseAddress! + head, byteCount: first)
            if n > first { (dst + first).copyMemory(from: raw.baseAddress!, byteCount: n - first) }
        }
        drop(n)
        return n
    }

    /// Discards the first `n` bytes.
    mutating func drop(_ n: Int) {
        let n = min(n, count)
        head = (head + n) % storage.count
        count -= n
        if count == 0 { head = 0 }
    }

    mutating func removeAll() {
        head = 0
        count = 0
        hidden = 0
    }

    /// The first contiguous run of at most `limit` bytes, for a send.
    func withContiguousPrefix<R>(limit: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let n = min(limit, count, storage.count - head)
        return storage.withUnsafeBytes { raw in body(UnsafeRawBufferPointer(rebasing: raw[head..<(head + n)])) }
    }
}

/// One link of the module, as the port layer sees it. All state is guarded by the core's lock.
final class ATConnection: Connection, @unchecked Sendable {
    unowned let core: ATCore
    let link: Int
    /// Nil for an offloaded TLS link opened by name (the module resolved it and does not say).
    let remote: SocketAddress?
    let local: SocketAddress?

    // Guarded by core.lock.
    var delegate: (any ConnectionDelegate)?
    var rx: ATRing
    var tx: ATRing
    /// Bytes the module says it holds for this link (passive mode); `Int.max` when it said
    /// "some" without a number.
    var available = 0
    /// Bytes asked for by the read in flight, and how many of them came.
    var readAsked = 0
    var readGot = 0
    var readInFlight = false
    /// Bytes of `tx` handed to the engine in the send in flight.
    var sendInFlight = 0
    /// The module's link is gone (peer close, reset): reads give what is buffered, then the end.
    var ended = false
    /// The module reported the link closed while it still announced bytes for it: the driver
    /// keeps reading them (SIMCom and Quectel keep a closed link readable) before the end.
    var peerClosed = false
    /// Why writes fail (the module refused a send); nil while they work.
    var writeFailure: SocketError.Reason?
    /// A command of this link went unanswered; the probe that follows decides the reason (a
    /// restart, or silence). Nothing more is asked for it meanwhile.
    var awaitingVerdict = false
    /// A send the module had no room for waits before it goes again; how many times in a row.
    var sendHeld = false
    var sendRetries = 0
    /// Why the connection broke (send failure, overflow, module lost); nil for a clean end.
    var failure: SocketError.Reason?
    /// The module's link id is still taken (a close is needed before reuse).
    var moduleOpen = true
    var userClosed = false
    var abortive = false
    var wantRead = false
    var wantWrite = false

    init(core: ATCore, link: Int, remote: SocketAddress?, local: SocketAddress?, delegate: any ConnectionDelegate,
         receiveBuffer: Int, sendBuffer: Int) {
        self.core = core
        self.link = link
        self.remote = remote
        self.local = local
        self.delegate = delegate
        rx = ATRing(capacity: receiveBuffer)
        tx = ATRing(capacity: sendBuffer)
    }

    /// Whether the driver should ask the module for data now.
    var wantsModuleRead: Bool {
        !ended && !userClosed && !awaitingVerdict && (moduleOpen || peerClosed) && !readInFlight && available > 0
            && rx.room > 0
    }

    /// Whether the driver has payload to hand to the module now.
    var wantsModuleSend: Bool {
        !ended && !peerClosed && !awaitingVerdict && writeFailure == nil && !sendHeld && moduleOpen && sendInFlight == 0
            && !tx.isEmpty
            && !(userClosed && abortive)
    }

    // MARK: Connection

    /// Bytes in the send buffer: those not handed to the module yet and those in the send in
    /// flight (`tx` keeps them until the module acknowledges them: `SEND OK`, `QISEND`...).
    var unsentByteCount: Int {
        core.locked { _ in tx.count }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        core.locked { core in core.read(self, into: buffer) }
    }

    func write(_ chunks: [UnsafeRawBufferPointer]) -> IOResult {
        core.locked { core in core.write(self, chunks) }
    }

    func armRead() {
        core.locked { core in core.armRead(self) }
    }

    func armWrite() {
        core.locked { core in core.armWrite(self) }
    }

    /// AT modules have no half-close (no command sends a FIN and keeps the link): `enotsup`.
    func shutdown(_ how: ShutdownHow) -> SocketError.Reason? { .notSupported }

    func close(abortive: Bool) {
        core.locked { core in core.close(self, abortive: abortive) }
    }

    func localAddress() -> SocketAddress? { local }
    func remoteAddress() -> SocketAddress? { remote }

    /// nodelay, keepalive, reuseaddr: the module decides; linger 0 comes as an abortive close.
    func apply(_ option: Option) -> SocketError.Reason? { nil }
}
