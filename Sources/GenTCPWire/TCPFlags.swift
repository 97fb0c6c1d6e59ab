/// The eight TCP control bits of byte 13 (RFC 9293 §3.1, RFC 3168 for ECE and CWR).
public struct TCPFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// No more data from sender.
    public static let fin = TCPFlags(rawValue: 0x01)
    /// Synchronize sequence numbers.
    public static let syn = TCPFlags(rawValue: 0x02)
    /// Reset the connection.
    public static let rst = TCPFlags(rawValue: 0x04)
    /// Push function.
    public static let psh = TCPFlags(rawValue: 0x08)
    /// The acknowledgment number is significant.
    public static let ack = TCPFlags(rawValue: 0x10)
    /// The urgent pointer is significant.
    public static let urg = TCPFlags(rawValue: 0x20)
    /// ECN-Echo (RFC 3168).
    public static let ece = TCPFlags(rawValue: 0x40)
    /// Congestion Window Reduced (RFC 3168).
    public static let cwr = TCPFlags(rawValue: 0x80)
}
