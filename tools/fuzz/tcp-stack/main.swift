// Fuzz harness for the TCP state machine (tools/fuzz.sh tcp-stack SECONDS).
//
// The input is a script a peer plays against one `Stack`: segments with valid checksums (so they
// reach the state machine rather than the checksum test), their sequence and acknowledgment
// numbers chosen near what the stack last sent so that most are acceptable, SACK blocks and
// SACK-permitted included; time steps that fire the timers; application sends, reads, shutdowns
// and closes; UDP datagrams (good, corrupt, broadcast, for closed ports), ICMP port unreachable
// quoting them, and UDP sends and receives on two sockets (one connected). Nothing may trap, the stack's memory stays bounded (fixed buffers), every datagram
// it sends must parse with every checksum verified, and its counters must stay consistent.
import GenTCPCore
import GenTCPStack
import GenTCPWire

/// Like `precondition`, but the message survives -O.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

let host = IPv4Address(10, 0, 0, 1)
let board = IPv4Address(10, 0, 0, 2)

/// Reads the script's bytes in order; zero once they run out.
struct Script {
    let bytes: UnsafeRawBufferPointer
    var index = 0
    var atEnd: Bool { index >= bytes.count }
    mutating func u8() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }
    mutating func u16() -> UInt16 { UInt16(u8()) << 8 | UInt16(u8()) }
    mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }
}

/// What the peer knows of the connection from the segments the stack sent.
struct PeerView {
    var ourPort: UInt16 = 5000
    var stackPort: UInt16 = 80
    var stackNext: UInt32 = 0  // the stack's highest sequence number seen, plus its length
    var peerNext: UInt32 = 1000  // the peer's own next sequence number
}

func drain(_ stack: inout Stack, now: Int64, view: inout PeerView) {
    var buffer = [UInt8](repeating: 0, count: 1500)
    var sent = 0
    while true {
        let length = buffer.withUnsafeMutableBytes { stack.transmit(into: $0, now: MillisecondInstant(milliseconds: now)) }
        guard let length else { break }
        sent += 1
        require(sent < 10_000, "the stack does not stop sending at one instant")
        require(length <= 296, "a datagram longer than the MTU: \(length)")
        buffer.withUnsafeBytes { raw in
            let datagram = UnsafeRawBufferPointer(rebasing: raw[0..<length])
            guard let ip = try? IPv4Packet(checking: datagram) else { fatalError("the stack sent a malformed datagram") }
            require(ip.isChecksumValid, "bad IPv4 checksum from the stack")
            if ip.protocol == .udp {
                guard let udp = try? UDPPacket(checking: ip.payload),
                      udp.isChecksumValid(source: ip.source, destination: ip.destination), udp.checksum != 0
                else { fatalError("the stack sent a UDP datagram that does not verify") }
                return
            }
            if ip.protocol == .icmp {
                guard let icmp = try? ICMPv4Packet(checking: ip.payload), icmp.isChecksumValid
                else { fatalError("the stack sent an ICMP message that does not verify") }
                if icmp.type == .destinationUnreachable {
                    guard let u = try? ICMPv4Unreachable(parsing: icmp) else { fatalError("unreadable port unreachable") }
                    require(u.destination == host && u.quotedProtocol == .udp, "port unreachable about something else")
                }
                return
            }
            guard ip.protocol == .tcp else { return }
            guard let tcp = try? TCPPacket(checking: ip.payload),
                  let header = try? TCPHeader(parsing: tcp, source: ip.source, destination: ip.destination)
            else { fatalError("the stack sent a TCP segment that does not verify") }
            view.stackPort = header.sourcePort
            view.ourPort = header.destinationPort
            var end = header.sequenceNumber.rawValue &+ UInt32(tcp.payload.count)
            if header.flags.contains(.syn) || header.flags.contains(.fin) { end &+= 1 }
            if Int32(bitPattern: end &- view.stackNext) > 0 || view.stackNext == 0 { view.stackNext = end }
        }
    }
}

