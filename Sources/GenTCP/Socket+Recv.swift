import GenTCPCore

extension Socket {
    /// Receives data in passive mode; Erlang's `gen_tcp:recv(Socket, Length, Timeout)`.
    ///
    /// - `length == 0`: whatever is available, at most `buffer` bytes; waits for at least one byte.
    /// - `length > 0`: exactly `length` bytes, waiting across segments (may exceed `buffer`).
    ///   Shorter than `buffer`, one read takes up to `buffer` bytes and keeps the rest for the
    ///   next call, so a `recv(4)` length prefix and the `recv(N)` body behind it cost one system
    ///   call (OTP 25 reads exactly `length`; nothing else differs, and bytes kept this way go to
    ///   the handshake of an upgrade to TLS as if they were still in the kernel).
    ///
    /// A timeout loses nothing: bytes of a partly satisfied exact read stay buffered for the next
    /// call. Timeout 0 polls. Only one `recv` may wait at a time; any process may call it.
    ///
    /// Cancelling the calling task, or killing the calling process, ends a waiting `recv` at once
    /// with `cancelled`, and loses nothing either: the bytes it had gathered stay buffered for the
    /// next `recv`, which may start at once. (OTP keeps a killed reader's `recv` pending, so the
    /// next one gets `ealready`, and the bytes that arrive go to the dead reader.) A cancelled
    /// task still gets data that is already there; it only refuses to wait.
    ///
    /// - Throws: `timeout`; `closed` at end of stream (once; the partial bytes of an exact read
    ///   are discarded, as in OTP), then `enotconn`; `econnreset` with `showEconnreset`; `einval`
    ///   on an active socket; `ealready` while another `recv` waits; `closed` after `close`;
    ///   `badarg` for a negative length; `enomem` for a length above 64 MiB; `cancelled` when the
    ///   task is cancelled or the process exits while it waits.
    public func recv(_ length: Int, timeout: Timeout = .infinity) async throws(SocketError) -> Payload {
        guard length >= 0 else { throw SocketError(.badArgument, "recv length must be >= 0") }
        guard length <= SocketOptions.maximumRecvLength else {
            throw SocketError(.outOfMemory, "recv length above 64 MiB")
        }
        let limit = try timeout.validated().nanoseconds
        let caller = try Process.liveCaller()
        // First attempt on the caller's thread: no hop when data is already there.
        var waitedBriefly = false
        // The last look read and found nothing (not the drained case, which looks after the wait).
        var looked = false
        var id: UInt64 = 0
        while true {
            var briefWait: (any Connection)?
            var yields = false
            let first: Result<Payload, SocketError>? = state.withLock { s in
                // A brief wait may have withdrawn the read arming (see Connection.waitBriefly).
                if waitedBriefly { s.briefWaitEnded() }
                if let refusal = recvRefusal(&s) { return .failure(refusal) }
                // The last read left the socket empty: a read now would most likely find nothing
                // (an EAGAIN per recv, 1.2 extra reads per 64 KiB of bulk data). Let the brief
                // wait look first; it returns at once when data is there.
                if !waitedBriefly, s.drained, s.stash.isEmpty, s.readEnd == .open, let c = s.connection {
                    s.drained = false
                    briefWait = c
                    s.recvBriefly = true
                    return nil
                }
                var data: [UInt8] = []
                var filled = 0
                if let done = attemptRecv(&s, length: length, data: &data, filled: &filled) {
                    yields = s.quantum.ranWithoutSuspending(now: runtime.now)
                    return done
                }
                keepPartial(&s, data, filled)
                if limit == 0 { return .failure(.timeout) }
                looked = true
                if !waitedBriefly, let c = s.connection {
                    briefWait = c
                    s.recvBriefly = true
                }
                id = s.takeWaiterID()
                return nil
            }
            if let first {
                if yields { await Task.yield() }
                return try first.get()
            }
            // Before parking, let the driver wait a moment on this thread (see waitBriefly) and
            // look once more if it saw data. When it saw none, or did not wait (always so on an
            // event loop, and on a busy driver), a second read would only find nothing again: park
            // now; data that came meanwhile fires the readiness armed there at once.
            guard let connection = briefWait else { break }
            let ready = connection.waitBriefly(forReadUpTo: timeout.duration)
            waitedBriefly = true
            if !ready && looked { break }
        }

        let waiterID = id
        let briefly = waitedBriefly
        let result: Result<Payload, SocketError> = await caller.waiting(interrupt: {
            self.endRecv(waiterID, with: caller.cancellation)
        }) { await withUnsafeContinuation { continuation in
            let effects = Effects()
            let immediate: Result<Payload, SocketError>? = state.withLock { s in
                s.quantum.suspended()
                if briefly { s.briefWaitEnded() }
                if let refusal = recvRefusal(&s) { return .failure(refusal) }
                var data: [UInt8] = []
                var filled = 0
                // The first attempt just found nothing to read. Only bytes put back meanwhile (a
                // timed-out recv's partial data) are worth another look; data that arrives from
                // now on fires the readiness armed below, so a second read would only see EAGAIN.
                if !s.stash.isEmpty || s.readEnd != .open,
                   let done = attemptRecv(&s, length: length, data: &data, filled: &filled) { return done }
                if caller.mustNotWait {
                    keepPartial(&s, data, filled)
                    return .failure(caller.cancellation)
                }
                var waiter = PortState.RecvWaiter(id: waiterID, length: length, data: data, filled: filled,
                                                  continuation: continuation, timer: nil)
                if let limit {
                    waiter.timer = runtime.schedule(afterNanoseconds: limit) { [weak self] in
                        self?.endRecv(waiterID, with: .timeout)
                    }
                }
                s.recvWaiter = waiter
                armRead(&s)
                return nil
            }
            effects.run(on: runtime)
            if let immediate { continuation.resume(returning: immediate) }
        } }
        return try result.get()
    }

