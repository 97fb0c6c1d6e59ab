/// Received data, typed by the socket's `mode` at the moment it was delivered.
///
/// OTP gives a binary or a list of bytes; here both carry the same bytes and the case tells the
/// mode. ``bytes`` works for both; ``text`` reads the bytes as Latin-1, as an Erlang charlist would.
public enum Payload: Hashable, Sendable {
    /// `{mode, binary}`.
    case binary([UInt8])
    /// `{mode, list}` (OTP's default).
    case list([UInt8])

    /// The received bytes, whatever the mode.
    public var bytes: [UInt8] {
        switch self {
        case .binary(let b), .list(let b): return b
        }
    }

    /// The number of bytes.
    public var count: Int { bytes.count }

    /// The mode this payload was delivered in.
    public var mode: Mode {
        switch self {
        case .binary: return .binary
        case .list: return .list
        }
    }

    /// The bytes as text, one character per byte (Latin-1), like an Erlang charlist.
    public var text: String {
        var s = String()
        s.unicodeScalars.append(contentsOf: bytes.map { Unicode.Scalar($0) })
        return s
    }

    /// Wraps bytes in the given mode.
    public init(_ bytes: [UInt8], mode: Mode) {
        switch mode {
        case .binary: self = .binary(bytes)
        case .list: self = .list(bytes)
        }
    }
}

/// How received data is typed: OTP's `{mode, binary | list}`.
public enum Mode: Hashable, Sendable {
    /// `binary`: data arrives as ``Payload/binary(_:)``.
    case binary
    /// `list` (OTP's default): data arrives as ``Payload/list(_:)``.
    case list
}
