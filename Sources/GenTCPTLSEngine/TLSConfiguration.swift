/// What a TLS endpoint needs before its first byte: its role, how it checks the peer, what it
/// trusts, what it offers (ALPN, versions) and its own certificate.
///
/// Secure by default, as OTP 26's ssl: a client verifies the server's certificate against the
/// system's trust store and checks the server name; ``verify`` must be set to
/// ``TLSPeerVerification/none`` to connect to anything. A value is checked when a ``TLSContext``
/// is made from it; a bad option is a ``TLSConfigurationError`` before any I/O.
public struct TLSConfiguration: Sendable {
    /// Which end of the handshake an endpoint plays.
    public enum Role: Sendable, Hashable {
        /// Sends the ClientHello; checks the server's certificate.
        case client
        /// Answers with a certificate; may ask the client for one.
        case server
    }

    /// Where trusted certificate authorities come from.
    public enum TrustRoots: Sendable, Hashable {
        /// The system's default store (OpenSSL's default paths: `/etc/ssl/certs` on Debian).
        case system
        /// A PEM file of CA certificates (OTP's `cacertfile`).
        case file(String)
        /// A directory of hashed CA certificates, as `openssl rehash` makes it.
        case directory(String)
    }

    /// Which name a client sends as SNI and checks the certificate against.
    public enum ServerNameIndication: Sendable, Hashable {
        /// The host the engine is given: its name is sent as SNI and checked; an IP address is not
        /// sent and is checked against the certificate's IP addresses (OTP's default).
        case host
        /// This name is sent as SNI and checked, whatever the host (OTP's
        /// `{server_name_indication, Name}`).
        case name(String)
        /// No SNI; the certificate is still checked against the host (OTP's `disable`).
        case disabled
    }

    /// Whether a server asks for a client certificate (mutual TLS).
    public enum ClientAuthentication: Sendable, Hashable {
        /// No certificate is asked for (OTP's server default, `verify_none`).
        case none
        /// A certificate is asked for and checked if sent; a client without one is accepted
        /// (`verify_peer` with `fail_if_no_peer_cert` false).
        case optional
        /// A client without a valid certificate is refused (`verify_peer`,
        /// `{fail_if_no_peer_cert, true}`).
        case required
    }

    /// Client or server.
    public var role: Role
    /// Whether a client checks the server's certificate and name. Default ``TLSPeerVerification/peer``.
    /// A server uses ``clientAuthentication`` instead.
    public var verify: TLSPeerVerification
    /// The certificate authorities a certificate is checked against. Default ``TrustRoots/system``.
    public var trustRoots: TrustRoots
    /// Client: the name sent as SNI and checked. Default ``ServerNameIndication/host``.
    public var serverNameIndication: ServerNameIndication
    /// ALPN protocols: the client's offer, in its order; the server's preference, first choice
    /// first (the server's order wins). Empty: no ALPN.
    public var applicationProtocols: [String]
    /// The oldest version accepted. Default TLS 1.2.
    public var minimumVersion: TLSVersion
    /// The newest version offered. Default TLS 1.3.
    public var maximumVersion: TLSVersion
    /// A PEM file with this side's certificate, then its intermediates (OTP's `certfile`): the
    /// server's certificate, or a client's for mutual TLS.
    public var certificateChainFile: String?
    /// A PEM file with the private key of ``certificateChainFile`` (OTP's `keyfile`).
    public var privateKeyFile: String?
    /// Server: whether a client certificate is asked for. Default ``ClientAuthentication/none``.
    public var clientAuthentication: ClientAuthentication

