import GenTCPCore

extension Socket {
    /// Sends bytes; Erlang's `gen_tcp:send(Socket, Packet)`.
    ///
    /// Returns once every byte has been handed to the driver (the kernel, the stack's send
    /// buffer, the modem). While the driver cannot take more, the caller waits: that is the
    /// backpressure, and nothing is queued beyond the caller's own bytes. Concurrent senders are
    /// served in call order and never interleave. An empty send succeeds and counts in `send_cnt`.
    ///
    /// Cancelling the calling task, or killing the calling process, ends a waiting `send` at once
    /// with `cancelled`. As after a send timeout, the bytes already handed to the driver are still
    /// sent and the rest are not; the next sender continues where the stream stands.
    ///
    /// - Throws: `closed` after close, after `shutdown(write)`, or when the peer has gone (then
    ///   `enotconn`); `econnreset` with `showEconnreset`; `timeout` when `sendTimeout` passes
    ///   without progress (with `sendTimeoutClose`, later calls give `enotconn`); `cancelled` when
    ///   the task is cancelled or the process exits while it waits.
    public func send(_ bytes: [UInt8]) async throws(SocketError) {
        try await send(chunks: [bytes])
    }

    /// Sends the bytes of any collection.
    public func send<Bytes: Collection<UInt8>>(_ bytes: Bytes) async throws(SocketError) {
        try await send(chunks: [Array(bytes)])
    }

    /// Sends the UTF-8 bytes of a string.
    public func send(_ text: String) async throws(SocketError) {
        try await send(chunks: [Array(text.utf8)])
    }

    /// Sends a sequence of byte chunks as one stream, without joining them first (OTP's iodata;
    /// the posix driver hands them to `writev(2)`).
    public func send(chunks: [[UInt8]]) async throws(SocketError) {
        let caller = try Process.liveCaller()
        var total = 0
        for c in chunks { total += c.count }
        var waiter = PortState.SendWaiter(id: 0, chunks: chunks, total: total, continuation: nil, timer: nil)
        // First attempt on the caller's thread.
        var effects = Effects()
        let first: Result<Void, SocketError>? = state.withLock { s in
            if let refusal = sendRefusal(&s) { return .failure(refusal) }
            if total == 0 {
                s.stats.sent(0)
                return .success(())
            }
            waiter.id = s.takeWaiterID()
            guard s.senders.isEmpty else { return nil }
            return writeSome(&s, &waiter, &effects)
        }
        effects.run(on: runtime)
        if let first { return try first.get() }

        let id = waiter.id
        let result: Result<Void, SocketError> = await caller.waiting(interrupt: {
            self.endSend(id, with: caller.cancellation)
        }) { await withUnsafeContinuation { continuation in
            var effects = Effects()
            let immediate: Result<Void, SocketError>? = state.withLock { s in
                if let refusal = sendRefusal(&s) { return .failure(refusal) }
                if s.senders.isEmpty, let done = writeSome(&s, &waiter, &effects) { return done }
                if caller.mustNotWait { return .failure(caller.cancellation) }
                waiter.continuation = continuation
                waiter.timer = scheduleSendTimeout(&s, id: waiter.id)
                s.senders.append(waiter)
                armWrite(&s)
                return nil
            }
            effects.run(on: runtime)
            if let immediate { continuation.resume(returning: immediate) }
        } }
        try result.get()
    }

    /// What a call on an ended stream gets after the first `closed`: gen_tcp's `enotconn`; OTP's
    /// ssl keeps answering `closed` (tls-semantics.md §6), and so do TLS sockets.
    var endedError: SocketError { security == .plain ? .notConnected : .closed }

    private func sendRefusal(_ s: inout PortState) -> SocketError? {
        if s.closed { return .closed }
        switch s.writeEnd {
        case .open: return nil
        case .closedPending:
            s.writeEnd = .dead
            // A failed send marks the socket closed for reading too: after shutdown(write), the
            // next recv reports `closed` even if data was in flight (OTP; acceptance E51).
            if s.readEnd == .open { s.readEnd = .closedPending }
            return .closed
        case .dead: return endedError
        }
    }

    /// Writes as much of the waiter's bytes as the connection takes. Returns the send's result
    /// when it is settled (all written, or failed), nil when it must wait for writability.
    private func writeSome(
        _ s: inout PortState, _ w: inout PortState.SendWaiter, _ e: inout Effects
    ) -> Result<Void, SocketError>? {
        guard let connection = s.connection else { return .failure(.closed) }
        while w.chunkIndex < w.chunks.count {
            if w.chunks[w.chunkIndex].count == w.chunkOffset {
                w.chunkIndex += 1
                w.chunkOffset = 0
                continue
            }
            let result = Socket.write(connection, w.chunks, from: w.chunkIndex, offset: w.chunkOffset)
            switch result {
            case .bytes(var n):
                // Advance through the chunks by n bytes.
                while n > 0 {
                    let left = w.chunks[w.chunkIndex].count - w.chunkOffset
                    if n >= left {
                        n -= left
                        w.chunkIndex += 1
                        w.chunkOffset = 0
                    } else {
                        w.chunkOffset += n
                        n = 0
                    }
                }
            case .wouldBlock, .endOfStream:
                return nil
            case .failed(let reason):
                return .failure(sendFailed(reason, &s, &e))
            }
        }
        s.stats.sent(w.total)
        return .success(())
    }

