import GenTCPCore
import GenTCPStack
import GenTCPWire

let hostAddress = IPv4Address(10, 0, 0, 1)
let boardAddress = IPv4Address(10, 0, 0, 2)

/// A parsed TCP segment, as sent or to be fed.
struct Segment: Equatable, CustomStringConvertible {
    var header: TCPHeader
    var payload: [UInt8] = []

    var flags: TCPFlags { header.flags }
    var seq: UInt32 { header.sequenceNumber.rawValue }
    var ack: UInt32 { header.acknowledgmentNumber.rawValue }
    var window: UInt16 { header.window }

    var description: String {
        var f = ""
        if flags.contains(.syn) { f += "S" }
        if flags.contains(.fin) { f += "F" }
        if flags.contains(.rst) { f += "R" }
        if flags.contains(.psh) { f += "P" }
        if flags.contains(.ack) { f += "." }
        return "[\(f) seq=\(seq) ack=\(ack) win=\(window) len=\(payload.count)\(header.maximumSegmentSize.map { " mss=\($0)" } ?? "")]"
    }
}

/// Builds an IPv4 datagram carrying `segment` from `source` to `destination`.
func datagram(_ segment: Segment, from source: IPv4Address = boardAddress, to destination: IPv4Address = hostAddress) -> [UInt8] {
    let tcpLength = segment.header.headerLength + segment.payload.count
    var bytes = [UInt8](repeating: 0, count: 20 + tcpLength)
    bytes.withUnsafeMutableBytes { buffer in
        let tcp = UnsafeMutableRawBufferPointer(rebasing: buffer[20...])
        segment.payload.withUnsafeBytes { payload in
            _ = try! segment.header.emit(into: tcp, payload: payload, source: source, destination: destination)
        }
        _ = try! IPv4Header(source: source, destination: destination, protocol: .tcp, payloadLength: tcpLength)
            .emit(into: buffer)
    }
    return bytes
}

/// Parses a datagram the stack sent.
func parseSegment(_ bytes: [UInt8]) -> Segment? {
    bytes.withUnsafeBytes { raw in
        guard let ip = try? IPv4Packet(checking: raw), ip.isChecksumValid, ip.protocol == .tcp,
              let tcp = try? TCPPacket(checking: ip.payload),
              let header = try? TCPHeader(parsing: tcp, source: ip.source, destination: ip.destination)
        else { return nil }
        return Segment(header: header, payload: Array(tcp.payload))
    }
}

/// A peer-side segment from the board's port 5000 to our port 80 (override as needed).
func peer(
    _ flags: TCPFlags, seq: UInt32, ack: UInt32 = 0, window: UInt16 = 8192, mss: UInt16? = nil,
    data: [UInt8] = [], from sourcePort: UInt16 = 5000, to destinationPort: UInt16 = 80
) -> Segment {
    Segment(
        header: TCPHeader(
            sourcePort: sourcePort, destinationPort: destinationPort, sequenceNumber: SequenceNumber(seq),
            acknowledgmentNumber: SequenceNumber(ack), flags: flags, window: window, maximumSegmentSize: mss),
        payload: data)
}

/// A stack driven by hand: feed segments at given times, collect what it sends.
struct Harness: ~Copyable {
    var stack: Stack
    var now: Int64 = 0

    init(mtu: Int = 1006, seed: UInt64 = 1, maximumConnections: Int = 4, dedicatedLink: Bool = false,
         local: IPv4Address = hostAddress, peer: IPv4Address = boardAddress) {
        stack = Stack(configuration: StackConfiguration(
            localAddress: local, peerAddress: peer, mtu: mtu, maximumConnections: maximumConnections,
            seed: seed, dedicatedLink: dedicatedLink))
    }

    /// Feeds one segment at time `at` (default: the current time).
    mutating func feed(_ segment: Segment, at time: Int64? = nil) {
        if let time { now = time }
        let bytes = datagram(segment)
        bytes.withUnsafeBytes { stack.receive($0, now: MillisecondInstant(milliseconds: now)) }
    }

    mutating func feedRaw(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { stack.receive($0, now: MillisecondInstant(milliseconds: now)) }
    }

    /// Every datagram the stack has ready at `now`, raw.
    mutating func drainRaw() -> [[UInt8]] {
        var out: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 1500)
        while true {
            let n = buffer.withUnsafeMutableBytes { stack.transmit(into: $0, now: MillisecondInstant(milliseconds: now)) }
            guard let n else { break }
            out.append(Array(buffer[0..<n]))
        }
        return out
    }

    /// Every segment the stack has ready at `now`.
    mutating func drain() -> [Segment] {
        drainRaw().compactMap(parseSegment)
    }

    /// Advances time through every deadline up to `time` and returns what was sent, with the
    /// time each went out.
    mutating func run(until time: Int64) -> [(Int64, Segment)] {
        var out: [(Int64, Segment)] = drain().map { (now, $0) }
        while let deadline = stack.poll(now: MillisecondInstant(milliseconds: now))?.milliseconds, deadline <= time {
            now = max(now, deadline)
            out += drain().map { (now, $0) }
        }
        now = time
        _ = stack.poll(now: MillisecondInstant(milliseconds: now))
        out += drain().map { (now, $0) }
        return out
    }

    mutating func events() -> [StackEvent] {
        var out: [StackEvent] = []
        while let event = stack.nextEvent() { out.append(event) }
        return out
    }

    mutating func send(_ connection: ConnectionHandle, _ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { (try? stack.send(connection, $0)) ?? -1 }
    }

    mutating func read(_ connection: ConnectionHandle, max: Int = 65536) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        let result = buffer.withUnsafeMutableBytes { try? stack.recv(connection, into: $0) }
        if case .data(let n) = result { return Array(buffer[0..<n]) }
        return []
    }
}

/// Deterministic generator for the channel.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    var out = [UInt8](repeating: 0, count: count)
    var i = 0
    while i < count {
        var word = rng.next()
        for _ in 0..<8 where i < count {
            out[i] = UInt8(truncatingIfNeeded: word)
            word >>= 8
            i += 1
        }
    }
    return out
}