    /// A configuration with every field given; the ``client(verify:trustRoots:serverNameIndication:applicationProtocols:minimumVersion:maximumVersion:certificateChainFile:privateKeyFile:)``
    /// and ``server(certificateChainFile:privateKeyFile:clientAuthentication:trustRoots:applicationProtocols:minimumVersion:maximumVersion:)``
    /// factories are shorter.
    /// - Parameters:
    ///   - role: client or server.
    ///   - verify: whether a client checks the server.
    ///   - trustRoots: the trusted certificate authorities.
    ///   - serverNameIndication: the name a client sends and checks.
    ///   - applicationProtocols: the ALPN offer (client) or preference (server).
    ///   - minimumVersion: the oldest version accepted.
    ///   - maximumVersion: the newest version offered.
    ///   - certificateChainFile: this side's certificate chain (PEM).
    ///   - privateKeyFile: this side's private key (PEM).
    ///   - clientAuthentication: whether a server asks for a client certificate.
    public init(
        role: Role, verify: TLSPeerVerification = .peer, trustRoots: TrustRoots = .system,
        serverNameIndication: ServerNameIndication = .host, applicationProtocols: [String] = [],
        minimumVersion: TLSVersion = .v1_2, maximumVersion: TLSVersion = .v1_3,
        certificateChainFile: String? = nil, privateKeyFile: String? = nil,
        clientAuthentication: ClientAuthentication = .none
    ) {
        self.role = role
        self.verify = verify
        self.trustRoots = trustRoots
        self.serverNameIndication = serverNameIndication
        self.applicationProtocols = applicationProtocols
        self.minimumVersion = minimumVersion
        self.maximumVersion = maximumVersion
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.clientAuthentication = clientAuthentication
    }

    /// A client configuration: verification on unless `verify` says otherwise.
    /// - Parameters:
    ///   - verify: whether the server's certificate and name are checked (default: they are).
    ///   - trustRoots: the trusted certificate authorities (default: the system's store).
    ///   - serverNameIndication: the name sent as SNI and checked (default: the host's).
    ///   - applicationProtocols: the ALPN protocols offered, in order.
    ///   - minimumVersion: the oldest version accepted.
    ///   - maximumVersion: the newest version offered.
    ///   - certificateChainFile: a client certificate chain for mutual TLS (PEM).
    ///   - privateKeyFile: its private key (PEM).
    /// - Returns: the configuration.
    public static func client(
        verify: TLSPeerVerification = .peer, trustRoots: TrustRoots = .system,
        serverNameIndication: ServerNameIndication = .host, applicationProtocols: [String] = [],
        minimumVersion: TLSVersion = .v1_2, maximumVersion: TLSVersion = .v1_3,
        certificateChainFile: String? = nil, privateKeyFile: String? = nil
    ) -> TLSConfiguration {
        TLSConfiguration(
            role: .client, verify: verify, trustRoots: trustRoots, serverNameIndication: serverNameIndication,
            applicationProtocols: applicationProtocols, minimumVersion: minimumVersion, maximumVersion: maximumVersion,
            certificateChainFile: certificateChainFile, privateKeyFile: privateKeyFile)
    }

    /// A server configuration.
    /// - Parameters:
    ///   - certificateChainFile: the server's certificate, then its intermediates (PEM).
    ///   - privateKeyFile: the server's private key (PEM).
    ///   - clientAuthentication: whether a client certificate is asked for (default: not).
    ///   - trustRoots: the authorities client certificates are checked against.
    ///   - applicationProtocols: the ALPN preference, first choice first.
    ///   - minimumVersion: the oldest version accepted.
    ///   - maximumVersion: the newest version offered.
    /// - Returns: the configuration.
    public static func server(
        certificateChainFile: String, privateKeyFile: String, clientAuthentication: ClientAuthentication = .none,
        trustRoots: TrustRoots = .system, applicationProtocols: [String] = [],
        minimumVersion: TLSVersion = .v1_2, maximumVersion: TLSVersion = .v1_3
    ) -> TLSConfiguration {
        TLSConfiguration(
            role: .server, verify: .none, trustRoots: trustRoots, applicationProtocols: applicationProtocols,
            minimumVersion: minimumVersion, maximumVersion: maximumVersion,
            certificateChainFile: certificateChainFile, privateKeyFile: privateKeyFile,
            clientAuthentication: clientAuthentication)
    }
}

/// Whether a client checks the server's certificate (OTP's `verify` option).
public enum TLSPeerVerification: Sendable, Hashable {
    /// The chain must lead to a trusted authority, be valid now, and name the server
    /// (`verify_peer`, OTP 26's client default).
    case peer
    /// Nothing is checked: self-signed, expired and wrong-name certificates are all accepted
    /// (`verify_none`). Only for tests and explicit opt-outs.
    case none
}
