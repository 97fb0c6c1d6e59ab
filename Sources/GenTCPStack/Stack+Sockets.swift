import GenTCPCore
import GenTCPWire

/// The socket calls: connect, listen, accept, send, recv, shutdown, close, abort, options.
extension Stack {
    /// Opens a connection to `remote`:`port` (active open, RFC 9293 §3.10.1). The SYN goes out
    /// on the next ``transmit(into:now:)``; ``StackEvent/connected(_:)`` or
    /// ``StackEvent/failed(_:_:)`` follows.
    ///
    /// - Parameters:
    ///   - remote: the peer's address.
    ///   - port: the peer's port (not 0).
    ///   - localPort: 0 picks an ephemeral port (49152...65535).
    ///   - options: buffers, timers and flags of the connection.
    ///   - now: the driver's monotonic clock.
    /// - Throws: ``TCPError/invalidArgument`` (port 0, empty buffers), ``TCPError/addressInUse``,
    ///   ``TCPError/noFreeSlot``.
    public mutating func connect(
        to remote: IPv4Address, port: UInt16, localPort: UInt16 = 0, options: ConnectionOptions = ConnectionOptions(),
        now: MillisecondInstant
    ) throws(TCPError) -> ConnectionHandle {
        let now = now.milliseconds
        guard port != 0 else { throw .invalidArgument }
        try validate(options)
        var chosen = localPort
        if chosen == 0 {
            var found = false
            for _ in 0..<64 {
                let candidate = UInt16(49152 + Int(random.next() % 16384))
                if !portInUse(candidate, remote: remote, remotePort: port) {
                    chosen = candidate
                    found = true
                    break
                }
            }
            guard found else { throw .addressInUse }
        } else if connectionIndex(localPort: chosen, remote: remote, remotePort: port) != nil {
            throw .addressInUse
        }
        guard let index = freeConnectionSlot() else { throw .noFreeSlot }
        connections[index].open(
            state: .synSent, options: options, localPort: chosen, remote: remote, remotePort: port,
            iss: initialSequenceNumber(localPort: chosen, remote: remote, remotePort: port, now: now),
            mtu: configuration.mtu, now: now,
            congestionFree: configuration.dedicatedLink && remote == configuration.peerAddress,
            preallocated: preallocated)
        connections[index].owned = true
        connections[index].connectDeadline = now + options.connectTimeout.value
        return handle(index)
    }

    /// Listens on `port` (passive open). Up to `backlog` connections may wait, handshaking or
    /// established, for ``accept(_:)``. A SYN that finds the backlog full evicts the listener's
    /// oldest half-open connection; only when every waiting one completed its handshake is it
    /// dropped (the peer retries). Half-open connections are also bounded over all listeners
    /// by ``StackConfiguration/maximumHalfOpenConnections``.
    ///
    /// - Throws: ``TCPError/invalidArgument``, ``TCPError/addressInUse``, ``TCPError/noFreeSlot``.
    public mutating func listen(
        port: UInt16, backlog: Int = 4, options: ConnectionOptions = ConnectionOptions()
    ) throws(TCPError) -> ListenerHandle {
        guard port != 0, backlog > 0 else { throw .invalidArgument }
        try validate(options)
        for listener in listeners where listener.inUse && listener.port == port { throw .addressInUse }
        guard let index = listeners.firstIndex(where: { !$0.inUse }) else { throw .noFreeSlot }
        listeners[index].inUse = true
        listeners[index].port = port
        listeners[index].backlog = backlog
        listeners[index].options = options
        return ListenerHandle(index: UInt16(index), generation: listeners[index].generation)
    }

    /// Takes the oldest established connection waiting on `listener`, or nil if none is ready.
    public mutating func accept(_ listener: ListenerHandle) throws(TCPError) -> ConnectionHandle? {
        let li = try listenerIndex(listener)
        var best: Int?
        // Field by field through the array: `let c = connections[index]` copies the whole slot.
        for index in connections.indices {
            guard connections[index].inUse, !connections[index].owned, connections[index].listener == li,
                  connections[index].state != .synReceived, connections[index].state != .closed
            else { continue }
            let order = connections[index].acceptOrder
            if best.map({ order &- connections[$0].acceptOrder > 0x8000_0000 }) ?? true { best = index }
        }
        guard let index = best else { return nil }
        connections[index].owned = true
        connections[index].listener = -1
        return handle(index)
    }

    /// Stops listening; connections not yet accepted are reset.
    public mutating func close(_ listener: ListenerHandle) {
        guard let li = try? listenerIndex(listener) else { return }
        for index in connections.indices where connections[index].inUse && connections[index].listener == li
            && !connections[index].owned {
            connections[index].fail(nil, sendReset: true)
            settle(index)
        }
        listeners[li].inUse = false
        listeners[li].generation &+= 1
    }

    /// Queues up to `bytes.count` bytes; returns how many fit in the send buffer (0 when full:
    /// wait for ``StackEvent/writable(_:)``).
    ///
    /// - Throws: ``TCPError/closed`` for a stale handle or after ``shutdown(_:)``; the
    ///   connection's error once it failed.
    public mutating func send(_ connection: ConnectionHandle, _ bytes: UnsafeRawBufferPointer) throws(TCPError) -> Int {
        let index = try slot(connection)
        if let error = connections[index].error { throw error }
        switch connections[index].state {
        case .synSent, .synReceived, .established, .closeWait: break
        default: throw .closed
        }
        if connections[index].finQueued { throw .closed }
        let accepted = connections[index].sendBuffer.append(bytes)
        if accepted < bytes.count { connections[index].wantWritable = true }
        return accepted
    }

