import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPStack
import GenTCPWire
#if canImport(Glibc)
import Glibc
#endif

/// The slip driver's engine: one ``Stack``, one SLIP decoder and encoder, one link, one lock.
///
/// It runs (``pump(_:)``) whenever something may have changed: the link became readable or
/// writable, the stack's timer fired, or a socket call went into the stack. One run reads the
/// link dry into the decoder and the stack, fires due timers, moves datagrams from the stack to
/// the link while the link takes them (holding at most one encoded frame itself), re-arms the
/// link and the timer, and finds which waiting sockets became ready.
///
/// Delegate calls and continuations are collected while the lock is held and run after it is
/// released; delegate calls are always scheduled on the runtime, never made synchronously (the
/// port may be calling us with its own lock held).
final class SLIPEngine: SerialLinkDelegate, @unchecked Sendable {
    /// What to do once the lock is released.
    struct Effects {
        var posts: [@Sendable () -> Void] = []
        var resumes: [() -> Void] = []

        func run(on runtime: any Runtime) {
            for resume in resumes { resume() }
            if !posts.isEmpty {
                let posts = self.posts
                _ = runtime.schedule(afterNanoseconds: 0) { for post in posts { post() } }
            }
        }
    }

    struct Registration {
        var delegate: any ConnectionDelegate
        var wantRead = false
        var wantWrite = false
    }

    struct DatagramRegistration {
        var delegate: any DatagramDelegate
        var wantRead = false
        var wantWrite = false
    }

    struct ListenerRegistration {
        var delegate: any ListenerDelegate
        var wantAccept = false
        /// An `acceptable` event came since the last accept that found nothing.
        var maybePending = false
    }

    struct PendingConnect {
        var delegate: any ConnectionDelegate
        var remote: SocketAddress
        var timer: TimerID?
        var continuation: UnsafeContinuation<Result<SLIPConnection, SocketError>, Never>
    }

    struct PendingPing {
        var start: UInt64
        var timer: TimerID?
        var continuation: UnsafeContinuation<Result<UInt64, SocketError>, Never>
    }

    let link: any SerialLink
    let runtime: any Runtime
    let configuration: SLIPConfiguration
    let local: IPv4Address
    let peer: IPv4Address

    // Everything below is guarded by `lock`.
    let lock = SLIPLock()
    var stack: Stack
    var decoder: SLIPDecoder
    var frame: [UInt8]
    var wire: [UInt8]
    var wireStart = 0
    var wireEnd = 0
    var readBuffer = [UInt8](repeating: 0, count: 2048)
    var readArmed = false
    var writeArmed = false
    var timer: TimerID?
    var timerDeadline: Int64?
    var timerGeneration: UInt64 = 0
    var registrations: [ConnectionHandle: Registration] = [:]
    var listeners: [ListenerHandle: ListenerRegistration] = [:]
    var datagramRegistrations: [DatagramHandle: DatagramRegistration] = [:]
    var connects: [ConnectionHandle: PendingConnect] = [:]
    var pings: [UInt16: PendingPing] = [:]
    var pingSequence: UInt16 = 0
    let pingIdentifier: UInt16
    var capture: SLIPCapture?
    /// Set when the link hung up or failed: every socket fails with it.
    var linkFailure: SocketError.Reason?
    /// What happened on the line when it failed, as one sentence (``SerialLinkIncidents``).
    var incident: String?
    var closed = false
    /// ``shutdown()`` ran: the driver is stopped (its connections were aborted).
    var isShutDown: Bool { closed }
    private(set) var statistics = SLIPStatistics()