    /// Hands up to 64 chunks, starting at `index`/`offset`, to one `write` call.
    private static func write(
        _ connection: any Connection, _ chunks: [[UInt8]], from index: Int, offset: Int
    ) -> IOResult {
        let end = min(chunks.count, index + 64)
        var pointers: [UnsafeRawBufferPointer] = []
        pointers.reserveCapacity(end - index)
        return withPointers(chunks, index, end, offset, &pointers) { connection.write($0) }
    }

    /// Nests `withUnsafeBytes` over `chunks[i..<end]` so all pointers are valid at once.
    private static func withPointers(
        _ chunks: [[UInt8]], _ i: Int, _ end: Int, _ offset: Int,
        _ pointers: inout [UnsafeRawBufferPointer], _ body: ([UnsafeRawBufferPointer]) -> IOResult
    ) -> IOResult {
        if i == end { return body(pointers) }
        return chunks[i].withUnsafeBytes { raw in
            pointers.append(UnsafeRawBufferPointer(rebasing: raw[(pointers.isEmpty ? offset : 0)...]))
            return withPointers(chunks, i + 1, end, offset, &pointers, body)
        }
    }

    /// A write failed: this send reports `closed` (or `econnreset` when shown), later sends
    /// `enotconn`, and the next `recv` reports `closed` even if data was in flight (OTP).
    private func sendFailed(_ reason: SocketError.Reason, _ s: inout PortState, _ e: inout Effects) -> SocketError {
        s.writeEnd = .dead
        if s.readEnd == .open { s.readEnd = .closedPending }
        while let other = s.senders.popFirst() {
            if let t = other.timer { e.cancelTimers.append(t) }
            if let c = other.continuation { e.resumeSend.append((c, .failure(.notConnected))) }
        }
        switch reason {
        case .connectionReset, .brokenPipe:
            return s.options.showEconnreset || security != .plain ? SocketError(.connectionReset) : .closed
        default:
            return s.connection?.error(for: reason) ?? SocketError(reason)
        }
    }

    func armWrite(_ s: inout PortState) {
        guard !s.writeArmed, let connection = s.connection else { return }
        s.writeArmed = true
        connection.armWrite()
    }

    private func scheduleSendTimeout(_ s: inout PortState, id: UInt64) -> TimerID? {
        guard let ns = s.options.sendTimeout.nanoseconds else { return nil }
        return runtime.schedule(afterNanoseconds: ns) { [weak self] in self?.endSend(id, with: .timeout) }
    }

    /// Writes queued senders in order while the connection takes bytes.
    func flushSenders(_ s: inout PortState, _ e: inout Effects) {
        while var head = s.senders.popFirst() {
            let before = head.remaining
            if let result = writeSome(&s, &head, &e) {
                if let t = head.timer { e.cancelTimers.append(t) }
                if let c = head.continuation { e.resumeSend.append((c, result)) }
                if case .failure = result { return }
                continue
            }
            // Progress restarts the send timeout: it measures time without progress.
            if head.remaining != before, let t = head.timer {
                e.cancelTimers.append(t)
                head.timer = scheduleSendTimeout(&s, id: head.id)
            }
            s.senders.prepend(head)
            armWrite(&s)
            return
        }
        if s.shutdownWriteWhenFlushed {
            s.shutdownWriteWhenFlushed = false
            _ = s.connection?.shutdown(.write)
        }
    }

    /// Ends the waiting `send` numbered `id` (if it still waits) with `error`: its send timeout,
    /// or `cancelled`. What it already handed to the driver stays sent.
    private func endSend(_ id: UInt64, with error: SocketError) {
        var effects = Effects()
        state.withLock { s in
            guard let index = s.senders.firstIndex(where: { $0.id == id }) else { return }
            let w = s.senders.remove(at: index)
            if let c = w.continuation { effects.resumeSend.append((c, .failure(error))) }
            let timedOut = error.reason == .timeout
            if !timedOut, let t = w.timer { effects.cancelTimers.append(t) }
            if timedOut && s.options.sendTimeoutClose {
                // The socket is shut down: later send and recv give `enotconn`.
                s.writeEnd = .dead
                s.readEnd = .dead
                while let other = s.senders.popFirst() {
                    if let t = other.timer { effects.cancelTimers.append(t) }
                    if let c = other.continuation { effects.resumeSend.append((c, .failure(.notConnected))) }
                }
                if let r = s.recvWaiter {
                    s.recvWaiter = nil
                    if let t = r.timer { effects.cancelTimers.append(t) }
                    effects.resumeRecv.append((r.continuation, .failure(.notConnected)))
                }
                // Graceful, as OTP closes it: bytes of sends that returned ok still reach the peer
                // (an RST would discard what the kernel still holds). `.linger(0)` still resets.
                s.connection?.close(abortive: s.options.linger == 0)
                s.connection = nil
            } else if index == 0 {
                // The next sender continues where the stream stands.
                flushSenders(&s, &effects)
            }
        }
        effects.run(on: runtime)
    }

    /// Bytes accepted by waiting senders and not yet handed to the driver (`send_pend`).
    func pendingSendBytes(_ s: PortState) -> Int {
        var n = 0
        for w in s.senders { n += w.remaining }
        return n
    }
}