func feed(_ stack: inout Stack, _ script: inout Script, now: Int64, view: inout PeerView) {
    let flagsByte = script.u8()
    var flags = TCPFlags(rawValue: flagsByte & 0x3F)
    if flagsByte & 0x40 == 0 { flags.insert(.ack) }
    let seqDelta = Int32(Int8(bitPattern: script.u8())) * 64
    let ackDelta = Int32(Int8(bitPattern: script.u8())) * 32
    let window = script.u16()
    let payloadLength = Int(script.u8())
    let options = script.u8()
    var header = TCPHeader(
        sourcePort: view.ourPort, destinationPort: view.stackPort,
        sequenceNumber: SequenceNumber(view.peerNext &+ UInt32(bitPattern: seqDelta)),
        acknowledgmentNumber: SequenceNumber(view.stackNext &+ UInt32(bitPattern: ackDelta)),
        flags: flags, window: window)
    if options & 1 != 0 { header.maximumSegmentSize = UInt16(script.u8()) << 4 }
    if options & 2 != 0 { header.sackPermitted = true }
    let blocks = Int(options >> 2) & 7
    for _ in 0..<min(blocks, 4) {
        let left = view.stackNext &- UInt32(script.u16())
        let right = left &+ UInt32(script.u16() & 0x0FFF)
        header.sackBlocks.append(TCPSACKBlock(left: SequenceNumber(left), right: SequenceNumber(right)))
    }
    if flags.contains(.syn) { view.peerNext = header.sequenceNumber.rawValue &+ 1 }
    var payload = [UInt8](repeating: 0, count: min(payloadLength, 200))
    for i in payload.indices { payload[i] = script.u8() }
    let tcpLength = header.headerLength + payload.count
    guard tcpLength <= 60 + 200 else { return }
    var bytes = [UInt8](repeating: 0, count: 20 + tcpLength)
    let ok: Bool = bytes.withUnsafeMutableBytes { buffer in
        let tcp = UnsafeMutableRawBufferPointer(rebasing: buffer[20...])
        let emitted = payload.withUnsafeBytes { p in
            (try? header.emit(into: tcp, payload: p, source: board, destination: host)) != nil
        }
        guard emitted else { return false }
        return (try? IPv4Header(source: board, destination: host, protocol: .tcp, payloadLength: tcpLength)
            .emit(into: buffer)) != nil
    }
    guard ok else { return }
    if !flags.contains(.syn), Int32(bitPattern: header.sequenceNumber.rawValue &+ UInt32(payload.count) &- view.peerNext) > 0 {
        view.peerNext = header.sequenceNumber.rawValue &+ UInt32(payload.count)
    }
    bytes.withUnsafeBytes { stack.receive($0, now: MillisecondInstant(milliseconds: now)) }
}

