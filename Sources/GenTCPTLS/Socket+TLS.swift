import GenTCP

/// What a TLS socket agreed with its peer: OTP's `ssl:connection_information/1`.
public struct TLSConnectionInformation: Sendable, Hashable {
    /// `tlsv1.3` or `tlsv1.2`; nil on an offloaded socket (the module does not say).
    public var protocolVersion: TLSVersion?
    /// The cipher suite's RFC name (`TLS_AES_256_GCM_SHA384`); nil on an offloaded socket.
    public var cipherSuite: String?
    /// The ALPN protocol agreed, or nil.
    public var negotiatedProtocol: String?
    /// Server side: the name the client asked for with SNI, or nil (OTP's `sni_hostname`).
    public var serverName: String?
    /// Whether the driver's transport runs this socket's TLS (see `OffloadedTLS`).
    public var offloaded: Bool
}

/// The finite limit TLS calls use unless told otherwise: OTP's `infinity` leaves a silent peer
/// hanging a connect or an accept for ever.
public enum TLSDefaults {
    /// 30 seconds for the connect and handshake together (a handshake of a few kilobytes takes
    /// about 5 s at 9600 baud).
    public static let handshakeTimeout: Timeout = .seconds(30)
}

extension Socket {
    /// Connects to `host:port` and runs a TLS client handshake: OTP's `ssl:connect/4`.
    ///
    /// The TLS socket behaves as a gen_tcp socket in every way (active modes, `recv`, owner,
    /// options, counters), with `.ssl`, `.sslClosed`, `.sslError` and `.sslPassive` messages.
    /// With `context`'s default configuration the server's certificate is checked against the
    /// system's trust store and against `host` (a name is also sent as SNI; an address must be
    /// one of the certificate's IP addresses), as OTP 26 does.
    ///
    /// - Parameters:
    ///   - context: a client configuration (``TLSConfiguration/client(verify:trustRoots:serverNameIndication:applicationProtocols:minimumVersion:maximumVersion:certificateChainFile:privateKeyFile:)``).
    ///   - timeout: the connect and the handshake together; default ``TLSDefaults/handshakeTimeout``.
    /// - Throws: `tls_alert` naming the alert and its side (`unknown_ca` generated for an
    ///   untrusted server, `handshake_failure` for a wrong name, `no_application_protocol` received
    ///   when no ALPN protocol is shared...); `closed` when the peer ended the stream during the
    ///   handshake; `timeout`; `badarg` for a server context; the driver's reasons
    ///   (`econnrefused`...); `cancelled`.
    public static func connect(
        _ host: Host, port: Int, options: [Option] = [], tls context: TLSContext,
        timeout: Timeout = TLSDefaults.handshakeTimeout, driver: some Driver
    ) async throws(SocketError) -> Socket {
        guard context.configuration.role == .client else {
            throw SocketError(.badArgument, "a TLS connect needs a client configuration")
        }
        let hostText = host.description
        let runtime = driver.runtime
        return try await Socket.connect(
            host, port: port, options: options, timeout: timeout, driver: driver, security: .tls
        ) { address, options, remaining, socket async throws(SocketError) -> any Connection in
            let tls = try TLSConnection(engine: makeEngine(context, host: hostText), runtime: runtime)
            let start = runtime.now
            let inner = try await driver.connect(to: address, options: options, timeout: remaining, delegate: tls)
            tls.attachInner(inner)
            let left = remaining.map { limit in
                let spent = Duration.nanoseconds(Int64(clamping: runtime.now &- start))
                return spent < limit ? limit - spent : .zero
            }
            do throws(SocketError) {
                try await tls.handshake(timeout: left)
            } catch {
                tls.close(abortive: false)
                throw error
            }
            tls.attachOuter(socket)
            return tls
        }
    }

    /// Runs a TLS handshake on this open plain socket and returns the TLS socket: OTP's
    /// `ssl:connect(TcpSocket, ...)` with a client context (STARTTLS), `ssl:handshake(TcpSocket, ...)`
    /// with a server context.
    ///
    /// The plain socket is used up: every later call on it gives `closed`, and nobody can write
    /// cleartext into the TLS stream through it (OTP leaves that handle writable). The TLS socket
    /// keeps its options (`active`, `mode`, `buffer`...) and the caller as its owner.
    ///
    /// The socket must be passive (`{active, false}`, as OTP asks) with no `recv` or `send`
    /// waiting. Cleartext a timed-out exact `recv` gathered and gave back would go into the
    /// handshake: the upgrade refuses it unless `takeBufferedCleartext` is true. (What an exact
    /// `recv` read past its length goes to the handshake, as it would had it stayed in the kernel.)
    ///
    /// - Parameters:
    ///   - context: a client or server configuration.
    ///   - serverName: client: the name to check the certificate against (and send as SNI); nil:
    ///     the peer's address, checked against the certificate's IP addresses.
    ///   - takeBufferedCleartext: give bytes already read from the peer to the TLS engine.
    ///   - timeout: the handshake; default ``TLSDefaults/handshakeTimeout``.
    /// - Throws: `not_owner` when the caller does not control the socket; `einval` when it is
    ///   active, busy or holds cleartext; `unsupported_upgrade` on a secure socket; `closed`;
    ///   the handshake's failures as ``connect(_:port:options:tls:timeout:driver:)``.
    public func upgrade(
        tls context: TLSContext, serverName: String? = nil, takeBufferedCleartext: Bool = false,
        timeout: Timeout = TLSDefaults.handshakeTimeout
    ) async throws(SocketError) -> Socket {
        try await upgrade(tls: context, serverName: serverName, takeBufferedCleartext: takeBufferedCleartext,
                          timeout: timeout, active: nil)
    }

