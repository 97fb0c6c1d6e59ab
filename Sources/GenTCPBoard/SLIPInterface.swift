import GenTCPCore
import GenTCPStack
import GenTCPWire

/// The settings of a board's SLIP line: its addresses, MTU, speed and the stack's limits.
public struct SLIPInterfaceConfiguration: Sendable {
    /// The board's own address on the line.
    public var localAddress: IPv4Address
    /// The host's address at the other end of the line.
    public var peerAddress: IPv4Address
    /// The largest IPv4 datagram either way (1006 is RFC 1055's).
    public var mtu: Int
    /// The line's speed: the RTO floor follows from it (a segment and the ACKs queued behind it
    /// take several frame times on a serial line).
    public var baud: Int
    /// Connection slots (accepted, opened and closing ones).
    public var maximumConnections: Int
    /// Listening sockets.
    public var maximumListeners: Int
    /// Buffers and timers of every connection; by default tuned to the line.
    public var connectionOptions: ConnectionOptions

    /// A line between `local` (the board) and `peer` (the host). `sendBuffer` and
    /// `receiveBuffer` size every connection's rings: under three segments (3 × (MTU − 40))
    /// the window stops the line half the time, so give at least that where RAM allows.
    public init(local: IPv4Address, peer: IPv4Address, mtu: Int = 1006, baud: Int = 115_200,
                maximumConnections: Int = 2, maximumListeners: Int = 3,
                sendBuffer: Int = 4096, receiveBuffer: Int = 4096) {
        localAddress = local
        peerAddress = peer
        self.mtu = mtu
        self.baud = baud
        self.maximumConnections = maximumConnections
        self.maximumListeners = maximumListeners
        connectionOptions = SLIPInterfaceConfiguration.lineOptions(
            baud: baud, mtu: mtu, sendBuffer: sendBuffer, receiveBuffer: receiveBuffer)
    }

    /// The stack's serial-line tuning (``ConnectionOptions/serialLine(baud:mtu:)``: the RTO floor
    /// of four frame times) with the buffers asked for: below three segments a serial line idles
    /// while each segment is turned around, at about half the goodput, for less RAM.
    static func lineOptions(baud: Int, mtu: Int, sendBuffer: Int, receiveBuffer: Int) -> ConnectionOptions {
        var options = ConnectionOptions.serialLine(baud: baud, mtu: mtu)
        options.sendBufferSize = sendBuffer
        options.receiveBufferSize = receiveBuffer
        return options
    }
}

/// GenTCP's own IPv4/TCP stack (`Stack`) on a SLIP line: the board's side of
/// `gentcp connect --driver slip`. ICMP echo is answered by the stack itself.
public struct SLIPInterface: NetworkInterface, ~Copyable {
    /// The settings it was made with.
    public let configuration: SLIPInterfaceConfiguration
    /// The stack, in storage of its own so the SLIP decoder's callback can reach it.
    let stackStorage: UnsafeMutablePointer<Stack>
    /// The stack's counters: datagrams, resets, retransmissions, answered pings.
    public var counters: StackCounters { stackStorage.pointee.counters }
    var decoder: SLIPDecoder
    /// The datagram being SLIP-encoded onto the line, and how much of it is out.
    let frame: UnsafeMutableRawBufferPointer
    var frameLength = 0
    var encoder = SLIPEncoder()
    /// Full: the event is dropped (the run loop's scan of every socket recovers readable and
    /// writable; failures are read again from the stack).
    var events = FixedQueue<InterfaceEvent>(capacity: 16)

    /// An interface with every slot allocated, its buffers included (the stack's `preallocate`):
    /// nothing is allocated afterwards, so a bump allocator is enough. `seed` keys the initial
    /// sequence numbers (RFC 6528) and must differ from boot to boot (the board's
    /// ``Board/entropy()``).
    public init(configuration: SLIPInterfaceConfiguration, seed: UInt64) {
        self.configuration = configuration
        stackStorage = UnsafeMutablePointer<Stack>.allocate(capacity: 1)
        stackStorage.initialize(to: Stack(configuration: StackConfiguration(
            localAddress: configuration.localAddress, peerAddress: configuration.peerAddress, mtu: configuration.mtu,
            maximumConnections: configuration.maximumConnections, maximumListeners: configuration.maximumListeners,
            controlQueueCapacity: 1, eventQueueCapacity: 16, seed: seed, dedicatedLink: true,
            maximumDatagramSockets: 0, datagramSendQueueCapacity: 1, preallocate: configuration.connectionOptions)))
        decoder = SLIPDecoder(maximumFrameSize: configuration.mtu)
        frame = UnsafeMutableRawBufferPointer.allocate(byteCount: configuration.mtu, alignment: 8)
    }

