import GenTCPCore
import GenTCPWire

extension Stack {
    mutating func receiveTCP(_ packet: IPv4Packet, now: Int64) {
        let segment: TCPPacket
        let header: TCPHeader
        do {
            segment = try TCPPacket(checking: packet.payload)
        } catch {
            counters.malformed += 1
            return
        }
        do {
            header = try TCPHeader(parsing: segment, source: packet.source, destination: packet.destination)
        } catch .badChecksum {
            counters.badChecksum += 1
            return
        } catch {
            counters.malformed += 1
            return
        }
        let payload = segment.payload
        let source = packet.source

        if var index = connectionIndex(localPort: header.destinationPort, remote: source, remotePort: header.sourcePort) {
            // RFC 9293 §3.10.7.4 allows a new SYN to reopen a connection in TIME-WAIT when its
            // sequence number is above what the old one used.
            if connections[index].state == .timeWait, header.flags.contains(.syn), !header.flags.contains(.ack),
               header.sequenceNumber > connections[index].rcvNxt,
               listeners.contains(where: { $0.inUse && $0.port == header.destinationPort }) {
                connections[index].enterClosed()
                settle(index)
            } else {
                connections[index].process(header, payload: payload, now: now)
                connections[index].refreshTimers(now: now)
                settle(index)
                return
            }
            index = -1
        }
        if let li = listeners.firstIndex(where: { $0.inUse && $0.port == header.destinationPort }) {
            receiveOnListener(li, header, source: source, now: now)
            return
        }
        replyToStray(header, payloadLength: payload.count, source: source)
    }

    /// RFC 9293 §3.10.7.1: a segment for no connection gets a RST unless it is one.
    mutating func replyToStray(_ header: TCPHeader, payloadLength: Int, source: IPv4Address) {
        let flags = header.flags
        if flags.contains(.rst) { return }
        if flags.contains(.ack) {
            queueReset(ResetReply(
                remote: source, localPort: header.destinationPort, remotePort: header.sourcePort,
                sequence: header.acknowledgmentNumber, acknowledgment: nil))
        } else {
            let length = payloadLength + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
            queueReset(ResetReply(
                remote: source, localPort: header.destinationPort, remotePort: header.sourcePort,
                sequence: SequenceNumber(0), acknowledgment: header.sequenceNumber.advanced(by: length)))
        }
    }

    /// RFC 9293 §3.10.7.2 (LISTEN).
    mutating func receiveOnListener(_ li: Int, _ header: TCPHeader, source: IPv4Address, now: Int64) {
        let flags = header.flags
        if flags.contains(.rst) { return }
        if flags.contains(.ack) {
            queueReset(ResetReply(
                remote: source, localPort: header.destinationPort, remotePort: header.sourcePort,
                sequence: header.acknowledgmentNumber, acknowledgment: nil))
            return
        }
        guard flags.contains(.syn) else { return }
        // Room for the new half-open connection: a full backlog, a full slot table or the
        // half-open limit each give up their oldest half-open connection. Only connections that
        // completed the handshake (waiting for accept, or accepted) make a SYN wait.
        var waiting = 0
        var halfOpen = 0
        for index in connections.indices where connections[index].inUse && !connections[index].owned {
            if connections[index].listener == li { waiting += 1 }
            if connections[index].isHalfOpen { halfOpen += 1 }
        }
        if waiting >= listeners[li].backlog {
            guard let victim = oldestHalfOpen(listener: li) else {
                counters.synsDropped += 1
                return
            }
            evictHalfOpen(victim)
            halfOpen -= 1
        }
        if halfOpen >= max(configuration.maximumHalfOpenConnections, 1), let victim = oldestHalfOpen(listener: nil) {
            evictHalfOpen(victim)
        }
        if freeConnectionSlot() == nil, let victim = oldestHalfOpen(listener: nil) {
            evictHalfOpen(victim)
        }
        guard let index = freeConnectionSlot() else {
            counters.synsDropped += 1
            return
        }
        let options = listeners[li].options
        connections[index].open(
            state: .synReceived, options: options, localPort: header.destinationPort, remote: source,
            remotePort: header.sourcePort,
            iss: initialSequenceNumber(localPort: header.destinationPort, remote: source,
                                       remotePort: header.sourcePort, now: now),
            mtu: configuration.mtu, now: now,
            congestionFree: configuration.dedicatedLink && source == configuration.peerAddress,
            preallocated: preallocated)
        connections[index].listener = li
        connections[index].acceptOrder = acceptCounter
        acceptCounter &+= 1
        connections[index].irs = header.sequenceNumber
        connections[index].rcvNxt = header.sequenceNumber + 1
        connections[index].rcvAdvertisedEdge = header.sequenceNumber + 1
        connections[index].applyPeerOptions(header)
        connections[index].sndWnd = UInt32(header.window)
        connections[index].sndWl1 = header.sequenceNumber
        connections[index].sndWl2 = connections[index].iss
        // A half-open connection that never completes does not hold the slot forever.
        connections[index].connectDeadline = now + options.connectTimeout.value
    }

    /// The half-open connection (SYN-RECEIVED, made by a listener) whose SYN came first, of
    /// listener `li` or of any listener.
    @inline(__always)
    func oldestHalfOpen(listener li: Int?) -> Int? {
        var oldest: Int?
        for index in connections.indices {
            guard connections[index].inUse, !connections[index].owned, connections[index].isHalfOpen,
                  li.map({ connections[index].listener == $0 }) ?? true
            else { continue }
            let order = connections[index].acceptOrder
            if oldest.map({ order &- connections[$0].acceptOrder > 0x8000_0000 }) ?? true { oldest = index }
        }
        return oldest
    }

    /// Drops a half-open connection to make room for a new SYN, without a RST: its source is
    /// most likely silent or spoofed, and a RST for each evicted connection would double what a
    /// flood costs the (slow) line and crowd the control queue. A real peer still learns: its
    /// ACK then reaches the listener as a stray and is answered with a RST (RFC 9293
    /// §3.10.7.2), and its retransmitted SYN starts over.
    mutating func evictHalfOpen(_ index: Int) {
        connections[index].fail(nil, sendReset: false)
        settle(index)
        counters.halfOpenEvicted += 1
    }

    mutating func receiveICMP(_ packet: IPv4Packet) {
        let message: ICMPv4Packet
        do {
            message = try ICMPv4Packet(checking: packet.payload)
        } catch {
            counters.malformed += 1
            return
        }
        guard message.isChecksumValid else {
            counters.badChecksum += 1
            return
        }
        if message.type == .destinationUnreachable {
            receiveUnreachable(message)
            return
        }
        guard message.code == 0 else { return }
        let source = packet.source
        if message.type == .echoRequest {
            let reply = ICMPv4Echo(isReply: true, identifier: message.identifier, sequenceNumber: message.sequenceNumber)
            let data = message.payload
            let pushed = pushControl { stack, buffer in
                let icmp = UnsafeMutableRawBufferPointer(rebasing: buffer[IPv4Header.length...])
                guard let length = try? reply.emit(into: icmp, data: data) else { return 0 }
                stack.writeIPHeader(into: buffer, destination: source, protocol: .icmp, payloadLength: length,
                                    dontFragment: false)
                return IPv4Header.length + length
            }
            if pushed { counters.echoRequestsAnswered += 1 }
        } else if message.type == .echoReply {
            counters.echoRepliesReceived += 1
            post(.echoReply(
                source: source, identifier: message.identifier, sequence: message.sequenceNumber,
                dataLength: message.payload.count))
        }
    }
}
