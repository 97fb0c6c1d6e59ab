import GenTCPCore

extension UDPSocket {
    /// Receives one datagram in passive mode; Erlang's `gen_udp:recv(Socket, Length, Timeout)`
    /// (the inet backend ignores `Length`, and so does GenTCP: see ``recv(_:timeout:)``).
    ///
    /// One call, one datagram, with its sender: never two merged, never one split; an empty
    /// datagram is a real, empty result. A datagram longer than `buffer` is cut to it (its
    /// `Datagram.truncated` is true and `recvTruncated` counts it). Timeout 0 polls. Only one
    /// `recv` may wait at a time; any process may call it. Cancelling the task, or killing the
    /// process, ends the wait with `cancelled` and loses nothing.
    ///
    /// - Throws: `timeout`; `econnrefused` once after an ICMP port unreachable on a connected
    ///   socket (the socket stays usable); `einval` on an active socket; `ealready` while another
    ///   `recv` waits; `closed` after close (also for a `recv` waiting when another process
    ///   closes); the endpoint's reason when the driver lost it (`eio` for a hung-up line);
    ///   `cancelled`.
    public func recv(timeout: Timeout = .infinity) async throws(SocketError) -> Datagram {
        let limit = try timeout.validated().nanoseconds
        let caller = try Process.liveCaller()
        var waitedBriefly = false
        var id: UInt64 = 0
        while true {
            var briefWait: (any DatagramEndpoint)?
            var yields = false
            let first: Result<Datagram, SocketError>? = state.withLock { s in
                if waitedBriefly { s.briefWaitEnded() }
                if let refusal = recvRefusal(s) { return .failure(refusal) }
                if let done = attemptRecv(&s) {
                    yields = s.quantum.ranWithoutSuspending(now: runtime.now)
                    return done
                }
                if limit == 0 { return .failure(.timeout) }
                if !waitedBriefly, let e = s.endpoint {
                    briefWait = e
                    s.recvBriefly = true
                }
                id = s.takeWaiterID()
                return nil
            }
            if let first {
                if yields { await Task.yield() }
                return try first.get()
            }
            // Look once more only if the brief wait saw data (see Socket.recv).
            guard let endpoint = briefWait else { break }
            let ready = endpoint.waitBriefly(forReadUpTo: timeout.duration)
            waitedBriefly = true
            if !ready { break }
        }

        let waiterID = id
        let briefly = waitedBriefly
        let result: Result<Datagram, SocketError> = await caller.waiting(interrupt: {
            self.endRecv(waiterID, with: caller.cancellation)
        }) { await withUnsafeContinuation { continuation in
            let immediate: Result<Datagram, SocketError>? = state.withLock { s in
                s.quantum.suspended()
                if briefly { s.briefWaitEnded() }
                if let refusal = recvRefusal(s) { return .failure(refusal) }
                if caller.mustNotWait { return .failure(caller.cancellation) }
                var waiter = DatagramPortState.RecvWaiter(id: waiterID, continuation: continuation, timer: nil)
                if let limit {
                    waiter.timer = runtime.schedule(afterNanoseconds: limit) { [weak self] in
                        self?.endRecv(waiterID, with: .timeout)
                    }
                }
                s.recvWaiter = waiter
                armRead(&s)
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        } }
        return try result.get()
    }

    /// `gen_udp:recv(Socket, Length, Timeout)`: `length` is accepted and ignored, as OTP's inet
    /// backend ignores it (the `buffer` option is the only limit); see ``recv(timeout:)``.
    /// - Throws: `badarg` for a negative length; otherwise as ``recv(timeout:)``.
    public func recv(_ length: Int, timeout: Timeout = .infinity) async throws(SocketError) -> Datagram {
        guard length >= 0 else { throw SocketError(.badArgument, "recv length must be >= 0") }
        return try await recv(timeout: timeout)
    }

    /// Takes up to `max` datagrams already queued, without waiting: wasi's `receive(max-results)`.
    /// Returns an empty array when none is queued. Each counts as one delivery.
    ///
    /// - Throws: as ``recv(timeout:)`` (`einval` on an active socket, `ealready` while a `recv`
    ///   waits); an ICMP error is thrown when it comes first, and otherwise kept for the next
    ///   call; `badarg` for `max` outside 1...1024.
    public func receive(max: Int) throws(SocketError) -> [Datagram] {
        guard (1...1024).contains(max) else { throw SocketError(.badArgument, "max must be 1...1024") }
        return try state.withLock { s throws(SocketError) -> [Datagram] in
            if let refusal = recvRefusal(s) { throw refusal }
            if let pending = s.pendingError {
                s.pendingError = nil
                throw SocketError(pending)
            }
            guard let endpoint = s.endpoint else { throw SocketError.closed }
            let (got, end) = endpoint.receive(upTo: max, bufferSize: s.options.buffer)
            let out = got.map { record(&s, $0) }
            switch end {
            case .error(let reason)?:
                if out.isEmpty { throw SocketError(reason) }
                s.pendingError = reason
            case .failed(let reason)?:
                s.failure = reason
                if out.isEmpty { throw SocketError(reason) }
            default:
                break
            }
            return out
        }
    }

    /// Counts one datagram taken from the endpoint and types it by the socket's mode.
    private func record(_ s: inout DatagramPortState, _ d: ReceivedDatagram) -> Datagram {
        let truncated = d.length > d.bytes.count
        s.stats.delivered(d.bytes.count)
        if truncated { s.stats.recvTruncated &+= 1 }
        return Datagram(source: d.source, payload: Payload(d.bytes, mode: s.options.mode), truncated: truncated)
    }

    /// Why a receive cannot start now, if it cannot.
    private func recvRefusal(_ s: DatagramPortState) -> SocketError? {
        if s.closed { return .closed }
        if s.options.active.delivers { return SocketError(.invalidArgument, "recv on an active socket") }
        if s.recvInProgress { return .alreadyInProgress }
        if let failure = s.failure { return SocketError(failure) }
        return nil
    }

    /// One receive from the endpoint: a datagram (counted), an error (an ICMP error, or the
    /// endpoint's death, which is remembered), or nil when nothing is queued.
    func receiveOne(_ s: inout DatagramPortState, from endpoint: any DatagramEndpoint) -> Result<Datagram, SocketError>? {
        let capacity = s.options.buffer
        var result = DatagramReceiveResult.wouldBlock
        let bytes = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            result = endpoint.receive(into: UnsafeMutableRawBufferPointer(buffer))
            if case .datagram(let copied, _, _) = result { count = copied } else { count = 0 }
        }
        switch result {
        case .datagram(let copied, let length, let source):
            let truncated = length > copied
            s.stats.delivered(copied)
            if truncated { s.stats.recvTruncated &+= 1 }
            return .success(Datagram(source: source, payload: Payload(bytes, mode: s.options.mode), truncated: truncated))
        case .wouldBlock:
            return nil
        case .error(let reason):
            return .failure(SocketError(reason))
        case .failed(let reason):
            s.failure = reason
            return .failure(SocketError(reason))
        }
    }

