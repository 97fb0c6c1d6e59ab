/// SHA-256 (FIPS 180-4), streaming, allocation-free after init.
///
/// Used to prove transfers byte-exact (the demo, the benchmarks, the tests) on the host and on a
/// board alike. Not constant-time and not meant for cryptographic keys.
public struct SHA256: Sendable {
    private var state: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
        (0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19)
    private var block = [UInt8](repeating: 0, count: 64)
    private var w = [UInt32](repeating: 0, count: 64)
    private var blockCount = 0
    private var totalBytes: UInt64 = 0

    /// A hash of nothing yet; feed it bytes with the `update(_:)` methods.
    public init() {}

    /// Feeds bytes.
    public mutating func update(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            block[blockCount] = byte
            blockCount += 1
            totalBytes &+= 1
            if blockCount == 64 {
                compress()
                blockCount = 0
            }
        }
    }

    /// Feeds the bytes of a raw buffer (fast path for large transfers).
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        var i = 0
        while i < buffer.count {
            if blockCount == 0 && buffer.count - i >= 64 {
                for j in 0..<64 { block[j] = buffer[i + j] }
                compress()
                i += 64
                continue
            }
            block[blockCount] = buffer[i]
            blockCount += 1
            i += 1
            if blockCount == 64 {
                compress()
                blockCount = 0
            }
        }
        totalBytes &+= UInt64(buffer.count)
    }

    /// The 32-byte digest. The hasher can be finalized more than once; it is not changed.
    public func finalize() -> [UInt8] {
        var copy = self
        let bitLength = totalBytes &* 8
        copy.block[copy.blockCount] = 0x80
        copy.blockCount += 1
        if copy.blockCount > 56 {
            while copy.blockCount < 64 { copy.block[copy.blockCount] = 0; copy.blockCount += 1 }
            copy.compress()
            copy.blockCount = 0
        }
        while copy.blockCount < 56 { copy.block[copy.blockCount] = 0; copy.blockCount += 1 }
        for k in 0..<8 { copy.block[56 + k] = UInt8(truncatingIfNeeded: bitLength >> UInt64(56 - 8 * k)) }
        copy.compress()
        var out: [UInt8] = []
        out.reserveCapacity(32)
        let s = copy.state
        for word in [s.0, s.1, s.2, s.3, s.4, s.5, s.6, s.7] {
            out.append(UInt8(word >> 24)); out.append(UInt8(word >> 16 & 0xFF))
            out.append(UInt8(word >> 8 & 0xFF)); out.append(UInt8(word & 0xFF))
        }
        return out
    }

    /// The digest as 64 lowercase hex digits.
    public func hexDigest() -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for b in finalize() { text.append(digits[Int(b >> 4)]); text.append(digits[Int(b & 0xF)]) }
        return String(decoding: text, as: UTF8.self)
    }

    /// One-shot digest of `bytes`.
    public static func hash(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var h = SHA256()
        h.update(bytes)
        return h.finalize()
    }

    private static let k: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    private mutating func compress() {
        for t in 0..<16 {
            w[t] = UInt32(block[4 * t]) << 24 | UInt32(block[4 * t + 1]) << 16
                | UInt32(block[4 * t + 2]) << 8 | UInt32(block[4 * t + 3])
        }
        for t in 16..<64 {
            let s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
            let s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
            w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = state
        for t in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = h &+ s1 &+ ch &+ SHA256.k[t] &+ w[t]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            h = g; g = f; f = e; e = d &+ t1
            d = c; c = b; b = a; a = t1 &+ t2
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d,
                 state.4 &+ e, state.5 &+ f, state.6 &+ g, state.7 &+ h)
    }

    @inline(__always)
    private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { x >> n | x << (32 - n) }
}
