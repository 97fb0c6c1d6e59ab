import GenTCPCore
import GenTCPWire

/// A UDP socket slot of a ``Stack``: a port, an optional peer, a bounded receive queue.
struct DatagramSocket {
    var inUse = false
    var generation: UInt16 = 0
    var port: UInt16 = 0
    var reuse = false
    var broadcast = false
    /// The connected peer: datagrams from anyone else are dropped, and sends without a
    /// destination go here.
    var peerAddress: IPv4Address?
    var peerPort: UInt16 = 0
    /// An ICMP port unreachable from the peer, reported once by the next receive or send.
    var refused = false
    var queue = DatagramQueue(byteCapacity: 0, datagramCapacity: 1)
    /// Datagrams dropped by the connect filter (not reported to the user, counted for tests).
    var filtered = 0
}

/// A UDP socket slot of a ``Stack`` (index and generation, as ``ConnectionHandle``).
public struct DatagramHandle: Hashable, Sendable {
    /// The slot's index in the stack's datagram table.
    public let index: UInt16
    /// The slot's generation when this handle was handed out.
    public let generation: UInt16

    /// A handle for slot `index` at `generation` (the stack makes them; tests may too).
    public init(index: UInt16, generation: UInt16) {
        self.index = index
        self.generation = generation
    }
}

/// What ``Stack/receiveDatagram(_:into:)`` found.
public enum DatagramReceipt: Hashable, Sendable {
    /// A datagram: `copied` bytes of it are in the buffer, `length` is its full size, from
    /// `source`:`port`.
    case datagram(copied: Int, length: Int, source: IPv4Address, port: UInt16)
    /// Nothing is queued.
    case wouldBlock
    /// The connected peer answered ICMP port unreachable (reported once): `econnrefused`.
    case refused
}

/// UDP (RFC 768): open, connect, send, receive, close; ICMP port unreachable both ways
/// (RFC 792, RFC 1122 §3.2.2.1 and §4.1.3.3).
extension Stack {
    /// The largest UDP payload one datagram can carry on this interface: MTU − 28. There is no
    /// fragmentation: a larger send is ``TCPError/messageTooLong``.
    public var maximumDatagramPayload: Int { configuration.mtu - IPv4Header.length - UDPPacket.headerLength }

    /// Opens a UDP socket on `port` (0: an ephemeral port, 49152...65535) with a receive queue of
    /// `queueBytes` payload bytes and `queueDatagrams` datagrams, allocated now.
    ///
    /// - Parameters:
    ///   - port: the local port; 0 for an ephemeral one.
    ///   - queueBytes: payload bytes the receive queue holds (0: only empty datagrams).
    ///   - queueDatagrams: datagrams the receive queue holds (at least 1).
    ///   - reuse: share the port with other sockets that set it too (SO_REUSEADDR); a datagram
    ///     then goes to the first of them that takes it (the one connected to its sender first,
    ///     then the unconnected ones, oldest first).
    /// - Throws: ``TCPError/addressInUse``, ``TCPError/noFreeSlot``, ``TCPError/invalidArgument``
    ///   (negative sizes).
    public mutating func openDatagram(
        port: UInt16, queueBytes: Int, queueDatagrams: Int, reuse: Bool = false
    ) throws(TCPError) -> DatagramHandle {
        guard queueBytes >= 0, queueDatagrams >= 1 else { throw .invalidArgument }
        var chosen = port
        if chosen == 0 {
            var found = false
            for _ in 0..<64 {
                let candidate = UInt16(49152 + Int(random.next() % 16384))
                if !datagrams.contains(where: { $0.inUse && $0.port == candidate }) {
                    chosen = candidate
                    found = true
                    break
                }
            }
            guard found else { throw .addressInUse }
        } else if datagrams.contains(where: { $0.inUse && $0.port == port && !($0.reuse && reuse) }) {
            throw .addressInUse
        }
        guard let index = datagrams.firstIndex(where: { !$0.inUse }) else { throw .noFreeSlot }
        let generation = datagrams[index].generation
        datagrams[index] = DatagramSocket()
        datagrams[index].inUse = true
        datagrams[index].generation = generation
        datagrams[index].port = chosen
        datagrams[index].reuse = reuse
        datagrams[index].queue = DatagramQueue(byteCapacity: queueBytes, datagramCapacity: queueDatagrams)
        return DatagramHandle(index: UInt16(index), generation: generation)
    }

    /// Closes a UDP socket: its queue is dropped, its port is free, its handle goes stale.
    public mutating func closeDatagram(_ handle: DatagramHandle) {
        guard let index = try? datagramSlot(handle) else { return }
        datagrams[index].inUse = false
        datagrams[index].generation &+= 1
        datagrams[index].queue = DatagramQueue(byteCapacity: 0, datagramCapacity: 1)
    }