    /// The upgrade, with the TLS socket's active mode set (a TLS accept restores the listener's).
    func upgrade(
        tls context: TLSContext, serverName: String?, takeBufferedCleartext: Bool, timeout: Timeout,
        active: ActiveMode?
    ) async throws(SocketError) -> Socket {
        let limit = try timeout.validated().duration
        let caller = try Process.liveCaller()
        if security == .offloaded {
            throw SocketError(.unsupportedUpgrade, "the module runs this socket's TLS")
        }
        var host = serverName
        if context.configuration.role == .client, host == nil {
            host = (try? peername())?.address.description
        }
        let tls = TLSConnection(engine: try Self.makeEngine(context, host: host), runtime: socketRuntime)
        var handOff = try handOverForUpgrade(to: tls, caller: caller, keepBuffered: takeBufferedCleartext)
        tls.carry(handOff.buffered)
        tls.attachInner(handOff.connection)
        if let active { handOff.options.active = active }
        let socket = Socket(driver: driver, options: handOff.options, owner: caller, security: .tls)
        do throws(SocketError) {
            _ = try await DetachedCall.run(as: caller, executor: socketRuntime.executor, orphan: { _ in
                tls.close(abortive: false)
            }) { () async throws(SocketError) -> Bool in
                try await tls.handshake(timeout: limit)
                return true
            }
        } catch {
            tls.close(abortive: false)
            throw error
        }
        tls.attachOuter(socket)
        socket.attach(tls)
        return socket
    }

    static func makeEngine(_ context: TLSContext, host: String?) throws(SocketError) -> TLSEngine {
        do {
            return try TLSEngine(context: context, host: host)
        } catch {
            throw TLSConnection.socketError(error)
        }
    }

    // MARK: Information

    /// The ALPN protocol agreed in the handshake: OTP's `ssl:negotiated_protocol/1`.
    /// - Throws: `protocol_not_negotiated` when there is none (whichever side offered nothing);
    ///   `not_secure` on a plain socket; `closed` on a closed one.
    public func negotiatedProtocol() throws(SocketError) -> String {
        let found: String? = try withTLS(offloaded: { nil }) { $0.negotiatedProtocol }
        guard let found else { throw SocketError(.protocolNotNegotiated) }
        return found
    }

    /// The peer's certificate (DER): OTP's `ssl:peercert/1`.
    /// - Throws: `no_peercert` when the peer sent none (a server whose client sent none);
    ///   `enotsup` on an offloaded socket (the module keeps it); `not_secure` on a plain socket;
    ///   `closed` on a closed one.
    public func peerCertificate() throws(SocketError) -> [UInt8] {
        let found: [UInt8]?? = try withTLS(offloaded: { nil }) { $0.peerCertificate }
        guard let found else { throw SocketError(.notSupported, "the module keeps the peer's certificate") }
        guard let found else { throw SocketError(.noPeerCertificate) }
        return found
    }

    /// The version, cipher suite, ALPN protocol and SNI name of a TLS socket: OTP's
    /// `ssl:connection_information/1`.
    /// - Throws: `not_secure` on a plain socket; `closed` on a closed one.
    public func connectionInformation() throws(SocketError) -> TLSConnectionInformation {
        try withTLS(offloaded: {
            TLSConnectionInformation(protocolVersion: nil, cipherSuite: nil, negotiatedProtocol: nil,
                                     serverName: nil, offloaded: true)
        }) { engine in
            TLSConnectionInformation(
                protocolVersion: engine.protocolVersion, cipherSuite: engine.cipherSuite,
                negotiatedProtocol: engine.negotiatedProtocol, serverName: engine.isClient ? nil : engine.serverName,
                offloaded: false)
        }
    }

    private func withTLS<T>(offloaded: () -> T, _ body: (TLSEngine) -> T) throws(SocketError) -> T {
        switch security {
        case .plain: throw SocketError(.notSecure)
        case .offloaded:
            return try withConnection { _ in offloaded() }
        case .tls:
            return try withConnection { connection in
                // A TLS socket's connection is always the TLS layer.
                (connection as! TLSConnection).withEngine(body)
            }
        }
    }
}

extension ListenSocket {
    /// Accepts one connection and runs the TLS server handshake on it: OTP's
    /// `ssl:transport_accept/2` followed by `ssl:handshake/2`.
    ///
    /// The TLS socket inherits this listener's options; it starts delivering (when active) only
    /// after the handshake. A client that fails the handshake is closed and the failure thrown:
    /// call again for the next client.
    ///
    /// - Parameters:
    ///   - context: a server configuration (certificate, key, ALPN preference, client checks).
    ///   - timeout: the wait for a connection, as ``accept(timeout:)``.
    ///   - handshakeTimeout: the handshake; default ``TLSDefaults/handshakeTimeout``.
    /// - Throws: `accept`'s reasons; the handshake's (`tls_alert`, `closed`, `timeout`); `badarg`
    ///   for a client context.
    public func accept(
        tls context: TLSContext, timeout: Timeout = .infinity,
        handshakeTimeout: Timeout = TLSDefaults.handshakeTimeout
    ) async throws(SocketError) -> Socket {
        guard context.configuration.role == .server else {
            throw SocketError(.badArgument, "a TLS accept needs a server configuration")
        }
        _ = try handshakeTimeout.validated()
        let active = inheritedOptions.active
        let plain = try await accept(timeout: timeout, passive: true)
        do throws(SocketError) {
            return try await plain.upgrade(
                tls: context, serverName: nil, takeBufferedCleartext: false, timeout: handshakeTimeout, active: active)
        } catch {
            plain.close()
            throw error
        }
    }
}