    init(link: any SerialLink, configuration: SLIPConfiguration, runtime: any Runtime) throws(SocketError) {
        guard let local = configuration.local4, let peer = configuration.peer4 else {
            throw SocketError(.addressFamilyNotSupported, "SLIP carries IPv4 only")
        }
        guard configuration.mtu >= 68, configuration.mtu <= 65535 else {
            throw SocketError(.invalidArgument, "mtu must be 68...65535")
        }
        self.link = link
        self.runtime = runtime
        self.configuration = configuration
        self.local = local
        self.peer = peer
        stack = Stack(configuration: StackConfiguration(
            localAddress: local, peerAddress: peer, mtu: configuration.mtu,
            maximumConnections: configuration.maximumConnections, maximumListeners: configuration.maximumListeners,
            controlQueueCapacity: 8, eventQueueCapacity: 256, seed: configuration.seed,
            dedicatedLink: configuration.dedicatedLink,
            maximumHalfOpenConnections: configuration.maximumHalfOpenConnections,
            maximumDatagramSockets: configuration.maximumDatagramSockets,
            datagramSendQueueCapacity: configuration.datagramSendQueueCapacity))
        decoder = SLIPDecoder(maximumFrameSize: configuration.mtu)
        frame = [UInt8](repeating: 0, count: configuration.mtu)
        wire = [UInt8](repeating: 0, count: 2 * configuration.mtu + 2)
        pingIdentifier = UInt16(truncatingIfNeeded: configuration.seed &* 0x9E37_79B9 >> 7) | 1
        if let path = configuration.capturePath { capture = try SLIPCapture(path: path) }
    }

    /// What last went wrong on the line (``SerialLinkIncidents/lastIncident``).
    var lastIncident: String? { locked { _ in incident } }

    /// Takes the link's readiness and starts reading.
    func start() {
        link.setDelegate(self)
        locked { fx in pump(&fx) }
    }

    /// Runs `body` under the lock, then the effects it collected.
    @discardableResult
    func locked<R>(_ body: (inout Effects) -> R) -> R {
        var fx = Effects()
        lock.lock()
        let result = body(&fx)
        lock.unlock()
        fx.run(on: runtime)
        return result
    }

    var nowMilliseconds: MillisecondInstant { MillisecondInstant(milliseconds: Int64(clamping: runtime.now / 1_000_000)) }

    // MARK: - Link readiness

    func linkIsReadable(_ link: any SerialLink) {
        locked { fx in
            readArmed = false
            pump(&fx)
        }
    }

    func linkIsWritable(_ link: any SerialLink) {
        locked { fx in
            writeArmed = false
            pump(&fx)
        }
    }

    // MARK: - The engine run

    /// One run of the engine; see the type's documentation. Lock held.
    func pump(_ fx: inout Effects) {
        guard !closed else { return }
        let now = nowMilliseconds
        if linkFailure == nil { readLink(now: now) }
        // Once the line is gone the stack's timers mean nothing (nothing more goes out, and a
        // retransmission giving up must not turn the line's failure into `etimedout`): the
        // connections keep what they received, to be read, and then fail with the line's reason.
        if linkFailure == nil {
            _ = stack.poll(now: now)
            writeLink(now: now)
        }
        drainEvents(&fx)
        checkWaiters(&fx)
        if linkFailure == nil {
            rearmTimer(now: now)
        } else if let timer {
            runtime.cancel(timer)
            self.timer = nil
            timerDeadline = nil
        }
    }

    func readLink(now: MillisecondInstant) {
        while true {
            let result = readBuffer.withUnsafeMutableBytes { link.read(into: $0) }
            switch result {
            case .bytes(let n):
                statistics.bytesReceived += n
                readBuffer.withUnsafeBytes { raw in
                    decoder.decode(UnsafeRawBufferPointer(rebasing: raw[0..<n])) { datagram in
                        statistics.framesReceived += 1
                        capture?.record(datagram, microseconds: runtime.now / 1000)
                        stack.receive(datagram, now: now)
                    }
                }
            case .wouldBlock:
                if !readArmed {
                    readArmed = true
                    link.armRead()
                }
                return
            case .hangUp, .failed:
                linkFailed(result)
                return
            }
        }
    }

