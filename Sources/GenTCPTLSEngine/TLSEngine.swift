import COpenSSL
import GenTCPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One TLS connection as a byte-stream transformer, with no I/O of its own (OpenSSL over memory
/// BIOs).
///
/// The caller owns the transport (any byte stream: a GenTCP socket on any driver, a POSIX socket,
/// another engine in memory) and pumps it:
///
/// 1. bytes read from the transport go in with ``receiveCiphertext(_:)-(UnsafeRawBufferPointer)``; the transport's end
///    with ``receiveEndOfStream()``;
/// 2. ``handshake()`` drives the handshake until ``state`` is ``TLSState/established``;
/// 3. application data goes in with ``writePlaintext(_:)-(UnsafeRawBufferPointer)`` and comes out of
///    ``readPlaintext(into:)``;
/// 4. whatever ``takeCiphertext(maximumCount:)`` returns is written to the transport, after
///    every call above;
/// 5. ``close()`` queues a close_notify alert.
///
/// The transport side is one end of an OpenSSL BIO pair: two fixed ring buffers, allocated with the
/// engine, whose bytes the pump reads into and writes from in place (no copy through a memory BIO).
///
/// Memory is bounded: at most ``TLSBufferLimits/inboundCiphertext`` bytes wait to be decrypted
/// (``receiveCiphertext(_:)-(UnsafeRawBufferPointer)`` takes fewer bytes when full, like a short write) and plaintext is
/// only encrypted while fewer than ``TLSBufferLimits/outboundCiphertext`` bytes wait for the
/// transport (``writePlaintext(_:)-(UnsafeRawBufferPointer)`` returns 0 otherwise). OpenSSL itself holds at most one record
/// of decrypted plaintext. Nothing grows with what the peer sends.
///
/// An engine is not thread-safe: one thread (or one process of the port layer) at a time.
public final class TLSEngine {
    /// The context (configuration) this engine was made from.
    public let context: TLSContext
    /// The buffer limits, fixed when the engine is made.
    public let limits: TLSBufferLimits
    private let ssl: OpaquePointer
    var sslHandle: OpaquePointer { ssl }
    /// The BIO pair: `internalBIO` is the SSL object's (it reads the inbound ring, writes the
    /// outbound one), `network` the pump's.
    private let internalBIO: OpaquePointer
    private let network: OpaquePointer
    /// The last OpenSSL call stopped because the outbound ring was full.
    private var outputBlocked = false
    private var phase: TLSState = .handshaking
    private var transportEnded = false
    private var sentCloseNotify = false
    /// The first fatal alert seen, sent or received (`SSL_set_info_callback`).
    private var fatalAlert: (alert: TLSAlert, origin: TLSAlertOrigin)?
    private var errorText: String?
    /// OpenSSL's verification result for the first certificate refused, before it was replaced
    /// by one that makes OpenSSL send OTP's alert (see `tlsVerifyCallback`).
    private var refusedVerification: Int32?

    /// Makes an engine for one connection.
    /// - Parameters:
    ///   - context: the loaded configuration; it decides whether this is a client or a server.
    ///   - host: client: the host being connected to, a name or an IP address literal. A name is
    ///     sent as SNI and the certificate must carry it; an address is not sent and must be one of
    ///     the certificate's IP addresses (unless ``TLSConfiguration/serverNameIndication`` names
    ///     another). Ignored by a server.
    ///   - limits: the bounds on buffered ciphertext.
    /// - Throws: ``TLSError/configuration(_:)`` when a verifying client has no name to check
    ///   (``TLSConfigurationError/missingServerName``) or the name is unusable;
    ///   ``TLSError/engine(_:)`` when OpenSSL cannot allocate the connection.
    public init(context: TLSContext, host: String? = nil, limits: TLSBufferLimits = TLSBufferLimits()) throws(TLSError) {
        let configuration = context.configuration
        var sni: String?
        var reference: String?
        if configuration.role == .client {
            switch configuration.serverNameIndication {
            case .host:
                reference = host
                if let host, !Self.isIPAddress(host) { sni = host }
            case .name(let name):
                reference = name
                sni = name
            case .disabled:
                reference = host
            }
            if let name = reference, name.isEmpty || name.utf8.contains(0) {
                throw .configuration(.invalidServerName(name))
            }
            if configuration.verify == .peer, reference == nil {
                throw .configuration(.missingServerName)
            }
        }
        ERR_clear_error()
        guard let ssl = SSL_new(context.context) else { throw .engine(TLSContext.openSSLErrorText()) }
        var internalBIO: OpaquePointer?
        var network: OpaquePointer?
        // Inbound: what the pump writes into `network`, at most the inbound bound. Outbound: what
        // SSL writes; writePlaintext keeps it under the outbound bound, and the margin leaves room
        // for the records' expansion, handshake flights, alerts and TLS 1.3 key updates.
        guard BIO_new_bio_pair(&internalBIO, limits.outboundCiphertext + Self.outboundMargin,
                               &network, limits.inboundCiphertext) == 1,
            let internalBIO, let network
        else {
            SSL_free(ssl)
            throw .engine(TLSContext.openSSLErrorText())
        }
        // The SSL object owns the internal end from here on (SSL_free frees it); deinit frees
        // the network end.
        SSL_set_bio(ssl, internalBIO, internalBIO)
        if configuration.role == .client {
            SSL_set_connect_state(ssl)
            var ok = true
            if let sni { ok = gentcp_tls_set_host_name(ssl, sni) == 1 }
            if ok, configuration.verify == .peer, let reference {
                if Self.isIPAddress(reference) {
                    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), reference) == 1
                } else {
                    ok = SSL_set1_host(ssl, reference) == 1
                }
            }
            if ok, !configuration.applicationProtocols.isEmpty {
                var wire: [UInt8] = []
                for name in configuration.applicationProtocols {
                    wire.append(UInt8(name.utf8.count))
                    wire.append(contentsOf: name.utf8)
                }
                ok = SSL_set_alpn_protos(ssl, wire, UInt32(wire.count)) == 0  // 0 is success here
            }
            if !ok {
                let reason = TLSContext.openSSLErrorText()
                SSL_free(ssl)
                BIO_free(network)
                throw .configuration(.rejected(option: "server_name_indication", reason: reason))
            }
        } else {
            SSL_set_accept_state(ssl)
        }
        // A write cut short by a full ring is retried from wherever the caller's bytes are now.
        _ = SSL_ctrl(ssl, SSL_CTRL_MODE, Int(SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), nil)
        self.context = context
        self.limits = limits
        self.ssl = ssl
        self.internalBIO = internalBIO
        self.network = network
        SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
        SSL_set_info_callback(ssl, tlsInfoCallback)
    }

    /// Makes a context from `configuration` and an engine from it; for one-off connections
    /// (a context shared by many connections is cheaper).
    /// - Parameters:
    ///   - configuration: the configuration, checked here.
    ///   - host: the host being connected to (client), as in ``init(context:host:limits:)``.
    ///   - limits: the bounds on buffered ciphertext.
    /// - Throws: as ``TLSContext/init(_:)`` and ``init(context:host:limits:)``.
    public convenience init(
        configuration: TLSConfiguration, host: String? = nil, limits: TLSBufferLimits = TLSBufferLimits()
    ) throws(TLSError) {
        try self.init(context: TLSContext(configuration), host: host, limits: limits)
    }

    deinit {
        SSL_free(ssl)
        BIO_free(network)
    }

    /// Room in the outbound ring beyond ``TLSBufferLimits/outboundCiphertext``.
    static let outboundMargin = 2 * TLSBufferLimits.largestRecord

    // MARK: State

    /// Where the connection is: handshaking, established, ended (and how) or failed.
    public var state: TLSState { phase }

    /// Whether this engine is the client end.
    public var isClient: Bool { context.configuration.role == .client }

    /// OpenSSL's text for the last failure (a verification result such as "certificate has
    /// expired", or an error-queue entry), for logs; `nil` when nothing failed.
    public var failureDetail: String? { errorText }

    // MARK: Ciphertext from the transport

    /// How many more ciphertext bytes ``receiveCiphertext(_:)-(UnsafeRawBufferPointer)`` takes now.
    public var inboundCapacity: Int {
        transportEnded ? 0 : Int(BIO_ctrl_get_write_guarantee(network))
    }

    /// Hands bytes read from the transport to the engine (`BIO_write` on the read BIO). Takes at
    /// most ``inboundCapacity`` bytes; call ``handshake()`` or ``readPlaintext(into:)`` to consume
    /// them, then offer the rest again.
    /// - Parameter bytes: ciphertext as it came from the peer.
    /// - Returns: how many bytes were taken (0 when full, after ``receiveEndOfStream()``, or
    ///   after the connection failed).
    @discardableResult
    public func receiveCiphertext(_ bytes: UnsafeRawBufferPointer) -> Int {
        if case .failed = phase { return 0 }
        let count = min(bytes.count, inboundCapacity)
        guard count > 0, let base = bytes.baseAddress else { return 0 }
        let written = BIO_write(network, base, Int32(count))
        return max(0, Int(written))
    }

    /// Lets `fill` read ciphertext from the transport straight into the engine's inbound ring:
    /// `fill` gets the free space (at most `maximumCount` bytes, possibly less than
    /// ``inboundCapacity`` where the ring wraps) and returns how many bytes it put there, with a
    /// result of its own. Bytes given after the connection failed are dropped, as
    /// ``receiveCiphertext(_:)-(UnsafeRawBufferPointer)`` drops them.
    /// - Returns: `fill`'s result, or nil (without calling it) when the engine takes nothing now.
    package func receiveCiphertext<R>(
        upTo maximumCount: Int, _ fill: (UnsafeMutableRawBufferPointer) -> (count: Int, result: R)
    ) -> R? {
        guard !transportEnded, maximumCount > 0 else { return nil }
        var space: UnsafeMutablePointer<CChar>?
        let contiguous = BIO_nwrite0(network, &space)
        guard contiguous > 0, let start = space else { return nil }
        let (count, result) = fill(UnsafeMutableRawBufferPointer(start: start, count: min(Int(contiguous), maximumCount)))
        if case .failed = phase { return result }
        if count > 0 { _ = BIO_nwrite(network, &space, Int32(count)) }
        return result
    }

    /// Hands bytes read from the transport to the engine; see ``receiveCiphertext(_:)-(UnsafeRawBufferPointer)``.
    /// - Parameter bytes: ciphertext as it came from the peer.
    /// - Returns: how many bytes were taken.
    @discardableResult
    public func receiveCiphertext(_ bytes: some Collection<UInt8>) -> Int {
        if let taken = bytes.withContiguousStorageIfAvailable({ receiveCiphertext(UnsafeRawBufferPointer($0)) }) {
            return taken
        }
        return Array(bytes).withUnsafeBytes { receiveCiphertext($0) }
    }

    /// Tells the engine the transport ended (the peer's FIN). Once the bytes already received are
    /// consumed, a connection that saw the peer's close_notify is ``TLSState/closed``, one that
    /// did not is ``TLSState/truncated``, and one still handshaking fails with
    /// ``TLSError/closed``.
    public func receiveEndOfStream() {
        transportEnded = true
    }

    /// Whether the engine holds input it has not turned into plaintext yet: decrypted bytes not
    /// read, or received ciphertext not processed. A reader that stopped before draining it must
    /// read again before waiting on the transport.
    public var hasPendingInput: Bool {
        // SSL_has_pending would also count a partial record, which only more input completes.
        SSL_pending(ssl) > 0 || BIO_ctrl_pending(internalBIO) > 0
    }

    // MARK: Ciphertext to the transport

    /// How many ciphertext bytes wait to be written to the transport.
    public var pendingCiphertextCount: Int { Int(BIO_ctrl_pending(network)) }

    /// Whether the last OpenSSL call stopped for want of room in the outbound ring: the
    /// ciphertext must go to the transport before the call can go on.
    package var isBlockedOnOutput: Bool { outputBlocked }

    /// Lets `drain` write ciphertext from the engine's outbound ring straight to the transport:
    /// `drain` gets the bytes waiting (the contiguous part of the ring: call again for the rest)
    /// and returns how many it wrote, with a result of its own.
    /// - Returns: `drain`'s result, or nil (without calling it) when nothing waits.
    package func sendCiphertext<R>(_ drain: (UnsafeRawBufferPointer) -> (count: Int, result: R)) -> R? {
        var bytes: UnsafeMutablePointer<CChar>?
        let contiguous = BIO_nread0(network, &bytes)
        guard contiguous > 0, let start = bytes else { return nil }
        let (count, result) = drain(UnsafeRawBufferPointer(start: start, count: Int(contiguous)))
        if count > 0 { _ = BIO_nread(network, &bytes, Int32(count)) }
        return result
    }

    /// Drops every byte of ciphertext waiting for a transport that failed.
    package func discardCiphertext() {
        while true {
            var bytes: UnsafeMutablePointer<CChar>?
            let contiguous = BIO_nread0(network, &bytes)
            guard contiguous > 0 else { return }
            _ = BIO_nread(network, &bytes, contiguous)
        }
    }

    /// Moves ciphertext waiting for the transport into `buffer` (`BIO_read` on the write BIO).
    /// - Parameter buffer: where to copy the bytes.
    /// - Returns: how many bytes were copied (0 when nothing waits).
    public func takeCiphertext(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0, pendingCiphertextCount > 0 else { return 0 }
        let read = BIO_read(network, base, Int32(min(buffer.count, Int(Int32.max))))
        return max(0, Int(read))
    }

    /// Takes ciphertext waiting for the transport.
    /// - Parameter maximumCount: the most bytes to take.
    /// - Returns: the bytes, in order; empty when nothing waits.
    public func takeCiphertext(maximumCount: Int = .max) -> [UInt8] {
        let count = min(maximumCount, pendingCiphertextCount)
        guard count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        let taken = bytes.withUnsafeMutableBytes { takeCiphertext(into: $0) }
        bytes.removeLast(count - taken)
        return bytes
    }

    // MARK: Handshake

    /// Drives the handshake with what has been received (`SSL_do_handshake`).
    /// - Returns: `true` once the handshake is complete (also on every later call while the
    ///   connection is open), `false` while it waits for the peer's bytes.
    /// - Throws: ``TLSError/alert(_:_:)`` when the handshake fails (a certificate refused, no
    ///   common version or ALPN protocol, a peer's alert); ``TLSError/closed`` when the transport
    ///   ended first or the engine was closed; the same error on every later call.
    @discardableResult
    public func handshake() throws(TLSError) -> Bool {
        switch phase {
        case .handshaking: break
        case .established, .closed, .truncated: return true
        case .failed(let error): throw error
        }
        if sentCloseNotify { throw .closed }
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        outputBlocked = false
        if result == 1 {
            phase = .established
            return true
        }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_WRITE:
            outputBlocked = true
            return false
        case SSL_ERROR_WANT_READ:
            if transportEnded, BIO_ctrl_pending(internalBIO) == 0 { throw fail(.closed) }
            return false
        default:
            throw fail(classifyFailure())
        }
    }

    // MARK: Application data

    /// The most plaintext one record carries.
    package static let recordPlaintext = 16_384

    /// Plaintext ``writePlaintext(_:)-(UnsafeRawBufferPointer)`` takes now: what the outbound
    /// bound leaves (whole records of it for 16 KiB or more).
    package var writeRoom: Int { max(0, limits.outboundCiphertext - pendingCiphertextCount) }

    /// Whether ``writePlaintext(_:)-(UnsafeRawBufferPointer)`` takes a whole record now.
    package var acceptsWholeRecord: Bool { writeRoom >= Self.recordPlaintext }

    /// Encrypts application data (`SSL_write_ex`) in records of up to 16 KiB; the records are
    /// then ready for ``takeCiphertext(maximumCount:)``.
    /// - Parameter bytes: the plaintext.
    /// - Returns: how many bytes were taken: fewer than given (possibly 0) while the handshake is
    ///   not complete or while ciphertext waiting for the transport would pass
    ///   ``TLSBufferLimits/outboundCiphertext``; of 16 KiB or more, a multiple of 16 KiB (whole
    ///   records), 0 while there is no room for one. Offer the rest again after draining.
    /// - Throws: ``TLSError/closed`` after ``close()`` or the peer's close_notify,
    ///   ``TLSError/truncated`` after a truncation, the failure after a failure.
    public func writePlaintext(_ bytes: UnsafeRawBufferPointer) throws(TLSError) -> Int {
        switch phase {
        case .handshaking: return 0
        case .established: break
        case .closed: throw .closed
        case .truncated: throw .truncated
        case .failed(let error): throw error
        }
        if sentCloseNotify { throw .closed }
        let room = writeRoom
        var count = min(bytes.count, room)
        if bytes.count >= Self.recordPlaintext {
            // Whole records only: a cut at the room's edge would make a short record on every
            // call (more records, more per-record work on both ends). Without room for a whole
            // one, nothing until the transport took some.
            count -= count % Self.recordPlaintext
        }
        guard count > 0, let base = bytes.baseAddress else { return 0 }
        ERR_clear_error()
        var written = 0
        let result = SSL_write_ex(ssl, base, count, &written)
        outputBlocked = false
        if result == 1 { return written }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_WRITE:
            outputBlocked = true
            return 0
        case SSL_ERROR_WANT_READ: return 0
        default: throw fail(classifyFailure())
        }
    }

    /// Encrypts application data; see ``writePlaintext(_:)-(UnsafeRawBufferPointer)``.
    /// - Parameter bytes: the plaintext.
    /// - Returns: how many bytes were taken.
    /// - Throws: as ``writePlaintext(_:)-(UnsafeRawBufferPointer)``.
    public func writePlaintext(_ bytes: some Collection<UInt8>) throws(TLSError) -> Int {
        let array = Array(bytes)
        let result = array.withUnsafeBytes { raw in Result { () throws(TLSError) -> Int in try writePlaintext(raw) } }
        return try result.get()
    }

    /// Decrypts application data received so far (`SSL_read_ex`), driving the handshake first if
    /// it is not complete.
    /// - Parameter buffer: where to put the plaintext.
    /// - Returns: ``TLSReadResult/bytes(_:)`` with the count (at most one record's worth per
    ///   call), ``TLSReadResult/wouldBlock`` when more ciphertext is needed,
    ///   ``TLSReadResult/closed`` once the peer's close_notify has been read (every byte before it
    ///   delivered), ``TLSReadResult/truncated`` when the transport ended without one.
    /// - Throws: ``TLSError/alert(_:_:)`` for a fatal alert, sent (a record that fails
    ///   authentication: `bad_record_mac`) or received (TLS 1.3: a server refusing this client's
    ///   certificate after the client's handshake completed); ``TLSError/closed`` after a local
    ///   ``close()`` that the peer answered.
    public func readPlaintext(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> TLSReadResult {
        switch phase {
        case .handshaking:
            guard try handshake() else { return .wouldBlock }
        case .established: break
        case .closed: return .closed
        case .truncated: return .truncated
        case .failed(let error): throw error
        }
        guard let base = buffer.baseAddress, buffer.count > 0 else { return .wouldBlock }
        ERR_clear_error()
        var read = 0
        let result = SSL_read_ex(ssl, base, buffer.count, &read)
        outputBlocked = false
        if result == 1 { return .bytes(read) }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_ZERO_RETURN:
            phase = .closed
            return .closed
        case SSL_ERROR_WANT_WRITE:
            outputBlocked = true
            return .wouldBlock
        case SSL_ERROR_WANT_READ:
            if transportEnded, BIO_ctrl_pending(internalBIO) == 0 {
                phase = .truncated
                return .truncated
            }
            return .wouldBlock
        default:
            throw fail(classifyFailure())
        }
    }

    /// Decrypts application data received so far; see ``readPlaintext(into:)``.
    /// - Parameter maximumCount: the most bytes to return.
    /// - Returns: the bytes (empty when none are ready), and how the stream stands: `nil` while
    ///   open, else ``TLSReadResult/closed`` or ``TLSReadResult/truncated``.
    /// - Throws: as ``readPlaintext(into:)``.
    public func readPlaintext(maximumCount: Int = 16_384) throws(TLSError) -> (bytes: [UInt8], end: TLSReadResult?) {
        var bytes = [UInt8](repeating: 0, count: max(1, maximumCount))
        let outcome = bytes.withUnsafeMutableBytes { raw in
            Result { () throws(TLSError) -> TLSReadResult in try readPlaintext(into: raw) }
        }
        let result = try outcome.get()
        switch result {
        case .bytes(let count): return (Array(bytes.prefix(count)), nil)
        case .wouldBlock: return ([], nil)
        case .closed, .truncated: return ([], result)
        }
    }

    // MARK: Closing

    /// Queues a close_notify alert (`SSL_shutdown`): write what ``takeCiphertext(maximumCount:)``
    /// returns, then close the transport. Later writes fail with ``TLSError/closed``; reads go on
    /// until the peer's close_notify or the transport's end. Closing during the handshake sends
    /// nothing. Calling it again does nothing.
    public func close() {
        guard !sentCloseNotify else { return }
        sentCloseNotify = true
        switch phase {
        case .established, .closed:
            ERR_clear_error()
            _ = SSL_shutdown(ssl)
            ERR_clear_error()
        case .handshaking:
            phase = .failed(.closed)
        case .truncated, .failed:
            break
        }
    }

    /// Whether this side has queued its close_notify.
    public var isCloseNotifySent: Bool { sentCloseNotify }

    // MARK: Failures

    private func fail(_ error: TLSError) -> TLSError {
        phase = .failed(error)
        return error
    }

    /// The reason for a failed `SSL_*` call, normalised as OTP's ssl reports it: a received alert
    /// as is; a certificate this side refused by its verification result; any other alert this
    /// side sent as is.
    private func classifyFailure() -> TLSError {
        let queued = ERR_peek_error()
        let text = queued == 0 ? nil : TLSContext.openSSLErrorText()
        if let (alert, origin) = fatalAlert {
            if origin == .generated, let verification = refusedVerification {
                errorText = String(cString: X509_verify_cert_error_string(Int(verification)))
                return .alert(TLSAlert(verificationResult: Int(verification)), .generated)
            }
            errorText = text
            return .alert(alert, origin)
        }
        errorText = text
        // Bytes that are not TLS records at all (a plaintext answer, an HTTP request): OpenSSL
        // stops without an alert; OTP reports `unexpected_message`, generated.
        if ERR_GET_LIB(queued) == ERR_LIB_SSL {
            switch ERR_GET_REASON(queued) {
            case SSL_R_WRONG_VERSION_NUMBER, SSL_R_HTTP_REQUEST, SSL_R_HTTPS_PROXY_REQUEST, SSL_R_UNKNOWN_PROTOCOL,
                SSL_R_PACKET_LENGTH_TOO_LONG, SSL_R_UNSUPPORTED_PROTOCOL:
                return .alert(.unexpectedMessage, .generated)
            default: break
            }
        }
        return .engine(text ?? "TLS failure without an alert")
    }

    fileprivate func noteAlert(_ alert: TLSAlert, origin: TLSAlertOrigin, fatal: Bool) {
        if alert == .closeNotify || !fatal && alert != .noRenegotiation { return }
        if fatalAlert == nil { fatalAlert = (alert, origin) }
    }

    fileprivate func noteRefusedVerification(_ result: Int32) {
        if refusedVerification == nil { refusedVerification = result }
    }

    static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}

