import GenTCPCore
import GenTCPWire

/// A listening socket: a port, a backlog and the options its connections get.
struct Listener {
    var inUse = false
    var generation: UInt16 = 0
    var port: UInt16 = 0
    var backlog = 0
    var options = ConnectionOptions()
}

/// GenTCP's IPv4/TCP stack for one point-to-point interface (a SLIP line): a sans-I/O state
/// machine in the manner of smoltcp.
///
/// It never reads a clock, never blocks and allocates only when a socket opens. The driver:
///
/// 1. feeds every received datagram to ``receive(_:now:)``;
/// 2. calls ``transmit(into:now:)`` until it returns nil, sending each packet it writes (so it
///    can SLIP-encode and pace them: call it again only when the line can take another);
/// 3. takes ``nextEvent()`` until nil and wakes the sockets' owners;
/// 4. sleeps until new input, an application call, or ``poll(now:)``'s deadline, then calls
///    ``poll(now:)`` (which fires due timers) and goes back to 2.
///
/// After any socket call (``send(_:_:)``, ``recv(_:into:)``, ``close(_:)-(ConnectionHandle)``…)
/// the driver should also run step 2: the call may have made a segment ready. `now` is
/// milliseconds on any monotonic clock and must not go backwards.
public struct Stack {
    /// The addressing, limits and seed the stack was made with.
    public let configuration: StackConfiguration
    /// What the interface received, sent, dropped and answered so far.
    public internal(set) var counters = StackCounters()
    var connections: [Connection]
    var listeners: [Listener]
    var control: ControlQueue
    var events: EventQueue
    var random: StackRandom
    var ipIdentification: UInt16
    var cursor = 0
    var acceptCounter: UInt32 = 0

    /// A stack with every slot and queue allocated.
    public init(configuration: StackConfiguration) {
        self.configuration = configuration
        connections = [Connection](repeating: Connection(), count: max(configuration.maximumConnections, 1))
        listeners = [Listener](repeating: Listener(), count: max(configuration.maximumListeners, 0))
        control = ControlQueue(slots: max(configuration.controlQueueCapacity, 1), slotSize: configuration.mtu)
        events = EventQueue(capacity: configuration.eventQueueCapacity)
        random = StackRandom(seed: configuration.seed)
        ipIdentification = UInt16(truncatingIfNeeded: random.next())
    }

    var local: IPv4Address { configuration.localAddress }

    // MARK: - Driver side