    /// Moves buffered bytes into `buffer`. Reading frees receive-buffer space, which reopens
    /// the advertised window (a window update is sent when it grew enough).
    ///
    /// - Throws: ``TCPError/closed`` for a stale handle; the connection's error once the
    ///   buffered bytes are read.
    public mutating func recv(_ connection: ConnectionHandle, into buffer: UnsafeMutableRawBufferPointer) throws(TCPError) -> ReceiveResult {
        let index = try slot(connection)
        if connections[index].receiveBuffer.count > 0, buffer.count > 0 {
            let n = connections[index].receiveBuffer.read(into: buffer)
            if connections[index].state.isSynchronized, !connections[index].finReceived,
               connections[index].windowUpdateWorthwhile {
                connections[index].ackNow = true
            }
            return .data(n)
        }
        if connections[index].receiveBuffer.count > 0 { return .data(0) }
        if connections[index].finReceived { return .endOfStream }
        if let error = connections[index].error { throw error }
        if connections[index].state == .closed { throw .closed }
        return .wouldBlock
    }

    /// Half-close: a FIN follows the queued data; reading goes on (RFC 9293 §3.10.4).
    public mutating func shutdown(_ connection: ConnectionHandle) throws(TCPError) {
        let index = try slot(connection)
        if let error = connections[index].error { throw error }
        guard connections[index].state != .closed else { throw .notConnected }
        connections[index].beginClose()
    }

    /// Closes the socket: the handle becomes stale at once; the connection finishes in the
    /// background (FIN, then TIME-WAIT). Unread received data makes it a reset instead
    /// (RFC 2525 §2.17, as Linux does).
    public mutating func close(_ connection: ConnectionHandle) {
        guard let index = try? slot(connection) else { return }
        connections[index].owned = false
        connections[index].generation &+= 1
        connections[index].applicationClosed = true
        switch connections[index].state {
        case .closed, .listen, .synSent:
            connections[index].enterClosed()
        default:
            if connections[index].receiveBuffer.count > 0 {
                connections[index].fail(nil, sendReset: true)
            } else {
                connections[index].beginClose()
            }
        }
        settle(index)
    }

    /// Aborts: sends RST (in a synchronized state) and frees the slot; the handle becomes stale.
    public mutating func abort(_ connection: ConnectionHandle) {
        guard let index = try? slot(connection) else { return }
        connections[index].owned = false
        connections[index].generation &+= 1
        connections[index].fail(nil, sendReset: true)
        settle(index)
    }

    /// Turns Nagle's algorithm off (`true`) or on for an open connection (gen_tcp `{nodelay, Bool}`
    /// via `setopts`). Takes effect at the next ``transmit(into:now:)``.
    public mutating func setNoDelay(_ connection: ConnectionHandle, _ noDelay: Bool) throws(TCPError) {
        let index = try slot(connection)
        connections[index].options.noDelay = noDelay
    }

    /// Turns keepalive probes on or off for an open connection (gen_tcp `{keepalive, Bool}` via
    /// `setopts`). The idle time counts from the last segment received.
    public mutating func setKeepalive(_ connection: ConnectionHandle, _ keepalive: Bool) throws(TCPError) {
        let index = try slot(connection)
        connections[index].options.keepalive = keepalive
        if !keepalive {
            connections[index].keepaliveProbes = 0
            connections[index].keepalivePending = false
        }
    }

    /// The RFC 9293 state of the connection.
    public func state(_ connection: ConnectionHandle) throws(TCPError) -> TCPState {
        connections[try slot(connection)].state
    }

    /// Bytes or end-of-stream or an error can be read without waiting.
    public func isReadable(_ connection: ConnectionHandle) -> Bool {
        guard let index = try? slot(connection) else { return true }
        return connections[index].isReadable
    }

    /// `send` would accept at least one byte.
    public func isWritable(_ connection: ConnectionHandle) -> Bool {
        guard let index = try? slot(connection) else { return false }
        return connections[index].isWritable
    }

    /// Why the connection failed, if it did.
    public func error(_ connection: ConnectionHandle) -> TCPError? {
        guard let index = try? slot(connection) else { return .closed }
        return connections[index].error
    }

    /// Bytes waiting in the receive buffer.
    public func bytesReadable(_ connection: ConnectionHandle) -> Int {
        guard let index = try? slot(connection) else { return 0 }
        return connections[index].receiveBuffer.count
    }

    /// Bytes in the send buffer not yet acknowledged by the peer.
    public func bytesUnacknowledged(_ connection: ConnectionHandle) -> Int {
        guard let index = try? slot(connection) else { return 0 }
        return connections[index].sendBuffer.count
    }

    /// Nothing left to say on the line: every connection is closed or in TIME-WAIT (its FIN
    /// exchange done), so a program that stops now loses nothing it queued.
    public var isQuiescent: Bool {
        for index in connections.indices where connections[index].inUse && connections[index].state != .timeWait {
            return false
        }
        return true
    }

    /// Slots in use (connections in TIME-WAIT or closing after `close` included).
    public var connectionsInUse: Int {
        var count = 0
        for index in connections.indices where connections[index].inUse { count += 1 }
        return count
    }

    /// The peer's address and port of a connection (useful after ``accept(_:)``).
    public func remoteEndpoint(_ connection: ConnectionHandle) throws(TCPError) -> (address: IPv4Address, port: UInt16) {
        let index = try slot(connection)
        return (connections[index].remoteAddress, connections[index].remotePort)
    }

    /// The local port of a connection (useful after an ephemeral connect).
    public func localPort(_ connection: ConnectionHandle) throws(TCPError) -> UInt16 {
        connections[try slot(connection)].localPort
    }
}
