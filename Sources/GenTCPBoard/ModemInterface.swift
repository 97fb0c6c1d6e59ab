import GenTCPCore
import GenTCPModem

/// A ``NetworkInterface`` over an AT-command modem's own TCP/IP stack ("socket offload"): the
/// board's line is the module's UART, and `ModemEngine` speaks the dialect.
///
/// ``start(now:)`` brings the module up: `AT` (a few times, until it answers), `ATE0`, the firmware
/// version (ESP-AT picks its passive-receive command from it), for a cellular module the bearer
/// shut down to its initial state (`AT+CIPSHUT`, `AT+QIDEACT`), `AT+CIPMUX=1`, passive receive
/// (`AT+CIPRECVMODE=1` or `AT+CIPRECVTYPE`, SIMCom `AT+CIPRXGET=1`), the Wi-Fi join or the
/// cellular bearer from ``ModemInterfaceConfiguration``, and the module's address; then
/// ``InterfaceEvent/up``. A failed bring-up posts ``InterfaceEvent/down(_:)`` (`etimedout` for a
/// silent module, `enetunreach` for a network it cannot join, `eproto` for a refused setting)
/// and starts over after ``ModemInterfaceConfiguration/retryDelay``.
///
/// Received data waits in the module until the interface reads it (`AT+CIPRECVDATA`) into the
/// link's receive ring, and only while the ring has room: the ring is the board's TCP window.
/// Sent data is copied into the link's send ring and written to the module in chunks
/// (`AT+CIPSEND`); ``unsentCount(_:)`` counts what the module has not confirmed (`SEND OK`).
/// A stream ends (``InterfaceRead/end``) only after the module's close notice *and* every byte
/// it announced was read. A module restart fails every connection with `econnaborted`, a lost
/// Wi-Fi or bearer with `enetdown`, a module that stops answering with `etimedout`: never an end.
///
/// Listening is not supported (`enotsup`), nor is half-closing: ESP-AT has no such commands.
///
/// Memory: every ring is allocated at init. After that, only a connect allocates (the engine's
/// `AT+CIPSTART` takes the host as a `String`; a dotted quad longer than a small string).
public struct ModemInterface<Dialect: ModemDialect> {
    /// Where the bring-up is.
    enum Phase: Equatable {
        /// Not started.
        case idle
        /// Running the bring-up step at this index (see ``ModemInterface/bringUpCommand(_:)``).
        case bringingUp(step: Int)
        /// Connections can be opened.
        case up
        /// The bring-up failed or the network was lost: starting over at `retryAt`.
        case waiting
        /// The module came back after a silence: `AT+RST`, then the bring-up after its banner
        /// (or at `retryAt` without one). Its old links would refuse `AT+CIPMUX`.
        case restarting
    }

    /// What the interface has in flight on the engine.
    enum Work: Equatable {
        case none
        case bringUp(step: Int)
        case probe
        case restart
        case restorePassive
        case connect(link: Int)
        case send(link: Int)
        case read(link: Int)
        case close(link: Int)
    }

    /// The engine, with what its dialect learned from the module.
    public internal(set) var engine: ModemEngine<Dialect>
    /// The settings the interface was made with.
    public let configuration: ModemInterfaceConfiguration
    /// What the module said its own address is (`0.0.0.0` until it said).
    public internal(set) var localAddress = IPAddress.anyV4
    /// Why the interface last went down or failed to come up (nil: it never did).
    public internal(set) var lastDownReason: SocketError?

