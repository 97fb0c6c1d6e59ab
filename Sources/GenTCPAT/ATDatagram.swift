import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPModem

/// One gen_udp socket on a module: its link, its bounded queues and where its setup stands.
/// Every field is guarded by the core's lock.
final class ATDatagram: DatagramEndpoint, @unchecked Sendable {
    unowned let core: ATCore
    /// The module's link id, nil while none is reserved (a SIM800 socket before `connect`).
    var link: Int?
    /// Whether the module holds the link open (after `CONNECT` / `+QIOPEN: <id>,0`).
    var linkOpen = false
    /// The local port the module was told (ours to pick when the socket asked for 0).
    var localPort: Int
    let portWasChosen: Bool
    /// The connected peer (gen_udp `connect`): others' datagrams are dropped uncounted, and a
    /// send without a destination goes to it.
    var peer: SocketAddress?
    var rx: DatagramQueue
    /// Datagrams accepted by `send` and not yet confirmed by the module (`SEND OK`).
    var tx: [(bytes: [UInt8], to: ModemEndpoint?)] = []
    var txBytes = 0
    let txLimit: (bytes: Int, datagrams: Int)
    var sendInFlight = false
    /// Quectel `SEND FAIL`: the head datagram waits for a retry.
    var sendHeld = false
    var sendRetries = 0
    var delegate: (any DatagramDelegate)?
    var wantRead = false
    var wantWrite = false
    var userClosed = false
    /// Dead for good: every call answers this.
    var failure: SocketError.Reason?
    /// Module commands still to run for an open, connect or disconnect, in order, and who waits.
    var steps: [ModemCommand] = []
    /// Called (under the lock) when the steps ran or one failed.
    var stepDone: ((Result<Void, SocketError>) -> Void)?
    /// A step was sent to the module: a restart now breaks the setup (before that it waits).
    var stepsStarted = false
    /// Local ports tried so far for this open (a taken port is retried with another).
    var portAttempts = 0
    /// Pull dialects: the module said it holds datagrams for the link.
    var moduleHasData = false
    var readInFlight = false
    /// SIMCom: the bytes the module holds after the datagram being read (`<left>`).
    var leftAfterRead: Int?
    var pendingTotal: Int?
    /// A data notice came while a read was in flight.
    var noticeDuringRead = false
    var readDelivered = false
    /// The datagram being assembled from `+IPD` / read pieces.
    var assembly: [UInt8] = []
    var assemblyLength = 0
    var assemblyRemote: ModemEndpoint?
    var assembling = false
    /// Datagrams the module framed but whose sender did not parse (dropped).
    var malformed: UInt64 = 0

    init(core: ATCore, localPort: Int, portWasChosen: Bool, options: DatagramOptions, maxReceive: Int) {
        self.core = core
        self.localPort = localPort
        self.portWasChosen = portWasChosen
        let limit = options.queueLimit
        rx = DatagramQueue(byteCapacity: min(limit.bytes, maxReceive), datagramCapacity: limit.datagrams)
        txLimit = (bytes: max(ATDatagram.largest, options.sndbuf ?? 8 * 1024), datagrams: 8)
        assembly.reserveCapacity(ATDatagram.largestReceive)
    }

    /// The largest datagram sent: 1460 bytes on every dialect (ESP-U8, SIM-U3, BG-U2).
    static let largest = 1460
    /// The largest datagram a read or `+IPD` may carry (BG96 reads up to 1500).
    static let largestReceive = 1500

    // MARK: DatagramEndpoint (the port's lock held; each takes the core's)

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> DatagramReceiveResult {
        core.locked { core in core.receiveDatagram(self, into: buffer) }
    }

    func send(_ chunks: [UnsafeRawBufferPointer], to destination: SocketAddress?) -> DatagramSendResult {
        core.locked { core in core.sendDatagram(self, chunks, to: destination) }
    }

    func sendPermit() -> Int {
        core.locked { _ in
            if failure != nil || userClosed { return 1 }  // the send will say why
            // Datagrams of the largest size that fit: any smaller one fits too.
            return max(0, min(txLimit.datagrams - tx.count, (txLimit.bytes - txBytes) / ATDatagram.largest))
        }
    }

    /// Whether a datagram of any allowed size would be accepted now (the writable condition:
    /// it must match what `send` takes, or a writer is woken to be refused again).
    var txHasRoom: Bool {
        tx.count < txLimit.datagrams && txBytes + ATDatagram.largest <= txLimit.bytes
    }

    func armReceive() { core.locked { core in core.armDatagram(self, read: true) } }

    func armSend() { core.locked { core in core.armDatagram(self, read: false) } }

    func connect(to peer: SocketAddress?) async throws(SocketError) {
        try await core.connectDatagram(self, to: peer)
    }

    func apply(_ option: Option) -> SocketError.Reason? {
        core.locked { _ in
            switch option {
            case .addMembership, .dropMembership, .multicastInterface:
                return .notSupported  // the modules' AT commands have no multicast membership
            case .recbuf(let bytes):
                // The queue is reshaped empty only when nothing waits in it (never loses data).
                if rx.isEmpty {
                    let datagrams = max(16, bytes / 256)
                    rx.reshape(byteCapacity: min(bytes, core.configuration.maxReceiveBuffer), datagramCapacity: datagrams)
                }
                return nil
            default:
                return nil
            }
        }
    }

    func close() { core.locked { core in core.closeDatagram(self) } }

    func localAddress() -> SocketAddress? {
        core.locked { core in SocketAddress(core.localIP ?? .anyV4, port: localPort) }
    }

    var droppedDatagramCount: UInt64 { core.locked { _ in rx.dropped &+ malformed } }

    var maximumDatagramSize: Int { ATDatagram.largest }

    // MARK: Work the core asks about

    var wantsModuleSend: Bool {
        linkOpen && !sendInFlight && !sendHeld && !tx.isEmpty && failure == nil && steps.isEmpty
    }

    var wantsModuleRead: Bool {
        linkOpen && moduleHasData && !readInFlight && !userClosed && failure == nil && steps.isEmpty
            && rx.fits(ATDatagram.largestReceive)
    }
}
