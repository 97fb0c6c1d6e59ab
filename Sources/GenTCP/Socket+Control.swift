import GenTCPCore

extension Socket {
    /// Closes the socket; Erlang's `gen_tcp:close/1`. Always succeeds, from any process, any
    /// number of times.
    ///
    /// The peer sees end of stream (an RST with `.linger(0)`). Bytes already handed to the driver
    /// are still delivered. A waiting `recv` or `send` gets `closed`. `.tcp` messages already in
    /// a mailbox stay there; at most one pending `.tcpClosed` for this socket is removed from the
    /// caller's mailbox, as OTP does.
    public func close() {
        closeSocket(removingClosedFrom: Process.current)
    }

    func closeSocket(removingClosedFrom caller: Process?) {
        var effects = Effects()
        state.withLock { s in markClosed(&s, &effects, abortive: false) }
        effects.run(on: runtime)
        caller?.mailbox.removeFirst { m in isClosedMessage(m) }
    }

    /// Shuts down one or both directions; Erlang's `gen_tcp:shutdown/2`.
    ///
    /// `.write` sends FIN once bytes of waiting senders are written, and returns at once; later
    /// sends give `closed`, then `enotconn`. `.read` is `shutdown(SHUT_RD)` (platform-specific:
    /// on Linux data may still be readable). `.readWrite` does both; `send` and `recv` give `closed`.
    ///
    /// - Throws: `closed` on a closed socket.
    public func shutdown(_ how: ShutdownHow) throws(SocketError) {
        var effects = Effects()
        let outcome: SocketError? = state.withLock { s in
            guard !s.closed, let connection = s.connection else { return .closed }
            var failure: SocketError.Reason?
            if how != .read {
                if s.writeEnd == .open { s.writeEnd = .closedPending }
                if s.senders.isEmpty {
                    failure = connection.shutdown(how == .readWrite ? .readWrite : .write)
                } else {
                    s.shutdownWriteWhenFlushed = true
                    if how == .readWrite { failure = connection.shutdown(.read) }
                }
            } else {
                failure = connection.shutdown(.read)
            }
            if how == .readWrite {
                if s.readEnd == .open { s.readEnd = .closedPending }
                if let w = s.recvWaiter {
                    s.recvWaiter = nil
                    s.readEnd = .dead
                    if let t = w.timer { effects.cancelTimers.append(t) }
                    effects.resumeRecv.append((w.continuation, .failure(.closed)))
                }
            }
            // Linux reports ENOTCONN for a shutdown after the peer's reset; OTP returns ok then.
            if let failure, failure != .notConnected { return SocketError(failure) }
            return nil
        }
        effects.run(on: runtime)
        if let outcome { throw outcome }
    }

    /// Makes `process` the controlling process; Erlang's `gen_tcp:controlling_process/2`.
    ///
    /// Pending `.tcp` and `.tcpClosed` messages of this socket move from the old owner's mailbox to
    /// the new owner's, in order; `.tcpPassive` and `.tcpError` stay behind (as in OTP).
    ///
    /// - Throws: `notOwner` when the caller is not the owner (unless `process` already is the
    ///   owner: then ok, OTP's quirk); `badarg` when `process` has exited (the socket is left
    ///   passive, as OTP leaves it); `closed` on a closed socket.
    public func controllingProcess(_ process: Process) throws(SocketError) {
        let caller = Process.current
        let transfer = try state.withLock { s throws(SocketError) -> Ownership.Transfer in
            guard !s.closed else { throw SocketError.closed }
            return try Ownership.handOver(
                self, owner: &s.owner, to: process, caller: caller,
                active: &s.options.active,
                moves: { m in
                    switch m {
                    case .tcp(let sock, _), .tcpClosed(let sock), .ssl(let sock, _), .sslClosed(let sock):
                        return sock === self
                    default: return false
                    }
                })
        }
        Ownership.finish(transfer, self) { closeSocket(removingClosedFrom: nil) }
    }

    /// What `setopts`/`getopts` answer on a closed socket: gen_tcp's `einval`, OTP ssl's `closed`.
    private var closedOptionsError: SocketError {
        security == .plain ? SocketError(.invalidArgument, "socket is closed") : .closed
    }

    /// The controlling process.
    public var controllingProcess: Process { state.withLock { $0.owner } }

    /// Sets options; Erlang's `inet:setopts/2`. The list is applied in order and atomically: one
    /// bad value rejects it all with `einval`. Turning the socket active delivers what is waiting.
    ///
    /// - Throws: `einval` for a bad value or a closed socket (`closed` on a TLS socket, as OTP's
    ///   ssl answers).
    public func setopts(_ options: [Option]) throws(SocketError) {
        var effects = Effects()
        let outcome: SocketError? = state.withLock { s in
            guard !s.closed else { return closedOptionsError }
            var updated = s.options
            let sendsPassive: Bool
            do throws(SocketError) {
                sendsPassive = try updated.apply(all: options)
            } catch {
                return error
            }
            for option in options {
                switch option {
                case .nodelay, .keepalive, .linger, .reuseaddr:
                    if let failure = s.connection?.apply(option) { return SocketError(failure) }
                default: break
                }
            }
            s.options = updated
            if sendsPassive { post(passiveMessage, &s, &effects) }
            pumpActive(&s, &effects)
            return nil
        }
        effects.run(on: runtime)
        if let outcome { throw outcome }
    }

    /// Sets one option.
    public func setopts(_ option: Option) throws(SocketError) { try setopts([option]) }

    /// Reads options in the order asked; Erlang's `inet:getopts/2`.
    /// - Throws: `einval` on a closed socket (`closed` on a TLS socket, as OTP's ssl answers), or
    ///   for a gen_udp-only name.
    public func getopts(_ names: [OptionName]) throws(SocketError) -> [Option] {
        try state.withLock { s throws(SocketError) in
            guard !s.closed else { throw closedOptionsError }
            if names.contains(where: \.isDatagramOnly) {
                throw SocketError(.invalidArgument, "a gen_udp option on a gen_tcp socket")
            }
            return names.map { s.options.value(of: $0) }
        }
    }

    /// Reads one option.
    public func getopt(_ name: OptionName) throws(SocketError) -> Option {
        try getopts([name])[0]
    }

    /// The `inet:getstat/1` counters.
    /// - Throws: `einval` on a closed socket.
    public func getstat() throws(SocketError) -> Statistics {
        try state.withLock { s throws(SocketError) in
            guard !s.closed else { throw SocketError(.invalidArgument, "socket is closed") }
            var stats = s.stats
            // Bytes waiting in blocked sends, and bytes the driver accepted and still holds.
            stats.sendPend = UInt64(pendingSendBytes(s) + (s.connection?.unsentByteCount ?? 0))
            return stats
        }
    }

    /// The peer's address and port; `inet:peername/1`.
    /// - Throws: `einval` on a closed socket; `enotconn` when the driver no longer knows it.
    public func peername() throws(SocketError) -> SocketAddress {
        try address { $0.remoteAddress() }
    }

    /// The local address and port; `inet:sockname/1`.
    public func sockname() throws(SocketError) -> SocketAddress {
        try address { $0.localAddress() }
    }

    /// The local port; `inet:port/1`.
    public func port() throws(SocketError) -> Int {
        try sockname().port
    }

    private func address(_ read: (any Connection) -> SocketAddress?) throws(SocketError) -> SocketAddress {
        try state.withLock { s throws(SocketError) in
            guard !s.closed else { throw SocketError(.invalidArgument, "socket is closed") }
            guard let c = s.connection, let a = read(c) else { throw SocketError.notConnected }
            return a
        }
    }
}
