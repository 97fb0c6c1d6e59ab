import GenTCP
import GenTCPCore
import Synchronization

/// One end of an in-memory serial line, for simulation: paced at the baud rate on an injected
/// clock, with bounded buffers and seeded fault injection.
///
/// Make both ends with ``pair(configuration:runtime:bufferSize:faults:seed:names:)``.
///
/// - **Pacing.** Each byte takes 10 bit times (8N1) on the line: `n` bytes at 115200 baud take
///   `n / 11520` s to arrive, measured on the `runtime`'s clock. On `SimRuntime` that is virtual
///   time (1 MiB at 115200 baud is about 91 s virtual and a fraction of a second of wall time);
///   on `RealRuntime` it is wall time. Bytes reach the receiver in bursts of at most 64 (as from a
///   UART FIFO), each burst when its last byte has fully arrived.
/// - **Backpressure.** Each direction has a transmit buffer at the writer and a receive buffer at
///   the reader, each of `bufferSize` bytes. When the reader does not read, its receive buffer
///   fills, the line stops (as with hardware flow control) and the writer's buffer fills: writes
///   become short, then ``LinkIO/wouldBlock``. At most `2 × bufferSize` bytes (plus noise) are
///   ever queued per direction.
/// - **Faults.** See ``LineFaults``; ``receivedFaults`` counts what the line did toward this end.
/// - **Hang-up.** Closing one end discards what it had not yet sent and what was travelling to
///   it; the other end reads what had already arrived, then ``LinkIO/hangUp``, and its writes
///   return ``LinkIO/hangUp``.
///
/// Delegate calls come from the runtime's timer context (the simulator's thread on
/// `SimRuntime`). See ``SerialLink`` for the other threading rules.
public final class MemoryLink: SerialLink {
    public let configuration: SerialConfiguration
    /// `memory:a` or `memory:b`, or the name given.
    public let name: String
    private let wire: MemoryWire
    private let end: Int

    fileprivate init(wire: MemoryWire, end: Int, name: String) {
        self.wire = wire
        self.end = end
        self.name = name
        configuration = wire.configuration
    }

    deinit { close() }

    /// Creates a connected pair of ends.
    /// - Parameters:
    ///   - configuration: the line's baud rate (> 0) paces both directions; flow control is
    ///     recorded (the line always behaves as flow-controlled).
    ///   - runtime: the clock and timers that pace the line (`SimRuntime` for virtual time).
    ///   - bufferSize: bytes in each transmit and each receive buffer (at least 1).
    ///   - faults: the faults injected in both directions.
    ///   - seed: seeds the fault generators (each direction its own, derived from this).
    ///   - names: the two ends' names, for descriptions.
    /// - Throws: `badarg` when the baud rate is not positive.
    public static func pair(
        configuration: SerialConfiguration = SerialConfiguration(),
        runtime: any Runtime = RealRuntime.shared,
        bufferSize: Int = 4096,
        faults: LineFaults = .none,
        seed: UInt64 = 0,
        names: (String, String) = ("memory:a", "memory:b")
    ) throws(SocketError) -> (MemoryLink, MemoryLink) {
        guard configuration.baudRate > 0 else {
            throw SocketError(.badArgument, "MemoryLink: the baud rate must be positive")
        }
        let wire = MemoryWire(configuration: configuration, runtime: runtime, bufferSize: max(1, bufferSize),
                              faults: faults, seed: seed)
        let a = MemoryLink(wire: wire, end: 0, name: names.0)
        let b = MemoryLink(wire: wire, end: 1, name: names.1)
        wire.attach(a, b)
        return (a, b)
    }

    public func setDelegate(_ delegate: (any SerialLinkDelegate)?) { wire.setDelegate(delegate, end: end) }
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> LinkIO { wire.read(into: buffer, end: end) }
    public func write(_ bytes: UnsafeRawBufferPointer) -> LinkIO { wire.write(bytes, end: end) }
    public func armRead() { wire.arm(end: end, read: true) }
    public func armWrite() { wire.arm(end: end, read: false) }
    public func close() { wire.close(end: end) }

    /// What the line toward this end did so far: bytes delivered, dropped, flipped, noise.
    public var receivedFaults: LineFaultCounts { wire.counts(towards: end) }

    /// Bytes that have arrived and wait to be read at this end.
    public var bytesWaiting: Int { wire.bytesWaiting(at: end) }

    /// E.g. `memory:a (115200 8N1, flow none)`.
    public var description: String { "\(name) (\(configuration))" }
}

/// The line between the two ends: all state under one lock.
private final class MemoryWire: Sendable {
    /// Most bytes handed to the receiver in one timer step (a UART FIFO's worth).
    static let burst = 64
    /// Rebase a direction's time origin after this many bytes, so `k × 10⁹ × 10` never overflows.
    static let rebaseAfter: UInt64 = 1 << 24

