import GenTCPTLS

// What the real-peer TLS tests exchange and how they read it.

/// Reads `socket` (passive) until the peer ends the stream; returns the bytes and the error
/// that ended it (`closed` after a close_notify, `truncated` after a bare FIN, an alert...).
public func readToEnd(_ socket: Socket, timeout: Timeout = 120_000) async -> (bytes: [UInt8], end: SocketError) {
    var bytes: [UInt8] = []
    while true {
        do throws(SocketError) {
            bytes += try await socket.recv(0, timeout: timeout).bytes
        } catch {
            return (bytes, error)
        }
    }
}

/// `count` bytes of the tests' pattern: byte i is i mod 251 (a prime, so records of 16384 bytes
/// or any power of two never line up with it). The OTP peer's `sendpattern` sends the same.
public func tlsPattern(_ count: Int) -> [UInt8] {
    (0..<count).map { UInt8($0 % 251) }
}

/// Lower-case hex, two digits a byte, as the OTP peer prints data and digests.
public func hexString(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef")
    var text = ""
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 15)])
    }
    return text
}
