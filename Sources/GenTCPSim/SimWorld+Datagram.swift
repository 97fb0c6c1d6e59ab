import GenTCP
import GenTCPCore

// Datagrams: UDP sockets bound on hosts, whole datagrams on the links, ICMP port unreachable.
// Everything here runs under the network's lock, as the rest of `SimWorld`.

/// One bound UDP socket of the simulation.
final class UDPEndpointRecord {
    let id: Int
    let host: Int
    let address: SocketAddress
    let delegate: any DatagramDelegate
    var reuseaddr: Bool
    var broadcast: Bool
    var queue: DatagramQueue
    var peer: SocketAddress?
    /// An ICMP error waiting to be reported once (to the next receive or send).
    var pendingError: SocketError.Reason?
    var readArmed = false
    var writeArmed = false
    var readNotifyPending = false
    var writeNotifyPending = false

    init(id: Int, host: Int, address: SocketAddress, options: DatagramOptions, delegate: any DatagramDelegate) {
        self.id = id
        self.host = host
        self.address = address
        self.delegate = delegate
        self.reuseaddr = options.reuseaddr
        self.broadcast = options.broadcast
        let limit = options.queueLimit
        self.queue = DatagramQueue(byteCapacity: limit.bytes, datagramCapacity: limit.datagrams)
    }

    var isIPv6: Bool { address.address.isIPv6 }
}

/// One copy of a datagram on its way to one host.
struct InFlightDatagram {
    /// The sending socket (for the ICMP answer).
    var sender: Int
    var fromHost: Int
    var toHost: Int
    var source: SocketAddress
    var destination: SocketAddress
    var payload: [UInt8]
    var isBroadcast: Bool
}

extension SimWorld {
    static let limitedBroadcast = IPAddress.v4(0xFFFF_FFFF)
    static let loopbackBroadcast = IPAddress.v4(0x7FFF_FFFF)

    /// The /24 broadcast address of an IPv4 address (every simulated IPv4 subnet is a /24).
    static func subnetBroadcast(of a: IPAddress) -> IPAddress? {
        guard case .v4(let v) = a, v >> 24 != 127 else { return nil }
        return .v4(v | 0xFF)
    }

    // MARK: Bind and close

    func openDatagram(host h: Int, on address: SocketAddress, options: DatagramOptions, delegate: any DatagramDelegate) throws(SocketError) -> UDPEndpointRecord {
        let a = address.address
        let ownBroadcast = hosts[h].addresses.contains { SimWorld.subnetBroadcast(of: $0) == a }
        guard isLocal(a, to: h) || ownBroadcast || a == SimWorld.loopbackBroadcast else {
            throw SocketError(.addressNotAvailable, "GenTCPSim: the address is not one of the host's")
        }
        var port = address.port
        if port == 0 {
            guard let p = udpEphemeralPort(host: h) else {
                throw SocketError(.addressInUse, "GenTCPSim: no ephemeral UDP port left")
            }
            port = p
        } else {
            let clash = udpEndpoints.values.contains { e in
                e.host == h && e.address.port == port && SimWorld.overlaps(e.address.address, a)
                    && !(e.reuseaddr && options.reuseaddr)
            }
            if clash { throw SocketError(.addressInUse, "GenTCPSim: the UDP port is taken") }
        }
        let e = UDPEndpointRecord(id: nextUDPID, host: h, address: SocketAddress(a, port: port), options: options, delegate: delegate)
        nextUDPID += 1
        udpEndpoints[e.id] = e
        record(nil, .udp(.bound(e.address)))
        return e
    }

    /// The next UDP ephemeral port of a host no socket of the host uses, in order (deterministic).
    func udpEphemeralPort(host h: Int) -> Int? {
        let range = SimWorld.ephemeralPorts
        for _ in 0..<range.count {
            let candidate = hosts[h].nextUDPEphemeral
            hosts[h].nextUDPEphemeral = candidate == range.upperBound ? range.lowerBound : candidate + 1
            if !udpEndpoints.values.contains(where: { $0.host == h && $0.address.port == candidate }) { return candidate }
        }
        return nil
    }

