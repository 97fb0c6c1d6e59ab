import GenTCPCore

extension Socket {
    /// The most messages one readiness callback delivers before yielding to other sockets.
    static let deliveriesPerWakeup = 16

    /// Delivers data to the owner while the socket is active: the stash first, then reads of at
    /// most `buffer` bytes, one message each. Stops reading when the socket turns passive, which
    /// is what leaves unread data in the driver (and the peer's window closed).
    func pumpActive(_ s: inout PortState, _ e: inout Effects) {
        var budget = Socket.deliveriesPerWakeup
        while !s.closed, s.recvWaiter == nil, s.options.active.delivers {
            if budget == 0 {
                armRead(&s)
                return
            }
            budget -= 1
            if !s.stash.isEmpty {
                deliverData(s.stash.take(upTo: readCapacity(s)), &s, &e)
                continue
            }
            if s.readEnd != .open && s.endUnannounced {
                // recv reported the end while passive; activation announces it.
                s.endUnannounced = false
                deliverEnd(nil, &s, &e)
                return
            }
            guard s.readEnd == .open, let connection = s.connection else { return }
            // Small messages: one read for several of them (see `batchLimit`).
            let batch = batchLimit(s, budget: budget + 1)
            if batch > 1 {
                switch readBatch(connection, messages: batch, &s, &e) {
                case .delivered(let count):
                    budget -= count - 1
                    continue
                case .wouldBlock:
                    armRead(&s)
                    return
                case .ended(let reason):
                    deliverEnd(reason, &s, &e)
                    return
                }
            }
            let capacity = readAllocation(s)
            var result = IOResult.wouldBlock
            let data = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
                result = connection.read(into: UnsafeMutableRawBufferPointer(buffer))
                if case .bytes(let n) = result { count = n } else { count = 0 }
            }
            switch result {
            case .bytes:
                deliverData(data, &s, &e)
            case .wouldBlock:
                armRead(&s)
                return
            case .endOfStream:
                deliverEnd(nil, &s, &e)
                return
            case .failed(let reason):
                deliverEnd(reason, &s, &e)
                return
            }
        }
    }

    /// The most bytes one batched read takes (see ``batchLimit(_:budget:)``).
    static let batchBytes = 64 * 1024

    /// How many messages one read may fill: with a `buffer` much smaller than what the kernel
    /// holds, a read per message is a system call per 1,460 bytes, where OTP's and raw readers
    /// pay the same and a batch pays once. Only plain sockets (a TLS engine hands out a record
    /// per read), only as many messages as the active mode still allows (`once`: 1, `{active,
    /// N}`: N) and this wakeup's budget, and at most `batchBytes`. Every byte a batch reads
    /// becomes a message in the same pump, so nothing is read ahead of the owner's mailbox.
    func batchLimit(_ s: PortState, budget: Int) -> Int {
        guard security == .plain, s.stash.isEmpty else { return 1 }
        let allowed: Int
        switch s.options.active {
        case .passive, .once: return 1
        case .active: allowed = budget
        case .count(let n): allowed = min(n, budget)
        }
        return max(1, min(allowed, Socket.batchBytes / max(s.options.buffer, 1)))
    }

    enum BatchOutcome {
        case delivered(Int)
        case wouldBlock
        case ended(SocketError.Reason?)
    }

    /// Reads up to `messages` × `buffer` bytes at once and delivers them as messages of
    /// `buffer` bytes (the last one shorter).
    private func readBatch(_ connection: any Connection, messages: Int, _ s: inout PortState,
                           _ e: inout Effects) -> BatchOutcome {
        let size = s.options.buffer
        return withUnsafeTemporaryAllocation(byteCount: size * messages, alignment: 16) { scratch in
            switch connection.read(into: scratch) {
            case .bytes(let n):
                var offset = 0
                var count = 0
                while offset < n {
                    let chunk = min(size, n - offset)
                    deliverData(Array(UnsafeRawBufferPointer(rebasing: scratch[offset..<(offset + chunk)])), &s, &e)
                    offset += chunk
                    count += 1
                }
                return .delivered(max(count, 1))
            case .wouldBlock: return .wouldBlock
            case .endOfStream: return .ended(nil)
            case .failed(let reason): return .ended(reason)
            }
        }
    }

    /// True when the socket is active and its read is armed: its next message is on the wire.
    var isWaitingToDeliver: Bool {
        state.withLock { s in
            !s.closed && s.readArmed && s.recvWaiter == nil && s.options.active.delivers
        }
    }

    /// Waits briefly on this thread for data (when the driver can), then delivers what came.
    func waitBrieflyAndPump(upTo limit: Duration?) {
        guard let connection = state.withLock({ $0.connection }) else { return }
        _ = connection.waitBriefly(forReadUpTo: limit)
        // Whatever happened, any arming may be gone: go through the readiness path, which reads
        // what came (or hands it to a recv that started meanwhile) and arms again if needed.
        connectionReadable()
    }

    func armRead(_ s: inout PortState) {
        guard !s.readArmed, let connection = s.connection else { return }
        s.readArmed = true
        connection.armRead()
    }

    /// One `{tcp, S, Data}` to the owner, then the active-state step (and `tcp_passive`).
    private func deliverData(_ bytes: [UInt8], _ s: inout PortState, _ e: inout Effects) {
        s.stats.delivered(bytes.count)
        let payload = Payload(bytes, mode: s.options.mode)
        post(security == .plain ? .tcp(self, payload) : .ssl(self, payload), &s, &e)
        let change = s.options.active.afterDelivery()
        s.options.active = change.mode
        if change.sendsPassive { post(passiveMessage, &s, &e) }
    }

    /// Queues a message for the owner under the socket lock (so a socket's messages keep their
    /// order); a receiver it wakes is resumed after the lock is released.
    func post(_ message: Message, _ s: inout PortState, _ e: inout Effects) {
        if let w = s.owner.mailbox.enqueue(message) { e.wakeups.append(w) }
    }

    /// How much one read of a message or a `recv(0)` asks for: `buffer`, or on a TLS socket at
    /// least a whole record (16,384 bytes), since OTP's ssl delivers records whole whatever
    /// `buffer` says (the engine hands out at most one record per read).
    func readCapacity(_ s: PortState) -> Int {
        security == .tls ? max(s.options.buffer, Socket.tlsRecordPlaintext) : s.options.buffer
    }

    /// The buffer one read of a `recv(0)` or an active delivery takes: a TLS read returns one
    /// record's plaintext at most, so a TLS socket never needs more than a record's room (a
    /// 64 KiB `buffer` would otherwise make every 16 KiB message hold a 64 KiB allocation).
    func readAllocation(_ s: PortState) -> Int {
        security == .tls ? Socket.tlsRecordPlaintext : s.options.buffer
    }

    /// The most plaintext one TLS record carries.
    static let tlsRecordPlaintext = 16_384

    /// The message an `{active, N}` counter reaching 0 sends: `tcp_passive` or `ssl_passive`.
    package var passiveMessage: Message { security == .plain ? .tcpPassive(self) : .sslPassive(self) }

    /// Whether `message` is this socket's `tcp_closed` or `ssl_closed`.
    func isClosedMessage(_ message: Message) -> Bool {
        switch message {
        case .tcpClosed(let sock), .sslClosed(let sock): return sock === self
        default: return false
        }
    }

    /// Whether a failure is hidden behind a plain close: `econnreset` without `showEconnreset`
    /// on a plain socket. A TLS socket shows every failure, since a reset cuts the stream short
    /// without close_notify (a departure from OTP's ssl, which reports `closed`).
    func hidesFailure(_ reason: SocketError.Reason, _ s: PortState) -> Bool {
        reason == .connectionReset && !s.options.showEconnreset && security == .plain
    }

    /// The end of the stream in an active mode: `tcp_error` (when shown) then `tcp_closed`; on a
    /// TLS socket `ssl_closed` for close_notify, or `ssl_error` alone for a failure (as OTP's ssl).
    /// With `exitOnClose` the socket is then dead.
    private func deliverEnd(_ reason: SocketError.Reason?, _ s: inout PortState, _ e: inout Effects) {
        var shown = reason
        if let r = reason, hidesFailure(r, s) { shown = nil }
        if security == .plain {
            if let shown { post(.tcpError(self, shown), &s, &e) }
            post(.tcpClosed(self), &s, &e)
        } else if let shown {
            post(.sslError(self, s.connection?.error(for: shown) ?? SocketError(shown)), &s, &e)
        } else {
            post(.sslClosed(self), &s, &e)
        }
        s.readEnd = .dead
        if s.options.exitOnClose {
            markClosed(&s, &e, abortive: reason != nil)
        }
    }

    /// Marks the socket dead, fails every waiter with `closed`, closes the connection and
    /// releases the owner. Used by close, owner exit and an active end of stream.
    func markClosed(_ s: inout PortState, _ e: inout Effects, abortive: Bool) {
        guard !s.closed else { return }
        s.closed = true
        if let w = s.recvWaiter {
            s.recvWaiter = nil
            if let t = w.timer { e.cancelTimers.append(t) }
            e.resumeRecv.append((w.continuation, .failure(.closed)))
        }
        while let w = s.senders.popFirst() {
            if let t = w.timer { e.cancelTimers.append(t) }
            if let c = w.continuation { e.resumeSend.append((c, .failure(.closed))) }
        }
        s.connection?.close(abortive: abortive || s.options.linger == 0)
        s.connection = nil
        s.stash.removeAll()
        s.owner.release(self)
    }
}
