import GenTCPWire
import Testing

/// Vectors from FIPS 180-4's examples (and the NIST one-million-'a' message).
@Suite("SHA-256")
struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func vectors(_ message: String, _ digest: String) {
        var h = SHA256()
        h.update(Array(message.utf8))
        #expect(h.hexDigest() == digest)
    }

    @Test func millionAsInUnevenPieces() {
        var h = SHA256()
        let chunk = [UInt8](repeating: 0x61, count: 999)
        var left = 1_000_000
        var useRaw = false
        while left > 0 {
            let n = min(left, chunk.count - (left % 7))
            if useRaw { chunk.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) } }
            else { h.update(chunk[0..<n]) }
            useRaw.toggle()
            left -= n
        }
        #expect(h.hexDigest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