    /// A waiting or first `recv`: a result when one is ready, nil when it must wait.
    private func attemptRecv(_ s: inout DatagramPortState) -> Result<Datagram, SocketError>? {
        if let pending = s.pendingError {
            s.pendingError = nil
            return .failure(SocketError(pending))
        }
        guard let endpoint = s.endpoint else { return .failure(.closed) }
        return receiveOne(&s, from: endpoint)
    }

    /// Readiness while a `recv` waits: hand it the datagram (or error) that came.
    func continueRecv(_ s: inout DatagramPortState, _ e: inout DatagramEffects) {
        guard let waiter = s.recvWaiter else { return }
        guard let done = attemptRecv(&s) else {
            armRead(&s)
            return
        }
        s.recvWaiter = nil
        if let t = waiter.timer { e.cancelTimers.append(t) }
        e.resumeRecv.append((waiter.continuation, done))
    }

    /// Ends the waiting `recv` numbered `id` with `error` (its timeout, or its caller's
    /// cancellation); a datagram that came meanwhile stays queued for the next reader.
    func endRecv(_ id: UInt64, with error: SocketError) {
        var effects = DatagramEffects()
        state.withLock { s in
            guard let w = s.recvWaiter, w.id == id else { return }
            s.recvWaiter = nil
            if let t = w.timer, error.reason != .timeout { effects.cancelTimers.append(t) }
            effects.resumeRecv.append((w.continuation, .failure(error)))
            // The socket may have turned active while the recv waited (another process's setopts
            // is refused then, but a new owner's mode is not): deliver what is queued.
            pumpActive(&s, &effects)
        }
        effects.run(on: runtime)
    }

