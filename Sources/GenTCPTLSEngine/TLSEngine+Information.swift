import COpenSSL

extension TLSEngine {
    /// The ALPN protocol both sides agreed on (`SSL_get0_alpn_selected`), or `nil` when none was
    /// (neither side, or only one, configured ALPN): the port layer reports `nil` as OTP's
    /// `protocol_not_negotiated`.
    public var negotiatedProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(sslHandle, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// The peer's leaf certificate in DER (`SSL_get1_peer_certificate`, `i2d_X509`), or `nil`
    /// when it sent none (a server that did not ask for one: OTP's `no_peercert`) or before the
    /// handshake got that far.
    public var peerCertificate: [UInt8]? {
        guard let certificate = SSL_get1_peer_certificate(sslHandle) else { return nil }
        defer { X509_free(certificate) }
        let length = i2d_X509(certificate, nil)
        guard length > 0 else { return nil }
        var der = [UInt8](repeating: 0, count: Int(length))
        let written = der.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return i2d_X509(certificate, &cursor)
        }
        return written == length ? der : nil
    }

    /// The negotiated protocol version (`SSL_version`), or `nil` before the handshake completes.
    public var protocolVersion: TLSVersion? {
        guard state != .handshaking else { return nil }
        return TLSVersion(rawValue: Int(SSL_version(sslHandle)))
    }

    /// The negotiated cipher suite's RFC name (`SSL_CIPHER_standard_name`), such as
    /// `TLS_AES_256_GCM_SHA384`: what OTP's `ssl:suite_to_str/1` gives for
    /// `selected_cipher_suite`. `nil` before the handshake completes.
    public var cipherSuite: String? {
        guard state != .handshaking, let cipher = SSL_get_current_cipher(sslHandle),
            let name = SSL_CIPHER_standard_name(cipher)
        else { return nil }
        return String(cString: name)
    }

    /// Server: the name the client sent as SNI (`SSL_get_servername`), OTP's `sni_hostname`; `nil`
    /// when it sent none. Client: the name this engine sent.
    public var serverName: String? {
        guard let name = SSL_get_servername(sslHandle, Int32(TLSEXT_NAMETYPE_host_name)) else { return nil }
        return String(cString: name)
    }
}