    var phase = Phase.idle
    var work = Work.none
    var slots: [ModemLinkSlot]
    var receiveStorage: [UInt8]
    var sendStorage: [UInt8]
    var events: FixedQueue<InterfaceEvent>
    /// When a waiting bring-up step (a probe retry) or a whole new bring-up may start.
    var retryAt: MillisecondInstant?
    var probesFailed = 0
    /// A read or send went unanswered: an `AT` decides between silence and a restart.
    var needProbe = false
    /// The module pushed data although passive receive was asked: ask again.
    var needPassiveRestore = false
    /// The module went silent: restart it once it answers again.
    var restartPending = false
    var restartSent = false
    /// `down` was posted since the last `up` (not posted again for each failed retry).
    var downPosted = false
    /// Reads and sends take turns, and links take turns for each.
    var preferSend = false
    var serviceCursor = 0
    /// Where ``nextEvent()`` looks first for coalesced readable/writable news.
    var nextLink = 0

    /// An interface over a module that speaks `dialect`, idle until ``start(now:)``, with every
    /// buffer allocated from `configuration`.
    public init(dialect: Dialect, configuration: ModemInterfaceConfiguration = ModemInterfaceConfiguration()) {
        self.configuration = configuration
        engine = ModemEngine(dialect: dialect, configuration: configuration.engine)
        let links = Swift.max(1, Swift.min(configuration.links, engine.linkCount))
        let rxSize = Swift.max(1, configuration.receiveBufferSize)
        let txSize = Swift.max(1, configuration.sendBufferSize)
        receiveStorage = [UInt8](repeating: 0, count: links * rxSize)
        sendStorage = [UInt8](repeating: 0, count: links * txSize)
        var slots: [ModemLinkSlot] = []
        slots.reserveCapacity(links)
        for link in 0..<links { slots.append(ModemLinkSlot(link: link, receiveCapacity: rxSize, sendCapacity: txSize)) }
        self.slots = slots
        // Per link at most a connect result and a failure wait, plus up/down news.
        events = FixedQueue(capacity: 2 * links + 4)
    }

    /// The number of links the interface uses (connections open at once).
    public var linkCount: Int { slots.count }

    // MARK: Handles

    func handle(for link: Int) -> InterfaceConnection {
        InterfaceConnection(raw: slots[link].generation << 8 | UInt32(link))
    }

    /// The link of a handle the program still holds, or nil for a stale one.
    func link(of connection: InterfaceConnection) -> Int? {
        let link = Int(connection.raw & 0xFF)
        guard link < slots.count, slots[link].isHeld, slots[link].generation == connection.raw >> 8 else { return nil }
        return link
    }

    func heldLink(_ connection: InterfaceConnection) throws(SocketError) -> Int {
        guard let link = link(of: connection) else { throw SocketError(.closed, "the connection was closed") }
        return link
    }
}

extension ModemInterface: NetworkInterface {
    /// Starts the bring-up (see the type's description); ``InterfaceEvent/up`` follows.
    public mutating func start(now: MillisecondInstant) {
        beginBringUp()
        pump(now: now)
    }

    /// Feeds the module's output to the engine and acts on what it reports.
    public mutating func input(_ bytes: UnsafeRawBufferPointer, now: MillisecondInstant) {
        var cursor = 0
        while let event = engine.nextEvent(reading: bytes, cursor: &cursor, now: now) {
            handle(event, now: now)
        }
        pump(now: now)
    }

    /// The next command (and payload) for the module's UART.
    public mutating func output(into buffer: UnsafeMutableRawBufferPointer, now: MillisecondInstant) -> Int {
        pump(now: now)
        return engine.drainOutput(into: buffer)
    }

    /// Fires the engine's timeouts and the bring-up's retries; returns the next deadline: `now`
    /// when a command waits for ``output(into:now:)`` or an event waits for ``nextEvent()``.
    public mutating func poll(now: MillisecondInstant) -> MillisecondInstant? {
        while let event = engine.nextEvent(now: now) { handle(event, now: now) }
        if phase == .waiting || phase == .restarting, let at = retryAt, now >= at {
            beginBringUp()
        }
        pump(now: now)
        // Bytes for the line or events for the program: the loop must turn again before it idles.
        if engine.pendingOutputCount > 0 || hasEvents { return now }
        var next = engine.nextDeadline
        if let at = retryAt, next.map({ at < $0 }) ?? true { next = at }
        return next
    }

