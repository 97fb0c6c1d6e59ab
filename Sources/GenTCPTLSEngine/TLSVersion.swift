import COpenSSL

/// A TLS protocol version the engine can negotiate: TLS 1.2 or TLS 1.3.
///
/// Older versions are not offered at all. Versions compare in protocol order (`.v1_2 < .v1_3`).
public enum TLSVersion: Int, Comparable, Sendable, CaseIterable {
    /// TLS 1.2 (RFC 5246), `tlsv1.2` in OTP's `versions` option.
    case v1_2 = 0x0303
    /// TLS 1.3 (RFC 8446), `tlsv1.3` in OTP's `versions` option.
    case v1_3 = 0x0304

    /// The version as OTP's ssl spells it: `tlsv1.2` or `tlsv1.3`.
    public var otpName: String {
        switch self {
        case .v1_2: "tlsv1.2"
        case .v1_3: "tlsv1.3"
        }
    }

    /// Orders versions oldest first.
    public static func < (lhs: TLSVersion, rhs: TLSVersion) -> Bool { lhs.rawValue < rhs.rawValue }

    /// OpenSSL's number for the version (`TLS1_2_VERSION`, `TLS1_3_VERSION`).
    var openSSLValue: Int32 {
        switch self {
        case .v1_2: gentcp_tls_version_1_2()
        case .v1_3: gentcp_tls_version_1_3()
        }
    }
}
