import GenTCPCore

/// TLS run by the transport itself rather than by GenTCP: a modem's own TLS stack (ESP-AT's
/// `"SSL"` links, Quectel BG96's `AT+QSSL*` commands, SIM800's `AT+CIPSSL`).
///
/// The module holds the keys, does the handshake and checks the certificate; the host only sees
/// plaintext on the serial line. What the module cannot report, GenTCP does not invent: an
/// offloaded socket has no peer certificate to give, names no ALPN protocol unless the module
/// reports one, and a module that only says "closed" cannot tell a clean close from a cut one.
///
/// Secure by default, as host TLS: ``verification`` must be spelled out, and
/// ``Verification/none`` is never chosen for you.
public struct OffloadedTLS: Sendable, Hashable {
    /// Whether the module checks the server's certificate.
    public enum Verification: Sendable, Hashable {
        /// The module checks the server's certificate chain against the CA certificates
        /// ``ModuleTrust`` names (and, where the module can, the server name).
        case peer(ModuleTrust)
        /// No check at all: anyone on the path can read and change the data. Only when asked.
        case none
    }

    /// Where the module finds the CA certificates it trusts.
    public enum ModuleTrust: Sendable, Hashable {
        /// A CA slot in the module's flash (ESP-AT's `ca_number` of `AT+CIPSSLCCONF`, written
        /// with the module's manufacturing tools).
        case slot(Int)
        /// A file already in the module's storage (BG96's `"UFS:cacert.pem"`).
        case file(String)
        /// PEM bytes the driver uploads to the module before the link opens (BG96 `AT+QFUPL`),
        /// under `name`. `enotsup` on modules without an upload command.
        case upload(pem: [UInt8], name: String)
    }

    /// How the module checks the server. No default: say ``Verification/none`` to skip it.
    public var verification: Verification
    /// The name sent as SNI (and checked, where the module checks names); nil: the host the
    /// socket connects to, when it is a name.
    public var serverName: String?
    /// ALPN protocols offered, in order (ESP-AT `AT+CIPSSLCALPN`: at most 3). Empty: none.
    public var applicationProtocols: [String]
    /// The module's client certificate and key, for mutual TLS: ESP-AT's PKI slot
    /// (`pki_number`); nil: none.
    public var clientCertificateSlot: Int?

    /// Settings for a module TLS link.
    public init(
        verification: Verification, serverName: String? = nil, applicationProtocols: [String] = [],
        clientCertificateSlot: Int? = nil
    ) {
        self.verification = verification
        self.serverName = serverName
        self.applicationProtocols = applicationProtocols
        self.clientCertificateSlot = clientCertificateSlot
    }
}

/// A driver whose transport can run TLS itself (see ``OffloadedTLS``): the at driver with a
/// module that has a TLS stack.
public protocol TLSOffloadingDriver: Driver {
    /// Opens a TLS link to `host:port` run by the module, within `timeout` (nil: the driver's own
    /// limit). `host` is passed to the module as given (a name is resolved there, as the module's
    /// plain connects do). Fails with `enotsup` when the module or its firmware has no TLS, or
    /// cannot do what `tls` asks (an upload on a module without one, ALPN on SIM800); with the
    /// module's handshake failure as a typed reason otherwise (modules report no TLS alert: a
    /// refused handshake is `econnrefused` or `eproto`, as the dialect says).
    func connectOffloaded(
        host: String, port: Int, tls: OffloadedTLS, options: SocketOptions, timeout: Duration?,
        delegate: any ConnectionDelegate
    ) async throws(SocketError) -> any Connection
}

extension Socket {
    /// Connects to `host:port` over TLS that the driver's transport runs itself (a modem's TLS
    /// stack, see ``OffloadedTLS``): OTP's `ssl:connect/4` with the engine in the module.
    ///
    /// The socket is secure (``security`` is ``SocketSecurity/offloaded``) and delivers `.ssl`
    /// messages; every gen_tcp rule applies as on any socket. The host goes to the module as
    /// given, names included (the module resolves them, and sends the name as SNI unless
    /// ``OffloadedTLS/serverName`` says otherwise).
    ///
    /// - Parameters:
    ///   - host: the server, passed to the module as given.
    ///   - port: the server's port, 1...65535.
    ///   - options: socket options, as for a plain connect.
    ///   - tls: what the module checks and offers.
    ///   - timeout: the whole connect and handshake. Default 60 s: a handshake of a few kilobytes
    ///     crosses a slow serial line and the module's network (OTP's `infinity` leaves a silent
    ///     peer hanging for ever).
    ///   - driver: a driver whose transport runs TLS (the at driver).
    /// - Throws: `badarg` for a port outside 1...65535, an empty host or a bad option; `enotsup`
    ///   when the module cannot do what `tls` asks; the driver's reasons otherwise; `cancelled`.
    public static func connect(
        _ host: Host, port: Int, options: [Option] = [], offloadedTLS tls: OffloadedTLS,
        timeout: Timeout = .seconds(60), driver: some TLSOffloadingDriver
    ) async throws(SocketError) -> Socket {
        guard (1...65535).contains(port) else { throw SocketError(.badArgument, "port must be 1...65535") }
        let name = host.description
        guard !name.isEmpty, name.utf8.count <= 253 else { throw SocketError(.badArgument, "host name must be 1...253 bytes") }
        let opts = try SocketOptions(connect: options)
        let limit = try timeout.validated().duration
        let caller = try Process.liveCaller()
        let socket = Socket(driver: driver, options: opts, owner: caller, security: .offloaded)
        let connection = try await DetachedCall.run(as: caller, executor: driver.runtime.executor, orphan: { late in
            late.close(abortive: false)
        }) { () async throws(SocketError) -> any Connection in
            try await driver.connectOffloaded(
                host: name, port: port, tls: tls, options: opts, timeout: limit, delegate: socket)
        }
        socket.attach(connection)
        if Socket.sendsPassiveAtOpen(options) {
            let wakeup = socket.state.withLock { s in
                s.closed ? nil : s.owner.mailbox.enqueue(socket.passiveMessage)
            }
            wakeup?.resume()
        }
        return socket
    }
}