    /// The oldest event: up/down news and connect results first, then readable and writable.
    public mutating func nextEvent() -> InterfaceEvent? {
        if let event = events.pop() { return event }
        for i in 0..<slots.count {
            let link = (nextLink + i) % slots.count
            guard slots[link].isHeld else { continue }
            if slots[link].readablePending {
                slots[link].readablePending = false
                nextLink = (link + 1) % slots.count
                return .readable(handle(for: link))
            }
            if slots[link].writablePending {
                slots[link].writablePending = false
                nextLink = (link + 1) % slots.count
                return .writable(handle(for: link))
            }
        }
        return nil
    }

    /// Whether ``nextEvent()`` has something.
    var hasEvents: Bool {
        if !events.isEmpty { return true }
        for slot in slots where slot.isHeld && (slot.readablePending || slot.writablePending) { return true }
        return false
    }

    /// True from ``InterfaceEvent/up`` until the module restarts or loses its network.
    public var isUp: Bool { phase == .up }

    /// Opens a TCP link to an IPv4 `address`: `AT+CIPSTART` on a free link id.
    /// - Throws: `enetdown` before ``InterfaceEvent/up``; `eafnosupport` for IPv6; `badport` for
    ///   port 0; `system_limit` when every link is in use.
    public mutating func connect(to address: IPAddress, port: UInt16, settings: InterfaceSettings, now: MillisecondInstant)
        throws(SocketError) -> InterfaceConnection {
        guard phase == .up else { throw SocketError(.networkDown, "the modem is not up yet; wait for the up event") }
        guard case .v4 = address else { throw SocketError(.addressFamilyNotSupported, "the modem link takes IPv4 only") }
        guard port != 0 else { throw SocketError(.badPort, "port must be 1...65535") }
        var chosen: Int?
        for link in 0..<slots.count where slots[link].state == .free && engine.linkState(link) == .closed
            && !isBusy(link) {
            chosen = link
            break
        }
        guard let link = chosen else { throw SocketError(.systemLimit, "every modem link is in use") }
        var slot = slots[link]
        slot.clear()
        slot.generation = (slot.generation &+ 1) & 0x00FF_FFFF
        slot.state = .connecting
        slot.address = address
        slot.port = port
        if settings.receiveBufferSize > 0 { slot.receiveLimit = Swift.min(settings.receiveBufferSize, slot.rx.capacity) }
        if settings.sendBufferSize > 0 { slot.sendLimit = Swift.min(settings.sendBufferSize, slot.tx.capacity) }
        if let limit = settings.connectTimeout {
            slot.connectTimeout = UInt32(clamping: Swift.max(limit.value, 1))
        }
        slots[link] = slot
        pump(now: now)
        return handle(for: link)
    }

    /// Not supported: the module's server (`AT+CIPSERVER`) is not modelled. Throws `enotsup`.
    public mutating func listen(port: UInt16, backlog: Int, settings: InterfaceSettings) throws(SocketError) -> InterfaceListener {
        throw SocketError(.notSupported, "the modem interface cannot listen; connect out instead")
    }

    /// Not supported (there are no listeners). Throws `enotsup`.
    public mutating func accept(_ listener: InterfaceListener) throws(SocketError) -> InterfaceConnection? {
        throw SocketError(.notSupported, "the modem interface cannot listen; connect out instead")
    }

    /// Nothing to do: there are no listeners.
    public mutating func close(listener: InterfaceListener) {}

