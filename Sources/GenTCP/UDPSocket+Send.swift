import GenTCPCore

/// A socket connected to one peer, as Gleam's `toss` hands it out: proof that `connect`
/// succeeded, and a way to send to that peer without naming it.
public struct ConnectedSender: Sendable, Hashable {
    /// The socket.
    public let socket: UDPSocket
    /// The peer `connect` set.
    public let peer: SocketAddress

    /// Sends one datagram to ``peer``.
    /// - Throws: `eisconn` when the socket has since been connected elsewhere (or disconnected:
    ///   `einval`); otherwise as ``UDPSocket/send(_:to:)``.
    public func send(_ bytes: [UInt8]) async throws(SocketError) {
        try await socket.send(chunks: [bytes], toPeer: peer)
    }

    /// Sends the UTF-8 bytes of a string to ``peer``.
    public func send(_ text: String) async throws(SocketError) {
        try await send(Array(text.utf8))
    }
}

extension UDPSocket {
    // MARK: Send

    /// Sends one datagram to `address:port`; Erlang's `gen_udp:send(Socket, Address, Port, Packet)`.
    ///
    /// A host name is resolved by the driver for each call (IPv4 names for an IPv4 socket, IPv6
    /// for an IPv6 one). The bytes are one datagram; an empty array is an empty datagram. The call
    /// returns once the driver took the datagram; while it cannot (a full kernel send buffer, a
    /// busy modem) the caller waits, and concurrent senders go out in call order.
    ///
    /// - Throws: `badarg` for a port outside 0...65535 or an empty or over-long name; `einval`
    ///   for port 0; `nxdomain`; `eafnosupport` for an address of the other family; `eisconn`
    ///   on a connected socket when the destination is not its peer (a departure: OTP's inet
    ///   backend sends to the peer instead); `emsgsize` above the driver's largest datagram;
    ///   `eacces` for a broadcast address without `broadcast`; `econnrefused` once after an ICMP
    ///   port unreachable on a connected socket; `closed`; `cancelled`.
    public func send(_ bytes: [UInt8], to host: Host, port: Int) async throws(SocketError) {
        try await send(chunks: [bytes], to: host, port: port)
    }

    /// Sends the UTF-8 bytes of a string as one datagram to `host:port`.
    public func send(_ text: String, to host: Host, port: Int) async throws(SocketError) {
        try await send(chunks: [Array(text.utf8)], to: host, port: port)
    }

    /// Sends one datagram to `destination`; `gen_udp:send(Socket, {IP, Port}, Packet)`.
    public func send(_ bytes: [UInt8], to destination: SocketAddress) async throws(SocketError) {
        try await send(chunks: [bytes], to: .address(destination.address), port: destination.port)
    }

    /// Sends chunks as one datagram (OTP's iodata), without joining them first.
    public func send(chunks: [[UInt8]], to host: Host, port: Int) async throws(SocketError) {
        guard (0...65535).contains(port) else { throw SocketError(.badArgument, "port must be 0...65535") }
        let address = try await resolve(host)
        guard port != 0 else { throw SocketError(.invalidArgument, "cannot send to port 0") }
        try await transmit(chunks, to: SocketAddress(address, port: port), require: nil)
    }

    /// Sends one datagram to the connected peer; Erlang's `gen_udp:send(Socket, Packet)`.
    /// - Throws: `einval` when the socket is not connected; otherwise as `send(_:to:port:)`.
    public func send(_ bytes: [UInt8]) async throws(SocketError) {
        try await transmit([bytes], to: nil, require: nil)
    }

    /// Sends the UTF-8 bytes of a string to the connected peer.
    public func send(_ text: String) async throws(SocketError) {
        try await transmit([Array(text.utf8)], to: nil, require: nil)
    }

    /// Sends chunks as one datagram to the connected peer.
    public func send(chunks: [[UInt8]]) async throws(SocketError) {
        try await transmit(chunks, to: nil, require: nil)
    }

    /// A ``ConnectedSender``'s send: to the connected peer, which must still be `peer`.
    func send(chunks: [[UInt8]], toPeer peer: SocketAddress) async throws(SocketError) {
        try await transmit(chunks, to: nil, require: peer)
    }

    /// How many datagrams ``send(batch:)`` would take now without waiting: wasi's `check-send`.
    /// 0 when the driver cannot take any (wait with `send(_:to:)`, which waits).
    /// - Throws: `closed`; the endpoint's reason when the driver lost it.
    public func checkSend() throws(SocketError) -> Int {
        try state.withLock { s throws(SocketError) -> Int in
            if s.closed { throw SocketError.closed }
            if let failure = s.failure { throw SocketError(failure) }
            guard s.senders.isEmpty, let endpoint = s.endpoint else { return 0 }
            return endpoint.sendPermit()
        }
    }