    deinit {
        frame.deallocate()
        stackStorage.deinitialize(count: 1)
        stackStorage.deallocate()
    }

    /// The stack in place (addressors: the `_read`/`_modify` coroutines cost 560 bytes of
    /// text on the M4).
    var stack: Stack {
        unsafeAddress { UnsafePointer(stackStorage) }
        nonmutating unsafeMutableAddress { stackStorage }
    }

    public mutating func start(now: MillisecondInstant) {
        _ = events.push(.up)
    }

    public var isUp: Bool { true }

    public var isQuiescent: Bool { frameLength == 0 && stack.isQuiescent }

    public mutating func input(_ bytes: UnsafeRawBufferPointer, now: MillisecondInstant) {
        let storage = stackStorage
        decoder.decode(bytes) { datagram in storage.pointee.receive(datagram, now: now) }
        drainStackEvents()
    }

    public mutating func output(into buffer: UnsafeMutableRawBufferPointer, now: MillisecondInstant) -> Int {
        if frameLength == 0 {
            guard let length = stack.transmit(into: frame, now: now) else {
                drainStackEvents()
                return 0
            }
            frameLength = length
            encoder.reset()
        }
        let written = encoder.encode(UnsafeRawBufferPointer(rebasing: frame[0..<frameLength]), into: buffer)
        if encoder.isComplete { frameLength = 0 }
        drainStackEvents()
        return written
    }

    public mutating func poll(now: MillisecondInstant) -> MillisecondInstant? {
        let deadline = stack.poll(now: now)
        drainStackEvents()
        return deadline
    }

    public mutating func nextEvent() -> InterfaceEvent? { events.pop() }

    mutating func drainStackEvents() {
        while let event = stack.nextEvent() {
            switch event {
            case .connected(let h): _ = events.push(.connected(Self.wrap(h)))
            case .acceptable(let l): _ = events.push(.acceptable(InterfaceListener(raw: Self.pack(l.index, l.generation))))
            case .readable(let h): _ = events.push(.readable(Self.wrap(h)))
            case .writable(let h): _ = events.push(.writable(Self.wrap(h)))
            case .failed(let h, let error): _ = events.push(.failed(Self.wrap(h), Self.socketError(error)))
            case .finished, .datagramReadable, .datagramSendRoom, .echoReply: break
            }
        }
    }

    public mutating func connect(to address: IPAddress, port: UInt16, settings: InterfaceSettings, now: MillisecondInstant)
        throws(SocketError) -> InterfaceConnection {
        guard case .v4(let raw) = address else { throw SocketError(.addressFamilyNotSupported, "the SLIP stack is IPv4 only") }
        do throws(TCPError) {
            let h = try stack.connect(to: IPv4Address(rawValue: raw), port: port, options: options(settings), now: now)
            return Self.wrap(h)
        } catch {
            throw Self.socketError(error)
        }
    }

    public mutating func listen(port: UInt16, backlog: Int, settings: InterfaceSettings) throws(SocketError) -> InterfaceListener {
        do throws(TCPError) {
            let l = try stack.listen(port: port, backlog: max(backlog, 1), options: options(settings))
            return InterfaceListener(raw: Self.pack(l.index, l.generation))
        } catch {
            throw Self.socketError(error)
        }
    }

    public mutating func accept(_ listener: InterfaceListener) throws(SocketError) -> InterfaceConnection? {
        do throws(TCPError) {
            return try stack.accept(Self.unwrap(listener)).map(Self.wrap)
        } catch {
            throw Self.socketError(error)
        }
    }

    public mutating func close(listener: InterfaceListener) {
        stack.close(Self.unwrap(listener))
        drainStackEvents()
    }

    public mutating func send(_ connection: InterfaceConnection, _ bytes: UnsafeRawBufferPointer, now: MillisecondInstant)
        throws(SocketError) -> Int {
        do throws(TCPError) {
            return try stack.send(Self.unwrap(connection), bytes)
        } catch {
            throw Self.socketError(error)
        }
    }

