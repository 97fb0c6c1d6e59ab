/// Why a TLS operation failed, normalised as the reference normalises OTP's ssl reasons.
///
/// A handshake or record failure is an alert with the side that raised it
/// (`{tls_alert, {unknown_ca, ...}}` "generated" in OTP). The end of a connection is ``closed`` or,
/// where OTP cannot tell the two apart, ``truncated``.
public enum TLSError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A fatal TLS alert: which one, and whether this side generated it or received it.
    case alert(TLSAlert, TLSAlertOrigin)
    /// The connection is over: closed locally, ended by the peer's close_notify, or the transport
    /// ended during the handshake (OTP's `closed`).
    case closed
    /// The transport ended after the handshake without the peer's close_notify: the data may have
    /// been cut short by an attacker or a crash. OTP reports this as `closed`; GenTCP keeps it apart.
    case truncated
    /// The configuration was refused before any I/O (OTP's `{options, ...}`).
    case configuration(TLSConfigurationError)
    /// OpenSSL failed without an alert to name the reason (out of memory, an internal error); the
    /// text is OpenSSL's error string.
    case engine(String)

    /// The reason as OTP would print it: `{tls_alert,{unknown_ca,generated}}`, `closed`, ...
    public var description: String {
        switch self {
        case .alert(let alert, let origin): "{tls_alert,{\(alert.name),\(origin)}}"
        case .closed: "closed"
        case .truncated: "truncated"
        case .configuration(let error): "{options,\(error)}"
        case .engine(let text): "{engine,\"\(text)\"}"
        }
    }
}

/// A TLS configuration refused before any I/O, naming the option at fault.
public enum TLSConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A file named by an option (`cacertfile`, `cacertdir`, `certfile`, `keyfile`) does not
    /// exist or cannot be read (`enoent` in OTP); `path` is the file as given.
    case missingFile(option: String, path: String)
    /// A file exists but OpenSSL could not load it (not PEM, wrong contents); `reason` is OpenSSL's.
    case invalidFile(option: String, path: String, reason: String)
    /// The private key does not belong to the certificate.
    case keyDoesNotMatchCertificate(certificateFile: String, keyFile: String)
    /// An ALPN protocol name is empty or longer than 255 bytes (OTP refuses `<<>>` the same way).
    case invalidApplicationProtocol(String)
    /// The minimum version is above the maximum.
    case invalidVersionRange(minimum: TLSVersion, maximum: TLSVersion)
    /// A server configuration without a certificate chain or without a key.
    case missingCertificate
    /// A client verifying its peer was given neither a host nor a server name to check the
    /// certificate against.
    case missingServerName
    /// A server name that is not usable for SNI (empty, or containing a NUL byte).
    case invalidServerName(String)
    /// OpenSSL refused a setting; `reason` is OpenSSL's error string.
    case rejected(option: String, reason: String)

    /// The error as OTP prints an option error: `{cacertfile,"/x",{error,enoent}}`, ...
    public var description: String {
        switch self {
        case .missingFile(let option, let path): "{\(option),\"\(path)\",{error,enoent}}"
        case .invalidFile(let option, let path, let reason): "{\(option),\"\(path)\",\"\(reason)\"}"
        case .keyDoesNotMatchCertificate(let cert, let key): "{keyfile,\"\(key)\",{mismatch,\"\(cert)\"}}"
        case .invalidApplicationProtocol(let name): "{alpn_protocols,\"\(name)\"}"
        case .invalidVersionRange(let minimum, let maximum): "{versions,[\(minimum.otpName),\(maximum.otpName)]}"
        case .missingCertificate: "{certfile,[]}"
        case .missingServerName: "{server_name_indication,[]}"
        case .invalidServerName(let name): "{server_name_indication,\"\(name)\"}"
        case .rejected(let option, let reason): "{\(option),\"\(reason)\"}"
        }
    }
}
