/// A TLS alert description (RFC 8446 §6, RFC 5246 §7.2), named as OTP's ssl names it.
///
/// An alert is what one side of a TLS connection tells the other when it gives up (or, for
/// `close_notify`, when it is done). Every handshake failure the engine reports carries one, with
/// the side that raised it (``TLSAlertOrigin``), following the reference's normalisation of OTP's
/// `{tls_alert, {Alert, Text}}`.
public struct TLSAlert: Hashable, Sendable, CustomStringConvertible {
    /// The alert's number on the wire (the `AlertDescription` byte).
    public let code: UInt8

    /// An alert with the given wire number.
    /// - Parameter code: the `AlertDescription` byte.
    public init(code: UInt8) { self.code = code }

    /// `close_notify` (0): the sender will send no more data.
    public static let closeNotify = TLSAlert(code: 0)
    /// `unexpected_message` (10): a message arrived that makes no sense at this point (plaintext on
    /// a TLS connection, for one).
    public static let unexpectedMessage = TLSAlert(code: 10)
    /// `bad_record_mac` (20): a record failed authentication (corrupted or forged bytes).
    public static let badRecordMAC = TLSAlert(code: 20)
    /// `record_overflow` (22): a record longer than the protocol allows.
    public static let recordOverflow = TLSAlert(code: 22)
    /// `handshake_failure` (40): no acceptable parameters; OTP also uses it for a certificate whose
    /// names do not match the server name.
    public static let handshakeFailure = TLSAlert(code: 40)
    /// `bad_certificate` (42): a certificate is corrupt or unacceptable (a self-signed leaf, say).
    public static let badCertificate = TLSAlert(code: 42)
    /// `unsupported_certificate` (43): a certificate of a type the receiver does not support.
    public static let unsupportedCertificate = TLSAlert(code: 43)
    /// `certificate_revoked` (44): a certificate was revoked by its signer.
    public static let certificateRevoked = TLSAlert(code: 44)
    /// `certificate_expired` (45): a certificate is outside its validity period.
    public static let certificateExpired = TLSAlert(code: 45)
    /// `certificate_unknown` (46): some other problem with a certificate.
    public static let certificateUnknown = TLSAlert(code: 46)
    /// `illegal_parameter` (47): a field in the handshake was out of range.
    public static let illegalParameter = TLSAlert(code: 47)
    /// `unknown_ca` (48): the certificate chain does not lead to a trusted authority.
    public static let unknownCA = TLSAlert(code: 48)
    /// `access_denied` (49): a valid certificate, but access was refused.
    public static let accessDenied = TLSAlert(code: 49)
    /// `decode_error` (50): a message could not be decoded.
    public static let decodeError = TLSAlert(code: 50)
    /// `decrypt_error` (51): a handshake signature or key check failed.
    public static let decryptError = TLSAlert(code: 51)
    /// `protocol_version` (70): the peers have no protocol version in common.
    public static let protocolVersion = TLSAlert(code: 70)
    /// `insufficient_security` (71): the peer's parameters are too weak.
    public static let insufficientSecurity = TLSAlert(code: 71)
    /// `internal_error` (80): the sender failed for reasons of its own.
    public static let internalError = TLSAlert(code: 80)
    /// `inappropriate_fallback` (86): a downgrade attempt was detected.
    public static let inappropriateFallback = TLSAlert(code: 86)
    /// `user_canceled` (90): the sender abandons the handshake.
    public static let userCanceled = TLSAlert(code: 90)
    /// `no_renegotiation` (100): the sender refuses to renegotiate (TLS 1.2).
    public static let noRenegotiation = TLSAlert(code: 100)
    /// `missing_extension` (109): a required extension was not sent.
    public static let missingExtension = TLSAlert(code: 109)
    /// `unsupported_extension` (110): an extension the receiver did not offer came back.
    public static let unsupportedExtension = TLSAlert(code: 110)
    /// `unrecognized_name` (112): the server has no certificate for the requested name.
    public static let unrecognizedName = TLSAlert(code: 112)
    /// `certificate_required` (116): a TLS 1.3 server needed a client certificate and got none.
    public static let certificateRequired = TLSAlert(code: 116)
    /// `no_application_protocol` (120): client and server have no ALPN protocol in common.
    public static let noApplicationProtocol = TLSAlert(code: 120)

    /// The alert's name as OTP's ssl gives it (`unknown_ca`, `handshake_failure`, ...), or
    /// `alert_N` for a number this table does not know.
    public var name: String {
        switch code {
        case 0: "close_notify"
        case 10: "unexpected_message"
        case 20: "bad_record_mac"
        case 21: "decryption_failed"
        case 22: "record_overflow"
        case 30: "decompression_failure"
        case 40: "handshake_failure"
        case 42: "bad_certificate"
        case 43: "unsupported_certificate"
        case 44: "certificate_revoked"
        case 45: "certificate_expired"
        case 46: "certificate_unknown"
        case 47: "illegal_parameter"
        case 48: "unknown_ca"
        case 49: "access_denied"
        case 50: "decode_error"
        case 51: "decrypt_error"
        case 60: "export_restriction"
        case 70: "protocol_version"
        case 71: "insufficient_security"
        case 80: "internal_error"
        case 86: "inappropriate_fallback"
        case 90: "user_canceled"
        case 100: "no_renegotiation"
        case 109: "missing_extension"
        case 110: "unsupported_extension"
        case 111: "certificate_unobtainable"
        case 112: "unrecognized_name"
        case 113: "bad_certificate_status_response"
        case 114: "bad_certificate_hash_value"
        case 115: "unknown_psk_identity"
        case 116: "certificate_required"
        case 120: "no_application_protocol"
        default: "alert_\(code)"
        }
    }

    /// The alert's OTP name.
    public var description: String { name }
}

/// Which side of the connection raised an alert: OTP's "generated" or "received".
public enum TLSAlertOrigin: Hashable, Sendable, CustomStringConvertible {
    /// This side detected the problem and sent the alert.
    case generated
    /// The peer sent the alert.
    case received

    /// `generated` or `received`, as OTP's alert text says.
    public var description: String {
        switch self {
        case .generated: "generated"
        case .received: "received"
        }
    }
}
