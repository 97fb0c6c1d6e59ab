import GenTCPCore
import GenTCPWire

/// The interface: static point-to-point addressing, limits, and the seed for every random choice.
public struct StackConfiguration: Sendable {
    /// Our address (the host end of the serial line).
    public var localAddress: IPv4Address
    /// The board's address. Used as the default remote; packets from other sources are still
    /// accepted (the board may route).
    public var peerAddress: IPv4Address
    /// The largest IPv4 datagram either way: 1006 for SLIP (RFC 1055). Our MSS is MTU − 40.
    public var mtu: Int
    /// Connection slots (listening sockets' pending connections included).
    public var maximumConnections: Int
    /// Half-open connections (SYN-RECEIVED, made by listeners for peers that have not completed
    /// the handshake) held at once, over every listener; at least 1 is used. A SYN that finds
    /// this many, or its listener's backlog or the slot table full of them, evicts the oldest
    /// one silently (counted in ``StackCounters/halfOpenEvicted``), so a flood of SYNs from a
    /// silent source never locks a legitimate peer out: each new SYN still gets its SYN-ACK.
    /// By default a quarter of ``maximumConnections`` (at least 1).
    public var maximumHalfOpenConnections: Int
    /// Listening sockets.
    public var maximumListeners: Int
    /// Ready-made packets waiting to go out (echo replies, resets to stray segments, our echo
    /// requests). Each slot holds one MTU.
    public var controlQueueCapacity: Int
    /// Events held until the driver takes them.
    public var eventQueueCapacity: Int
    /// Seeds ephemeral ports, the IP ID and the secret key of the initial sequence numbers
    /// (RFC 6528: ISN = a 4 µs clock + SipHash-2-4 of the addresses and ports under the secret).
    ///
    /// A board must give a seed that differs on every boot, and that an attacker cannot guess:
    /// from a hardware RNG if it has one, else mixed from what varies (a unique chip ID with ADC
    /// noise, an uninitialised RAM word, a counter kept in flash, the cycle count at the first
    /// received byte). The boot-time clock alone is nearly constant (about 0 ms at init), so a
    /// board seeded with it picks the same ISNs and ports on every boot. More entropy that comes
    /// later can be folded in with ``Stack/reseed(_:)``. Host drivers use a random seed; a test
    /// gives a fixed one to replay a run.
    public var seed: UInt64
    /// TTL of every datagram we send.
    public var timeToLive: UInt8
    /// The link to ``peerAddress`` is dedicated to us (a serial cable): nothing else queues on
    /// it, so on a connection whose far end is the peer itself a lost segment means line
    /// damage, not congestion. Such connections repair losses without the congestion window's
    /// reductions (RFC 5681 §3.1–3.2, RFC 6675 §5): cutting the window on a noisy cable only
    /// leaves too little in flight to detect the next loss by ACKs, and every loss then waits
    /// for a timeout. The receiver's window still bounds what is in flight. Connections to any
    /// other address (the peer routes for them) keep standard congestion control. Off by default.
    public var dedicatedLink: Bool
    /// UDP socket slots. Each socket's receive queue is allocated when it opens, at the size
    /// its opener asks for.
    public var maximumDatagramSockets: Int
    /// UDP datagrams waiting to go out, one MTU per slot: a send that finds them all taken is
    /// ``TCPError/wouldBlock`` until one leaves (``StackEvent/datagramSendRoom``).
    public var datagramSendQueueCapacity: Int
    /// Static storage for TCP: when set, ``Stack/init(configuration:)`` allocates every
    /// connection slot's buffers at once, sized by these options (send ring
    /// ``ConnectionOptions/sendBufferSize``, receive ring ``ConnectionOptions/receiveBufferSize``,
    /// the send scoreboard that follows from the send buffer, ``ConnectionOptions/outOfOrderRuns``
    /// out-of-order runs), and each slot keeps them across close and reopen. After `init` the
    /// TCP side then never allocates or frees: a firmware can run the stack on a bump allocator
    /// (no `free`) and knows its heap use up front.
    ///
    /// Connections may ask for smaller buffers (they use part of the slot's storage); `connect`
    /// and `listen` with a larger ``ConnectionOptions/sendBufferSize``,
    /// ``ConnectionOptions/receiveBufferSize`` or ``ConnectionOptions/outOfOrderRuns`` than
    /// these throw ``TCPError/invalidArgument`` rather than allocate, so a firmware's memory
    /// stays what it planned. Only the sizes are read; every other option comes from the
    /// connection's own options. UDP sockets still allocate their receive queue when they open.
    /// Nil (the default): each connection allocates its buffers when it opens and frees them
    /// when its slot is freed.
    public var preallocate: ConnectionOptions?

