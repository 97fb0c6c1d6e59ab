// Fuzz harness for the IPv4, TCP, UDP and ICMP parsers and emitters (tools/fuzz.sh ipv4-tcp SECONDS).
//
// The input is one IPv4 datagram. Parsing must never trap. Whatever parses (checksums not
// verified, so mutated inputs get deep) is emitted again and must re-parse, this time with every
// checksum verified, to the same representation and payload. Inputs that are not IPv4 are also
// parsed as a bare TCP segment, so the TCP option parser sees raw bytes too.
import GenTCPWire

/// Like `precondition`, but the message survives -O, so a crash report says what differed.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

/// Keeps accessor results alive so the optimiser cannot drop the reads.
@inline(never)
func consume(_ value: Int) {
    sink &+= value
}
nonisolated(unsafe) var sink = 0

let source = IPv4Address(192, 0, 2, 1)
let destination = IPv4Address(192, 0, 2, 2)

/// Reads every field of a TCP view and walks its options.
func touch(_ tcp: TCPPacket) {
    consume(Int(tcp.sourcePort) &+ Int(tcp.destinationPort) &+ Int(tcp.sequenceNumber.rawValue)
        &+ Int(tcp.acknowledgmentNumber.rawValue) &+ tcp.headerLength &+ Int(tcp.reservedBits)
        &+ Int(tcp.flags.rawValue) &+ Int(tcp.window) &+ Int(tcp.checksum) &+ Int(tcp.urgentPointer)
        &+ tcp.options.count &+ tcp.payload.count &+ tcp.segmentLength)
    var reader = tcp.optionReader
    var count = 0
    while let option = try? reader.next() {
        count += 1
        require(count <= 40, "option reader does not terminate")
        if case .sack(let blocks) = option { require(blocks.count >= 1 && blocks.count <= 4, "SACK block count") }
    }
}

/// TCP: parse (unverified), emit with a fresh checksum, re-parse verified, compare.
func roundTripTCP(_ bytes: UnsafeRawBufferPointer, ip: IPv4Header?) {
    guard let tcp = try? TCPPacket(checking: bytes) else { return }
    require(tcp.headerLength >= 20 && tcp.headerLength <= bytes.count, "TCP header length outside the buffer")
    touch(tcp)
    let from = ip?.source ?? source
    let to = ip?.destination ?? destination
    let verified = try? TCPHeader(parsing: tcp, source: from, destination: to)
    guard let header = try? TCPHeader(parsing: tcp, source: from, destination: to, verifyingChecksum: false) else {
        require(verified == nil, "verified parse succeeded where the unverified one failed")
        return
    }
    require(verified == nil || verified == header, "verification changed the parsed header")
    require(verified == nil || tcp.isChecksumValid(source: from, destination: to), "accepted a bad checksum")
    require(header.headerLength <= 60, "parsed options cannot be emitted: \(header.headerLength) bytes")

    // Emit IPv4 + TCP into a fresh buffer and parse it back with every check on.
    let payload = tcp.payload
    var ipHeader = ip ?? IPv4Header(source: from, destination: to, protocol: .tcp, payloadLength: 0)
    ipHeader.payloadLength = header.headerLength + payload.count
    ipHeader.moreFragments = false
    ipHeader.fragmentOffset = 0
    var packet = [UInt8](repeating: 0xA5, count: ipHeader.totalLength)
    packet.withUnsafeMutableBytes { buffer in
        do throws(WireError) {
            try ipHeader.emit(into: buffer)
            let written = try header.emit(into: UnsafeMutableRawBufferPointer(rebasing: buffer[20...]), payload: payload,
                                          source: from, destination: to)
            require(written == ipHeader.payloadLength, "TCP emit length")
        } catch {
            fatalError("emitting a parsed TCP header threw \(error)")
        }
    }
    packet.withUnsafeBytes { bytes in
        do throws(WireError) {
            let again = try IPv4Packet(checking: bytes)
            require(try IPv4Header(parsing: again) == ipHeader, "IPv4 header changed in the round trip")
            let segment = try TCPPacket(checking: again.payload)
            let reparsed = try TCPHeader(parsing: segment, source: again.source, destination: again.destination)
            require(reparsed == header, "TCP header changed in the round trip")
            require(segment.payload.elementsEqual(payload), "TCP payload changed in the round trip")
        } catch {
            fatalError("re-parsing an emitted TCP segment threw \(error)")
        }
    }
}