    /// Sets (or with nil clears) the socket's peer. Nothing is sent.
    /// - Throws: ``TCPError/closed``; ``TCPError/invalidArgument`` for port 0.
    public mutating func connectDatagram(_ handle: DatagramHandle, to peer: (address: IPv4Address, port: UInt16)?) throws(TCPError) {
        let index = try datagramSlot(handle)
        if let peer {
            guard peer.port != 0 else { throw .invalidArgument }
            datagrams[index].peerAddress = peer.address
            datagrams[index].peerPort = peer.port
        } else {
            datagrams[index].peerAddress = nil
            datagrams[index].peerPort = 0
        }
        datagrams[index].refused = false
    }

    /// Allows or refuses sends to the limited broadcast address 255.255.255.255 (SO_BROADCAST).
    public mutating func setDatagramBroadcast(_ handle: DatagramHandle, _ on: Bool) throws(TCPError) {
        datagrams[try datagramSlot(handle)].broadcast = on
    }

    /// The socket's local port.
    public func datagramPort(_ handle: DatagramHandle) throws(TCPError) -> UInt16 {
        datagrams[try datagramSlot(handle)].port
    }

    /// Datagrams the socket's full queue dropped so far.
    public func droppedDatagrams(_ handle: DatagramHandle) throws(TCPError) -> UInt64 {
        datagrams[try datagramSlot(handle)].queue.dropped
    }

    /// How many datagrams ``sendDatagram(_:chunks:to:)`` would take now (free slots of the
    /// send queue).
    public var datagramSendRoom: Int { datagramOutput.freeSlots }

    /// Queues one UDP datagram made of `chunks` to `destination` (nil: the connected peer). It
    /// goes out on a following ``transmit(into:now:)``.
    ///
    /// - Throws: ``TCPError/messageTooLong`` above ``maximumDatagramPayload``;
    ///   ``TCPError/wouldBlock`` when the send queue is full (``StackEvent/datagramSendRoom``
    ///   follows when a slot frees); ``TCPError/connectionRefused`` once after the connected
    ///   peer answered ICMP port unreachable; ``TCPError/notConnected`` without a destination on
    ///   an unconnected socket; ``TCPError/permissionDenied`` for 255.255.255.255 without
    ///   broadcast; ``TCPError/invalidArgument`` for port 0; ``TCPError/closed``.
    public mutating func sendDatagram(
        _ handle: DatagramHandle, chunks: [UnsafeRawBufferPointer], to destination: (address: IPv4Address, port: UInt16)?
    ) throws(TCPError) {
        let index = try datagramSlot(handle)
        var length = 0
        for c in chunks { length += c.count }
        guard length <= maximumDatagramPayload else { throw .messageTooLong }
        if datagrams[index].refused {
            datagrams[index].refused = false
            throw .connectionRefused
        }
        let target: (address: IPv4Address, port: UInt16)
        if let destination {
            target = destination
        } else if let peer = datagrams[index].peerAddress {
            target = (peer, datagrams[index].peerPort)
        } else {
            throw .notConnected
        }
        guard target.port != 0 else { throw .invalidArgument }
        if target.address == IPv4Address(rawValue: 0xFFFF_FFFF) && !datagrams[index].broadcast { throw .permissionDenied }
        guard datagramOutput.freeSlots > 0 else {
            datagramSendBlocked = true
            throw .wouldBlock
        }
        let source = datagrams[index].port
        var queue = datagramOutput
        datagramOutput = ControlQueue(slots: 0, slotSize: 0)
        _ = queue.push { buffer in
            let udp = UnsafeMutableRawBufferPointer(rebasing: buffer[IPv4Header.length...])
            var offset = UDPPacket.headerLength
            for c in chunks where !c.isEmpty {
                udp.baseAddress!.advanced(by: offset).copyMemory(from: c.baseAddress!, byteCount: c.count)
                offset += c.count
            }
            guard let total = try? UDPHeader(sourcePort: source, destinationPort: target.port)
                .emit(into: udp, payloadLength: length, source: self.local, destination: target.address)
            else { return 0 }
            self.writeIPHeader(into: buffer, destination: target.address, protocol: .udp, payloadLength: total,
                               dontFragment: true)
            return IPv4Header.length + total
        }
        datagramOutput = queue
        counters.datagramsSent += 1
    }

    /// Takes the oldest queued datagram, copying at most `buffer.count` bytes of it.
    /// - Throws: ``TCPError/closed``.
    public mutating func receiveDatagram(_ handle: DatagramHandle, into buffer: UnsafeMutableRawBufferPointer) throws(TCPError) -> DatagramReceipt {
        let index = try datagramSlot(handle)
        if datagrams[index].refused {
            datagrams[index].refused = false
            return .refused
        }
        guard let got = datagrams[index].queue.pop(into: buffer) else { return .wouldBlock }
        guard case .v4(let raw) = got.source.address else { return .wouldBlock }
        return .datagram(copied: got.copied, length: got.length, source: IPv4Address(rawValue: raw),
                         port: UInt16(got.source.port))
    }

    /// True when a receive would not return ``DatagramReceipt/wouldBlock``.
    public func isDatagramReadable(_ handle: DatagramHandle) -> Bool {
        guard let index = try? datagramSlot(handle) else { return true }
        return datagrams[index].refused || !datagrams[index].queue.isEmpty
    }

    // MARK: - Internals