    /// Sends datagrams in order without waiting, as many as the driver takes now (wasi's `send`
    /// after `check-send`), and returns how many went. It stops at the first that cannot go now,
    /// or that fails; a failure is thrown only when no datagram went (so none is hidden: the
    /// caller resends from the count). Destinations are checked as in ``send(_:to:)``; nil is
    /// the connected peer.
    /// - Throws: as `send(_:to:port:)`, for the first datagram.
    public func send(batch datagrams: [OutgoingDatagram]) throws(SocketError) -> Int {
        try state.withLock { s throws(SocketError) -> Int in
            // Check every destination first; send the good prefix in one go.
            var valid = 0
            var refusal: SocketError?
            for d in datagrams {
                if let r = sendRefusal(s, to: d.destination, require: nil, size: d.bytes.count) {
                    refusal = r
                    break
                }
                valid += 1
            }
            if valid == 0, let refusal { throw refusal }
            guard s.senders.isEmpty, let endpoint = s.endpoint else { return 0 }
            let batch = valid == datagrams.count ? datagrams : Array(datagrams[0..<valid])
            let (sent, end) = endpoint.send(batch: batch)
            for i in 0..<sent { s.stats.sent(batch[i].bytes.count) }
            if case .failed(let reason)? = end {
                if sent == 0 { throw SocketError(reason) }
            }
            if case .wouldBlock? = end, !s.writeArmed {
                s.writeArmed = true
                endpoint.armSend()
            }
            return sent
        }
    }

    /// Sends one datagram, waiting while the driver cannot take it.
    private func transmit(_ chunks: [[UInt8]], to destination: SocketAddress?, require: SocketAddress?) async throws(SocketError) {
        let caller = try Process.liveCaller()
        var size = 0
        for c in chunks { size += c.count }
        var id: UInt64 = 0
        let first: Result<Void, SocketError>? = state.withLock { s in
            if let refusal = sendRefusal(s, to: destination, require: require, size: size) { return .failure(refusal) }
            id = s.takeWaiterID()
            guard s.senders.isEmpty else { return nil }
            return sendNow(&s, chunks, to: destination)
        }
        if let first { return try first.get() }

        let waiterID = id
        let result: Result<Void, SocketError> = await caller.waiting(interrupt: {
            self.endSend(waiterID, with: caller.cancellation)
        }) { await withUnsafeContinuation { continuation in
            var effects = DatagramEffects()
            let immediate: Result<Void, SocketError>? = state.withLock { s in
                if s.closed { return .failure(.closed) }
                if let failure = s.failure { return .failure(SocketError(failure)) }
                if caller.mustNotWait { return .failure(caller.cancellation) }
                s.senders.append(DatagramPortState.SendWaiter(
                    id: waiterID, chunks: chunks, destination: destination, continuation: continuation))
                flushSenders(&s, &effects)
                return nil
            }
            effects.run(on: runtime)
            if let immediate { continuation.resume(returning: immediate) }
        } }
        try result.get()
    }

    /// Why a datagram cannot be sent, checked before the driver sees it.
    private func sendRefusal(_ s: DatagramPortState, to destination: SocketAddress?, require: SocketAddress?, size: Int) -> SocketError? {
        if s.closed { return .closed }
        if let failure = s.failure { return SocketError(failure) }
        if let require, s.peer != require {
            return s.peer == nil
                ? SocketError(.invalidArgument, "the socket is no longer connected")
                : SocketError(.alreadyConnected, "the socket is now connected to another peer")
        }
        if let destination {
            if destination.address.isIPv6 != s.options.isIPv6 {
                return SocketError(.addressFamilyNotSupported, "the destination is not of the socket's family")
            }
            if let peer = s.peer, peer != destination {
                return SocketError(.alreadyConnected, "the socket is connected to another peer")
            }
        } else if s.peer == nil {
            return SocketError(.invalidArgument, "send without a destination on an unconnected socket")
        }
        if let endpoint = s.endpoint, size > endpoint.maximumDatagramSize {
            return SocketError(.messageTooLong, "the datagram is larger than this driver carries")
        }
        return nil
    }

    /// One attempt to hand a datagram to the driver: a result, or nil when it must wait.
    private func sendNow(_ s: inout DatagramPortState, _ chunks: [[UInt8]], to destination: SocketAddress?) -> Result<Void, SocketError>? {
        guard let endpoint = s.endpoint else { return .failure(.closed) }
        let result = UDPSocket.withBuffers(chunks) { endpoint.send($0, to: destination) }
        switch result {
        case .sent:
            var size = 0
            for c in chunks { size += c.count }
            s.stats.sent(size)
            return .success(())
        case .wouldBlock:
            if !s.writeArmed {
                s.writeArmed = true
                endpoint.armSend()
            }
            return nil
        case .failed(let reason):
            // A refused datagram, or a driver that lost its link (it keeps saying so).
            return .failure(SocketError(reason))
        }
    }

    /// Hands waiting senders' datagrams to the driver, in call order.
    func flushSenders(_ s: inout DatagramPortState, _ e: inout DatagramEffects) {
        while let w = s.senders.first {
            guard let done = sendNow(&s, w.chunks, to: w.destination) else { return }
            s.senders.removeFirst()
            if let c = w.continuation { e.resumeSend.append((c, done)) }
        }
    }

