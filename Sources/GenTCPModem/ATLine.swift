/// A borrowed view of one line the modem sent, without its line ending and trimmed of spaces.
///
/// Valid only inside the closure that hands it out (``ATLexer/withLine(_:)``,
/// ``ModemEngine/withLastLine(_:)``). All helpers are bounds-checked and never trap on any
/// content; numbers saturate instead of overflowing.
public struct ATLine {
    /// The line's bytes.
    public let bytes: UnsafeRawBufferPointer

    /// A view of `bytes`, which must stay valid while the line is used.
    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// The number of bytes.
    public var count: Int { bytes.count }

    /// The byte at `index`, or nil past the end.
    public func byte(at index: Int) -> UInt8? {
        index >= 0 && index < bytes.count ? bytes[index] : nil
    }

    /// Whether the line is exactly `text`.
    public func equals(_ text: StaticString) -> Bool {
        text.utf8CodeUnitCount == bytes.count && hasPrefix(text)
    }

    /// Whether the line starts with `text`.
    public func hasPrefix(_ text: StaticString) -> Bool {
        let n = text.utf8CodeUnitCount
        guard n <= bytes.count else { return false }
        let p = text.utf8Start
        for i in 0..<n where bytes[i] != p[i] { return false }
        return true
    }

    /// Whether the line ends with `text`.
    public func hasSuffix(_ text: StaticString) -> Bool {
        let n = text.utf8CodeUnitCount
        guard n <= bytes.count else { return false }
        let p = text.utf8Start
        let offset = bytes.count - n
        for i in 0..<n where bytes[offset + i] != p[i] { return false }
        return true
    }

    /// Whether the line is exactly the given bytes.
    public func equals(_ other: UnsafeRawBufferPointer) -> Bool {
        guard other.count == bytes.count else { return false }
        for i in 0..<bytes.count where bytes[i] != other[i] { return false }
        return true
    }

    /// A scanner over the comma-separated fields after the first `prefixLength` bytes.
    public func fields(after prefixLength: Int) -> ATFields {
        ATFields(bytes, start: min(max(prefixLength, 0), bytes.count))
    }

    /// A scanner over the fields after `prefix`, or nil when the line does not start with it.
    public func fields(afterPrefix prefix: StaticString) -> ATFields? {
        hasPrefix(prefix) ? fields(after: prefix.utf8CodeUnitCount) : nil
    }
}

/// Reads comma-separated AT parameters leniently: spaces around values are skipped, strings may be
/// quoted or not, numbers may be empty (``nextInteger()`` gives nil and still moves on).
public struct ATFields {
    let bytes: UnsafeRawBufferPointer
    /// The index of the next unread byte.
    public private(set) var position: Int

    init(_ bytes: UnsafeRawBufferPointer, start: Int) {
        self.bytes = bytes
        self.position = start
    }

    /// Whether every byte has been read (trailing spaces count as read).
    public var isAtEnd: Bool {
        var i = position
        while i < bytes.count, bytes[i] == ASCII.space { i += 1 }
        return i >= bytes.count
    }

    mutating func skipSpaces() {
        while position < bytes.count, bytes[position] == ASCII.space { position += 1 }
    }

    /// After a value: skips spaces and one comma. Returns false when something else follows.
    mutating func finishField() -> Bool {
        skipSpaces()
        if position >= bytes.count { return true }
        if bytes[position] == ASCII.comma {
            position += 1
            return true
        }
        return false
    }

    /// The next field as a decimal integer (an optional `-` and digits). Nil when the field is
    /// empty or not a number; a malformed field is still skipped up to the next comma.
    /// Values saturate at ±(2^31 - 1), so an absurd number never traps.
    public mutating func nextInteger() -> Int? {
        skipSpaces()
        var negative = false
        if position < bytes.count, bytes[position] == ASCII.minus {
            negative = true
            position += 1
        }
        var value = 0
        var digits = 0
        while position < bytes.count, let d = ASCII.digit(bytes[position]) {
            if value < ATFields.saturation { value = value * 10 + Int(d) }
            if value > ATFields.saturation { value = ATFields.saturation }
            digits += 1
            position += 1
        }
        if finishField() { return digits > 0 ? (negative ? -value : value) : nil }
        // Not a clean number: skip the rest of the field.
        skipField()
        return nil
    }

    /// The next field's bytes with surrounding quotes removed (quoted fields may contain commas).
    public mutating func nextString() -> ATLine {
        skipSpaces()
        if position < bytes.count, bytes[position] == ASCII.quote {
            let start = position + 1
            var end = start
            while end < bytes.count, bytes[end] != ASCII.quote { end += 1 }
            let slice = ATLine(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
            position = min(end + 1, bytes.count)
            if !finishField() { skipField() }
            return slice
        }
        let start = position
        while position < bytes.count, bytes[position] != ASCII.comma { position += 1 }
        var end = position
        while end > start, bytes[end - 1] == ASCII.space { end -= 1 }
        if position < bytes.count { position += 1 }
        return ATLine(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
    }

    /// The next unread byte after spaces, or nil at the end.
    var nextByte: UInt8? {
        var i = position
        while i < bytes.count, bytes[i] == ASCII.space { i += 1 }
        return i < bytes.count ? bytes[i] : nil
    }

    /// Whether the next field holds a dot, a colon or a quote (an address, not a number).
    var fieldHasAddressPunctuation: Bool {
        var i = position
        while i < bytes.count, bytes[i] != ASCII.comma {
            let b = bytes[i]
            if b == ASCII.dot || b == ASCII.colon || b == ASCII.quote { return true }
            i += 1
        }
        return false
    }

    /// Skips to just after the next comma outside quotes (or to the end).
    public mutating func skipField() {
        var quoted = false
        while position < bytes.count {
            let b = bytes[position]
            position += 1
            if b == ASCII.quote { quoted.toggle() } else if b == ASCII.comma, !quoted { return }
        }
    }

    static let saturation = 2_147_483_647
}

/// Byte constants and classification, ASCII only (no Unicode tables needed on a microcontroller).
enum ASCII {
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let quote: UInt8 = 0x22
    static let comma: UInt8 = 0x2C
    static let minus: UInt8 = 0x2D
    static let dot: UInt8 = 0x2E
    static let colon: UInt8 = 0x3A
    static let greaterThan: UInt8 = 0x3E
    static let backslash: UInt8 = 0x5C
    static let plus: UInt8 = 0x2B
    static let delete: UInt8 = 0x7F

    static func digit(_ b: UInt8) -> UInt8? { b >= 0x30 && b <= 0x39 ? b - 0x30 : nil }

    static func hexDigit(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }

    /// Bytes that never belong in a text line: C0 controls except tab, and DEL.
    static func isControl(_ b: UInt8) -> Bool { (b < 0x20 && b != tab) || b == delete }
}
