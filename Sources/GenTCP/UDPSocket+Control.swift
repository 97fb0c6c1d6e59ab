import GenTCPCore

extension UDPSocket {
    /// Closes the socket; Erlang's `gen_udp:close/1`. Always succeeds, from any process, any
    /// number of times. No message is sent; `.udp` messages already in a mailbox stay there;
    /// datagrams still queued in the driver are lost; a waiting `recv` or `send` gets `closed`.
    public func close() {
        var effects = DatagramEffects()
        state.withLock { s in
            guard !s.closed else { return }
            s.closed = true
            if let w = s.recvWaiter {
                s.recvWaiter = nil
                if let t = w.timer { effects.cancelTimers.append(t) }
                effects.resumeRecv.append((w.continuation, .failure(.closed)))
            }
            while let w = s.senders.popFirst() {
                if let c = w.continuation { effects.resumeSend.append((c, .failure(.closed))) }
            }
            s.endpoint?.close()
            s.endpoint = nil
            s.owner.release(self)
        }
        effects.run(on: runtime)
    }

    /// Makes `process` the controlling process; Erlang's `gen_udp:controlling_process/2`, with
    /// the rules ``Socket/controllingProcess(_:)`` follows (one implementation).
    ///
    /// Pending `.udp` messages of this socket move to the new owner, in order; `.udpPassive` and
    /// `.udpError` stay behind, as in OTP.
    ///
    /// - Throws: `notOwner` when the caller is not the owner (ok when `process` already is);
    ///   `badarg` when `process` has exited (the socket is left passive); `closed` on a closed
    ///   socket (OTP raises a `badmatch`: a departure).
    public func controllingProcess(_ process: Process) throws(SocketError) {
        let caller = Process.current
        let transfer = try state.withLock { s throws(SocketError) -> Ownership.Transfer in
            guard !s.closed else { throw SocketError.closed }
            return try Ownership.handOver(
                self, owner: &s.owner, to: process, caller: caller, active: &s.options.active,
                moves: { m in
                    if case .udp(let sock, _) = m { return sock === self }
                    return false
                })
        }
        Ownership.finish(transfer, self) { close() }
    }

    /// The controlling process.
    public var controllingProcess: Process { state.withLock { $0.owner } }

    /// Sets options; Erlang's `inet:setopts/2`. The list is applied in order and atomically: one
    /// bad value rejects it all with `einval`. Turning the socket active delivers what is queued;
    /// an ICMP error that came while passive is delivered then as `.udpError`.
    ///
    /// Membership changes are reported when the driver refuses them (OTP swallows those errors: a
    /// departure).
    /// - Throws: `einval` for a bad value, a gen_tcp option or a closed socket; the driver's
    ///   reason for an option it refuses (`eaddrnotavail` for a membership on a non-local
    ///   interface, say).
    public func setopts(_ options: [Option]) throws(SocketError) {
        var effects = DatagramEffects()
        let outcome: SocketError? = state.withLock { s in
            guard !s.closed else { return SocketError(.invalidArgument, "socket is closed") }
            var updated = s.options
            let sendsPassive: Bool
            do throws(SocketError) {
                sendsPassive = try updated.apply(all: options)
            } catch {
                return error
            }
            if let endpoint = s.endpoint {
                for option in options {
                    switch option {
                    case .active, .mode, .buffer, .readPackets: break
                    default:
                        if let failure = endpoint.apply(option) { return SocketError(failure) }
                    }
                }
            }
            s.options = updated
            if sendsPassive { post(.udpPassive(self), &s, &effects) }
            pumpActive(&s, &effects)
            return nil
        }
        effects.run(on: runtime)
        if let outcome { throw outcome }
    }

    /// Sets one option.
    public func setopts(_ option: Option) throws(SocketError) { try setopts([option]) }

    /// Reads options in the order asked; Erlang's `inet:getopts/2`. `recbuf` and `sndbuf` are the
    /// driver's values where it has its own (the kernel's on posix).
    /// - Throws: `einval` on a closed socket, or for a name a gen_udp socket does not read
    ///   (gen_tcp options, the set-only membership names): the whole list fails, as in OTP.
    public func getopts(_ names: [OptionName]) throws(SocketError) -> [Option] {
        try state.withLock { s throws(SocketError) -> [Option] in
            guard !s.closed else { throw SocketError(.invalidArgument, "socket is closed") }
            var out: [Option] = []
            for name in names {
                guard let value = s.options.value(of: name) else {
                    throw SocketError(.invalidArgument, "a gen_tcp or set-only option cannot be read on a gen_udp socket")
                }
                out.append(s.endpoint?.currentValue(of: name) ?? value)
            }
            return out
        }
    }

    /// Reads one option.
    public func getopt(_ name: OptionName) throws(SocketError) -> Option {
        try getopts([name])[0]
    }

    /// The `inet:getstat/1` counters, plus GenTCP's `recvDropped` and `recvTruncated`.
    ///
    /// `send_*` count datagrams the driver took (OTP also counts datagrams refused with
    /// `emsgsize` or sent to port 0: a departure); `recv_*` count deliveries after truncation.
    /// - Throws: `einval` on a closed socket.
    public func getstat() throws(SocketError) -> Statistics {
        try state.withLock { s throws(SocketError) -> Statistics in
            guard !s.closed else { throw SocketError(.invalidArgument, "socket is closed") }
            var stats = s.stats
            stats.recvDropped = s.endpoint?.droppedDatagramCount ?? 0
            var pending = 0
            for w in s.senders { for c in w.chunks { pending += c.count } }
            stats.sendPend = UInt64(pending)
            return stats
        }
    }

    /// The peer set by ``connect(_:port:)``; `inet:peername/1`.
    /// - Throws: `einval` on a closed socket; `enotconn` when not connected.
    public func peername() throws(SocketError) -> SocketAddress {
        try state.withLock { s throws(SocketError) -> SocketAddress in
            guard !s.closed else { throw SocketError(.invalidArgument, "socket is closed") }
            guard let peer = s.peer else { throw SocketError.notConnected }
            return peer
        }
    }

    /// The bound address and port; `inet:sockname/1`.
    /// - Throws: `einval` on a closed socket.
    public func sockname() throws(SocketError) -> SocketAddress {
        try state.withLock { s throws(SocketError) -> SocketAddress in
            guard !s.closed, let endpoint = s.endpoint else { throw SocketError(.invalidArgument, "socket is closed") }
            guard let a = endpoint.localAddress() else { throw SocketError(.invalidArgument, "the driver lost the address") }
            return a
        }
    }

    /// The largest datagram this socket can send, in bytes: 65507 on an IPv4 posix socket, 65527
    /// on IPv6, less on drivers whose link or module carries less. 0 once closed.
    public var maximumDatagramSize: Int {
        state.withLock { $0.endpoint?.maximumDatagramSize ?? 0 }
    }

    /// The bound port; `inet:port/1`.
    public func port() throws(SocketError) -> Int {
        try sockname().port
    }
}