    func closeDatagram(_ e: UDPEndpointRecord) {
        guard udpEndpoints.removeValue(forKey: e.id) != nil else { return }
        e.queue.removeAll()
        record(nil, .udp(.closed(e.address)))
    }

    func applyDatagram(_ e: UDPEndpointRecord, _ option: Option) -> SocketError.Reason? {
        switch option {
        case .broadcast(let on): e.broadcast = on
        case .reuseaddr(let on): e.reuseaddr = on
        case .recbuf(let bytes):
            var o = DatagramOptions()
            o.recbuf = bytes
            let limit = o.queueLimit
            e.queue.reshape(byteCapacity: limit.bytes, datagramCapacity: limit.datagrams)
        default: break
        }
        return nil
    }

    // MARK: Receive

    func receiveDatagram(_ e: UDPEndpointRecord, into buffer: UnsafeMutableRawBufferPointer) -> DatagramReceiveResult {
        if let error = e.pendingError {
            e.pendingError = nil
            return .error(error)
        }
        guard let got = e.queue.pop(into: buffer) else { return .wouldBlock }
        return .datagram(copied: got.copied, length: got.length, source: got.source)
    }

    // MARK: Send

    /// The hosts a broadcast to `a` from host `h` reaches, or nil when `a` is not a broadcast
    /// address for `h`: 255.255.255.255 and the /24 broadcast of one of `h`'s IPv4 addresses
    /// reach every host with an IPv4 address in that /24 (the sender included), 127.255.255.255
    /// reaches `h` only.
    func broadcastTargets(from h: Int, to a: IPAddress) -> [Int]? {
        if a == SimWorld.loopbackBroadcast { return [h] }
        let subnets = hosts[h].addresses.compactMap(SimWorld.subnetBroadcast(of:))
        let reached: [IPAddress]
        if a == SimWorld.limitedBroadcast {
            reached = subnets
        } else if subnets.contains(a) {
            reached = [a]
        } else {
            return nil
        }
        if reached.isEmpty { return [h] }
        return hosts.indices.filter { i in
            hosts[i].addresses.contains { SimWorld.subnetBroadcast(of: $0).map(reached.contains) ?? false }
        }
    }

    /// The address a datagram from `e` to `destination` leaves from, nil when the host has none
    /// that can reach it.
    func sourceAddress(_ e: UDPEndpointRecord, to destination: IPAddress, broadcast: Bool) -> IPAddress? {
        let bound = e.address.address
        if destination.isLoopback || destination == SimWorld.loopbackBroadcast {
            if !SimWorld.isAny(bound) { return bound }
            return e.isIPv6 ? .loopbackV6 : .loopbackV4
        }
        if !SimWorld.isAny(bound) && !bound.isLoopback && SimWorld.subnetBroadcast(of: bound) != bound { return bound }
        let own = hosts[e.host].addresses.filter { $0.isIPv6 == e.isIPv6 }
        if broadcast, destination != SimWorld.limitedBroadcast,
           let a = own.first(where: { SimWorld.subnetBroadcast(of: $0) == destination }) { return a }
        return own.first
    }