    // MARK: Active delivery

    /// Delivers datagrams to the owner while the socket is active: at most `read_packets` per
    /// wake-up, and never more than `queueLimit.datagrams` unread in the mailbox. An ICMP error
    /// becomes `.udpError` without using up `once` or `N`.
    func pumpActive(_ s: inout DatagramPortState, _ e: inout DatagramEffects) {
        var budget = s.options.readPackets
        while !s.closed, s.recvWaiter == nil, s.options.active.delivers, s.failure == nil {
            let room = s.options.queueLimit.datagrams - unreadMessages.load(ordering: .acquiring)
            if room <= 0 {
                // The owner is behind: leave the rest in the driver's bounded queue, which drops
                // and counts what does not fit. `messageTaken` resumes delivery.
                return
            }
            if budget <= 0 {
                armRead(&s)
                return
            }
            if let pending = s.pendingError {
                s.pendingError = nil
                budget -= 1
                post(.udpError(self, pending), &s, &e)
                continue
            }
            guard let endpoint = s.endpoint else { return }
            // Take at most what the mode lets through (`once` takes one: the rest stay queued in
            // the driver for a later activation or a `recv`).
            var allowance = min(budget, room)
            switch s.options.active {
            case .once: allowance = 1
            case .count(let n): allowance = min(allowance, n)
            case .active, .passive: break
            }
            let (got, end) = endpoint.receive(upTo: allowance, bufferSize: s.options.buffer)
            budget -= max(1, got.count)
            for d in got {
                let datagram = record(&s, d)
                unreadMessages.add(1, ordering: .acquiringAndReleasing)
                post(.udp(self, datagram), &s, &e)
                let change = s.options.active.afterDelivery()
                s.options.active = change.mode
                if change.sendsPassive { post(.udpPassive(self), &s, &e) }
            }
            switch end {
            case nil:
                continue
            case .error(let reason)?:
                post(.udpError(self, reason), &s, &e)
            case .failed(let reason)?:
                s.failure = reason
                post(.udpError(self, reason), &s, &e)
                return
            case .wouldBlock?, .datagram?:
                armRead(&s)
                return
            }
        }
    }

    func armRead(_ s: inout DatagramPortState) {
        guard !s.readArmed, let endpoint = s.endpoint else { return }
        s.readArmed = true
        endpoint.armReceive()
    }

    /// Queues a message for the owner under the socket lock (a socket's messages keep their order).
    func post(_ message: Message, _ s: inout DatagramPortState, _ e: inout DatagramEffects) {
        if let w = s.owner.mailbox.enqueue(message) { e.wakeups.append(w) }
    }

    /// True when the socket is active and its read is armed: its next message is on the wire.
    var isWaitingToDeliver: Bool {
        state.withLock { s in
            !s.closed && s.readArmed && s.recvWaiter == nil && s.options.active.delivers
        }
    }

    /// Waits briefly on this thread for a datagram (when the driver can), then delivers what came.
    func waitBrieflyAndPump(upTo limit: Duration?) {
        guard let endpoint = state.withLock({ $0.endpoint }) else { return }
        _ = endpoint.waitBriefly(forReadUpTo: limit)
        datagramReadable()
    }
}