    /// Ends the waiting send numbered `id` (its caller was cancelled); its datagram is not sent.
    func endSend(_ id: UInt64, with error: SocketError) {
        var effects = DatagramEffects()
        state.withLock { s in
            guard let i = s.senders.firstIndex(where: { $0.id == id }) else { return }
            let w = s.senders.remove(at: i)
            if let c = w.continuation { effects.resumeSend.append((c, .failure(error))) }
        }
        effects.run(on: runtime)
    }

    static func withBuffers<R>(_ chunks: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) -> R) -> R {
        if chunks.count == 1 { return chunks[0].withUnsafeBytes { body([$0]) } }
        // Few chunks in practice: pin each in turn.
        func pin(_ i: Int, _ acc: inout [UnsafeRawBufferPointer]) -> R {
            if i == chunks.count { return body(acc) }
            return chunks[i].withUnsafeBytes { p in
                acc.append(p)
                return pin(i + 1, &acc)
            }
        }
        var acc: [UnsafeRawBufferPointer] = []
        acc.reserveCapacity(chunks.count)
        return pin(0, &acc)
    }

    // MARK: Connect

    /// Sets the socket's peer; Erlang's `gen_udp:connect(Socket, Address, Port)`.
    ///
    /// Nothing goes on the wire (except on an at driver that must reopen the module's link).
    /// Afterwards datagrams from anyone else are dropped without being counted; `send(_:)` goes
    /// to the peer; an ICMP port unreachable from it is reported once (`econnrefused`). A host
    /// name is resolved. Connecting again replaces the peer and keeps the local port (OTP's inet
    /// backend may move a port-0 socket to a new port: a departure). Datagrams queued before the
    /// call keep their real sender (OTP labels them with the new peer: a departure).
    ///
    /// - Returns: a ``ConnectedSender`` for the peer.
    /// - Throws: `badarg` for a port outside 0...65535; `einval` for port 0 (OTP's way to
    ///   disconnect half-way; use ``disconnect()``); `nxdomain`; `eafnosupport`; `closed`. A
    ///   failed connect leaves the previous peer in place.
    @discardableResult
    public func connect(_ host: Host, port: Int) async throws(SocketError) -> ConnectedSender {
        guard (0...65535).contains(port) else { throw SocketError(.badArgument, "port must be 0...65535") }
        let address = try await resolve(host)
        guard port != 0 else {
            throw SocketError(.invalidArgument, "cannot connect to port 0 (use disconnect())")
        }
        let peer = SocketAddress(address, port: port)
        try await setPeer(peer)
        return ConnectedSender(socket: self, peer: peer)
    }

    /// Connects to `peer`; see ``connect(_:port:)``.
    @discardableResult
    public func connect(to peer: SocketAddress) async throws(SocketError) -> ConnectedSender {
        try await connect(.address(peer.address), port: peer.port)
    }

    /// Forgets the peer: the socket takes datagrams from anyone again, and `send(_:)` needs a
    /// destination. OTP has no disconnect (wasi re-calls `stream`; `connect(S, IP, 0)` half does
    /// it in OTP). Ok on a socket that is not connected.
    /// - Throws: `closed`.
    public func disconnect() async throws(SocketError) {
        try await setPeer(nil)
    }

    /// One connect at a time per socket, so the driver's filter and `peername` always name the
    /// same peer: a second connect while one is under way is `ealready`.
    private func setPeer(_ peer: SocketAddress?) async throws(SocketError) {
        let endpoint: any DatagramEndpoint = try state.withLock { s throws(SocketError) in
            if s.closed { throw SocketError.closed }
            if let failure = s.failure { throw SocketError(failure) }
            if let peer, peer.address.isIPv6 != s.options.isIPv6 {
                throw SocketError(.addressFamilyNotSupported, "the peer is not of the socket's family")
            }
            guard let e = s.endpoint else { throw SocketError.closed }
            if s.connecting { throw SocketError(.alreadyInProgress, "another connect on this socket is under way") }
            s.connecting = true
            return e
        }
        var failure: SocketError?
        do throws(SocketError) { try await endpoint.connect(to: peer) } catch { failure = error }
        let closed = state.withLock { s in
            s.connecting = false
            if !s.closed && failure == nil { s.peer = peer }
            return s.closed
        }
        if let failure { throw failure }
        if closed { throw SocketError.closed }
    }

    /// A host as one address of the socket's family.
    private func resolve(_ host: Host) async throws(SocketError) -> IPAddress {
        let isIPv6 = state.withLock { $0.options.isIPv6 }
        switch host {
        case .address(let a):
            return a
        case .name(let name):
            guard !name.isEmpty, name.utf8.count <= 253 else {
                throw SocketError(.badArgument, "host name must be 1...253 bytes")
            }
            let caller = try Process.liveCaller()
            let driver = self.driver
            let found = try await DetachedCall.run(as: caller, executor: driver.runtime.executor, orphan: { _ in }) {
                () async throws(SocketError) -> [IPAddress] in
                try await driver.resolve(name, preference: isIPv6 ? .ipv6Only : .ipv4Only)
            }
            guard let first = found.first else { throw SocketError(.nonExistentDomain) }
            return first
        }
    }
}