    /// Processes one received IPv4 datagram (the bytes of one SLIP frame).
    ///
    /// Anything malformed, corrupt, fragmented, too long or not addressed to us is dropped and
    /// counted in ``counters``. ICMP echo requests are answered; TCP segments go to their
    /// connection, a listener, or get a RST (RFC 9293 §3.10.7.1).
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, now: MillisecondInstant) {
        let now = now.milliseconds
        counters.packetsReceived += 1
        let packet: IPv4Packet
        do {
            packet = try IPv4Packet(checking: bytes)
        } catch {
            counters.malformed += 1
            return
        }
        if packet.totalLength > configuration.mtu {
            counters.tooBig += 1
            return
        }
        if !packet.isChecksumValid {
            counters.badChecksum += 1
            return
        }
        if packet.destination != local {
            counters.notForUs += 1
            return
        }
        if packet.isFragment {
            // No reassembly: TCP never needs it (MSS = MTU − 40) and big pings are refused.
            counters.fragments += 1
            return
        }
        switch packet.protocol {
        case .tcp: receiveTCP(packet, now: now)
        case .icmp: receiveICMP(packet)
        default: counters.unknownProtocol += 1
        }
    }

    /// Fires every timer due at `now` and returns the next deadline (nil: no timer armed).
    /// Call ``transmit(into:now:)`` afterwards: a timer may have made a segment ready.
    public mutating func poll(now: MillisecondInstant) -> MillisecondInstant? {
        runTimers(now: now.milliseconds)
        return nextDeadline
    }

    /// The earliest armed timer of any connection, without firing anything.
    public var nextDeadline: MillisecondInstant? {
        var earliest: Int64?
        for connection in connections where connection.inUse {
            if let deadline = connection.nextDeadline, earliest.map({ deadline < $0 }) ?? true {
                earliest = deadline
            }
        }
        return earliest.map { MillisecondInstant(milliseconds: $0) }
    }

    /// Writes the next IPv4 datagram to send into `buffer` and returns its length, or nil when
    /// nothing is ready. Give it at least the MTU; segments are sized to fit. Control packets
    /// (echo replies, resets) go first, then the connections in turn.
    public mutating func transmit(into buffer: UnsafeMutableRawBufferPointer, now: MillisecondInstant) -> Int? {
        let now = now.milliseconds
        runTimers(now: now)
        while let length = control.pop(into: buffer) {
            if length > 0 {
                counters.packetsSent += 1
                return length
            }
        }
        let limit = min(buffer.count, configuration.mtu)
        guard limit >= IPv4Header.length + TCPPacket.minimumHeaderLength else { return nil }
        let tcpArea = UnsafeMutableRawBufferPointer(rebasing: buffer[IPv4Header.length..<limit])
        let count = connections.count
        for step in 0..<count {
            let index = (cursor + step) % count
            guard connections[index].inUse else { continue }
            let length = connections[index].emit(now: now, into: tcpArea, local: local)
            connections[index].refreshTimers(now: now)
            settle(index)
            if let length {
                writeIPHeader(into: buffer, destination: connections[index].remoteAddress, protocol: .tcp,
                              payloadLength: length, dontFragment: true)
                cursor = (index + 1) % count
                counters.packetsSent += 1
                return IPv4Header.length + length
            }
        }
        return nil
    }

    /// The oldest pending event, or nil.
    public mutating func nextEvent() -> StackEvent? {
        events.pop()
    }

    /// Queues an ICMP echo request (RFC 792) to `destination`; its reply arrives as
    /// ``StackEvent/echoReply(source:identifier:sequence:dataLength:)``. False when the control
    /// queue is full or `data` does not fit the MTU.
    @discardableResult
    public mutating func sendEchoRequest(
        to destination: IPv4Address, identifier: UInt16, sequence: UInt16, data: UnsafeRawBufferPointer
    ) -> Bool {
        guard IPv4Header.length + ICMPv4Packet.headerLength + data.count <= configuration.mtu else { return false }
        return pushControl { stack, buffer in
            let icmp = UnsafeMutableRawBufferPointer(rebasing: buffer[IPv4Header.length...])
            guard let length = try? ICMPv4Echo(isReply: false, identifier: identifier, sequenceNumber: sequence)
                .emit(into: icmp, data: data)
            else { return 0 }
            stack.writeIPHeader(into: buffer, destination: destination, protocol: .icmp, payloadLength: length,
                                dontFragment: false)
            return IPv4Header.length + length
        }
    }

    // MARK: - Sockets

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
            iss: SequenceNumber(random.next32()), mtu: configuration.mtu, now: now,
            congestionFree: configuration.dedicatedLink && remote == configuration.peerAddress)
        connections[index].owned = true
        connections[index].connectDeadline = now + options.connectTimeout
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
        for index in connections.indices {
            let c = connections[index]
            guard c.inUse, !c.owned, c.listener == li, c.state != .synReceived, c.state != .closed else { continue }
            if best.map({ c.acceptOrder &- connections[$0].acceptOrder > 0x8000_0000 }) ?? true { best = index }
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

    /// Slots in use (connections in TIME-WAIT or closing after `close` included).
    public var connectionsInUse: Int {
        connections.reduce(0) { $0 + ($1.inUse ? 1 : 0) }
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

    // MARK: - Internals

    func handle(_ index: Int) -> ConnectionHandle {
        ConnectionHandle(index: UInt16(index), generation: connections[index].generation)
    }

    func slot(_ handle: ConnectionHandle) throws(TCPError) -> Int {
        let index = Int(handle.index)
        guard index < connections.count, connections[index].inUse, connections[index].owned,
              connections[index].generation == handle.generation
        else { throw .closed }
        return index
    }

    func listenerIndex(_ handle: ListenerHandle) throws(TCPError) -> Int {
        let index = Int(handle.index)
        guard index < listeners.count, listeners[index].inUse, listeners[index].generation == handle.generation
        else { throw .closed }
        return index
    }

    func validate(_ options: ConnectionOptions) throws(TCPError) {
        guard options.sendBufferSize > 0, options.receiveBufferSize > 0, options.outOfOrderRuns >= 0,
              options.minimumRTO > 0, options.maximumRTO >= options.minimumRTO
        else { throw .invalidArgument }
    }

    func freeConnectionSlot() -> Int? {
        connections.firstIndex { !$0.inUse }
    }

    func connectionIndex(localPort: UInt16, remote: IPv4Address, remotePort: UInt16) -> Int? {
        connections.firstIndex {
            $0.inUse && $0.state != .closed && $0.localPort == localPort && $0.remotePort == remotePort
                && $0.remoteAddress == remote
        }
    }

    func portInUse(_ port: UInt16, remote: IPv4Address, remotePort: UInt16) -> Bool {
        if listeners.contains(where: { $0.inUse && $0.port == port }) { return true }
        return connectionIndex(localPort: port, remote: remote, remotePort: remotePort) != nil
    }

    mutating func runTimers(now: Int64) {
        for index in connections.indices where connections[index].inUse {
            if let deadline = connections[index].nextDeadline, now >= deadline {
                connections[index].onTimers(now: now)
                settle(index)
            }
        }
    }

    /// Collects a connection's effects: its reset, counters and events; frees the slot once
    /// the connection is closed and nobody holds it.
    mutating func settle(_ index: Int) {
        if let reset = connections[index].outgoingReset {
            connections[index].outgoingReset = nil
            queueReset(reset)
        }
        counters.timeoutRetransmissions += connections[index].timeoutRetransmissionsDelta
        counters.fastRetransmissions += connections[index].fastRetransmissionsDelta
        counters.outOfOrderDropped += connections[index].outOfOrderDroppedDelta
        connections[index].timeoutRetransmissionsDelta = 0
        connections[index].fastRetransmissionsDelta = 0
        connections[index].outOfOrderDroppedDelta = 0

        let raised = connections[index].events
        connections[index].events = []
        if !raised.isEmpty {
            if connections[index].owned {
                let h = handle(index)
                if raised.contains(.connected) { post(.connected(h)) }
                if raised.contains(.readable) { post(.readable(h)) }
                if raised.contains(.writable) { post(.writable(h)) }
                if raised.contains(.failed), let error = connections[index].error { post(.failed(h, error)) }
                if raised.contains(.finished) { post(.finished(h)) }
            } else if raised.contains(.acceptable), connections[index].listener >= 0 {
                let li = connections[index].listener
                post(.acceptable(ListenerHandle(index: UInt16(li), generation: listeners[li].generation)))
            }
        }
        if connections[index].state == .closed, !connections[index].owned {
            connections[index].inUse = false
            connections[index].listener = -1
            connections[index].generation &+= 1
            // Give the buffers back.
            connections[index].sendBuffer = ByteRing(capacity: 0)
            connections[index].receiveBuffer = ByteRing(capacity: 0)
            connections[index].assembler = Assembler(capacity: 0)
        }
    }

    mutating func post(_ event: StackEvent) {
        if !events.push(event) { counters.eventsDropped += 1 }
    }

    mutating func pushControl(_ build: (inout Stack, UnsafeMutableRawBufferPointer) -> Int) -> Bool {
        var queue = control
        control = ControlQueue(slots: 0, slotSize: 0)
        let pushed = queue.push { buffer in build(&self, buffer) }
        control = queue
        if !pushed { counters.controlQueueOverflows += 1 }
        return pushed
    }

    mutating func writeIPHeader(
        into buffer: UnsafeMutableRawBufferPointer, destination: IPv4Address, protocol: IPProtocol,
        payloadLength: Int, dontFragment: Bool
    ) {
        // RFC 6864: any ID is fine on atomic datagrams; a counter is what small stacks use.
        ipIdentification &+= 1
        let header = IPv4Header(
            source: local, destination: destination, protocol: `protocol`, payloadLength: payloadLength,
            timeToLive: configuration.timeToLive, identification: ipIdentification, dontFragment: dontFragment)
        _ = try? header.emit(into: buffer)
    }

    mutating func queueReset(_ reset: ResetReply) {
        let pushed = pushControl { stack, buffer in
            var flags: TCPFlags = .rst
            if reset.acknowledgment != nil { flags.insert(.ack) }
            let header = TCPHeader(
                sourcePort: reset.localPort, destinationPort: reset.remotePort, sequenceNumber: reset.sequence,
                acknowledgmentNumber: reset.acknowledgment ?? SequenceNumber(0), flags: flags, window: 0)
            let tcp = UnsafeMutableRawBufferPointer(rebasing: buffer[IPv4Header.length...])
            guard let length = try? header.emit(
                into: tcp, payloadLength: 0, source: stack.local, destination: reset.remote)
            else { return 0 }
            stack.writeIPHeader(into: buffer, destination: reset.remote, protocol: .tcp, payloadLength: length,
                                dontFragment: true)
            return IPv4Header.length + length
        }
        if pushed { counters.resetsSent += 1 }
    }
}
