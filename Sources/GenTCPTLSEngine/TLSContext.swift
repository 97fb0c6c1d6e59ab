import COpenSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A checked ``TLSConfiguration`` loaded into OpenSSL (an `SSL_CTX`): trust store, certificate,
/// key, versions and ALPN, shared by every ``TLSEngine`` made from it.
///
/// Making one reads the files it names, so every configuration error shows here, before any I/O.
/// A context is immutable once made and may be shared between threads; each engine is used by one
/// thread at a time.
public final class TLSContext: @unchecked Sendable {
    // @unchecked: `SSL_CTX` is only read after `init` (OpenSSL allows `SSL_new` from many threads).

    /// The configuration this context was made from.
    public let configuration: TLSConfiguration
    let context: OpaquePointer
    /// The server's ALPN preference as byte strings, first choice first.
    let serverProtocols: [[UInt8]]

    /// Checks `configuration` and loads it into OpenSSL (`SSL_CTX_new`, `SSL_CTX_load_verify_locations`,
    /// `SSL_CTX_use_certificate_chain_file`, `SSL_CTX_use_PrivateKey_file`).
    /// - Parameter configuration: what to load.
    /// - Throws: ``TLSError/configuration(_:)`` naming the option at fault (a missing file, an
    ///   empty ALPN name, a minimum version above the maximum, a server without a certificate, a key
    ///   that does not match its certificate).
    public init(_ configuration: TLSConfiguration) throws(TLSError) {
        self.configuration = configuration
        guard configuration.minimumVersion <= configuration.maximumVersion else {
            throw .configuration(
                .invalidVersionRange(minimum: configuration.minimumVersion, maximum: configuration.maximumVersion))
        }
        for name in configuration.applicationProtocols where name.utf8.isEmpty || name.utf8.count > 255 {
            throw .configuration(.invalidApplicationProtocol(name))
        }
        if case .name(let name) = configuration.serverNameIndication, name.isEmpty || name.utf8.contains(0) {
            throw .configuration(.invalidServerName(name))
        }
        if configuration.role == .server, configuration.certificateChainFile == nil || configuration.privateKeyFile == nil {
            throw .configuration(.missingCertificate)
        }
        if (configuration.certificateChainFile == nil) != (configuration.privateKeyFile == nil) {
            throw .configuration(.missingCertificate)
        }
        try Self.checkReadable(configuration)

        ERR_clear_error()
        let method = configuration.role == .client ? TLS_client_method() : TLS_server_method()
        guard let context = SSL_CTX_new(method) else { throw .engine(Self.openSSLErrorText()) }
        do {
            try Self.load(configuration, into: context)
        } catch {
            SSL_CTX_free(context)
            throw error
        }
        self.context = context
        self.serverProtocols = configuration.role == .server ? configuration.applicationProtocols.map { Array($0.utf8) } : []
        if !serverProtocols.isEmpty {
            SSL_CTX_set_alpn_select_cb(context, tlsSelectApplicationProtocol, Unmanaged.passUnretained(self).toOpaque())
        }
    }

    deinit {
        SSL_CTX_free(context)
    }

    private static func checkReadable(_ configuration: TLSConfiguration) throws(TLSError) {
        var files: [(String, String)] = []
        switch configuration.trustRoots {
        case .system: break
        case .file(let path): files.append(("cacertfile", path))
        case .directory(let path): files.append(("cacertdir", path))
        }
        if let path = configuration.certificateChainFile { files.append(("certfile", path)) }
        if let path = configuration.privateKeyFile { files.append(("keyfile", path)) }
        for (option, path) in files where access(path, R_OK) != 0 {
            throw .configuration(.missingFile(option: option, path: path))
        }
    }

    private static func load(_ configuration: TLSConfiguration, into context: OpaquePointer) throws(TLSError) {
        gentcp_tls_ctx_harden(context)
        guard gentcp_tls_ctx_set_versions(
            context, configuration.minimumVersion.openSSLValue, configuration.maximumVersion.openSSLValue) == 1
        else {
            throw .configuration(.rejected(option: "versions", reason: openSSLErrorText()))
        }
        let verifies = configuration.role == .client
            ? configuration.verify == .peer : configuration.clientAuthentication != .none
        if verifies {
            switch configuration.trustRoots {
            case .system:
                guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                    throw .configuration(.rejected(option: "cacerts", reason: openSSLErrorText()))
                }
            case .file(let path):
                guard SSL_CTX_load_verify_locations(context, path, nil) == 1 else {
                    throw .configuration(.invalidFile(option: "cacertfile", path: path, reason: openSSLErrorText()))
                }
            case .directory(let path):
                guard SSL_CTX_load_verify_locations(context, nil, path) == 1 else {
                    throw .configuration(.invalidFile(option: "cacertdir", path: path, reason: openSSLErrorText()))
                }
            }
        }
        switch configuration.role {
        case .client:
            SSL_CTX_set_verify(context, verifies ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, tlsVerifyCallback)
        case .server:
            switch configuration.clientAuthentication {
            case .none: SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
            case .optional: SSL_CTX_set_verify(context, SSL_VERIFY_PEER, tlsVerifyCallback)
            case .required:
                SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tlsVerifyCallback)
            }
        }
        if let chain = configuration.certificateChainFile, let key = configuration.privateKeyFile {
            guard SSL_CTX_use_certificate_chain_file(context, chain) == 1 else {
                throw .configuration(.invalidFile(option: "certfile", path: chain, reason: openSSLErrorText()))
            }
            guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1 else {
                let code = ERR_peek_error()
                if ERR_GET_LIB(code) == ERR_LIB_X509, ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH {
                    ERR_clear_error()
                    throw .configuration(.keyDoesNotMatchCertificate(certificateFile: chain, keyFile: key))
                }
                throw .configuration(.invalidFile(option: "keyfile", path: key, reason: openSSLErrorText()))
            }
            guard SSL_CTX_check_private_key(context) == 1 else {
                ERR_clear_error()
                throw .configuration(.keyDoesNotMatchCertificate(certificateFile: chain, keyFile: key))
            }
        }
    }

    /// OpenSSL's text for the oldest queued error (`ERR_get_error`), and the queue emptied.
    static func openSSLErrorText() -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return "unknown OpenSSL error" }
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &text, text.count)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// OpenSSL's ALPN callback on a server: the server's first preference the client also offered
/// (server order wins, as in OTP); none in common is fatal (`no_application_protocol`).
private func tlsSelectApplicationProtocol(
    _ ssl: OpaquePointer?, _ selected: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
    _ selectedLength: UnsafeMutablePointer<UInt8>?, _ offered: UnsafePointer<UInt8>?, _ offeredLength: UInt32,
    _ argument: UnsafeMutableRawPointer?
) -> Int32 {
    guard let argument, let offered, let selected, let selectedLength else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    let context = Unmanaged<TLSContext>.fromOpaque(argument).takeUnretainedValue()
    let offer = UnsafeBufferPointer(start: offered, count: Int(offeredLength))
    for preferred in context.serverProtocols {
        var index = 0
        while index < offer.count {
            let length = Int(offer[index])
            let start = index + 1
            guard start + length <= offer.count else { break }
            if length == preferred.count, offer[start..<start + length].elementsEqual(preferred) {
                selected.pointee = offered + start
                selectedLength.pointee = UInt8(length)
                return SSL_TLSEXT_ERR_OK
            }
            index = start + length
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL
}
