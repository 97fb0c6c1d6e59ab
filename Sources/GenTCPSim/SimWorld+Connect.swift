import GenTCP
import GenTCPCore

// Connecting and listening: SYNs, retransmissions, refusals, backlogs.

extension SimWorld {
    func startConnect(
        from h: Int, to remote: SocketAddress, options: SocketOptions, timeoutNanoseconds: UInt64?,
        delegate: any ConnectionDelegate,
        continuation: UnsafeContinuation<Result<SimConnection, SocketError>, Never>
    ) -> SocketError? {
        // Where the SYN goes, and from which of our addresses.
        let destination: Int?
        var source: IPAddress
        let target = remote.address
        if SimWorld.isLoopback(target) || SimWorld.isAny(target) {
            destination = h
            source = target.isIPv6 ? .loopbackV6 : .loopbackV4
        } else {
            destination = hostByAddress[target]
            if destination == h {
                source = target
            } else {
                guard let a = hosts[h].addresses.first(where: { $0.isIPv6 == target.isIPv6 }) else {
                    return SocketError(.networkUnreachable)
                }
                source = a
            }
        }
        if let bind = options.localAddress, !SimWorld.isAny(bind) {
            guard isLocal(bind, to: h) else { return SocketError(.addressNotAvailable) }
            guard bind.isIPv6 == target.isIPv6 else { return SocketError(.addressFamilyNotSupported) }
            source = bind
        }
        let port: Int
        if options.localPort != 0 {
            if portInUse(options.localPort, host: h) && !options.reuseaddr { return SocketError(.addressInUse) }
            port = options.localPort
        } else {
            guard let p = ephemeralPort(host: h) else { return SocketError(.addressNotAvailable) }
            port = p
        }
        hosts[h].connectionPorts[port, default: 0] += 1

        let p = PendingConnect(
            id: nextPendingID, host: h, destinationHost: destination,
            local: SocketAddress(source, port: port), remote: remote,
            faults: resolvedFaults(client: h, server: destination, port: remote.port),
            delegate: delegate, continuation: continuation)
        nextPendingID += 1
        pending[p.id] = p
        if let limit = timeoutNanoseconds {
            p.deadlineTimer = schedule(after: limit, .connectDeadline(pending: p.id))
        }
        sendSyn(p)
        return nil
    }

    private func sendSyn(_ p: PendingConnect) {
        record(nil, .syn(from: p.local, to: p.remote, attempt: p.attempt))
        if let dst = p.destinationHost {
            _ = schedule(after: latency(p.host, dst, p.faults), .synArrival(pending: p.id, attempt: p.attempt))
        }
        // Exponential backoff, as a kernel retransmits an unanswered SYN.
        let rto = configuration.initialRetransmitTimeout.simNanoseconds
        let shift = min(p.attempt, 40)
        p.retryTimer = schedule(after: rto << UInt64(shift), .synRetry(pending: p.id))
    }

    func synArrived(_ id: Int, attempt: Int) {
        guard let p = pending[id], p.link == nil, let dst = p.destinationHost else { return }
        let back = latency(dst, p.host, p.faults)
        let listener = listeners.values
            .filter { $0.host == dst && $0.address.port == p.remote.port && SimWorld.accepts($0.address.address, p.remote.address) }
            .min { $0.id < $1.id }
        guard let listener, p.remote.port != 0 else {
            _ = schedule(after: back, .synRefused(pending: id))
            return
        }
        if p.faults.refuseProbability > 0 && rng.chance(p.faults.refuseProbability) {
            stats.faults += 1
            record(nil, .fault(.refused))
            _ = schedule(after: back, .synRefused(pending: id))
            return
        }
        guard listener.queue.count < listener.backlog else {
            // A full accept queue drops the SYN; the client retransmits.
            record(nil, .synDropped(to: p.remote))
            return
        }
        let linkID = nextLinkID
        nextLinkID += 1
        let link = Link(
            id: linkID, hosts: [p.host, dst], addresses: [p.local, p.remote],
            windows: [hosts[p.host].receiveWindow, hosts[dst].receiveWindow], faults: p.faults)
        links[linkID] = link
        p.link = linkID
        stats.connections += 1
        record(linkID, .established(client: p.local, server: p.remote))
        listener.queue.append(linkID)
        notifyAcceptable(listener)
        _ = schedule(after: back, .synAck(pending: id))
    }