/// OpenSSL's state callback: records each alert sent or received, for the failure's reason.
private func tlsInfoCallback(_ ssl: OpaquePointer?, _ whereFlags: Int32, _ value: Int32) {
    guard whereFlags & gentcp_tls_cb_alert() != 0, let ssl, let raw = SSL_get_ex_data(ssl, 0) else { return }
    let engine = Unmanaged<TLSEngine>.fromOpaque(raw).takeUnretainedValue()
    let level = (value >> 8) & 0xff
    let alert = TLSAlert(code: UInt8(truncatingIfNeeded: value & 0xff))
    let origin: TLSAlertOrigin = whereFlags & gentcp_tls_cb_read() != 0 ? .received : .generated
    engine.noteAlert(alert, origin: origin, fatal: level == 2)
}

/// OpenSSL's certificate check callback: records why a certificate was refused, and replaces
/// the reason by one OpenSSL turns into the alert OTP sends (OpenSSL alone sends `bad_certificate`
/// for a name mismatch where OTP sends `handshake_failure`, and `unknown_ca` for a self-signed leaf
/// where OTP sends `bad_certificate`), so an OTP-like peer receives what OTP would send.
func tlsVerifyCallback(_ preverified: Int32, _ store: OpaquePointer?) -> Int32 {
    guard preverified == 0, let store else { return preverified }
    let result = X509_STORE_CTX_get_error(store)
    if let raw = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
        let engineRaw = SSL_get_ex_data(OpaquePointer(raw), 0)
    {
        Unmanaged<TLSEngine>.fromOpaque(engineRaw).takeUnretainedValue().noteRefusedVerification(result)
    }
    switch TLSAlert(verificationResult: Int(result)) {
    case .handshakeFailure: X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION)
    case .badCertificate: X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED)
    default: break
    }
    return 0
}