    /// Why a `recv` cannot start now, if it cannot.
    private func recvRefusal(_ s: inout PortState) -> SocketError? {
        if s.closed { return .closed }
        if s.options.active.delivers { return SocketError(.invalidArgument, "recv on an active socket") }
        if s.recvInProgress { return .alreadyInProgress }
        switch s.readEnd {
        case .open: return nil
        case .closedPending:
            // A failed send or shutdown(read_write) closed the read side: OTP clears its input
            // buffer, so bytes a timed-out recv kept are dropped too.
            s.stash.removeAll()
            s.readEnd = .dead
            return .closed
        case .dead:
            return s.stash.isEmpty ? endedError : nil
        }
    }

    /// Fills `data` from the stash, then the connection. Returns the result when the request is
    /// settled (data or an end), nil when it must wait; `data[0..<filled]` is what it has so far.
    ///
    /// An exact read shorter than `buffer` on a plain socket reads up to `buffer` bytes and keeps
    /// what it read past its length for the next call (OTP 25 reads exactly the length): a
    /// `recv(4)` header and the `recv(N)` body behind it cost one system call, not two, and a
    /// read that comes back short shows the socket was emptied (`drained`). What is kept is at
    /// most `buffer` bytes, read only while the owner reads.
    func attemptRecv(
        _ s: inout PortState, length: Int, data: inout [UInt8], filled: inout Int
    ) -> Result<Payload, SocketError>? {
        // `want` settles the request; `room` is what reads may fill.
        let want: Int
        if length != 0 {
            want = length
            if data.count < length {
                // Bytes are only ever read from `data[0..<filled]`, so the rest need not be zeroed
                // (a 64 KiB memset per recv(0) was measurable on bulk transfers).
                let readAhead = security == .plain && s.stash.count < length
                let room = readAhead ? max(length, s.options.buffer) : length
                data = [UInt8](unsafeUninitializedCapacity: room) { _, count in count = room }
                filled = 0
            }
        } else {
            want = s.stash.isEmpty && filled == 0 ? readAllocation(s) : readCapacity(s)
            if data.count != want {
                data = [UInt8](unsafeUninitializedCapacity: want) { _, count in count = want }
                filled = 0
            }
        }
        filled += s.stash.take(upTo: want - filled, into: &data, at: filled)
        var short: Bool?
        while filled < want && (length != 0 || filled == 0) {
            guard s.readEnd == .open, let connection = s.connection else {
                return endOfRecv(&s, reason: nil, exact: length != 0, filled: filled, data: &data)
            }
            let room = data.count
            let result = data.withUnsafeMutableBytes { raw in
                connection.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[filled..<room]))
            }
            switch result {
            case .bytes(let n):
                short = n < room - filled
                filled += n
            case .wouldBlock:
                return nil
            case .endOfStream:
                return endOfRecv(&s, reason: nil, exact: length != 0, filled: filled, data: &data)
            case .failed(let reason):
                return endOfRecv(&s, reason: reason, exact: length != 0, filled: filled, data: &data)
            }
        }
        // A read that got less than it asked for emptied the socket (see `recv`).
        if let short { s.drained = short } else if length == 0 { s.drained = filled < want }
        if filled > want {
            // Read ahead. The stash is empty here (it was taken before any read). Copy the
            // smaller part: the bytes kept, or the ones delivered.
            if filled - want <= want {
                s.stash.keepReadAhead(data, want..<filled)
                data.removeSubrange(want...)
            } else {
                var whole = data
                data = Array(whole[0..<want])
                s.stash.adopt(&whole, from: want, to: filled)
            }
            filled = want
        } else if length != 0, data.count - filled >= 1024, data.count > 2 * filled {
            // Met without reading ahead, in a much larger room: a small payload must not hold it.
            data = Array(data[0..<filled])
        } else if filled < data.count {
            data.removeSubrange(filled...)
        }
        s.stats.delivered(filled)
        return .success(Payload(data, mode: s.options.mode))
    }

    /// End of stream (or an error) met by a `recv`: the bytes of a `recv(0)` are returned first;
    /// an exact read's partial bytes are discarded and `closed` reported, as OTP does.
    private func endOfRecv(
        _ s: inout PortState, reason: SocketError.Reason?, exact: Bool, filled: Int, data: inout [UInt8]
    ) -> Result<Payload, SocketError> {
        if !exact && filled > 0 {
            // Report the bytes now; the end is seen again by the next read.
            data.removeSubrange(filled...)
            s.stats.delivered(filled)
            return .success(Payload(data, mode: s.options.mode))
        }
        if s.readEnd == .open {
            s.readEnd = .dead
            s.endUnannounced = true
            if s.options.exitOnClose {
                if s.writeEnd == .open { s.writeEnd = .closedPending }
                // OTP closes the descriptor at a passive end of stream when exit_on_close is set
                // (inet_drv's tcp_recv_closed), so the peer sees the end at once (acceptance E49).
                // Shutting down the write side does that here; a sender still waiting then fails
                // with closed, and close() releases the descriptor.
                _ = s.connection?.shutdown(.write)
            }
        }
        switch reason {
        case nil: return .failure(.closed)
        case let r? where hidesFailure(r, s): return .failure(.closed)
        case let r?: return .failure(s.connection?.error(for: r) ?? SocketError(r))
        }
    }

    /// Puts the partial bytes of an unfinished `recv` back in front of the stash.
    private func keepPartial(_ s: inout PortState, _ data: [UInt8], _ filled: Int) {
        s.stash.putBack(data, 0..<filled)
    }

    /// Continues a waiting `recv` after the driver said the connection is readable.
    func continueRecv(_ s: inout PortState, _ e: inout Effects) {
        guard var w = s.recvWaiter else { return }
        // Take the waiter out while it fills: with a second reference in `s.recvWaiter`, writing
        // into `w.data` would copy the whole buffer (copy-on-write) on every wake-up.
        s.recvWaiter = nil
        if let result = attemptRecv(&s, length: w.length, data: &w.data, filled: &w.filled) {
            if let t = w.timer { e.cancelTimers.append(t) }
            e.resumeRecv.append((w.continuation, result))
            // The socket may have been made active while this recv waited.
            pumpActive(&s, &e)
        } else {
            s.recvWaiter = w
            armRead(&s)
        }
    }

    /// Ends the waiting `recv` numbered `id` (if it still waits) with `error`: its timeout, or
    /// `cancelled`. Its partial bytes go back to the stash for the next reader.
    private func endRecv(_ id: UInt64, with error: SocketError) {
        var effects = Effects()
        state.withLock { s in
            guard let w = s.recvWaiter, w.id == id else { return }
            s.recvWaiter = nil
            keepPartial(&s, w.data, w.filled)
            if let t = w.timer, error != .timeout { effects.cancelTimers.append(t) }
            effects.resumeRecv.append((w.continuation, .failure(error)))
            pumpActive(&s, &effects)
        }
        effects.run(on: runtime)
    }
}
