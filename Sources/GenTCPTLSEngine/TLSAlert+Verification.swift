import COpenSSL
import GenTCPCore

extension TLSAlert {
    /// The alert OTP's ssl raises for a failed certificate check, from OpenSSL's verification
    /// result (`X509_V_ERR_*`), so the reason does not depend on which engine found the problem:
    /// an untrusted chain is `unknown_ca`, an expired (or not yet valid) certificate
    /// `certificate_expired`, a name or address mismatch `handshake_failure`, a self-signed leaf
    /// `bad_certificate`, a revoked one `certificate_revoked`, anything else `bad_certificate`.
    /// - Parameter verificationResult: the value of `SSL_get_verify_result`.
    public init(verificationResult: Int) {
        switch Int32(truncatingIfNeeded: verificationResult) {
        case X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_CERT_NOT_YET_VALID:
            self = .certificateExpired
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
            self = .badCertificate
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
            X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
            X509_V_ERR_CERT_CHAIN_TOO_LONG, X509_V_ERR_INVALID_CA:
            self = .unknownCA
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH, X509_V_ERR_EMAIL_MISMATCH:
            self = .handshakeFailure
        case X509_V_ERR_CERT_REVOKED:
            self = .certificateRevoked
        default:
            self = .badCertificate
        }
    }
}