    /// A configuration with the given addresses and seed; the other settings have the defaults
    /// shown and are described at the property of the same name.
    public init(
        localAddress: IPv4Address, peerAddress: IPv4Address, mtu: Int = 1006, maximumConnections: Int = 8,
        maximumListeners: Int = 4, controlQueueCapacity: Int = 4, eventQueueCapacity: Int = 64,
        seed: UInt64, timeToLive: UInt8 = 64, dedicatedLink: Bool = false, maximumHalfOpenConnections: Int? = nil,
        maximumDatagramSockets: Int = 4, datagramSendQueueCapacity: Int = 4, preallocate: ConnectionOptions? = nil
    ) {
        self.preallocate = preallocate
        self.maximumDatagramSockets = maximumDatagramSockets
        self.datagramSendQueueCapacity = datagramSendQueueCapacity
        self.dedicatedLink = dedicatedLink
        self.maximumHalfOpenConnections = maximumHalfOpenConnections ?? max(1, maximumConnections / 4)
        self.localAddress = localAddress
        self.peerAddress = peerAddress
        self.mtu = mtu
        self.maximumConnections = maximumConnections
        self.maximumListeners = maximumListeners
        self.controlQueueCapacity = controlQueueCapacity
        self.eventQueueCapacity = eventQueueCapacity
        self.seed = seed
        self.timeToLive = timeToLive
    }
}

/// Per-connection settings, fixed when the connection opens. Times are `Milliseconds` (an
/// integer literal is milliseconds).
public struct ConnectionOptions: Sendable, Equatable {
    /// Send buffer: bytes accepted from the application and kept until acknowledged.
    public var sendBufferSize: Int
    /// Receive buffer (gen_tcp's `buffer`): the advertised window is its free space, so an
    /// application that stops reading closes the window (backpressure).
    public var receiveBufferSize: Int
    /// Out-of-order runs held inside the receive buffer (RFC 9293 §3.10.7.4 "segments with
    /// higher beginning sequence numbers may be held").
    public var outOfOrderRuns: Int
    /// Disable Nagle's algorithm (gen_tcp `{nodelay, true}`; RFC 9293 §3.7.4).
    public var noDelay: Bool
    /// Longest an ACK for in-order data waits (RFC 9293 §3.8.6.3 allows up to 500 ms). 0 sends
    /// every ACK at once. A second full segment is always acknowledged at once.
    public var ackDelay: Milliseconds
    /// The retransmission timeout before any round trip was measured (RFC 6298 §2.1).
    public var initialRTO: Milliseconds
    /// The lowest RTO the estimator may give (RFC 6298 §2.4 suggests 1 s; a serial line wants
    /// less, see `SLIPConfiguration.defaultTCP`).
    public var minimumRTO: Milliseconds
    /// The highest RTO, back-off included (RFC 6298 §2.5).
    public var maximumRTO: Milliseconds
    /// Retransmissions of one segment before giving up with `etimedout`.
    public var maximumRetransmissions: Int
    /// Time without progress while retransmitting before giving up (RFC 9293 §3.8.3, R2).
    public var userTimeout: Milliseconds
    /// SYN retransmissions before a connect fails with `etimedout`.
    public var synRetries: Int
    /// Time a connect may take.
    public var connectTimeout: Milliseconds
    /// TIME-WAIT duration (2·MSL; short on a point-to-point cable).
    public var timeWait: Milliseconds
    /// Send keepalive probes (gen_tcp `{keepalive, true}`; RFC 9293 §3.8.4).
    public var keepalive: Bool
    /// Idle time before the first keepalive probe.
    public var keepaliveIdle: Milliseconds
    /// Time between unanswered keepalive probes.
    public var keepaliveInterval: Milliseconds
    /// Unanswered probes before the connection fails with `etimedout`.
    public var keepaliveCount: Int
    /// Offer SACK (RFC 2018) in our SYN. When both ends offer it, out-of-order data is reported
    /// in SACK blocks and the sender repairs only the holes (RFC 6675, RFC 8985).
    public var selectiveAcknowledgments: Bool

