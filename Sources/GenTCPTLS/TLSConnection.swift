import GenTCP
import Synchronization

/// TLS over any driver's connection, as the port layer sees it: a ``Connection`` whose bytes are
/// plaintext.
///
/// It sits between a ``Socket`` (which keeps every gen_tcp rule: active modes, owner, counters,
/// timeouts) and the driver's connection (posix, sim, slip, a modem's TCP link), and pumps a
/// ``TLSEngine`` between them. It is the driver connection's delegate: readiness from the driver
/// drives the handshake, then is passed on to the socket.
///
/// Memory is bounded: the engine holds at most its ``TLSBufferLimits``. Ciphertext moves between
/// the driver and the engine's fixed rings in place: the driver reads into the inbound ring and
/// writes from the outbound one, with no buffer of the pump's own in between.
final class TLSConnection: Connection, ConnectionDelegate {
    /// Ciphertext read from the driver in one go (the engine takes less when it is full).
    static let inboundChunk = 2 * TLSBufferLimits.largestRecord
    /// How long a graceful close waits for the driver to take the close_notify before it resets.
    static let closeLinger: Duration = .seconds(10)

    enum Step {
        case done
        case wait
        case failed(SocketError)
    }

    /// Only ever touched under ``state``'s lock, which is what makes the engine (a class that is
    /// not thread-safe) safe to share.
    struct State: @unchecked Sendable {
        var engine: TLSEngine
        var inner: (any Connection)?
        var outer: (any ConnectionDelegate)?
        /// Cleartext a plain socket had read before its upgrade, given to the engine first.
        var carried: [UInt8] = []
        /// The driver reported its end of stream (the peer's FIN).
        var innerEnded = false
        /// The driver failed: a reset, a timeout, a lost line.
        var innerFailure: SocketError.Reason?
        /// The first failure this connection reported, with its TLS detail (the alert).
        var failure: SocketError?
        var established = false
        var outerWantsRead = false
        var outerWantsWrite = false
        var innerReadArmed = false
        var innerWriteArmed = false
        /// Handshake: a waiter for the driver's readiness, or a wake-up that came first.
        var waiter: UnsafeContinuation<Void, Never>?
        var wakePending = false
        var handshakeEnd: SocketError?
        /// The socket closed (or shut down its write side) and the close_notify is on its way.
        var closing = false
        var shutdownWhenFlushed = false
        var released = false
        var lingerTimer: TimerID?
    }

    let state: Mutex<State>
    let runtime: any Runtime

    init(engine: TLSEngine, runtime: any Runtime) {
        self.runtime = runtime
        self.state = Mutex(State(engine: engine))
    }

    /// The driver's connection, once it exists (after the driver's connect or accept).
    func attachInner(_ connection: any Connection) {
        state.withLock { $0.inner = connection }
    }

    /// Bytes a plain socket read before its upgrade: the engine gets them before anything else.
    func carry(_ bytes: [UInt8]) {
        state.withLock { $0.carried = bytes }
    }

    /// The socket that reads and writes plaintext from now on.
    func attachOuter(_ delegate: any ConnectionDelegate) {
        state.withLock { $0.outer = delegate }
    }

    // MARK: Handshake

