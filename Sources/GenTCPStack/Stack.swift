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
/// It never reads a clock, never blocks and allocates only when a socket opens (nothing while
/// data flows); with ``StackConfiguration/preallocate`` every buffer is allocated by `init` and
/// nothing after. The driver:
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
///
/// It is `~Copyable`: a copy would be a second stack answering for the same connections, and
/// copies the compiler made on its own (a borrow from a pointer, a value moved into storage)
/// cost firmware 408 bytes of stack and a retain of every table each time.
public struct Stack: ~Copyable {
    /// The addressing, limits and seed the stack was made with.
    public let configuration: StackConfiguration
    /// What the interface received, sent, dropped and answered so far.
    public internal(set) var counters = StackCounters()
    var connections: [Connection]
    var listeners: [Listener]
    var control: ControlQueue
    var events: EventQueue
    var random: StackRandom
    /// Every slot holds its buffers for good (``StackConfiguration/preallocate``).
    let preallocated: Bool
    /// The keyed ISN generator (RFC 6528), re-keyed by ``reseed(_:)``.
    var sequenceNumbers: InitialSequenceNumbers
    var ipIdentification: UInt16
    var cursor = 0
    var acceptCounter: UInt32 = 0
    var datagrams: [DatagramSocket]
    /// UDP datagrams ready to go out, one MTU per slot.
    var datagramOutput: ControlQueue
    /// A send found ``datagramOutput`` full: post ``StackEvent/datagramSendRoom`` when a slot frees.
    var datagramSendBlocked = false
    /// Alternates the first turn between UDP datagrams and TCP segments, so neither starves.
    var datagramTurn = false
    /// ICMP errors we may still send now (a token bucket, see `mayAnswerWithICMPError`).
    var icmpErrorTokens = Stack.icmpErrorBurst
    /// When the bucket last earned a token (milliseconds of the driver's clock).
    var icmpErrorRefill: Int64 = 0

    /// A stack with every slot and queue allocated.
    public init(configuration: StackConfiguration) {
        self.configuration = configuration
        // A pattern, not `!= nil`: that picks Optional's `==` and compares whole options.
        if case .some = configuration.preallocate { preallocated = true } else { preallocated = false }
        connections = Stack.makeConnections(count: max(configuration.maximumConnections, 1),
                                            preallocate: configuration.preallocate)
        listeners = [Listener](repeating: Listener(), count: max(configuration.maximumListeners, 0))
        control = ControlQueue(slots: max(configuration.controlQueueCapacity, 1), slotSize: configuration.mtu)
        events = EventQueue(capacity: configuration.eventQueueCapacity)
        datagrams = [DatagramSocket](repeating: DatagramSocket(), count: max(configuration.maximumDatagramSockets, 0))
        // No UDP sockets, no UDP send queue: a firmware without UDP saves the MTU-sized slot.
        datagramOutput = ControlQueue(
            slots: configuration.maximumDatagramSockets == 0 ? 0 : max(configuration.datagramSendQueueCapacity, 1),
            slotSize: configuration.mtu)
        random = StackRandom(seed: configuration.seed)
        sequenceNumbers = InitialSequenceNumbers(seed: configuration.seed)
        ipIdentification = UInt16(truncatingIfNeeded: random.next())
    }

    /// The connection slots, each with its own buffers when `preallocate` gives their sizes.
    /// Out of line, so that its temporaries (whole `Connection`s) stay out of `init`'s frame.
    @inline(never)
    static func makeConnections(count: Int, preallocate: ConnectionOptions?) -> [Connection] {
        // Each slot initialised in place: `Array(repeating:count:)` would copy a template.
        var connections = [Connection](unsafeUninitializedCapacity: count) { slots, initialized in
            for index in 0..<count { (slots.baseAddress! + index).initialize(to: Connection()) }
            initialized = count
        }
        if let sizes = preallocate {
            // One set of buffers per slot (not shared: each is allocated here).
            for index in connections.indices {
                connections[index].sendBuffer = ByteRing(capacity: sizes.sendBufferSize)
                connections[index].receiveBuffer = ByteRing(capacity: sizes.receiveBufferSize)
                connections[index].assembler = Assembler(capacity: sizes.outOfOrderRuns)
                connections[index].scoreboard = SendScoreboard(capacity: Connection.scoreboardCapacity(sizes))
            }
        }
        return connections
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
        // The limited broadcast address reaches our UDP sockets too (a board announcing itself).
        let broadcast = packet.destination == IPv4Address(rawValue: 0xFFFF_FFFF) && packet.protocol == .udp
        if packet.destination != local && !broadcast {
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
        case .udp: receiveUDP(packet, broadcast: broadcast, now: now)
        case .icmp: receiveICMP(packet)
        default: counters.unknownProtocol += 1
        }
    }

    /// Fires every timer due at `now` and returns the next deadline (nil: no timer armed).
    /// Call ``transmit(into:now:)`` afterwards: a timer may have made a segment ready.
    public mutating func poll(now: MillisecondInstant) -> MillisecondInstant? {
        runTimers(now: now.milliseconds)
        return earliestDeadline
    }

