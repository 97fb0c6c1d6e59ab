import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPStack
import GenTCPWire
#if canImport(Glibc)
import Glibc
#endif

/// Calls from connections, listeners and the driver, with the lock held: readiness, connects,
/// listeners, pings, shutdown.
extension SLIPEngine {
    func armRead(_ handle: ConnectionHandle, _ fx: inout Effects) {
        registrations[handle]?.wantRead = true
        checkWaiters(&fx)
    }

    func armWrite(_ handle: ConnectionHandle, _ fx: inout Effects) {
        registrations[handle]?.wantWrite = true
        checkWaiters(&fx)
    }

    func forget(_ handle: ConnectionHandle) {
        registrations[handle] = nil
    }

    func register(_ handle: ConnectionHandle, delegate: any ConnectionDelegate) {
        registrations[handle] = Registration(delegate: delegate)
    }

    func registerDatagram(_ handle: DatagramHandle, delegate: any DatagramDelegate) {
        datagramRegistrations[handle] = DatagramRegistration(delegate: delegate)
    }

    func forgetDatagram(_ handle: DatagramHandle) {
        datagramRegistrations[handle] = nil
    }

    func armDatagram(_ handle: DatagramHandle, read: Bool, _ fx: inout Effects) {
        if read { datagramRegistrations[handle]?.wantRead = true } else { datagramRegistrations[handle]?.wantWrite = true }
        checkWaiters(&fx)
    }

    func startConnect(
        _ handle: ConnectionHandle, remote: SocketAddress, timeoutNanoseconds: UInt64?,
        delegate: any ConnectionDelegate,
        continuation: UnsafeContinuation<Result<SLIPConnection, SocketError>, Never>, _ fx: inout Effects
    ) {
        var timer: TimerID?
        if let timeoutNanoseconds {
            timer = runtime.schedule(afterNanoseconds: timeoutNanoseconds) { [weak self] in
                self?.connectTimedOut(handle)
            }
        }
        connects[handle] = PendingConnect(delegate: delegate, remote: remote, timer: timer, continuation: continuation)
        pump(&fx)
    }

    func connectTimedOut(_ handle: ConnectionHandle) {
        locked { fx in
            guard let pending = connects.removeValue(forKey: handle) else { return }
            stack.abort(handle)
            let continuation = pending.continuation
            fx.resumes.append { continuation.resume(returning: .failure(.timeout)) }
            pump(&fx)
        }
    }

    func addListener(_ handle: ListenerHandle, delegate: any ListenerDelegate) {
        listeners[handle] = ListenerRegistration(delegate: delegate)
    }

    func armAccept(_ handle: ListenerHandle, _ fx: inout Effects) {
        listeners[handle]?.wantAccept = true
        checkWaiters(&fx)
    }

    func noneToAccept(_ handle: ListenerHandle) {
        listeners[handle]?.maybePending = false
    }

    func removeListener(_ handle: ListenerHandle) {
        listeners[handle] = nil
    }

    func startPing(
        to destination: IPv4Address, payload: Int, timeoutNanoseconds: UInt64?,
        continuation: UnsafeContinuation<Result<UInt64, SocketError>, Never>, _ fx: inout Effects
    ) {
        if closed || linkFailure != nil {
            let failure = linkFailure ?? .networkDown
            fx.resumes.append { continuation.resume(returning: .failure(SocketError(failure))) }
            return
        }
        pingSequence &+= 1
        let sequence = pingSequence
        let data = (0..<payload).map { UInt8(truncatingIfNeeded: $0) }
        let queued = data.withUnsafeBytes {
            stack.sendEchoRequest(to: destination, identifier: pingIdentifier, sequence: sequence, data: $0)
        }
        guard queued else {
            let reason: SocketError.Reason = payload + 28 > configuration.mtu ? .messageTooLong : .noBufferSpace
            fx.resumes.append { continuation.resume(returning: .failure(SocketError(reason))) }
            return
        }
        // No timer for an infinite timeout: the ping waits for its answer or the line's end.
        let timer = timeoutNanoseconds.map { ns in
            runtime.schedule(afterNanoseconds: ns) { [weak self] in self?.pingTimedOut(sequence) }
        }
        pings[sequence] = PendingPing(start: runtime.now, timer: timer, continuation: continuation)
        pump(&fx)
    }

    func pingTimedOut(_ sequence: UInt16) {
        locked { fx in
            guard let ping = pings.removeValue(forKey: sequence) else { return }
            let continuation = ping.continuation
            fx.resumes.append { continuation.resume(returning: .failure(.timeout)) }
        }
    }

    /// Stops the engine: closes the link and the capture, fails whatever waits (`enetdown`).
    func shutdown() {
        locked { fx in
            guard !closed else { return }
            // Last words: resets for open connections go out if the link takes them now.
            for (handle, _) in inOrder(registrations, \.rank) { stack.abort(handle) }
            if linkFailure == nil { writeLink(now: nowMilliseconds) }
            closed = true
            // `enetdown` from now on: the driver contract's one reason for a stopped driver (the
            // network behind it is down; `closed` would read as the socket's own close).
            linkFailure = linkFailure ?? .networkDown
            if let timer { runtime.cancel(timer) }
            timer = nil
            for (_, pending) in inOrder(connects, \.rank) {
                if let timer = pending.timer { runtime.cancel(timer) }
                let continuation = pending.continuation
                fx.resumes.append { continuation.resume(returning: .failure(SocketError(.networkDown, "the slip driver was closed"))) }
            }
            connects = [:]
            for (_, ping) in inOrder(pings, { UInt32($0) }) {
                if let timer = ping.timer { runtime.cancel(timer) }
                let continuation = ping.continuation
                fx.resumes.append { continuation.resume(returning: .failure(SocketError(.networkDown, "the slip driver was closed"))) }
            }
            pings = [:]
            for (_, r) in inOrder(registrations, \.rank) {
                let delegate = r.delegate
                if r.wantRead { fx.posts.append { delegate.connectionReadable() } }
                if r.wantWrite { fx.posts.append { delegate.connectionWritable() } }
            }
            for (_, r) in inOrder(datagramRegistrations, \.rank) {
                let delegate = r.delegate
                if r.wantRead { fx.posts.append { delegate.datagramReadable() } }
                if r.wantWrite { fx.posts.append { delegate.datagramWritable() } }
            }
            for (_, l) in inOrder(listeners, \.rank) where l.wantAccept {
                let delegate = l.delegate
                fx.posts.append { delegate.listenerAcceptable() }
            }
            capture?.close()
            capture = nil
            link.setDelegate(nil)
            link.close()
        }
    }

    /// Flushes the capture file's buffered records to disk.
    func flushCapture() {
        locked { _ in capture?.flush() }
    }

    /// The stack, for a caller that already holds the lock (inside ``locked(_:)``).
    func withStackLocked<R, E: Error>(_ body: (inout Stack) throws(E) -> R) throws(E) -> R {
        try body(&stack)
    }

    var snapshot: SLIPStatistics {
        lock.lock()
        defer { lock.unlock() }
        do {
            var s = statistics
            s.stack = stack.counters
            s.escapeErrors = Int(decoder.escapeErrors)
            s.oversizedFrames = Int(decoder.overflows)
            s.connectionsInUse = stack.connectionsInUse
            return s
        }
    }
}