    func writeLink(now: MillisecondInstant) {
        while true {
            if wireStart == wireEnd {
                guard let n = frame.withUnsafeMutableBytes({ stack.transmit(into: $0, now: now) }) else { return }
                frame.withUnsafeBytes { raw in
                    let datagram = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                    capture?.record(datagram, microseconds: runtime.now / 1000)
                    var encoder = SLIPEncoder()
                    wireEnd = wire.withUnsafeMutableBytes { encoder.encode(datagram, into: $0) }
                }
                wireStart = 0
                statistics.framesSent += 1
            }
            let result = wire.withUnsafeBytes { link.write(UnsafeRawBufferPointer(rebasing: $0[wireStart..<wireEnd])) }
            switch result {
            case .bytes(let n) where n > 0:
                wireStart += n
                statistics.bytesSent += n
            case .bytes, .wouldBlock:
                if !writeArmed {
                    writeArmed = true
                    link.armWrite()
                }
                return
            case .hangUp, .failed:
                linkFailed(result)
                return
            }
        }
    }

    /// The line hung up or failed under us (not closed by ``shutdown()``): every socket fails
    /// with ``LinkIO/lossReason`` (`eio` for a hang-up, never `closed`, which would read as the
    /// peer's FIN), and the incident says what happened.
    func linkFailed(_ result: LinkIO) {
        guard linkFailure == nil else { return }
        linkFailure = result.lossReason ?? .ioError
        // What happened, not how far a transfer got: the program counts its own bytes (gentcp
        // adds "after N bytes received"), and the at driver says it the same way.
        switch result {
        case .failed(.closed): incident = "the serial line was closed under the driver"
        case .failed(let reason): incident = "the serial line failed (\(reason.atom))"
        default: incident = "the serial line hung up"
        }
    }

    func drainEvents(_ fx: inout Effects) {
        while let event = stack.nextEvent() {
            switch event {
            case .acceptable(let listener):
                listeners[listener]?.maybePending = true
            case .echoReply(let source, let identifier, let sequence, _):
                guard identifier == pingIdentifier, source != local, let ping = pings.removeValue(forKey: sequence)
                else { continue }
                if let timer = ping.timer { runtime.cancel(timer) }
                let rtt = runtime.now &- ping.start
                let continuation = ping.continuation
                fx.resumes.append { continuation.resume(returning: .success(rtt)) }
            default:
                break  // Readiness is polled in checkWaiters: events may be dropped, state is not.
            }
        }
    }

    /// A table's entries in key order. Swift seeds every dictionary's storage apart, so walking
    /// one directly orders the same entries differently from one engine to the next: the resets
    /// at close went out in a different order in a second run of the same seed, and so could
    /// wake-ups. Walked in key order, a simulated run replays exactly.
    func inOrder<Key, Value>(_ table: [Key: Value], _ rank: (Key) -> UInt32) -> [(key: Key, value: Value)] {
        table.sorted { rank($0.key) < rank($1.key) }
    }

    /// Finds connects that finished, sockets that became readable or writable, listeners with
    /// a connection to accept.
    func checkWaiters(_ fx: inout Effects) {
        if let failure = linkFailure, !pings.isEmpty {
            for (_, ping) in inOrder(pings, { UInt32($0) }) {
                if let timer = ping.timer { runtime.cancel(timer) }
                let continuation = ping.continuation
                fx.resumes.append { continuation.resume(returning: .failure(SocketError(failure))) }
            }
            pings = [:]
        }
        for (handle, pending) in inOrder(connects, \.rank) {
            let outcome: Result<SLIPConnection, SocketError>?
            if let failure = linkFailure {
                stack.abort(handle)
                outcome = .failure(SocketError(failure))
            } else if let error = stack.error(handle) {
                stack.abort(handle)
                outcome = .failure(SocketError(error.reason))
            } else {
                switch (try? stack.state(handle)) ?? .closed {
                case .synSent, .synReceived: outcome = nil
                case .closed:
                    stack.abort(handle)
                    outcome = .failure(.closed)
                default:
                    registrations[handle] = Registration(delegate: pending.delegate)
                    outcome = .success(SLIPConnection(engine: self, handle: handle, remote: pending.remote))
                }
            }
            guard let outcome else { continue }
            connects[handle] = nil
            if let timer = pending.timer { runtime.cancel(timer) }
            let continuation = pending.continuation
            fx.resumes.append { continuation.resume(returning: outcome) }
        }
        for (handle, registration) in inOrder(registrations, \.rank) where registration.wantRead || registration.wantWrite {
            var r = registration
            if r.wantRead, readReady(handle) {
                r.wantRead = false
                let delegate = r.delegate
                fx.posts.append { delegate.connectionReadable() }
            }
            if r.wantWrite, writeReady(handle) {
                r.wantWrite = false
                let delegate = r.delegate
                fx.posts.append { delegate.connectionWritable() }
            }
            registrations[handle] = r
        }
        for (handle, registration) in inOrder(datagramRegistrations, \.rank) where registration.wantRead || registration.wantWrite {
            var r = registration
            if r.wantRead, linkFailure != nil || stack.isDatagramReadable(handle) {
                r.wantRead = false
                let delegate = r.delegate
                fx.posts.append { delegate.datagramReadable() }
            }
            if r.wantWrite, linkFailure != nil || stack.datagramSendRoom > 0 {
                r.wantWrite = false
                let delegate = r.delegate
                fx.posts.append { delegate.datagramWritable() }
            }
            datagramRegistrations[handle] = r
        }
        for (handle, registration) in inOrder(listeners, \.rank) where registration.wantAccept {
            if registration.maybePending || linkFailure != nil {
                listeners[handle]?.wantAccept = false
                let delegate = registration.delegate
                fx.posts.append { delegate.listenerAcceptable() }
            }
        }
    }

