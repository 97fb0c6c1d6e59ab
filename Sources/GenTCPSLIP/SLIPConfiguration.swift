import GenTCPSerial
import GenTCPCore
import GenTCPStack
import GenTCPWire

/// How a ``SLIPDriver`` sets up its end of the line: the two addresses, the MTU, the board's name,
/// the stack's limits and TCP tuning, and an optional capture file.
///
/// ```swift
/// var config = SLIPConfiguration(local: IPAddress(192, 168, 190, 1), peer: IPAddress(192, 168, 190, 2))
/// config.peerName = "board"            // `Socket.connect("board", ...)` reaches the peer
/// config.capturePath = "/tmp/line.pcap" // both directions, LINKTYPE_RAW
/// ```
public struct SLIPConfiguration: Sendable {
    /// Our (the host's) IPv4 address on the line.
    public var localAddress: IPAddress
    /// The board's IPv4 address.
    public var peerAddress: IPAddress
    /// The largest IP datagram either way, framing excluded (RFC 1055 advises 1006). The SLIP
    /// decoder's frame buffer has exactly this size; our MSS is MTU − 40.
    public var mtu: Int
    /// A host name that resolves to ``peerAddress`` (compared without case); every other name is
    /// `nxdomain`. Address literals always resolve to themselves.
    public var peerName: String?
    /// TCP connection slots (accepted, pending and closing connections included).
    public var maximumConnections: Int
    /// Listening sockets.
    public var maximumListeners: Int
    /// Connections still in their handshake (SYN received) that may hold slots at once; nil for
    /// the stack's default, a quarter of ``maximumConnections`` (at least 1). A SYN beyond it
    /// evicts the oldest, so a SYN flood never locks out a real peer
    /// (`StackConfiguration.maximumHalfOpenConnections`).
    public var maximumHalfOpenConnections: Int?
    /// Seeds initial sequence numbers, ephemeral ports and IP IDs. Random by default (from the
    /// system's generator), so ISNs are not predictable on a real line; simulations pass a fixed
    /// seed so that a run replays exactly.
    public var seed: UInt64
    /// TCP tuning every connection starts from: send buffer, the receive buffer's floor, RTO
    /// bounds, delayed ACK, timeouts. A socket's `buffer` option raises the receive buffer (the
    /// advertised window) above `ConnectionOptions.receiveBufferSize` when it is larger;
    /// `nodelay` and `keepalive` come from the socket's options.
    public var tcp: ConnectionOptions
    /// When set, every datagram sent or received on the line is appended to this file as pcap
    /// (LINKTYPE_RAW, timestamps from the driver's runtime clock).
    public var capturePath: String?
    /// The serial line is ours alone: a connection to the board itself treats a loss as line
    /// damage and keeps its congestion window (`StackConfiguration.dedicatedLink` in GenTCPStack).
    /// Connections the board routes elsewhere keep standard congestion control. True by default.
    public var dedicatedLink = true
    /// UDP sockets (`StackConfiguration.maximumDatagramSockets`). 8 by default.
    public var maximumDatagramSockets = 8
    /// UDP datagrams waiting for the line, one MTU each; a send that finds them all taken waits
    /// (`StackConfiguration.datagramSendQueueCapacity`). 8 by default.
    public var datagramSendQueueCapacity = 8

    /// A configuration for one line; ``SLIPDriver/init(link:configuration:runtime:)`` checks it.
    ///
    /// - Parameters:
    ///   - local: our address (IPv4).
    ///   - peer: the board's address (IPv4).
    ///   - mtu: 68...65535; 1006 by default.
    ///   - peerName: the name that resolves to `peer` (`"board"` by default; nil for none).
    ///   - maximumConnections: TCP connection slots (8 by default).
    ///   - maximumListeners: listening sockets (4 by default).
    ///   - seed: seeds ISNs, ephemeral ports and IP IDs (random by default).
    ///   - tcp: the TCP tuning every connection starts from (``defaultTCP`` by default).
    ///   - capturePath: a pcap file to write the line's datagrams to (none by default).
    public init(
        local: IPAddress, peer: IPAddress, mtu: Int = SLIP.recommendedMaximumFrameSize, peerName: String? = "board",
        maximumConnections: Int = 8, maximumListeners: Int = 4, seed: UInt64 = UInt64.random(in: 1...UInt64.max),
        tcp: ConnectionOptions = SLIPConfiguration.defaultTCP, capturePath: String? = nil
    ) {
        localAddress = local
        peerAddress = peer
        self.mtu = mtu
        self.peerName = peerName
        self.maximumConnections = maximumConnections
        self.maximumListeners = maximumListeners
        self.seed = seed
        self.tcp = tcp
        self.capturePath = capturePath
    }

    /// 16 KiB send and receive buffers (enough to keep a 3 Mbaud line busy), 4 out-of-order runs,
    /// 10 ms delayed ACK, RTO 1 s initial, 30 s ceiling, 20 ms floor (the driver raises the floor
    /// to four frame times of the line, 348 ms at 115200 baud and 40 ms at 921600, and the buffers
    /// to at least four segments: `ConnectionOptions.tunedForSerialLine(baud:mtu:)`). A point-to-point
    /// line has no congestion and a steady round trip, so a loss is best repaired quickly.
    public static let defaultTCP = ConnectionOptions(
        sendBufferSize: 16384, receiveBufferSize: 16384, ackDelay: 10, minimumRTO: 20, maximumRTO: 30_000)

    var local4: IPv4Address? { SLIPConfiguration.v4(localAddress) }
    var peer4: IPv4Address? { SLIPConfiguration.v4(peerAddress) }

    static func v4(_ address: IPAddress) -> IPv4Address? {
        if case .v4(let raw) = address { return IPv4Address(rawValue: raw) }
        return nil
    }
}

extension TCPError {
    /// The port layer's reason for this stack error.
    var reason: SocketError.Reason {
        switch self {
        case .closed: .closed
        case .connectionRefused: .connectionRefused
        case .connectionReset: .connectionReset
        case .timedOut: .connectionTimedOut
        case .addressInUse: .addressInUse
        case .noFreeSlot: .tooManyOpenFiles
        case .invalidArgument: .invalidArgument
        case .notConnected: .notConnected
        case .messageTooLong: .messageTooLong
        case .wouldBlock: .wouldBlock
        case .permissionDenied: .permissionDenied
        }
    }
}