    public mutating func recv(_ connection: InterfaceConnection, into buffer: UnsafeMutableRawBufferPointer,
                              now: MillisecondInstant) throws(SocketError) -> InterfaceRead {
        do throws(TCPError) {
            switch try stack.recv(Self.unwrap(connection), into: buffer) {
            case .data(let n): return n > 0 ? .data(n) : .wouldBlock
            case .wouldBlock: return .wouldBlock
            case .endOfStream: return .end
            }
        } catch {
            throw Self.socketError(error)
        }
    }

    public func readableCount(_ connection: InterfaceConnection) -> Int { stack.bytesReadable(Self.unwrap(connection)) }

    public func unsentCount(_ connection: InterfaceConnection) -> Int { stack.bytesUnacknowledged(Self.unwrap(connection)) }

    public mutating func shutdown(_ connection: InterfaceConnection, now: MillisecondInstant) throws(SocketError) {
        do throws(TCPError) {
            try stack.shutdown(Self.unwrap(connection))
        } catch {
            throw Self.socketError(error)
        }
    }

    public mutating func close(_ connection: InterfaceConnection, now: MillisecondInstant) {
        stack.close(Self.unwrap(connection))
        drainStackEvents()
    }

    public mutating func abort(_ connection: InterfaceConnection, now: MillisecondInstant) {
        stack.abort(Self.unwrap(connection))
        drainStackEvents()
    }

    public mutating func configure(_ connection: InterfaceConnection, noDelay: Bool, keepalive: Bool) throws(SocketError) {
        do throws(TCPError) {
            try stack.setNoDelay(Self.unwrap(connection), noDelay)
            try stack.setKeepalive(Self.unwrap(connection), keepalive)
        } catch {
            throw Self.socketError(error)
        }
    }

    public func peer(_ connection: InterfaceConnection) -> (address: IPAddress, port: UInt16)? {
        guard let endpoint = try? stack.remoteEndpoint(Self.unwrap(connection)) else { return nil }
        return (.v4(endpoint.address.rawValue), endpoint.port)
    }

    public func local(_ connection: InterfaceConnection) -> (address: IPAddress, port: UInt16)? {
        guard let port = try? stack.localPort(Self.unwrap(connection)) else { return nil }
        return (.v4(configuration.localAddress.rawValue), port)
    }

    public func peerFinished(_ connection: InterfaceConnection) -> Bool {
        guard let state = try? stack.state(Self.unwrap(connection)) else { return true }
        switch state {
        case .closeWait, .closing, .lastAck, .timeWait, .closed: return true
        default: return stack.error(Self.unwrap(connection)) != nil
        }
    }

    func options(_ settings: InterfaceSettings) -> ConnectionOptions {
        var options = configuration.connectionOptions
        if settings.sendBufferSize > 0 { options.sendBufferSize = settings.sendBufferSize }
        if settings.receiveBufferSize > 0 { options.receiveBufferSize = settings.receiveBufferSize }
        options.noDelay = settings.noDelay
        options.keepalive = settings.keepalive
        if let timeout = settings.connectTimeout { options.connectTimeout = timeout }
        return options
    }

    static func pack(_ index: UInt16, _ generation: UInt16) -> UInt32 { UInt32(index) << 16 | UInt32(generation) }
    static func wrap(_ h: ConnectionHandle) -> InterfaceConnection { InterfaceConnection(raw: pack(h.index, h.generation)) }
    static func unwrap(_ c: InterfaceConnection) -> ConnectionHandle {
        ConnectionHandle(index: UInt16(truncatingIfNeeded: c.raw >> 16), generation: UInt16(truncatingIfNeeded: c.raw))
    }
    static func unwrap(_ l: InterfaceListener) -> ListenerHandle {
        ListenerHandle(index: UInt16(truncatingIfNeeded: l.raw >> 16), generation: UInt16(truncatingIfNeeded: l.raw))
    }

    /// The stack's reasons as gen_tcp names them.
    static func socketError(_ error: TCPError) -> SocketError {
        switch error {
        case .closed: return .closed
        case .connectionRefused: return SocketError(.connectionRefused)
        case .connectionReset: return SocketError(.connectionReset)
        case .timedOut: return SocketError(.connectionTimedOut)
        case .addressInUse: return SocketError(.addressInUse)
        case .noFreeSlot: return SocketError(.tooManyOpenFiles)
        case .invalidArgument: return .invalidArgument
        case .notConnected: return .notConnected
        case .messageTooLong: return SocketError(.messageTooLong)
        case .wouldBlock: return SocketError(.tryAgain)
        case .permissionDenied: return SocketError(.permissionDenied)
        }
    }
}
