/// The one error `GenTCPModem` throws, typed: a ``ModemReason`` and a static note on what exactly
/// was wrong (`"host contains a quote, comma, backslash or control byte"`).
///
/// Thrown before anything is produced: a rejected command leaves no bytes in the output and no
/// state behind.
public struct ModemError: Error, Sendable, Equatable {
    /// Why the call failed.
    public var reason: ModemReason
    /// A short static explanation, or empty.
    public var detail: StaticString

    /// An error with a reason and an optional note.
    public init(_ reason: ModemReason, _ detail: StaticString = "") {
        self.reason = reason
        self.detail = detail
    }

    /// Errors compare by reason only; the detail is for people.
    public static func == (lhs: ModemError, rhs: ModemError) -> Bool { lhs.reason == rhs.reason }
}