    /// Options with every field as named; see each property for its meaning (times in ms).
    public init(
        sendBufferSize: Int = 8192, receiveBufferSize: Int = 8192, outOfOrderRuns: Int = 4,
        noDelay: Bool = false, ackDelay: Milliseconds = 20, initialRTO: Milliseconds = 1000, minimumRTO: Milliseconds = 200,
        maximumRTO: Milliseconds = 60_000, maximumRetransmissions: Int = 12, userTimeout: Milliseconds = 120_000,
        synRetries: Int = 6, connectTimeout: Milliseconds = 30_000, timeWait: Milliseconds = 4000, keepalive: Bool = false,
        keepaliveIdle: Milliseconds = 60_000, keepaliveInterval: Milliseconds = 10_000, keepaliveCount: Int = 5,
        selectiveAcknowledgments: Bool = true
    ) {
        self.sendBufferSize = sendBufferSize
        self.receiveBufferSize = receiveBufferSize
        self.outOfOrderRuns = outOfOrderRuns
        self.noDelay = noDelay
        self.ackDelay = ackDelay
        self.initialRTO = initialRTO
        self.minimumRTO = minimumRTO
        self.maximumRTO = maximumRTO
        self.maximumRetransmissions = maximumRetransmissions
        self.userTimeout = userTimeout
        self.synRetries = synRetries
        self.connectTimeout = connectTimeout
        self.timeWait = timeWait
        self.keepalive = keepalive
        self.keepaliveIdle = keepaliveIdle
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveCount = keepaliveCount
        self.selectiveAcknowledgments = selectiveAcknowledgments
    }
}

/// Tuning for a connection over a serial line (SLIP or PPP framing): the retransmission floor
/// follows the line rate, and the buffers hold enough segments to keep the line busy.
extension ConnectionOptions {
    /// Options for a connection over a serial line of `baud` bits per second carrying
    /// datagrams of up to `mtu` bytes: what a firmware's SLIP interface, or the host's slip
    /// driver, should use.
    ///
    /// - The RTO floor is four frame times (``serialLineMinimumRTO(baud:mtu:)``: 348 ms at
    ///   115200 baud and MTU 1006, 40 ms at 921600). A full frame takes `(mtu + 2) × 10 / baud`
    ///   seconds on the line (8N1, SLIP's two END bytes), and an ACK queues behind a frame in
    ///   each direction: a lower floor makes the timer fire with no loss at all (measured on a
    ///   Cortex-M4 firmware: 24 needless retransmissions in 1 MiB with a 100 ms floor, none with
    ///   the line's floor). The initial and highest RTO are raised to at least the floor.
    /// - Send and receive buffers hold four full segments (``serialLineBufferSize(mtu:)``:
    ///   4 × (MTU − 40), 3,864 bytes at MTU 1006). A window under three segments leaves the line
    ///   idle while each segment is turned around and costs about half the goodput (measured
    ///   under QEMU on a Cortex-M4 echo firmware: 1,460-byte buffers 8.9 kB/s, 4,096-byte buffers
    ///   22.4 kB/s).
    /// - ACKs are delayed 10 ms at most, and the RTO ceiling is 30 s; every other option keeps
    ///   its default.
    ///
    /// To raise an existing set of options to a line's needs without lowering anything, use
    /// ``tunedForSerialLine(baud:mtu:)``.
    public static func serialLine(baud: Int, mtu: Int) -> ConnectionOptions {
        let buffers = serialLineBufferSize(mtu: mtu)
        return ConnectionOptions(
            sendBufferSize: buffers, receiveBufferSize: buffers, ackDelay: 10, minimumRTO: 20, maximumRTO: 30_000
        ).tunedForSerialLine(baud: baud, mtu: mtu)
    }