    /// Copies as much of `bytes` as the send ring takes; the module gets it in chunks.
    /// - Throws: the connection's failure; `closed` after the peer closed or the module
    ///   refused data; `enotconn` while still connecting; `closed` for a stale handle.
    public mutating func send(_ connection: InterfaceConnection, _ bytes: UnsafeRawBufferPointer, now: MillisecondInstant)
        throws(SocketError) -> Int {
        let link = try heldLink(connection)
        if let failure = slots[link].failure { throw failure }
        if let failure = slots[link].writeFailure { throw failure }
        if slots[link].peerClosed || slots[link].ended { throw SocketError(.closed, "the peer closed the connection") }
        guard slots[link].state == .open else { throw SocketError(.notConnected, "the connection is still opening") }
        let room = slots[link].sendRoom
        let n = Swift.min(room, bytes.count)
        var taken = 0
        if n > 0 {
            taken = slots[link].tx.append(UnsafeRawBufferPointer(rebasing: bytes[0..<n]), hide: false, into: &sendStorage)
        }
        if taken < bytes.count { slots[link].wantWritable = true }
        pump(now: now)
        return taken
    }

    /// Moves received bytes out; `.end` after the peer's close once every byte was read.
    /// - Throws: the connection's failure once its bytes are read; `closed` for a stale handle.
    public mutating func recv(_ connection: InterfaceConnection, into buffer: UnsafeMutableRawBufferPointer,
                              now: MillisecondInstant) throws(SocketError) -> InterfaceRead {
        let link = try heldLink(connection)
        if buffer.count > 0 && slots[link].rx.count > 0 {
            let n = slots[link].rx.take(into: buffer, from: receiveStorage)
            if slots[link].rx.count == 0 { slots[link].readablePending = slots[link].ended || slots[link].failure != nil }
            pump(now: now)
            return .data(n)
        }
        if slots[link].rx.count == 0 {
            if let failure = slots[link].failure { throw failure }
            if slots[link].ended { return .end }
        }
        return .wouldBlock
    }

    /// Bytes received and not yet read.
    public func readableCount(_ connection: InterfaceConnection) -> Int {
        guard let link = link(of: connection) else { return 0 }
        return slots[link].rx.count
    }

    /// Bytes taken by ``send(_:_:now:)`` that the module has not confirmed with `SEND OK`.
    public func unsentCount(_ connection: InterfaceConnection) -> Int {
        guard let link = link(of: connection) else { return 0 }
        return slots[link].tx.count
    }

    /// Not supported: an AT module cannot half-close a link. Throws `enotsup`.
    public mutating func shutdown(_ connection: InterfaceConnection, now: MillisecondInstant) throws(SocketError) {
        _ = try heldLink(connection)
        throw SocketError(.notSupported, "the modem cannot half-close a link")
    }

    /// Queued bytes still go to the module, then `AT+CIPCLOSE`; the handle is stale at once.
    public mutating func close(_ connection: InterfaceConnection, now: MillisecondInstant) {
        release(connection, graceful: true, now: now)
    }

    /// Drops queued bytes and closes the link (`AT+CIPCLOSE`: the module sends a FIN, not a RST).
    public mutating func abort(_ connection: InterfaceConnection, now: MillisecondInstant) {
        release(connection, graceful: false, now: now)
    }

    /// Accepted and ignored: the module applies its own Nagle and keepalive settings.
    /// - Throws: `closed` for a stale handle.
    public mutating func configure(_ connection: InterfaceConnection, noDelay: Bool, keepalive: Bool) throws(SocketError) {
        _ = try heldLink(connection)
    }

    /// The address and port given to ``connect(to:port:settings:now:)``.
    public func peer(_ connection: InterfaceConnection) -> (address: IPAddress, port: UInt16)? {
        guard let link = link(of: connection) else { return nil }
        return (slots[link].address, slots[link].port)
    }

    /// True once the module reported the link closed (ESP-AT: after every buffered byte was
    /// read; SIMCom, Quectel: bytes it still holds are read before the end).
    public func peerFinished(_ connection: InterfaceConnection) -> Bool {
        guard let link = link(of: connection) else { return false }
        return slots[link].peerClosed || slots[link].ended
    }

    /// The module's address and port 0 (the module does not say which port it chose).
    public func local(_ connection: InterfaceConnection) -> (address: IPAddress, port: UInt16)? {
        guard link(of: connection) != nil else { return nil }
        return (localAddress, 0)
    }
}