    /// One direction: bytes from end `from` to end `1 - from`.
    struct Direction {
        var tx: ByteRing
        var rx: ByteRing
        /// Line time origin: byte `k` (1-based) since then completes at `origin + ⌈k·10·10⁹/baud⌉`.
        var origin: UInt64 = 0
        var sent: UInt64 = 0
        /// When the line last finished a byte.
        var lastCompletion: UInt64 = 0
        /// The receive buffer was full when a byte completed: the line waits for a read.
        var stalled = false
        var tick: TimerID?
        var random: FaultRandom
        var counts = LineFaultCounts()
    }

    struct End {
        var closed = false
        var delegate: (any SerialLinkDelegate)?
        weak var owner: MemoryLink?
        var wantRead = false
        var wantWrite = false
        /// A readiness call is already scheduled (arming again does not add one).
        var readPosted = false
        var writePosted = false
    }

    struct State {
        var directions: [Direction]
        var ends = [End(), End()]
    }

    let configuration: SerialConfiguration
    let runtime: any Runtime
    let bufferSize: Int
    let faults: LineFaults
    private let state: Mutex<State>

    init(configuration: SerialConfiguration, runtime: any Runtime, bufferSize: Int, faults: LineFaults, seed: UInt64) {
        self.configuration = configuration
        self.runtime = runtime
        self.bufferSize = bufferSize
        self.faults = faults
        let txCapacity = bufferSize + faults.maxNoiseBytes
        state = Mutex(State(directions: [
            Direction(tx: ByteRing(capacity: txCapacity), rx: ByteRing(capacity: bufferSize),
                      random: FaultRandom(seed: seed)),
            Direction(tx: ByteRing(capacity: txCapacity), rx: ByteRing(capacity: bufferSize),
                      random: FaultRandom(seed: seed ^ 0x5DEE_CE66_D1CE_5EED)),
        ]))
    }

    func attach(_ a: MemoryLink, _ b: MemoryLink) {
        state.withLock { s in
            s.ends[0].owner = a
            s.ends[1].owner = b
        }
    }

    /// When byte `k` since the origin has fully arrived.
    private func completion(_ d: Direction, _ k: UInt64) -> UInt64 {
        let baud = UInt64(configuration.baudRate)
        let bitNanos = k * UInt64(SerialConfiguration.bitsPerByte) * 1_000_000_000
        return d.origin + (bitNanos + baud - 1) / baud
    }

    // MARK: Link calls

