/// Builds one AT command line into a fixed buffer. Dialects use it; it refuses anything that
/// could inject a second command or break out of a quoted parameter.
public struct CommandWriter {
    var storage: [UInt8]
    /// The number of bytes written so far.
    public private(set) var count = 0

    init(capacity: Int) {
        storage = [UInt8](repeating: 0, count: capacity)
    }

    mutating func clear() { count = 0 }

    /// Appends fixed text.
    public mutating func append(_ text: StaticString) throws(ModemError) {
        let n = text.utf8CodeUnitCount
        guard n <= storage.count - count else { throw ModemError(.invalidArgument, "command too long") }
        let p = text.utf8Start
        for i in 0..<n { storage[count + i] = p[i] }
        count += n
    }

    /// Appends a non-negative decimal number.
    public mutating func append(decimal value: Int) throws(ModemError) {
        guard value >= 0 else { throw ModemError(.invalidArgument, "negative number") }
        var n = 1
        var v = value / 10
        while v > 0 {
            n += 1
            v /= 10
        }
        guard n <= storage.count - count else { throw ModemError(.invalidArgument, "command too long") }
        v = value
        for i in stride(from: count + n - 1, through: count, by: -1) {
            storage[i] = UInt8(v % 10) + 0x30
            v /= 10
        }
        count += n
    }

    /// Appends `"value"` after checking `value`: at most `maxLength` bytes, not empty unless
    /// `allowEmpty`, and free of `"`, `,`, `\`, CR, LF, tab, other control bytes and DEL.
    public mutating func append(quoted value: String, maxLength: Int, allowEmpty: Bool = false) throws(ModemError) {
        let length = try ModemValidation.check(value, maxLength: maxLength, allowEmpty: allowEmpty)
        guard length + 2 <= storage.count - count else {
            throw ModemError(.invalidArgument, "command too long")
        }
        storage[count] = ASCII.quote
        count += 1
        ModemValidation.withUTF8(value) { bytes in
            for b in bytes {
                storage[count] = b
                count += 1
            }
        }
        storage[count] = ASCII.quote
        count += 1
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }
}

/// The checks on strings that go into commands.
public enum ModemValidation {
    /// Throws ``ModemReason/invalidArgument`` unless `value` is safe inside a quoted AT parameter;
    /// returns its length in bytes.
    @discardableResult
    public static func check(_ value: String, maxLength: Int, allowEmpty: Bool = false) throws(ModemError) -> Int {
        // 0: fine, 1: too long, 2: a forbidden byte.
        let verdict = withUTF8(value) { bytes -> Int in
            if bytes.count > maxLength { return 1 }
            for b in bytes where b == ASCII.quote || b == ASCII.comma || b == ASCII.backslash || b < 0x20 || b == ASCII.delete {
                return 2
            }
            return 0
        }
        switch verdict {
        case 1: throw ModemError(.invalidArgument, "string longer than the dialect allows")
        case 2: throw ModemError(.invalidArgument, "string contains a quote, comma, backslash or control byte")
        default: break
        }
        let length = withUTF8(value) { $0.count }
        if length == 0, !allowEmpty { throw ModemError(.invalidArgument, "empty string") }
        return length
    }

    /// The string's UTF-8 bytes. A native string is already contiguous UTF-8; only a bridged
    /// string on a host needs the copy, and the embedded build leaves that path (and the
    /// Unicode machinery it drags in) out.
    static func withUTF8<R>(_ value: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let result = value.utf8.withContiguousStorageIfAvailable(body) { return result }
        #if hasFeature(Embedded)
        return body(UnsafeBufferPointer(start: nil, count: 0))
        #else
        let bytes = Array(value.utf8)
        return bytes.withUnsafeBufferPointer(body)
        #endif
    }

}

extension CommandWriter {
    /// Writes `<link>,` for a multiplexed module (ESP-AT and SIM800 with CIPMUX=1); a module in
    /// single-link mode has only link 0 and takes no prefix.
    mutating func appendLinkPrefix(_ link: Int, multiplexed: Bool) throws(ModemError) {
        if multiplexed {
            try append(decimal: link)
            try append(",")
        } else if link != 0 {
            throw ModemError(.invalidArgument, "only link 0 before multiplexing is on")
        }
    }
}

extension CommandWriter {
    /// Appends one byte (internal: only digits, dots, colons and hex letters come here).
    mutating func appendByte(_ byte: UInt8) throws(ModemError) {
        guard count < storage.count else { throw ModemError(.invalidArgument, "command too long") }
        storage[count] = byte
        count += 1
    }

    /// Appends `address` as text: dotted IPv4, or IPv6 as eight hex groups (no `::`
    /// shortening, which every parser takes).
    public mutating func append(address: ModemAddress) throws(ModemError) {
        switch address {
        case .ipv4(let v):
            for i in 0..<4 {
                if i > 0 { try appendByte(ASCII.dot) }
                try append(decimal: Int((v >> UInt32(24 - 8 * i)) & 0xFF))
            }
        case .ipv6(let high, let low):
            for i in 0..<8 {
                if i > 0 { try appendByte(ASCII.colon) }
                let word = i < 4 ? high >> UInt64(48 - 16 * i) : low >> UInt64(48 - 16 * (i - 4))
                let group = UInt16(truncatingIfNeeded: word)
                var started = false
                for shift in stride(from: 12, through: 0, by: -4) {
                    let nibble = UInt8((group >> UInt16(shift)) & 0xF)
                    if nibble == 0 && !started && shift > 0 { continue }
                    started = true
                    try appendByte(nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10)
                }
            }
        }
    }

    /// Appends `"<address>",<port>` (a datagram's destination).
    public mutating func append(endpoint: ModemEndpoint) throws(ModemError) {
        guard endpoint.port >= 0 && endpoint.port <= 65_535 else { throw ModemError(.invalidArgument, "port out of range") }
        try appendByte(ASCII.quote)
        try append(address: endpoint.address)
        try appendByte(ASCII.quote)
        try appendByte(ASCII.comma)
        try append(decimal: endpoint.port)
    }
}