    /// The earliest armed timer of any connection, without firing anything.
    public var nextDeadline: MillisecondInstant? { earliestDeadline }

    /// ``nextDeadline``, inlined into ``poll(now:)``: calling a non-mutating member from a
    /// mutating one passes the whole `Stack` by value, a copy in the caller's frame.
    @inline(__always)
    var earliestDeadline: MillisecondInstant? {
        var earliest: Int64?
        // By index, not `for connection in connections`: that copies each ~590-byte slot.
        for index in connections.indices where connections[index].inUse {
            if let deadline = connections[index].nextDeadline, earliest.map({ deadline < $0 }) ?? true {
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
        datagramTurn.toggle()
        if datagramTurn, let length = transmitDatagram(into: buffer) { return length }
        if let length = transmitSegment(into: buffer, now: now) { return length }
        return datagramTurn ? nil : transmitDatagram(into: buffer)
    }

    /// The next queued UDP datagram, if any.
    mutating func transmitDatagram(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        while let length = datagramOutput.pop(into: buffer) {
            if datagramSendBlocked {
                datagramSendBlocked = false
                post(.datagramSendRoom)
            }
            if length > 0 {
                counters.packetsSent += 1
                return length
            }
        }
        return nil
    }

    /// The next TCP segment of any connection, taking them in turn.
    mutating func transmitSegment(into buffer: UnsafeMutableRawBufferPointer, now: Int64) -> Int? {
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

    /// Re-keys the initial sequence numbers and the stack's other random choices (ephemeral
    /// ports) with fresh entropy: call it from a board's callback when its entropy source has
    /// more to give (a hardware RNG, ADC noise, the time of the first received frame), or on a
    /// schedule. Open connections are not affected.
    ///
    /// RFC 6528 §3 notes that a new secret may make a new connection's ISN fall inside the
    /// sequence space of a connection to the same peer and ports still in TIME-WAIT at the peer;
    /// re-keying rarely (minutes apart, not per connection) keeps that risk negligible.
    public mutating func reseed(_ seed: UInt64) {
        sequenceNumbers = InitialSequenceNumbers(seed: seed)
        random = StackRandom(seed: seed ^ random.next())
    }

    /// The initial sequence number of a new connection (RFC 6528: clock plus keyed hash).
    @inline(__always)
    func initialSequenceNumber(
        localPort: UInt16, remote: IPv4Address, remotePort: UInt16, now: Int64
    ) -> SequenceNumber {
        sequenceNumbers.next(local: local, localPort: localPort, remote: remote, remotePort: remotePort, now: now)
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

    // MARK: - Internals

    @inline(__always)
    func handle(_ index: Int) -> ConnectionHandle {
        ConnectionHandle(index: UInt16(index), generation: connections[index].generation)
    }

    @inline(__always)
    func slot(_ handle: ConnectionHandle) throws(TCPError) -> Int {
        let index = Int(handle.index)
        guard index < connections.count, connections[index].inUse, connections[index].owned,
              connections[index].generation == handle.generation
        else { throw .closed }
        return index
    }

    @inline(__always)
    func listenerIndex(_ handle: ListenerHandle) throws(TCPError) -> Int {
        let index = Int(handle.index)
        guard index < listeners.count, listeners[index].inUse, listeners[index].generation == handle.generation
        else { throw .closed }
        return index
    }

    @inline(__always)
    func validate(_ options: ConnectionOptions) throws(TCPError) {
        guard options.sendBufferSize > 0, options.receiveBufferSize > 0, options.outOfOrderRuns >= 0,
              options.minimumRTO.value > 0, options.maximumRTO.value >= options.minimumRTO.value
        else { throw .invalidArgument }
        if let sizes = configuration.preallocate {
            // Refused rather than allocated: see ``StackConfiguration/preallocate``.
            guard options.sendBufferSize <= sizes.sendBufferSize, options.receiveBufferSize <= sizes.receiveBufferSize,
                  options.outOfOrderRuns <= sizes.outOfOrderRuns
            else { throw .invalidArgument }
        }
    }


    @inline(__always)
    func freeConnectionSlot() -> Int? {
        for index in connections.indices where !connections[index].inUse { return index }
        return nil
    }

    @inline(__always)
    func connectionIndex(localPort: UInt16, remote: IPv4Address, remotePort: UInt16) -> Int? {
        for index in connections.indices
        where connections[index].inUse && connections[index].state != .closed
            && connections[index].localPort == localPort && connections[index].remotePort == remotePort
            && connections[index].remoteAddress == remote {
            return index
        }
        return nil
    }

    @inline(__always)
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
            // Give the buffers back, unless the slot keeps them for its next connection.
            if !preallocated {
                connections[index].sendBuffer = ByteRing(capacity: 0)
                connections[index].receiveBuffer = ByteRing(capacity: 0)
                connections[index].assembler = Assembler(capacity: 0)
                connections[index].scoreboard = SendScoreboard(capacity: 0)
            }
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