/// Where a ``TLSEngine``'s connection is.
public enum TLSState: Hashable, Sendable {
    /// The handshake is under way.
    case handshaking
    /// The handshake is complete; application data flows (even after a local ``TLSEngine/close()``,
    /// reads go on until the peer ends).
    case established
    /// The peer's close_notify was read: a clean end, every byte before it delivered.
    case closed
    /// The transport ended after the handshake without the peer's close_notify (§6 of the
    /// reference: OTP shows this as a plain close; GenTCP keeps it apart).
    case truncated
    /// The connection failed; every later call throws this error.
    case failed(TLSError)
}

/// What ``TLSEngine/readPlaintext(into:)`` found.
public enum TLSReadResult: Hashable, Sendable {
    /// This many plaintext bytes were copied.
    case bytes(Int)
    /// Nothing to read until more ciphertext arrives.
    case wouldBlock
    /// The peer's close_notify: the stream ended cleanly.
    case closed
    /// The transport ended without a close_notify: the stream may have been cut short.
    case truncated
}

/// The fixed bounds on what a ``TLSEngine`` buffers, per direction.
public struct TLSBufferLimits: Hashable, Sendable {
    /// The largest record on the wire: 16 KiB of plaintext, 2 KiB of expansion, a 5-byte header.
    public static let largestRecord = 16_384 + 2_048 + 5

    /// Ciphertext received and not yet decrypted, in bytes. At least one largest record.
    public let inboundCiphertext: Int
    /// Ciphertext produced and not yet taken for the transport, above which
    /// ``TLSEngine/writePlaintext(_:)-(UnsafeRawBufferPointer)`` takes nothing more.
    public let outboundCiphertext: Int

    /// Limits of two largest records per direction unless told otherwise.
    /// - Parameters:
    ///   - inboundCiphertext: the inbound bound; raised to one largest record if lower.
    ///   - outboundCiphertext: the outbound bound; raised to one largest record if lower.
    public init(inboundCiphertext: Int = 2 * TLSBufferLimits.largestRecord, outboundCiphertext: Int = 2 * TLSBufferLimits.largestRecord) {
        self.inboundCiphertext = max(inboundCiphertext, Self.largestRecord)
        self.outboundCiphertext = max(outboundCiphertext, Self.largestRecord)
    }
}