/// A UDP datagram from the board (or an ICMP port unreachable about one of ours), as the script says.
func feedDatagram(_ stack: inout Stack, _ script: inout Script, now: Int64, icmp: Bool) {
    let flags = script.u8()
    let ports: [UInt16] = [53, 54, 55, 9]
    let ourPort = ports[Int(flags & 3)]
    let theirPort = ports[Int(flags >> 2 & 3)]
    let length = Int(script.u8())
    let destination = flags & 0x10 != 0 ? IPv4Address(rawValue: 0xFFFF_FFFF) : host
    var payload = [UInt8](repeating: 0, count: length)
    for i in payload.indices { payload[i] = script.u8() }
    // The datagram as the board sends it, or (icmp) as we would have sent it, quoted back.
    let (src, dst, srcPort, dstPort) = icmp ? (host, board, ourPort, theirPort) : (board, destination, theirPort, ourPort)
    var datagram = [UInt8](repeating: 0, count: 28 + length)
    datagram.withUnsafeMutableBytes { buffer in
        let udp = UnsafeMutableRawBufferPointer(rebasing: buffer[20...])
        for (i, b) in payload.enumerated() { udp[8 + i] = b }
        _ = try? UDPHeader(sourcePort: srcPort, destinationPort: dstPort)
            .emit(into: udp, payloadLength: length, source: src, destination: dst)
        _ = try? IPv4Header(source: src, destination: dst, protocol: .udp, payloadLength: 8 + length).emit(into: buffer)
    }
    if flags & 0x20 != 0, datagram.count > 28 { datagram[27] ^= 0xFF }  // corrupt the payload
    if flags & 0x40 != 0 { datagram[25] = UInt8(truncatingIfNeeded: length + 9 + Int(flags >> 7)) }  // a lying length
    guard icmp else {
        datagram.withUnsafeBytes { stack.receive($0, now: MillisecondInstant(milliseconds: now)) }
        return
    }
    let cut = min(datagram.count, 20 + Int(script.u8() % 40))
    var message = [UInt8](repeating: 0, count: 20 + 8 + cut)
    message.withUnsafeMutableBytes { buffer in
        let body = UnsafeMutableRawBufferPointer(rebasing: buffer[20...])
        let quoted = datagram.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[0..<cut]) }
        let n = (try? ICMPv4Unreachable.emit(into: body, code: script.u8() % 4, quoting: quoted)) ?? 0
        _ = try? IPv4Header(source: board, destination: host, protocol: .icmp, payloadLength: n).emit(into: buffer)
    }
    message.withUnsafeBytes { stack.receive($0, now: MillisecondInstant(milliseconds: now)) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var script = Script(bytes: UnsafeRawBufferPointer(start: data, count: size))
    let mode = script.u8()
    var stack = Stack(configuration: StackConfiguration(
        localAddress: host, peerAddress: board, mtu: 296, maximumConnections: 2, seed: UInt64(mode),
        dedicatedLink: mode & 1 != 0))
    let options = ConnectionOptions(
        sendBufferSize: 2048, receiveBufferSize: 1024, noDelay: mode & 2 != 0, initialRTO: 200, minimumRTO: 20,
        maximumRTO: 2000, selectiveAcknowledgments: mode & 4 == 0)
    var now: Int64 = 0
    var view = PeerView()
    var connections: [ConnectionHandle] = []
    var listener: ListenerHandle?
    if mode & 8 == 0 {
        if let c = try? stack.connect(to: board, port: 80, localPort: 4000, options: options, now: MillisecondInstant(milliseconds: now)) { connections.append(c) }
    } else {
        listener = try? stack.listen(port: 80, backlog: 2, options: options)
        view.stackPort = 80
        view.ourPort = 5000
    }
    let datagramSockets = [try? stack.openDatagram(port: 53, queueBytes: 600, queueDatagrams: 4),
                           try? stack.openDatagram(port: 54, queueBytes: 0, queueDatagrams: 1)].compactMap { $0 }
    require(datagramSockets.count == 2, "two UDP sockets must open")
    try? stack.connectDatagram(datagramSockets[1], to: (board, 9))
    var dropped: [UInt64] = [0, 0]
    drain(&stack, now: now, view: &view)
    var steps = 0
    var readBuffer = [UInt8](repeating: 0, count: 700)
    while !script.atEnd, steps < 400 {
        steps += 1
        switch script.u8() % 9 {
        case 6:
            feedDatagram(&stack, &script, now: now, icmp: script.u8() & 1 != 0)
        case 7:
            let size = Int(script.u16() % 400)
            let bytes = [UInt8](repeating: 0xC3, count: size)
            let s = datagramSockets[Int(script.u8() & 1)]
            let to: (address: IPv4Address, port: UInt16)? = script.u8() & 1 == 0 ? nil : (board, 9)
            bytes.withUnsafeBytes { p in
                do throws(TCPError) {
                    try stack.sendDatagram(s, chunks: [p], to: to)
                    require(size <= stack.maximumDatagramPayload, "sent a datagram above the MTU")
                } catch {
                    if error == .messageTooLong { require(size > stack.maximumDatagramPayload, "emsgsize below the limit") }
                }
            }
        case 8:
            for s in datagramSockets {
                if case .datagram(let copied, let length, _, _)? = readBuffer.withUnsafeMutableBytes({ try? stack.receiveDatagram(s, into: $0) }) {
                    require(copied <= length && length <= 600, "a datagram larger than its queue")
                }
            }
        case 0, 1:
            feed(&stack, &script, now: now, view: &view)
        case 2:
            now += Int64(script.u16())
            _ = stack.poll(now: MillisecondInstant(milliseconds: now))
        case 3:
            let count = Int(script.u16() % 3000)
            let bytes = [UInt8](repeating: 0x5A, count: count)
            for c in connections { _ = bytes.withUnsafeBytes { try? stack.send(c, $0) } }
        case 4:
            for c in connections { _ = readBuffer.withUnsafeMutableBytes { try? stack.recv(c, into: $0) } }
        default:
            let how = script.u8() % 3
            for c in connections {
                switch how {
                case 0: try? stack.shutdown(c)
                case 1: stack.close(c)
                default: stack.abort(c)
                }
            }
        }
        while stack.nextEvent() != nil {}
        if let listener, let c = try? stack.accept(listener) { connections.append(c) }
        for c in connections {
            let queued = stack.bytesUnacknowledged(c)
            require(queued >= 0 && queued <= 2048, "more queued bytes than the send buffer: \(queued)")
            require(stack.bytesReadable(c) <= 1024, "more readable bytes than the receive buffer")
        }
        for (i, s) in datagramSockets.enumerated() {
            let d = (try? stack.droppedDatagrams(s)) ?? 0
            require(d >= dropped[i], "the drop counter went back")
            dropped[i] = d
        }
        drain(&stack, now: now, view: &view)
    }
    return 0
}
