/// An IP address the module reported (a resolved name, or its own address).
public enum ModemAddress: Equatable, Sendable {
    /// An IPv4 address, most significant octet first: `1.2.3.4` is `ipv4(0x0102_0304)`.
    case ipv4(UInt32)
    /// An IPv6 address as two 64-bit halves, most significant first.
    case ipv6(high: UInt64, low: UInt64)

    /// Parses dotted-quad IPv4 or RFC 4291 text IPv6 (with `::`, and an embedded IPv4 tail).
    /// Quotes around the text are tolerated, since firmware versions differ on them.
    /// Returns nil for anything else.
    public init?(text line: ATLine) {
        var start = 0
        var end = line.count
        if end - start >= 2, line.bytes[start] == ASCII.quote, line.bytes[end - 1] == ASCII.quote {
            start += 1
            end -= 1
        }
        let bytes = UnsafeRawBufferPointer(rebasing: line.bytes[start..<end])
        if let v4 = ModemAddress.parseIPv4(bytes) {
            self = .ipv4(v4)
        } else if let (high, low) = ModemAddress.parseIPv6(bytes) {
            self = .ipv6(high: high, low: low)
        } else {
            return nil
        }
    }

    static func parseIPv4(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
        var value: UInt32 = 0
        var octet = 0
        var digits = 0
        var parts = 0
        for b in bytes {
            if let d = ASCII.digit(b) {
                octet = octet * 10 + Int(d)
                digits += 1
                if digits > 3 || octet > 255 { return nil }
            } else if b == ASCII.dot {
                guard digits > 0, parts < 3 else { return nil }
                value = value << 8 | UInt32(octet)
                parts += 1
                octet = 0
                digits = 0
            } else {
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return value << 8 | UInt32(octet)
    }

    static func parseIPv6(_ bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64)? {
        // Groups before and after a "::", kept as 16-bit words in two fixed halves.
        var head: (UInt64, UInt64) = (0, 0)
        var tail: (UInt64, UInt64) = (0, 0)
        var headCount = 0
        var tailCount = 0
        var sawGap = false
        var i = 0
        let n = bytes.count
        guard n >= 2 else { return nil }
        if bytes[0] == ASCII.colon {
            guard bytes[1] == ASCII.colon else { return nil }
            sawGap = true
            i = 2
        }
        func push(_ word: UInt64, _ words: inout (UInt64, UInt64), _ count: inout Int) -> Bool {
            guard count < 8 else { return false }
            words.0 = words.0 << 16 | words.1 >> 48
            words.1 = words.1 << 16 | word
            count += 1
            return true
        }
        while i < n {
            // An IPv4 tail: the rest has a dot and takes two words.
            var j = i
            var hasDot = false
            while j < n, bytes[j] != ASCII.colon {
                if bytes[j] == ASCII.dot { hasDot = true }
                j += 1
            }
            if hasDot {
                guard j == n, let v4 = parseIPv4(UnsafeRawBufferPointer(rebasing: bytes[i..<n])) else { return nil }
                let ok = sawGap
                    ? push(UInt64(v4 >> 16), &tail, &tailCount) && push(UInt64(v4 & 0xFFFF), &tail, &tailCount)
                    : push(UInt64(v4 >> 16), &head, &headCount) && push(UInt64(v4 & 0xFFFF), &head, &headCount)
                guard ok else { return nil }
                i = n
                break
            }
            guard j > i, j - i <= 4 else { return nil }
            var word: UInt64 = 0
            for k in i..<j {
                guard let h = ASCII.hexDigit(bytes[k]) else { return nil }
                word = word << 4 | UInt64(h)
            }
            let ok = sawGap ? push(word, &tail, &tailCount) : push(word, &head, &headCount)
            guard ok else { return nil }
            i = j
            if i < n {
                // bytes[i] is a colon.
                i += 1
                if i < n, bytes[i] == ASCII.colon {
                    guard !sawGap else { return nil }
                    sawGap = true
                    i += 1
                } else if i == n {
                    return nil  // a trailing single colon
                }
            }
        }
        let total = headCount + tailCount
        guard sawGap ? total <= 7 : total == 8 else { return nil }
        // Shift the head words to the top, the tail words stay at the bottom.
        var words: (UInt64, UInt64) = head
        for _ in 0..<(8 - headCount) {
            words.0 = words.0 << 16 | words.1 >> 48
            words.1 = words.1 << 16
        }
        return (words.0 | tail.0, words.1 | tail.1)
    }
}

/// An address and port the module named or is told (a datagram's sender or destination).
public struct ModemEndpoint: Equatable, Sendable {
    /// The IP address.
    public var address: ModemAddress
    /// The port, 0...65535.
    public var port: Int

    /// The endpoint `address`:`port`.
    public init(address: ModemAddress, port: Int) {
        self.address = address
        self.port = port
    }

    /// Parses `<ip>:<port>` (SIMCom's form; the last colon splits, so an IPv6 address works).
    /// Nil unless the address parses and the port is 0...65535.
    public init?(colonSeparated line: ATLine) {
        var split = -1
        var i = line.count - 1
        while i >= 0 {
            if line.bytes[i] == ASCII.colon {
                split = i
                break
            }
            i -= 1
        }
        guard split > 0 else { return nil }
        let host = ATLine(UnsafeRawBufferPointer(rebasing: line.bytes[0..<split]))
        let portText = ATLine(UnsafeRawBufferPointer(rebasing: line.bytes[(split + 1)...]))
        guard let address = ModemAddress(text: host), let port = ModemEndpoint.port(portText) else { return nil }
        self.init(address: address, port: port)
    }

    /// Parses a quoted or bare address and a port given as separate fields.
    public init?(address text: ATLine, port: Int?) {
        guard let address = ModemAddress(text: text), let port, port >= 0, port <= 65_535 else { return nil }
        self.init(address: address, port: port)
    }

    /// A decimal port 0...65535 (at most 5 digits, nothing else).
    static func port(_ text: ATLine) -> Int? {
        guard text.count >= 1, text.count <= 5 else { return nil }
        var value = 0
        for b in text.bytes {
            guard let d = ASCII.digit(b) else { return nil }
            value = value * 10 + Int(d)
        }
        return value <= 65_535 ? value : nil
    }
}