    private func finish(_ p: PendingConnect) {
        pending[p.id] = nil
        if let t = p.retryTimer { runtime.cancel(t) }
        if let t = p.deadlineTimer { runtime.cancel(t) }
    }

    func synAcked(_ id: Int) {
        guard let p = pending[id], let linkID = p.link, let link = links[linkID], let network else { return }
        finish(p)
        link.ends[0].delegate = p.delegate
        record(linkID, .connected)
        callbacks.append(.connected(p.continuation, .success(SimConnection(network: network, link: linkID, side: 0))))
    }

    func synRefused(_ id: Int) {
        guard let p = pending[id] else { return }
        finish(p)
        releasePort(p.local.port, host: p.host)
        record(nil, .refused(from: p.local, to: p.remote))
        callbacks.append(.connected(p.continuation, .failure(SocketError(.connectionRefused))))
    }

    func synRetry(_ id: Int) {
        guard let p = pending[id], p.link == nil else { return }
        if p.attempt >= configuration.synRetries {
            fail(p, .connectionTimedOut)
            return
        }
        p.attempt += 1
        sendSyn(p)
    }

    func connectDeadline(_ id: Int) {
        guard let p = pending[id] else { return }
        fail(p, .timeout)
    }

    private func fail(_ p: PendingConnect, _ reason: SocketError.Reason) {
        finish(p)
        record(p.link, .connectFailed(to: p.remote, reason: reason))
        if let linkID = p.link, let link = links[linkID] {
            // The server already has the connection: our side gives up with an RST.
            abort(link, side: 0)
        } else {
            releasePort(p.local.port, host: p.host)
        }
        callbacks.append(.connected(p.continuation, .failure(SocketError(reason))))
    }
}

// MARK: - Listening

extension SimWorld {
    func listen(host h: Int, on address: SocketAddress, options: SocketOptions, delegate: any ListenerDelegate) throws(SocketError) -> Int {
        guard isLocal(address.address, to: h) else { throw SocketError(.addressNotAvailable) }
        var port = address.port
        if port == 0 {
            guard let p = ephemeralPort(host: h) else { throw SocketError(.addressInUse) }
            port = p
        } else {
            for l in listeners.values where l.host == h && l.address.port == port {
                if SimWorld.overlaps(l.address.address, address.address) { throw SocketError(.addressInUse) }
            }
            if hosts[h].connectionPorts[port, default: 0] > 0 && !options.reuseaddr {
                throw SocketError(.addressInUse)
            }
        }
        let bound = SocketAddress(address.address, port: port)
        let l = ListenerRecord(
            id: nextListenerID, host: h, address: bound, backlog: max(1, options.backlog), delegate: delegate)
        nextListenerID += 1
        listeners[l.id] = l
        record(nil, .listen(bound))
        return l.id
    }

    func accept(listener id: Int, delegate: any ConnectionDelegate) -> (link: Int, side: Int)? {
        guard let l = listeners[id], let linkID = l.queue.popFirst() else { return nil }
        guard let link = links[linkID] else { return nil }
        link.ends[1].delegate = delegate
        record(linkID, .accepted)
        return (linkID, 1)
    }

    func armAccept(listener id: Int) {
        guard let l = listeners[id] else { return }
        l.armed = true
        notifyAcceptable(l)
    }

    func closeListener(_ id: Int) {
        guard let l = listeners.removeValue(forKey: id) else { return }
        l.delegate = nil
        let dropped = l.queue
        record(nil, .listenerClosed(l.address, dropped: dropped.count))
        for linkID in dropped {
            if let link = links[linkID] { close(link, side: 1, abortive: false) }
        }
    }
}