    @inline(__always)
    func datagramSlot(_ handle: DatagramHandle) throws(TCPError) -> Int {
        let index = Int(handle.index)
        guard index < datagrams.count, datagrams[index].inUse, datagrams[index].generation == handle.generation
        else { throw .closed }
        return index
    }

    /// An incoming UDP datagram: to the socket bound to its port (a connected socket only takes
    /// its peer's), or ICMP port unreachable when nobody has the port (not for broadcasts).
    mutating func receiveUDP(_ packet: IPv4Packet, broadcast: Bool, now: Int64) {
        let udp: UDPPacket
        do {
            udp = try UDPPacket(checking: packet.payload)
        } catch {
            counters.malformed += 1
            return
        }
        guard udp.isChecksumValid(source: packet.source, destination: packet.destination) else {
            counters.badChecksum += 1
            return
        }
        counters.datagramsReceived += 1
        let port = udp.destinationPort
        let sourcePort = udp.sourcePort
        var candidate: Int?
        var filteredOnly = false
        for i in datagrams.indices where datagrams[i].inUse && datagrams[i].port == port {
            if let peer = datagrams[i].peerAddress {
                if peer == packet.source && datagrams[i].peerPort == sourcePort { candidate = i; break }
                filteredOnly = true
            } else if candidate == nil {
                candidate = i
            }
        }
        guard let index = candidate else {
            if filteredOnly {
                counters.datagramsFiltered += 1
            } else if !broadcast {
                counters.datagramsUnreachable += 1
                if mayAnswerWithICMPError(packet, now: now) { queuePortUnreachable(packet) }
            }
            return
        }
        let source = SocketAddress(.v4(packet.source.rawValue), port: Int(sourcePort))
        if datagrams[index].queue.push(udp.payload, from: source) {
            post(.datagramReadable(DatagramHandle(index: UInt16(index), generation: datagrams[index].generation)))
        }
    }

    /// RFC 1122 §3.2.2: no ICMP error about a datagram from an address that names no single
    /// host (0.0.0.0, broadcast, multicast, class E), and at most a burst of
    /// ``icmpErrorBurst`` errors, refilled one per ``icmpErrorInterval`` ms, so a flood to
    /// closed ports does not become a flood of ICMP on a slow line (Linux rate-limits likewise).
    mutating func mayAnswerWithICMPError(_ packet: IPv4Packet, now: Int64) -> Bool {
        let source = packet.source.rawValue
        if source == 0 || source == 0xFFFF_FFFF || source >> 28 >= 0xE {
            counters.icmpErrorsSuppressed += 1
            return false
        }
        let earned = (now - icmpErrorRefill) / Stack.icmpErrorInterval
        if earned > 0 {
            icmpErrorTokens = min(Stack.icmpErrorBurst, icmpErrorTokens + Int(clamping: earned))
            icmpErrorRefill += earned * Stack.icmpErrorInterval
        }
        guard icmpErrorTokens > 0 else {
            counters.icmpErrorsSuppressed += 1
            return false
        }
        icmpErrorTokens -= 1
        return true
    }

    /// ICMP errors allowed back to back.
    static let icmpErrorBurst = 10
    /// Milliseconds to earn one more ICMP error.
    static let icmpErrorInterval: Int64 = 100

    /// ICMP destination unreachable, port unreachable (type 3 code 3) for `packet`, quoting its IP
    /// header and the first 8 bytes of its payload (RFC 792).
    mutating func queuePortUnreachable(_ packet: IPv4Packet) {
        let quoted = packet.bytes
        let destination = packet.source
        let pushed = pushControl { stack, buffer in
            let icmp = UnsafeMutableRawBufferPointer(rebasing: buffer[IPv4Header.length...])
            guard let length = try? ICMPv4Unreachable.emit(
                into: icmp, code: ICMPv4Unreachable.portUnreachable, quoting: quoted)
            else { return 0 }
            stack.writeIPHeader(into: buffer, destination: destination, protocol: .icmp, payloadLength: length,
                                dontFragment: false)
            return IPv4Header.length + length
        }
        if pushed { counters.portUnreachableSent += 1 }
    }

    /// An ICMP port unreachable about one of our datagrams: the socket connected to that peer
    /// reports `econnrefused` once (RFC 1122 §4.1.3.3); unconnected sockets never hear of it.
    mutating func receiveUnreachable(_ message: ICMPv4Packet) {
        guard let unreachable = try? ICMPv4Unreachable(parsing: message, verifyingChecksum: false) else {
            counters.malformed += 1
            return
        }
        guard unreachable.code == ICMPv4Unreachable.portUnreachable, unreachable.quotedProtocol == .udp,
              unreachable.source == local
        else { return }
        counters.portUnreachableReceived += 1
        for i in datagrams.indices where datagrams[i].inUse && datagrams[i].port == unreachable.sourcePort {
            if datagrams[i].peerAddress == unreachable.destination && datagrams[i].peerPort == unreachable.destinationPort {
                datagrams[i].refused = true
                post(.datagramReadable(DatagramHandle(index: UInt16(i), generation: datagrams[i].generation)))
            }
        }
    }
}