    func setDelegate(_ delegate: (any SerialLinkDelegate)?, end: Int) {
        state.withLock { s in
            if !s.ends[end].closed { s.ends[end].delegate = delegate }
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, end: Int) -> LinkIO {
        state.withLock { s in
            if s.ends[end].closed { return .failed(.closed) }
            if s.ends[1 - end].closed { return .hangUp }
            if bytes.isEmpty { return .bytes(0) }
            let now = runtime.now
            var d = s.directions[end]
            let room = bufferSize - d.tx.count
            guard room > 0 else { return .wouldBlock }
            if d.tx.isEmpty && !d.stalled {
                // The line was idle: this write starts a new burst. Noise goes in ahead of it.
                d.origin = max(now, d.lastCompletion)
                d.sent = 0
                if d.random.chance(faults.noiseProbability) {
                    let n = 1 + d.random.below(faults.maxNoiseBytes)
                    for _ in 0..<n { d.tx.append(UInt8(truncatingIfNeeded: d.random.next())) }
                    d.counts.noiseBytes += n
                }
            }
            let accepted = d.tx.append(UnsafeRawBufferPointer(rebasing: bytes.prefix(room)))
            s.directions[end] = d
            scheduleTick(&s, direction: end, now: now)
            return .bytes(accepted)
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, end: Int) -> LinkIO {
        state.withLock { s in
            if s.ends[end].closed { return .failed(.closed) }
            let from = 1 - end
            if buffer.isEmpty { return .bytes(0) }
            if s.directions[from].rx.isEmpty {
                return s.ends[from].closed ? .hangUp : .wouldBlock
            }
            let n = s.directions[from].rx.remove(into: buffer)
            if s.directions[from].stalled {
                // Room again: the stopped line starts over with the byte it was sending.
                let now = runtime.now
                s.directions[from].stalled = false
                s.directions[from].origin = now
                s.directions[from].sent = 0
                scheduleTick(&s, direction: from, now: now)
            }
            return .bytes(n)
        }
    }

    func arm(end: Int, read: Bool) {
        let post: Bool = state.withLock { s in
            guard !s.ends[end].closed else { return false }
            let peerClosed = s.ends[1 - end].closed
            let ready = read
                ? !s.directions[1 - end].rx.isEmpty || peerClosed
                : s.directions[end].tx.count < bufferSize || peerClosed
            if read {
                if s.ends[end].readPosted { return false }
                if !ready {
                    s.ends[end].wantRead = true
                    return false
                }
                s.ends[end].wantRead = false
                s.ends[end].readPosted = true
            } else {
                if s.ends[end].writePosted { return false }
                if !ready {
                    s.ends[end].wantWrite = true
                    return false
                }
                s.ends[end].wantWrite = false
                s.ends[end].writePosted = true
            }
            return true
        }
        if post { postReady(end: end, read: read) }
    }

    func close(end: Int) {
        let peerWants: (read: Bool, write: Bool) = state.withLock { s in
            guard !s.ends[end].closed else { return (false, false) }
            s.ends[end].closed = true
            s.ends[end].delegate = nil
            s.ends[end].wantRead = false
            s.ends[end].wantWrite = false
            for i in 0..<2 {
                if let tick = s.directions[i].tick { runtime.cancel(tick) }
                s.directions[i].tick = nil
            }
            // What this end had not sent, and what was on its way here, is gone.
            s.directions[end].tx.removeAll()
            s.directions[1 - end].tx.removeAll()
            s.directions[1 - end].rx.removeAll()
            s.directions[1 - end].stalled = false
            // The peer's pending interest now sees the hang-up; the line toward it may still
            // deliver nothing more, so its own tick is not needed.
            var peer = s.ends[1 - end]
            let wants = (peer.wantRead && !peer.readPosted, peer.wantWrite && !peer.writePosted)
            if wants.0 { peer.wantRead = false; peer.readPosted = true }
            if wants.1 { peer.wantWrite = false; peer.writePosted = true }
            s.ends[1 - end] = peer
            return wants
        }
        if peerWants.read { postReady(end: 1 - end, read: true) }
        if peerWants.write { postReady(end: 1 - end, read: false) }
    }

    func counts(towards end: Int) -> LineFaultCounts { state.withLock { $0.directions[1 - end].counts } }
    func bytesWaiting(at end: Int) -> Int { state.withLock { $0.directions[1 - end].rx.count } }

    // MARK: The line

    /// Schedules the direction's next step (if it has bytes to move and none is scheduled) for
    /// when the next burst has fully arrived.
    private func scheduleTick(_ s: inout State, direction i: Int, now: UInt64) {
        let d = s.directions[i]
        guard d.tick == nil, !d.tx.isEmpty, !d.stalled else { return }
        let burst = UInt64(min(d.tx.count, MemoryWire.burst, max(1, d.rx.room)))
        let due = completion(d, d.sent + burst)
        let delay = due > now ? due - now : 0
        s.directions[i].tick = runtime.schedule(afterNanoseconds: delay) { [self] in step(direction: i) }
    }

    /// Runtime context: moves every byte that has fully arrived into the receive buffer (with
    /// faults), stalls when that buffer is full, and tells the two ends.
    private func step(direction i: Int) {
        let to = 1 - i
        typealias Call = (any SerialLinkDelegate, MemoryLink, Bool)
        let calls: [Call] = state.withLock { s in
            s.directions[i].tick = nil
            guard !s.ends[0].closed, !s.ends[1].closed else { return [] }
            let now = runtime.now
            var d = s.directions[i]
            var moved = false
            while !d.tx.isEmpty {
                let due = completion(d, d.sent + 1)
                if due > now { break }
                if d.rx.isFull {
                    d.stalled = true
                    break
                }
                var byte = d.tx.removeFirst()!
                d.sent += 1
                d.lastCompletion = due
                moved = true
                if d.random.chance(faults.dropProbability) {
                    d.counts.dropped += 1
                    continue
                }
                if d.random.chance(faults.bitFlipProbability) {
                    byte ^= 1 << UInt8(d.random.below(8))
                    d.counts.flipped += 1
                }
                d.rx.append(byte)
                d.counts.delivered += 1
            }
            if d.sent >= MemoryWire.rebaseAfter {
                d.origin = completion(d, d.sent)
                d.sent = 0
            }
            s.directions[i] = d
            scheduleTick(&s, direction: i, now: now)
            var calls: [Call] = []
            if !d.rx.isEmpty, s.ends[to].wantRead, let delegate = s.ends[to].delegate, let owner = s.ends[to].owner {
                s.ends[to].wantRead = false
                calls.append((delegate, owner, true))
            }
            if moved, d.tx.count < bufferSize, s.ends[i].wantWrite,
               let delegate = s.ends[i].delegate, let owner = s.ends[i].owner {
                s.ends[i].wantWrite = false
                calls.append((delegate, owner, false))
            }
            return calls
        }
        for (delegate, owner, read) in calls {
            if read { delegate.linkIsReadable(owner) } else { delegate.linkIsWritable(owner) }
        }
    }

    /// Delivers an arming that was already satisfied, from the runtime's context.
    private func postReady(end: Int, read: Bool) {
        _ = runtime.schedule(afterNanoseconds: 0) { [self] in
            let target: (any SerialLinkDelegate, MemoryLink)? = state.withLock { s in
                if read { s.ends[end].readPosted = false } else { s.ends[end].writePosted = false }
                guard !s.ends[end].closed, let delegate = s.ends[end].delegate, let owner = s.ends[end].owner else {
                    return nil
                }
                return (delegate, owner)
            }
            guard let (delegate, owner) = target else { return }
            if read { delegate.linkIsReadable(owner) } else { delegate.linkIsWritable(owner) }
        }
    }
}