    func sendDatagram(_ e: UDPEndpointRecord, _ chunks: [UnsafeRawBufferPointer], to destination: SocketAddress?) -> DatagramSendResult {
        if let error = e.pendingError {
            e.pendingError = nil
            return .failed(error)
        }
        guard let dest = destination ?? e.peer else { return .failed(.notConnected) }
        var size = 0
        for c in chunks { size += c.count }
        let targets: [Int]
        let isBroadcast: Bool
        if !dest.address.isIPv6, let reached = broadcastTargets(from: e.host, to: dest.address) {
            guard e.broadcast else { return .failed(.permissionDenied) }
            targets = reached
            isBroadcast = true
        } else if dest.address.isLoopback {
            targets = [e.host]
            isBroadcast = false
        } else {
            targets = hostByAddress[dest.address].map { [$0] } ?? []
            isBroadcast = false
        }
        guard let sourceIP = sourceAddress(e, to: dest.address, broadcast: isBroadcast) else {
            return .failed(.networkUnreachable)
        }
        if e.address.address.isLoopback && !dest.address.isLoopback && dest.address != SimWorld.loopbackBroadcast {
            return .failed(.invalidArgument)
        }
        let headers = e.isIPv6 ? 48 : 28
        for t in targets {
            if let mtu = profile(e.host, t).mtu, size + headers > mtu { return .failed(.messageTooLong) }
        }
        var payload = [UInt8]()
        payload.reserveCapacity(size)
        for c in chunks { payload.append(contentsOf: c) }
        let source = SocketAddress(sourceIP, port: e.address.port)
        stats.datagramsSent += 1
        record(nil, .udp(.sent(from: source, to: dest, bytes: size)))
        if targets.isEmpty {
            stats.datagramsLost += 1
            record(nil, .udp(.unroutable(from: source, to: dest, bytes: size)))
        }
        for t in targets {
            let d = InFlightDatagram(sender: e.id, fromHost: e.host, toHost: t, source: source, destination: dest,
                                     payload: payload, isBroadcast: isBroadcast)
            transmitDatagram(d)
        }
        return .sent
    }

    func resolvedDatagramFaults(from: Int, to: Int, port: Int) -> SimDatagramFaults {
        datagramFaults[.port(to, port)] ?? datagramFaults[.host(to)] ?? datagramFaults[.host(from)]
            ?? datagramFaults[.network] ?? .none
    }

    /// Puts one datagram on the line to one host: the rate-limited line is busy for its payload
    /// bytes (headers are not counted, as for TCP segments), then it travels the link's latency;
    /// faults may drop, copy or delay it.
    private func transmitDatagram(_ d: InFlightDatagram) {
        let f = resolvedDatagramFaults(from: d.fromHost, to: d.toHost, port: d.destination.port)
        let size = d.payload.count
        if f.lossProbability > 0 && udpRNG.chance(f.lossProbability) {
            stats.datagramsLost += 1
            record(nil, .udp(.lost(from: d.source, to: d.destination, bytes: size)))
            return
        }
        let copies = f.duplicateProbability > 0 && udpRNG.chance(f.duplicateProbability) ? 2 : 1
        if copies == 2 {
            stats.datagramsDuplicated += 1
            record(nil, .udp(.duplicated(from: d.source, to: d.destination, bytes: size)))
        }
        var departure = now
        var transmission: UInt64 = 0
        let link = profile(d.fromHost, d.toHost)
        if let rate = link.bytesPerSecond, rate > 0 {
            let key = DirectedPair(from: d.fromHost, to: d.toHost)
            departure = max(now, lineFreeAt[key] ?? 0)
            let r = UInt64(rate)
            transmission = (UInt64(size) * 1_000_000_000 + r - 1) / r
            lineFreeAt[key] = departure + transmission
        }
        let base = departure &+ transmission &+ link.latency.simNanoseconds &+ f.extraLatency.simNanoseconds
        for _ in 0..<copies {
            var arrival = base
            let jitter = f.jitter.simNanoseconds
            if jitter > 0 { arrival &+= udpRNG.upTo(jitter) }
            let hold = f.reorderDelay.simNanoseconds
            if hold > 0 && f.reorderProbability > 0 && udpRNG.chance(f.reorderProbability) {
                let extra = 1 + udpRNG.upTo(hold - 1)
                arrival &+= extra
                stats.datagramsReordered += 1
                record(nil, .udp(.reordered(from: d.source, to: d.destination, nanoseconds: extra)))
            }
            let id = nextDatagramID
            nextDatagramID += 1
            datagramsInFlight[id] = d
            _ = schedule(at: arrival, .datagramArrival(id: id))
        }
    }

    // MARK: Arrival and ICMP

