// Host smoke test of GenTCPWire built in Embedded Swift mode (tools/check-embedded.sh builds and
// runs it): SLIP-encodes an emitted TCP SYN, decodes it back in small chunks, parses it with
// checksum verification, and parses a SYN captured from Linux. Exits 1 on the first mismatch.
import GenTCPWire

@_silgen_name("exit")
func cExit(_ status: Int32) -> Never

func check(_ condition: Bool, _ what: StaticString) {
    if !condition {
        print("embedded smoke: FAILED: \(what)")
        cExit(1)
    }
}

/// A SYN captured from Linux 6.18 (see Tests/GenTCPWireTests/TestSupport.swift): 10.9.0.1:44834 →
/// 10.9.0.2:7777, MSS 536, SACK-permitted, timestamps, window scale 10.
let kernelSYN: [UInt8] = [
    0x45, 0x00, 0x00, 0x3c, 0x54, 0xc8, 0x40, 0x00, 0x40, 0x06, 0xd1, 0xdf, 0x0a, 0x09, 0x00, 0x01,
    0x0a, 0x09, 0x00, 0x02, 0xaf, 0x22, 0x1e, 0x61, 0x98, 0x0a, 0xc8, 0xcb, 0x00, 0x00, 0x00, 0x00,
    0xa0, 0x02, 0xff, 0x70, 0x53, 0xab, 0x00, 0x00, 0x02, 0x04, 0x02, 0x18, 0x04, 0x02, 0x08, 0x0a,
    0x41, 0x22, 0x74, 0xec, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
]

// Array's withUnsafe(Mutable)Bytes rethrow untyped errors, which Embedded Swift refuses: carry
// the typed error out through a Result instead.
func withBytes<R>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(WireError) -> R) throws(WireError) -> R {
    let result: Result<R, WireError> = array.withUnsafeBytes { bytes in
        do throws(WireError) { return .success(try body(bytes)) } catch { return .failure(error) }
    }
    return try result.get()
}

func withMutableBytes<R>(
    _ array: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(WireError) -> R
) throws(WireError) -> R {
    let result: Result<R, WireError> = array.withUnsafeMutableBytes { bytes in
        do throws(WireError) { return .success(try body(bytes)) } catch { return .failure(error) }
    }
    return try result.get()
}

func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> (IPv4Header, TCPHeader, Int) {
    let ip = try IPv4Packet(checking: bytes)
    let ipHeader = try IPv4Header(parsing: ip)
    let segment = try TCPPacket(checking: ip.payload)
    let tcpHeader = try TCPHeader(parsing: segment, source: ip.source, destination: ip.destination)
    return (ipHeader, tcpHeader, segment.payload.count)
}

@main
struct EmbeddedSmoke {
    static func main() {
        // 1. Emit a SYN with data bytes that need SLIP escaping.
        let payload: [UInt8] = [0xC0, 0xDB, 0x41, 0xDB, 0xDC, 0xC0]
        var tcp = TCPHeader(
            sourcePort: 40000, destinationPort: 7, sequenceNumber: SequenceNumber(0xFFFF_FFF0),
            flags: [.syn, .psh], window: 4096, maximumSegmentSize: 966, windowScale: 2, sackPermitted: true,
            timestamps: TCPTimestamps(value: 0xC0DB_C0DB, echoReply: 0))
        tcp.acknowledgmentNumber = SequenceNumber(0)
        let ip = IPv4Header(
            source: IPv4Address(192, 168, 7, 1), destination: IPv4Address(192, 168, 7, 2), protocol: .tcp,
            payloadLength: tcp.headerLength + payload.count)
        var packet = [UInt8](repeating: 0, count: ip.totalLength)
        var emitted = 0
        do throws(WireError) {
            emitted = try withMutableBytes(&packet) { (buffer) throws(WireError) -> Int in
                let ipLength = try ip.emit(into: buffer)
                let tcpLength = try withBytes(payload) { (data) throws(WireError) -> Int in
                    try tcp.emit(into: UnsafeMutableRawBufferPointer(rebasing: buffer[ipLength...]), payload: data,
                                 source: ip.source, destination: ip.destination)
                }
                return ipLength + tcpLength
            }
        } catch {
            check(false, "emit threw")
        }
        check(emitted == packet.count, "emitted length")

        // 2. SLIP-encode it twice: one shot, and resumably into 3-byte pieces.
        var line = [UInt8](repeating: 0, count: SLIP.maximumEncodedLength(forFrameLength: packet.count))
        var lineLength = 0
        do throws(WireError) {
            lineLength = try withBytes(packet) { (frame) throws(WireError) -> Int in
                try withMutableBytes(&line) { (out) throws(WireError) -> Int in try SLIP.encode(frame, into: out) }
            }
        } catch {
            check(false, "SLIP.encode threw")
        }
        check(lineLength == packet.withUnsafeBytes { SLIP.encodedLength(of: $0) }, "encoded length")
        var pieces: [UInt8] = []
        var encoder = SLIPEncoder()
        var piece: [UInt8] = [0, 0, 0]
        packet.withUnsafeBytes { frame in
            while !encoder.isComplete {
                let n = piece.withUnsafeMutableBytes { encoder.encode(frame, into: $0) }
                pieces += piece[0..<n]
            }
        }
        check(pieces == Array(line[0..<lineLength]), "resumable encoder matches one-shot encoder")

        // 3. Decode in 7-byte chunks, behind some line noise and empty frames.
        let stream: [UInt8] = [0x55, 0xDB, 0x00, 0xC0, 0xC0] + line[0..<lineLength] + [0xC0]
        var decoder = SLIPDecoder(maximumFrameSize: SLIP.recommendedMaximumFrameSize)
        var frames: [[UInt8]] = []
        var at = 0
        while at < stream.count {
            let end = min(stream.count, at + 7)
            stream[at..<end].withUnsafeBytes { chunk in decoder.decode(chunk) { frames.append(Array($0)) } }
            at = end
        }
        let escapeErrors = decoder.escapeErrors
        check(frames.count == 1 && escapeErrors == 1, "one frame, one dropped noise frame")
        check(frames.first == packet, "decoded frame equals the emitted packet")

        // 4. Parse it back with checksum verification.
        do throws(WireError) {
            let (parsedIP, parsedTCP, payloadLength) = try withBytes(frames[0]) { (bytes) throws(WireError) in try parse(bytes) }
            check(parsedIP == ip, "IPv4 header round trip")
            check(parsedTCP == tcp, "TCP header round trip")
            check(payloadLength == payload.count, "payload length")
        } catch {
            check(false, "parsing the decoded frame threw")
        }

        // 5. A real kernel SYN.
        do throws(WireError) {
            let (kernelIP, kernelTCP, _) = try withBytes(kernelSYN) { (bytes) throws(WireError) in try parse(bytes) }
            check(kernelIP.source == IPv4Address(10, 9, 0, 1), "kernel SYN source")
            check(kernelTCP.sourcePort == 44834 && kernelTCP.destinationPort == 7777, "kernel SYN ports")
            check(kernelTCP.flags == .syn && kernelTCP.maximumSegmentSize == 536, "kernel SYN flags and MSS")
            check(kernelTCP.windowScale == 10 && kernelTCP.sackPermitted, "kernel SYN options")
            check(kernelTCP.timestamps == TCPTimestamps(value: 0x4122_74EC, echoReply: 0), "kernel SYN timestamps")
        } catch {
            check(false, "parsing the kernel SYN threw")
        }
        print("embedded smoke: ok (\(packet.count)-byte packet, \(lineLength) line bytes)")
    }
}