    func readReady(_ handle: ConnectionHandle) -> Bool {
        if linkFailure != nil || stack.isReadable(handle) { return true }
        return ((try? stack.state(handle)) ?? .closed) == .closed
    }

    func writeReady(_ handle: ConnectionHandle) -> Bool {
        if linkFailure != nil || stack.isWritable(handle) || stack.error(handle) != nil { return true }
        switch (try? stack.state(handle)) ?? .closed {
        case .established, .closeWait, .synSent, .synReceived: return false  // The send buffer is full.
        default: return true  // A write now fails: that is "ready".
        }
    }

    func rearmTimer(now instant: MillisecondInstant) {
        let now = instant.milliseconds
        guard var deadline = stack.nextDeadline?.milliseconds else { return }
        if deadline <= now { deadline = now + 1 }
        if let current = timerDeadline, current <= deadline { return }
        if let timer { runtime.cancel(timer) }
        timerGeneration &+= 1
        let generation = timerGeneration
        timerDeadline = deadline
        let at = UInt64(deadline) * 1_000_000
        let current = runtime.now
        timer = runtime.schedule(afterNanoseconds: at > current ? at - current : 0) { [weak self] in
            self?.timerFired(generation)
        }
    }

    func timerFired(_ generation: UInt64) {
        locked { fx in
            guard generation == timerGeneration else { return }
            timer = nil
            timerDeadline = nil
            pump(&fx)
        }
    }
}

/// What a ``SLIPDriver`` saw on its line so far.
public struct SLIPStatistics: Sendable, Equatable {
    /// Line bytes read (SLIP framing included).
    public var bytesReceived = 0
    /// Line bytes written (SLIP framing included).
    public var bytesSent = 0
    /// Datagrams decoded from the line.
    public var framesReceived = 0
    /// Datagrams sent onto the line.
    public var framesSent = 0
    /// Frames the SLIP decoder dropped for a bad escape sequence.
    public var escapeErrors = 0
    /// Frames the SLIP decoder dropped for being longer than the MTU.
    public var oversizedFrames = 0
    /// The stack's own counters (bad checksums, retransmissions, resets...).
    public var stack = StackCounters()
    /// TCP slots in use (TIME-WAIT included).
    public var connectionsInUse = 0

    /// Every counter at zero.
    public init() {}
}

/// A plain mutex (the engine's state lives in the engine's stored properties, guarded by it).
final class SLIPLock: @unchecked Sendable {
    let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
}

extension ConnectionHandle {
    /// Slot, then generation: the order the slip engine walks its tables in.
    var rank: UInt32 { UInt32(index) << 16 | UInt32(generation) }
}

extension ListenerHandle {
    /// Slot, then generation: the order the slip engine walks its tables in.
    var rank: UInt32 { UInt32(index) << 16 | UInt32(generation) }
}