    /// The sockets of the destination host a datagram goes to: for a broadcast, every IPv4
    /// socket bound to the port on the wildcard or the broadcast address, in bind order; for a
    /// unicast one socket, bound to the destination address before the wildcard, the latest
    /// bound first among sockets sharing the port with `reuseaddr` (as Linux does).
    func receivers(of d: InFlightDatagram) -> [UDPEndpointRecord] {
        let candidates = udpEndpoints.values
            .filter { $0.host == d.toHost && $0.address.port == d.destination.port && $0.isIPv6 == d.destination.address.isIPv6 }
            .sorted { $0.id < $1.id }
        if d.isBroadcast {
            return candidates.filter { $0.address.address == .anyV4 || $0.address.address == d.destination.address }
        }
        let exact = candidates.filter { $0.address.address == d.destination.address }
        if let last = exact.last { return [last] }
        let wild = candidates.filter { SimWorld.isAny($0.address.address) }
        return wild.last.map { [$0] } ?? []
    }

    func datagramArrived(_ id: Int) {
        guard let d = datagramsInFlight.removeValue(forKey: id) else { return }
        let size = d.payload.count
        let found = receivers(of: d)
        if found.isEmpty {
            guard !d.isBroadcast else { return }
            stats.portUnreachables += 1
            record(nil, .udp(.portUnreachable(from: d.source, to: d.destination)))
            let back = profile(d.toHost, d.fromHost).latency.simNanoseconds
            _ = schedule(after: back, .icmpArrival(endpoint: d.sender, peer: d.destination))
            return
        }
        for r in found {
            if let peer = r.peer, peer != d.source {
                stats.datagramsFiltered += 1
                record(nil, .udp(.filtered(from: d.source, to: d.destination, bytes: size, at: r.address)))
                continue
            }
            if r.queue.push(d.payload, from: d.source) {
                stats.datagramsDelivered += 1
                record(nil, .udp(.delivered(from: d.source, to: d.destination, bytes: size, at: r.address)))
                notifyDatagramReadable(r)
            } else {
                stats.datagramsDroppedQueueFull += 1
                record(nil, .udp(.droppedQueueFull(from: d.source, to: d.destination, bytes: size, at: r.address)))
            }
        }
    }

    /// An ICMP port unreachable for a datagram to `peer` reached the socket that sent it: kept
    /// for one report when the socket is connected to `peer` (Linux), ignored otherwise.
    func icmpArrived(endpoint id: Int, peer: SocketAddress) {
        guard let e = udpEndpoints[id] else { return }
        let reported = e.peer == peer
        record(nil, .udp(.refused(socket: e.address, peer: peer, reported: reported)))
        guard reported else { return }
        e.pendingError = .connectionRefused
        notifyDatagramReadable(e)
    }

    // MARK: Readiness

    func armDatagramReceive(_ e: UDPEndpointRecord) {
        e.readArmed = true
        notifyDatagramReadable(e)
    }

    func armDatagramSend(_ e: UDPEndpointRecord) {
        e.writeArmed = true
        notifyDatagramWritable(e)
    }

    func notifyDatagramReadable(_ e: UDPEndpointRecord) {
        guard e.readArmed, !e.queue.isEmpty || e.pendingError != nil else { return }
        if deferCallbacks {
            if !e.readNotifyPending {
                e.readNotifyPending = true
                _ = schedule(after: 0, .notifyDatagramRead(endpoint: e.id))
            }
            return
        }
        e.readArmed = false
        callbacks.append(.datagramReadable(e.delegate))
    }

    /// A simulated socket can always send (the network takes every datagram at once).
    func notifyDatagramWritable(_ e: UDPEndpointRecord) {
        guard e.writeArmed else { return }
        if deferCallbacks {
            if !e.writeNotifyPending {
                e.writeNotifyPending = true
                _ = schedule(after: 0, .notifyDatagramWrite(endpoint: e.id))
            }
            return
        }
        e.writeArmed = false
        callbacks.append(.datagramWritable(e.delegate))
    }
}