    /// These options with the RTO floor, initial and highest RTO raised to at least
    /// ``serialLineMinimumRTO(baud:mtu:)`` and the send and receive buffers to at least
    /// ``serialLineBufferSize(mtu:)``; anything already larger is kept (see
    /// ``serialLine(baud:mtu:)`` for the reasons).
    public func tunedForSerialLine(baud: Int, mtu: Int) -> ConnectionOptions {
        var tuned = self
        let floor = ConnectionOptions.serialLineMinimumRTO(baud: baud, mtu: mtu)
        tuned.minimumRTO = Milliseconds(max(tuned.minimumRTO.value, floor.value))
        tuned.maximumRTO = Milliseconds(max(tuned.maximumRTO.value, tuned.minimumRTO.value))
        tuned.initialRTO = Milliseconds(max(tuned.initialRTO.value, tuned.minimumRTO.value))
        let buffers = ConnectionOptions.serialLineBufferSize(mtu: mtu)
        tuned.sendBufferSize = max(tuned.sendBufferSize, buffers)
        tuned.receiveBufferSize = max(tuned.receiveBufferSize, buffers)
        return tuned
    }

    /// Four frame times of a full `mtu`-byte SLIP frame at `baud` (10 bits a byte, two END
    /// bytes), in whole milliseconds: the lowest RTO a serial line should use.
    public static func serialLineMinimumRTO(baud: Int, mtu: Int) -> Milliseconds {
        let frame = Int64(max(mtu, 0) + 2) * 10 * 1000 / Int64(max(baud, 1))
        return Milliseconds(4 * frame)
    }

    /// Four full segments of MSS `mtu` − 40 (at least 1 byte each): the smallest buffers that
    /// keep a serial line busy.
    public static func serialLineBufferSize(mtu: Int) -> Int {
        4 * max(mtu - 40, 1)
    }
}

/// Packets the interface dropped or answered, by reason (each drop counted once).
public struct StackCounters: Sendable, Equatable {
    /// Datagrams given to ``Stack/receive(_:now:)``, dropped ones included.
    public var packetsReceived = 0
    /// Datagrams written by ``Stack/transmit(into:now:)``.
    public var packetsSent = 0
    /// Not a well-formed IPv4 datagram or TCP/ICMP header (truncated, bad version, bad lengths,
    /// malformed TCP option).
    public var malformed = 0
    /// An IPv4 header, TCP or ICMP checksum that does not verify.
    public var badChecksum = 0
    /// Addressed to someone else.
    public var notForUs = 0
    /// Fragments (no reassembly).
    public var fragments = 0
    /// Neither TCP nor ICMP.
    public var unknownProtocol = 0
    /// Longer than the MTU.
    public var tooBig = 0
    /// RSTs sent to segments for no connection (RFC 9293 §3.10.7.1) or refused ACKs.
    public var resetsSent = 0
    /// SYNs to a listener whose backlog or the slot table was full of connections that
    /// completed their handshake (none half-open left to evict).
    public var synsDropped = 0
    /// Half-open connections (SYN-RECEIVED) dropped, oldest first, to make room for a new SYN:
    /// see ``StackConfiguration/maximumHalfOpenConnections``.
    public var halfOpenEvicted = 0
    /// ICMP echo requests (pings to us) answered.
    public var echoRequestsAnswered = 0
    /// ICMP echo replies received (answers to our pings).
    public var echoRepliesReceived = 0
    /// Ready-made packets dropped because the control queue was full.
    public var controlQueueOverflows = 0
    /// Events lost because the event queue was full (readiness queries still tell the truth).
    public var eventsDropped = 0
    /// Segments sent again after a retransmission timeout.
    public var timeoutRetransmissions = 0
    /// Fast retransmissions (RFC 5681 §3.2, RFC 6582).
    public var fastRetransmissions = 0
    /// Out-of-order segments dropped because the run table was full.
    public var outOfOrderDropped = 0
    /// UDP datagrams queued for sending.
    public var datagramsSent = 0
    /// UDP datagrams received with a valid checksum (for a socket or not).
    public var datagramsReceived = 0
    /// UDP datagrams dropped because every socket on their port is connected to someone else.
    public var datagramsFiltered = 0
    /// UDP datagrams for a port nobody has (answered with ICMP port unreachable unless broadcast).
    public var datagramsUnreachable = 0
    /// ICMP port unreachable messages sent.
    public var portUnreachableSent = 0
    /// ICMP port unreachable messages received about our UDP datagrams.
    public var portUnreachableReceived = 0
    /// ICMP errors not sent: the datagram's source names no single host, or the rate limit
    /// (a burst of 10, then one per 100 ms) was reached.
    public var icmpErrorsSuppressed = 0

    /// Every counter at zero.
    public init() {}
}