    /// Runs the handshake to its end: the engine's role decides which side this is.
    /// - Parameter timeout: the limit (nil: none), after which it fails with `timeout`.
    /// - Throws: `tls_alert` (with the alert and side), `closed` when the peer ended the stream
    ///   first, `timeout`, `cancelled`, or the driver's failure.
    func handshake(timeout: Duration?) async throws(SocketError) {
        let timer = timeout.map { limit in
            runtime.schedule(after: limit) { [weak self] in self?.endHandshake(with: .timeout) }
        }
        defer { if let timer { runtime.cancel(timer) } }
        while true {
            let step = state.withLock { s in handshakeStep(&s) }
            switch step {
            case .done: return
            case .failed(let error): throw error
            case .wait:
                await withTaskCancellationHandler {
                    await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                        let now = state.withLock { s -> Bool in
                            if s.wakePending || s.handshakeEnd != nil {
                                s.wakePending = false
                                return true
                            }
                            s.waiter = c
                            return false
                        }
                        if now { c.resume() }
                    }
                } onCancel: {
                    endHandshake(with: .cancelled)
                }
            }
        }
    }

    /// Ends a waiting handshake from outside (its timer, a cancellation).
    private func endHandshake(with error: SocketError) {
        let waiter = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            guard !s.established, s.handshakeEnd == nil else { return nil }
            s.handshakeEnd = error
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    func handshakeStep(_ s: inout State) -> Step {
        if let end = s.handshakeEnd { return .failed(end) }
        guard let inner = s.inner else { return .failed(.closed) }
        while true {
            if !s.carried.isEmpty {
                let taken = s.carried.withUnsafeBytes { s.engine.receiveCiphertext($0) }
                s.carried.removeFirst(taken)
            }
            let done: Bool
            do throws(TLSError) {
                done = try s.engine.handshake()
            } catch {
                // The alert this side generated goes to the peer before the failure is reported.
                flush(&s)
                return .failed(Self.socketError(error))
            }
            let flushed = flush(&s)
            if let r = s.innerFailure { return .failed(SocketError(r)) }
            if done {
                s.established = true
                return .done
            }
            if s.engine.isBlockedOnOutput {
                // A flight larger than the outbound ring: go on once the driver took some.
                if flushed { continue }
                return .wait
            }
            guard s.carried.isEmpty else { continue }
            let endedBefore = s.innerEnded
            switch readInner(&s, inner) {
            case .bytes: continue
            case .endOfStream:
                // The engine was told; a second end means it still waits for bytes that will
                // never come.
                if endedBefore { return .failed(.closed) }
                continue
            case .failed(let r): return .failed(SocketError(r))
            case .wouldBlock:
                armInnerRead(&s)
                return .wait
            }
        }
    }

    // MARK: Pumping

    /// Reads ciphertext from the driver into the engine, at most what the engine takes now.
    private func readInner(_ s: inout State, _ inner: any Connection) -> IOResult {
        if s.innerEnded { return .endOfStream }
        if let r = s.innerFailure { return .failed(r) }
        // Straight into the engine's inbound ring. None there: the engine is full but made
        // nothing of it (a record larger than TLS allows is held back by the engine's bound; the
        // engine reports it on its next call).
        let outcome = s.engine.receiveCiphertext(upTo: Self.inboundChunk) { space -> (count: Int, result: IOResult) in
            let result = inner.read(into: space)
            if case .bytes(let n) = result { return (n, result) }
            return (0, result)
        }
        guard let result = outcome else { return .wouldBlock }
        switch result {
        case .bytes:
            break
        case .endOfStream:
            s.innerEnded = true
            s.engine.receiveEndOfStream()
        case .failed(let r):
            s.innerFailure = r
            s.engine.receiveEndOfStream()
        case .wouldBlock:
            break
        }
        return result
    }

    /// Moves the engine's ciphertext to the driver (straight from the engine's outbound ring)
    /// while it takes it. Arms the driver's write when some is left. Returns true when nothing is
    /// left.
    @discardableResult
    private func flush(_ s: inout State) -> Bool {
        guard let inner = s.inner else { return true }
        while true {
            let outcome = s.engine.sendCiphertext { bytes -> (count: Int, result: IOResult) in
                let result = inner.write([bytes])
                if case .bytes(let n) = result { return (n, result) }
                return (0, result)
            }
            guard let result = outcome else {
                finishClosingIfFlushed(&s)
                return true
            }
            switch result {
            case .bytes:
                continue
            case .wouldBlock, .endOfStream:
                armInnerWrite(&s)
                return false
            case .failed(let r):
                // Nothing will ever reach this driver: what waited for it is dropped.
                if s.innerFailure == nil { s.innerFailure = r }
                s.engine.discardCiphertext()
                return false
            }
        }
    }

    private func armInnerRead(_ s: inout State) {
        guard !s.innerReadArmed, let inner = s.inner else { return }
        s.innerReadArmed = true
        inner.armRead()
    }

    private func armInnerWrite(_ s: inout State) {
        guard !s.innerWriteArmed, let inner = s.inner else { return }
        s.innerWriteArmed = true
        inner.armWrite()
    }

    /// After a close or shutdown(write): once the close_notify has left, the driver's connection
    /// closes (or shuts its write side).
    private func finishClosingIfFlushed(_ s: inout State) {
        guard s.closing, s.engine.pendingCiphertextCount == 0, let inner = s.inner else { return }
        if s.shutdownWhenFlushed {
            s.shutdownWhenFlushed = false
            s.closing = false
            _ = inner.shutdown(.write)
            return
        }
        s.inner = nil
        if let t = s.lingerTimer {
            s.lingerTimer = nil
            runtime.cancel(t)
        }
        inner.close(abortive: false)
    }

    // MARK: Connection (called by the socket, under its lock)

    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        state.withLock { s in
            if let failure = s.failure { return .failed(failure.reason) }
            guard let inner = s.inner else { return .failed(.closed) }
            var emptyReads = 0
            while true {
                let result: TLSReadResult
                do throws(TLSError) {
                    result = try s.engine.readPlaintext(into: buffer)
                } catch {
                    flush(&s)
                    return fail(&s, Self.socketError(error))
                }
                switch result {
                case .bytes(let n):
                    // Reading may have made the engine answer (a TLS 1.3 key update).
                    flush(&s)
                    return .bytes(n)
                case .closed:
                    return .endOfStream
                case .truncated:
                    return fail(&s, SocketError(s.innerFailure ?? .truncated))
                case .wouldBlock:
                    flush(&s)
                    if s.innerEnded || s.innerFailure != nil {
                        // The engine has seen the end; a second empty read means it holds a
                        // partial record it can never finish.
                        emptyReads += 1
                        if emptyReads > 1 { return fail(&s, SocketError(s.innerFailure ?? .truncated)) }
                        continue
                    }
                    switch readInner(&s, inner) {
                    case .bytes, .endOfStream, .failed: continue
                    case .wouldBlock: return .wouldBlock
                    }
                }
            }
        }
    }

    private func fail(_ s: inout State, _ error: SocketError) -> IOResult {
        if s.failure == nil { s.failure = error }
        return .failed(s.failure!.reason)
    }

    func write(_ chunks: [UnsafeRawBufferPointer]) -> IOResult {
        state.withLock { s in
            if let failure = s.failure { return .failed(failure.reason) }
            if let r = s.innerFailure { return fail(&s, SocketError(r)) }
            guard s.inner != nil else { return .failed(.closed) }
            flush(&s)
            var total = 0
            outer: for chunk in chunks {
                var offset = 0
                var retried = false
                while offset < chunk.count {
                    let n: Int
                    do throws(TLSError) {
                        n = try s.engine.writePlaintext(UnsafeRawBufferPointer(rebasing: chunk[offset...]))
                    } catch {
                        flush(&s)
                        if total > 0 { break outer }
                        return fail(&s, Self.socketError(error))
                    }
                    if n == 0 {
                        // The engine holds as much ciphertext as it may: hand it to the driver,
                        // and stop when the driver cannot take it (or the engine still takes
                        // nothing after that).
                        if retried || !flush(&s) { break outer }
                        retried = true
                        continue
                    }
                    retried = false
                    offset += n
                    total += n
                }
            }
            flush(&s)
            if let r = s.innerFailure, total == 0 { return fail(&s, SocketError(r)) }
            return total > 0 ? .bytes(total) : .wouldBlock
        }
    }

    func armRead() {
        let now = state.withLock { s -> Bool in
            guard s.outer != nil else { return false }
            if s.engine.hasPendingInput || s.innerEnded || s.innerFailure != nil || s.failure != nil {
                return true
            }
            s.outerWantsRead = true
            armInnerRead(&s)
            return false
        }
        // Never call the socket back from inside its own call: a timer of 0 does it after.
        if now { notifyLater(read: true) }
    }

    func armWrite() {
        let now = state.withLock { s -> Bool in
            guard s.outer != nil else { return false }
            if s.failure != nil || s.innerFailure != nil { return true }
            // Room for a whole record, as the engine wants for a large write (a smaller room
            // would make the socket retry in a loop while the driver drains).
            if s.engine.acceptsWholeRecord {
                return true
            }
            s.outerWantsWrite = true
            armInnerWrite(&s)
            return false
        }
        if now { notifyLater(read: false) }
    }

    private func notifyLater(read: Bool) {
        _ = runtime.schedule(afterNanoseconds: 0) { [weak self] in
            guard let self, let outer = self.state.withLock({ $0.outer }) else { return }
            if read { outer.connectionReadable() } else { outer.connectionWritable() }
        }
    }

    func shutdown(_ how: ShutdownHow) -> SocketError.Reason? {
        state.withLock { s in
            guard let inner = s.inner else { return .notConnected }
            switch how {
            case .read:
                return inner.shutdown(.read)
            case .write, .readWrite:
                // close_notify, then the driver's FIN once it has left (see the README: OTP's ssl
                // sends the FIN alone, which GenTCP would report as a truncation).
                s.engine.close()
                s.closing = true
                s.shutdownWhenFlushed = true
                flush(&s)
                return how == .readWrite ? inner.shutdown(.read) : nil
            }
        }
    }

    func close(abortive: Bool) {
        state.withLock { s in
            s.outer = nil
            s.outerWantsRead = false
            s.outerWantsWrite = false
            guard let inner = s.inner else { return }
            if abortive || s.failure != nil && s.engine.pendingCiphertextCount == 0 {
                s.inner = nil
                inner.close(abortive: abortive)
                return
            }
            if s.established { s.engine.close() }
            s.closing = true
            s.shutdownWhenFlushed = false
            if !flush(&s) && s.inner != nil {
                s.lingerTimer = runtime.schedule(after: Self.closeLinger) { [weak self] in
                    self?.abandonClose()
                }
            }
        }
    }

    /// The driver never took the close_notify: give up on it and reset.
    private func abandonClose() {
        let inner = state.withLock { s -> (any Connection)? in
            s.lingerTimer = nil
            defer { s.inner = nil }
            return s.inner
        }
        inner?.close(abortive: true)
    }

    func localAddress() -> SocketAddress? { state.withLock { $0.inner?.localAddress() } }
    func remoteAddress() -> SocketAddress? { state.withLock { $0.inner?.remoteAddress() } }

    func apply(_ option: Option) -> SocketError.Reason? {
        state.withLock { $0.inner?.apply(option) }
    }

    func waitBriefly(forReadUpTo limit: Duration?) -> Bool {
        let inner = state.withLock { s -> (any Connection)? in
            s.engine.hasPendingInput ? nil : s.inner
        }
        guard let inner else { return true }
        let ready = inner.waitBriefly(forReadUpTo: limit)
        // The driver may have withdrawn our arming while it waited.
        state.withLock { $0.innerReadArmed = false }
        return ready
    }

    var unsentByteCount: Int {
        state.withLock { s in
            (s.inner?.unsentByteCount ?? 0) + s.engine.pendingCiphertextCount
        }
    }

    func error(for reason: SocketError.Reason) -> SocketError {
        state.withLock { s in
            if let failure = s.failure, failure.reason == reason { return failure }
            return SocketError(reason)
        }
    }

    // MARK: ConnectionDelegate (the driver's readiness)

    func connectionReadable() {
        let (waiter, outer) = state.withLock { s -> (UnsafeContinuation<Void, Never>?, (any ConnectionDelegate)?) in
            s.innerReadArmed = false
            if !s.established {
                if let w = s.waiter {
                    s.waiter = nil
                    return (w, nil)
                }
                s.wakePending = true
                return (nil, nil)
            }
            guard s.outerWantsRead, let outer = s.outer else { return (nil, nil) }
            s.outerWantsRead = false
            return (nil, outer)
        }
        waiter?.resume()
        outer?.connectionReadable()
    }

    func connectionWritable() {
        let (waiter, outer) = state.withLock { s -> (UnsafeContinuation<Void, Never>?, (any ConnectionDelegate)?) in
            s.innerWriteArmed = false
            let flushed = flush(&s)
            if !s.established {
                if let w = s.waiter {
                    s.waiter = nil
                    return (w, nil)
                }
                s.wakePending = true
                return (nil, nil)
            }
            guard s.outerWantsWrite, let outer = s.outer else { return (nil, nil) }
            guard flushed || s.innerFailure != nil else { return (nil, nil) }
            s.outerWantsWrite = false
            return (nil, outer)
        }
        waiter?.resume()
        outer?.connectionWritable()
    }

    // MARK: Information

    func withEngine<T>(_ body: (TLSEngine) -> T) -> T {
        state.withLock { body($0.engine) }
    }

    /// The reason a ``TLSError`` becomes at the port: an alert with its side, `closed`,
    /// `truncated`; a refused configuration `badarg`; an engine failure without an alert `eproto`.
    static func socketError(_ error: TLSError) -> SocketError {
        switch error {
        case .alert(let alert, let origin): SocketError(alert: alert, origin: origin)
        case .closed: .closed
        case .truncated: SocketError(.truncated)
        case .configuration: SocketError(.badArgument, "the TLS configuration was refused")
        case .engine: SocketError(.protocolError, "the TLS engine failed without an alert")
        }
    }
}