/// UDP: the same round trip.
func roundTripUDP(_ bytes: UnsafeRawBufferPointer, ip: IPv4Header) {
    guard let udp = try? UDPPacket(checking: bytes) else { return }
    consume(Int(udp.sourcePort) &+ Int(udp.destinationPort) &+ udp.length &+ Int(udp.checksum) &+ udp.payload.count)
    guard let header = try? UDPHeader(parsing: udp, source: ip.source, destination: ip.destination, verifyingChecksum: false)
    else { fatalError("an unverified UDP parse cannot fail") }
    let payload = udp.payload
    var datagram = [UInt8](repeating: 0, count: UDPPacket.headerLength + payload.count)
    datagram.withUnsafeMutableBytes { buffer in
        UnsafeMutableRawBufferPointer(rebasing: buffer[8...]).copyMemory(from: payload)
        do throws(WireError) {
            try header.emit(into: buffer, payloadLength: payload.count, source: ip.source, destination: ip.destination)
            let again = try UDPPacket(checking: UnsafeRawBufferPointer(buffer))
            require(try UDPHeader(parsing: again, source: ip.source, destination: ip.destination) == header, "UDP round trip")
            require(again.checksum != 0, "UDP emitted a zero checksum")
            require(again.payload.elementsEqual(payload), "UDP payload changed")
        } catch {
            fatalError("UDP round trip threw \(error)")
        }
    }
}

/// ICMP echo: the same round trip.
func roundTripICMP(_ bytes: UnsafeRawBufferPointer) {
    guard let icmp = try? ICMPv4Packet(checking: bytes) else { return }
    consume(Int(icmp.type.rawValue) &+ Int(icmp.code) &+ Int(icmp.checksum) &+ Int(icmp.restOfHeader) &+ icmp.payload.count)
    if let unreachable = try? ICMPv4Unreachable(parsing: icmp, verifyingChecksum: false) {
        // Quote the quoted datagram again: the same fields must come back.
        var message = [UInt8](repeating: 0, count: ICMPv4Packet.headerLength + icmp.payload.count)
        message.withUnsafeMutableBytes { buffer in
            do throws(WireError) {
                let n = try ICMPv4Unreachable.emit(into: buffer, code: unreachable.code, quoting: icmp.payload)
                let again = try ICMPv4Packet(checking: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                var expected = unreachable
                expected.code = unreachable.code
                require(try ICMPv4Unreachable(parsing: again) == expected, "port unreachable round trip")
            } catch {
                fatalError("port unreachable round trip threw \(error)")
            }
        }
        return
    }
    guard let echo = try? ICMPv4Echo(parsing: icmp, verifyingChecksum: false) else { return }
    let data = icmp.payload
    var message = [UInt8](repeating: 0, count: ICMPv4Packet.headerLength + data.count)
    message.withUnsafeMutableBytes { buffer in
        do throws(WireError) {
            try echo.reply.emit(into: buffer, data: data)
            let again = try ICMPv4Packet(checking: UnsafeRawBufferPointer(buffer))
            require(try ICMPv4Echo(parsing: again) == echo.reply, "ICMP echo round trip")
            require(again.payload.elementsEqual(data), "ICMP data changed")
        } catch {
            fatalError("ICMP round trip threw \(error)")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    guard let ip = try? IPv4Packet(checking: input) else {
        roundTripTCP(input, ip: nil)
        return 0
    }
    require(ip.headerLength >= 20 && ip.headerLength <= ip.totalLength && ip.totalLength <= size, "IPv4 lengths")
    consume(Int(ip.version) &+ Int(ip.dscp) &+ Int(ip.ecn) &+ Int(ip.identification) &+ Int(ip.fragmentOffset)
        &+ Int(ip.timeToLive) &+ Int(ip.headerChecksum) &+ Int(ip.source.rawValue) &+ ip.options.count
        &+ ip.trailingByteCount &+ (ip.isFragment ? 1 : 0) &+ (ip.reservedFlag ? 1 : 0))
    guard let header = try? IPv4Header(parsing: ip, verifyingChecksum: false) else {
        fatalError("an unverified IPv4 parse cannot fail")
    }
    if let verified = try? IPv4Header(parsing: ip) {
        require(verified == header && ip.isChecksumValid, "IPv4 verification changed the header")
    }
    // The header alone: emit and re-parse.
    var copy = [UInt8](repeating: 0, count: 20 + header.payloadLength)
    copy.withUnsafeMutableBytes { buffer in
        do throws(WireError) {
            try header.emit(into: buffer)
            require(try IPv4Header(parsing: IPv4Packet(checking: UnsafeRawBufferPointer(buffer))) == header, "IPv4 round trip")
        } catch {
            fatalError("IPv4 round trip threw \(error)")
        }
    }
    guard !ip.isFragment else { return 0 }
    switch ip.protocol {
    case .tcp: roundTripTCP(ip.payload, ip: header)
    case .udp: roundTripUDP(ip.payload, ip: header)
    case .icmp: roundTripICMP(ip.payload)
    default: break
    }
    return 0
}
