import GenTCP
import GenTCPCore
import GenTCPModem

extension ATDriver: TLSOffloadingDriver {
    /// Opens a TLS link run by the module (`Socket.connect(_:port:options:offloadedTLS:timeout:driver:)`
    /// calls this): the dialect's TLS settings first, then the secure open, on a free link id.
    ///
    /// | dialect | settings written before the open | open |
    /// | --- | --- | --- |
    /// | ESP-AT | `AT+CIPSSLCCONF=<id>,<auth>,<pki>,<ca>`, `AT+CIPSSLCSNI` for a name, `AT+CIPSSLCALPN` when asked | `AT+CIPSTART=<id>,"SSL",...` |
    /// | BG96 | for an upload `AT+QFDEL` and `AT+QFUPL` (`CONNECT`, the PEM, `+QFUPL`), then `AT+QSSLCFG="sslversion"`, `"cacert"` and `"seclevel"`, `"sni"` for a name | `AT+QSSLOPEN=...` then `+QSSLOPEN: <id>,<err>` |
    /// | SIM800 | `AT+CIPSSL=1` (module-wide: the next plain connect writes `AT+CIPSSL=0` first) | `AT+CIPSTART` |
    ///
    /// The socket then follows every gen_tcp rule as a plain at socket: passive receive through
    /// the module (`+QSSLURC: "recv"` and `AT+QSSLRECV` on BG96), the same send buffer and
    /// chunks, the same close. `peername` is the address when `host` is one, and `enotconn` for
    /// a name (the module resolved it and does not say to what). A module reports only "closed": a cut TLS stream cannot be told
    /// from a clean close (see `OffloadedTLS` in GenTCP).
    ///
    /// Errors:
    ///
    /// | what happened | reason |
    /// | --- | --- |
    /// | the module cannot do what `tls` asks: a CA file or upload on ESP-AT, a CA slot or ALPN or another SNI name on BG96, any CA choice, SNI name or ALPN on SIM800 | `enotsup` |
    /// | BG96: an upload of more than 1460 bytes (one `AT+QFUPL`) | `emsgsize` |
    /// | the module answers `ERROR` to a TLS setting (its firmware has no TLS) | `enotsup` |
    /// | a host, SNI name or ALPN protocol with a quote, comma, backslash or control byte, or too long | `einval` |
    /// | ESP-AT: `ERROR` to the SSL `AT+CIPSTART` (refused, or the handshake or certificate check failed: the module does not say which) | `econnrefused` |
    /// | BG96: `+QSSLOPEN: <id>,-1` (the handshake or certificate check failed) | `eproto` |
    /// | BG96: `+QSSLOPEN: <id>,<5xx>` | as for `AT+QIOPEN` (566 `econnrefused`, 565 `nxdomain`, 569 `etimedout`...) |
    /// | SIM800: `CONNECT FAIL` (refused or the handshake failed) | `econnrefused` |
    /// | no answer within `timeout` / ``ATConfiguration/connectTimeout`` | `timeout` / `etimedout` |
    /// | every link id in use | `system_limit` |
    /// | the module restarted before the open | `econnaborted` |
    /// | after ``stop()`` | `enetdown` |
    public func connectOffloaded(
        host: String, port: Int, tls: OffloadedTLS, options: SocketOptions, timeout: Duration?,
        delegate: any ConnectionDelegate
    ) async throws(SocketError) -> any Connection {
        guard (1...65_535).contains(port) else { throw SocketError(.badArgument, "port must be 1...65535") }
        let trust: ModemTLSTrust
        switch tls.verification {
        case .none: trust = .none
        case .peer(.slot(let n)): trust = .slot(n)
        case .peer(.file(let name)): trust = .file(name)
        case .peer(.upload(let pem, let name)): trust = .upload(name: name, pem: pem)
        }
        let settings = ModemTLSSettings(trust: trust, serverName: tls.serverName,
                                        applicationProtocols: tls.applicationProtocols,
                                        clientCertificateSlot: tls.clientCertificateSlot)
        return try await core.connectOffloaded(host: host, port: port, tls: settings, options: options,
                                               timeoutNanoseconds: timeout?.clampedNanoseconds, delegate: delegate)
    }
}
