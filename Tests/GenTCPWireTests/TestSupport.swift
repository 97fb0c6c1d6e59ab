import GenTCPWire

/// Bytes from a hex string; spaces are ignored. Test vectors only: traps on bad input.
func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8.filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") })
    precondition(digits.count % 2 == 0, "odd hex string")
    func nibble(_ c: UInt8) -> UInt8 {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: preconditionFailure("not a hex digit")
        }
    }
    return stride(from: 0, to: digits.count, by: 2).map { nibble(digits[$0]) << 4 | nibble(digits[$0 + 1]) }
}

/// Lowercase hex of bytes, for readable expectation failures.
func hexString(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// Runs `body` with a buffer of `count` bytes (filled with `fill`) and returns what it left there.
func withScratch<R>(
    count: Int, fill: UInt8 = 0xEE, _ body: (UnsafeMutableRawBufferPointer) throws -> R
) rethrows -> (R, [UInt8]) {
    var storage = [UInt8](repeating: fill, count: count)
    let result = try storage.withUnsafeMutableBytes { try body($0) }
    return (result, storage)
}

/// The `WireError` `body` throws, or nil when it returns. Any other error fails the test run.
func wireError<R>(_ body: () throws -> R) -> WireError? {
    do {
        _ = try body()
        return nil
    } catch let error as WireError {
        return error
    } catch {
        preconditionFailure("unexpected error \(error)")
    }
}

/// A small deterministic generator (SplitMix64), so random-looking tests replay exactly.
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

/// Packets captured from Linux 6.18 on a TUN interface by `tools/fuzz/kernel-vectors.py`, which
/// verified every checksum with its own RFC 1071 code. `*Python` ones were built by that script
/// (and accepted by the kernel, which answered them). Host 10.9.0.1, peer 10.9.0.2, MTU 576.
enum Captured {
    static let host = IPv4Address(10, 9, 0, 1)
    static let peer = IPv4Address(10, 9, 0, 2)

    /// Kernel SYN: MSS 536, SACK-permitted, timestamps, NOP, window scale 10.
    static let tcpSYN = hex("""
        4500003c54c840004006d1df0a0900010a090002af221e61980ac8cb00000000a002ff7053ab0000\
        020402180402080a412274ec000000000103030a
        """)
    /// SYN-ACK built by the script: MSS 1400, SACK-permitted, timestamps, NOP, window scale 7.
    static let tcpSYNACKPython = hex("""
        4500003c12344000400614740a0900020a0900011e61af22000f4240980ac8cca012fffffccc0000\
        020405780402080a00001092412274ec01030307
        """)
    /// Kernel ACK completing the handshake, timestamps only.
    static let tcpACK = hex("""
        4500003454c940004006d1e60a0900010a090002af221e61980ac8cc000f4241801000402b1d0000\
        0101080a412274ec00001092
        """)
    /// Kernel PSH|ACK with 13 bytes of data (`hello `, 0xC0, 0xDB, ` slip`).
    static let tcpData = hex("""
        4500004154ca40004006d1d80a0900010a090002af221e61980ac8cc000f424180180040292b0000\
        0101080a4122751e0000109268656c6c6f20c0db20736c6970
        """)
    /// Kernel duplicate ACK with timestamps and one SACK block after out-of-order data.
    static let tcpSACK = hex("""
        4500004054cb40004006d1d80a0900010a090002af221e61980ac8d9000f4241b01000406f2b0000\
        0101080a4122751f000010920101050a000f42a5000f42d7
        """)
    /// Kernel RST|ACK answering a SYN to a closed port.
    static let tcpRST = hex("4500002800004000400626bc0a0900010a090002000915b3000000000000030a5014000082f60000")
    /// Kernel SYN with timestamps disabled: MSS, NOP NOP SACK-permitted, NOP window scale.
    static let tcpSYNNoTimestamps = hex("""
        45000034685c40004006be530a0900010a090002e1f81e6244308d20000000008002ff708d790000\
        02040218010104020103030a
        """)
    /// The 56 data bytes of both echo packets: 0x00 ... 0x37.
    static let echoData = (0..<56).map { UInt8($0) }
    /// Echo request built by the script, identifier 0x4242, sequence 1.
    static let icmpEchoRequestPython = hex("4500005412340000400154610a0900020a0900010800bea942420001") + echoData
    /// The kernel's echo reply.
    static let icmpEchoReply = hex("450000548ba900004001daeb0a0900010a0900020000c6a942420001") + echoData
    /// Kernel UDP datagram, 46234 → 9, `udp over slip`.
    static let udp = hex("45000029635c40004011c3530a0900010a090002b49a000900157fc1756470206f76657220736c6970")
    /// Kernel UDP datagram with IPv4 options NOP NOP NOP EOL (IHL 6), `with options`.
    static let udpWithIPOptions = hex("""
        4600002c635d40004011c04e0a0900010a09000201010100c581000a0014d18d77697468206f7074696f6e73
        """)
    /// The kernel's first fragment of a 1008-byte UDP datagram (data i & 0xFF for i in 0..<1000):
    /// MF, offset 0, 572 bytes, the UDP header and data bytes 0..<544.
    static let fragment1 = hex("4500023c635e20004011e13e0a0900010a090002a955000b03f0a915")
        + (0..<544).map { UInt8(truncatingIfNeeded: $0) }
    /// The second fragment: offset 552, last, 476 bytes, data bytes 544..<1000.
    static let fragment2 = hex("450001dc635e00454011015a0a0900010a090002")
        + (544..<1000).map { UInt8(truncatingIfNeeded: $0) }
}
