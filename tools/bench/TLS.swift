import COpenSSL
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import GenTCPTLS
#if canImport(Glibc)
import Glibc
#endif

// TLS on the posix driver against a reference written directly on OpenSSL: blocking sockets,
// `SSL_set_fd`, `SSL_read_ex`/`SSL_write_ex` loops on threads, in this process, with the same
// certificate, key, versions and cipher suite (OpenSSL's default TLS 1.3 suite on both sides;
// every run checks what was negotiated).

/// An OpenSSL pointer handed to a reference thread. OpenSSL objects here are used by one thread
/// at a time (an `SSL_CTX` is shared read-only after setup, which OpenSSL allows).
struct SendablePointer: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// A value written by a reference thread and read after `join()`.
final class ThreadResult<T>: @unchecked Sendable {
    var value: T?
}

/// The bench's throw-away credentials: an ECDSA P-256 key and a self-signed certificate for
/// 127.0.0.1, made in this process with OpenSSL and written to a temporary directory removed at exit.
enum BenchPKI {
    struct Files: Sendable {
        let certificate: String
        let key: String
    }

    nonisolated(unsafe) private static var directory: String?

    static let files: Files = {
        var template = Array("/tmp/gentcp-bench-tls-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("gentcp-bench: mkdtemp failed") }
        let dir = String(cString: made)
        directory = dir
        atexit {
            if let dir = BenchPKI.directory {
                unlink(dir + "/cert.pem")
                unlink(dir + "/key.pem")
                rmdir(dir)
            }
        }
        let files = Files(certificate: dir + "/cert.pem", key: dir + "/key.pem")
        ERR_clear_error()
        guard let keyContext = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { opensslFailure("EVP_PKEY_CTX_new_from_name") }
        defer { EVP_PKEY_CTX_free(keyContext) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(keyContext) == 1, EVP_PKEY_CTX_set_group_name(keyContext, "P-256") == 1,
            EVP_PKEY_generate(keyContext, &key) == 1, let key
        else { opensslFailure("P-256 key generation") }
        defer { EVP_PKEY_free(key) }
        guard let certificate = X509_new() else { opensslFailure("X509_new") }
        defer { X509_free(certificate) }
        let name = X509_get_subject_name(certificate)
        guard X509_set_version(certificate, 2) == 1,
            ASN1_INTEGER_set(X509_get_serialNumber(certificate), 1) == 1,
            X509_gmtime_adj(X509_getm_notBefore(certificate), -3600) != nil,
            X509_gmtime_adj(X509_getm_notAfter(certificate), 86_400 * 30) != nil,
            X509_set_pubkey(certificate, key) == 1,
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, "127.0.0.1", -1, -1, 0) == 1,
            X509_set_issuer_name(certificate, name) == 1,
            X509_sign(certificate, key, EVP_sha256()) > 0
        else { opensslFailure("self-signed certificate") }
        guard let certificateFile = BIO_new_file(files.certificate, "w"), let keyFile = BIO_new_file(files.key, "w") else {
            opensslFailure("writing \(dir)")
        }
        let written = PEM_write_bio_X509(certificateFile, certificate) == 1
            && PEM_write_bio_PrivateKey(keyFile, key, nil, nil, 0, nil, nil) == 1
        BIO_free(certificateFile)
        BIO_free(keyFile)
        if !written { opensslFailure("PEM output") }
        return files
    }()
}

func opensslFailure(_ what: String) -> Never {
    var text = [CChar](repeating: 0, count: 256)
    ERR_error_string_n(ERR_get_error(), &text, text.count)
    let detail = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    fatalError("gentcp-bench: \(what) failed: \(detail)")
}

/// The reference: OpenSSL on blocking sockets, as a C program would use it.
enum OpenSSLReference {
    /// Server and client contexts, made once: versions 1.2-1.3, renegotiation and compression
    /// off (as GenTCP's contexts), no certificate check on the client (as the GenTCP client here).
    static let server: SendablePointer = {
        let files = BenchPKI.files
        guard let context = SSL_CTX_new(TLS_server_method()) else { opensslFailure("SSL_CTX_new") }
        configure(context)
        guard SSL_CTX_use_certificate_chain_file(context, files.certificate) == 1,
            SSL_CTX_use_PrivateKey_file(context, files.key, SSL_FILETYPE_PEM) == 1
        else { opensslFailure("loading the bench certificate") }
        return SendablePointer(pointer: context)
    }()

    static let client: SendablePointer = {
        guard let context = SSL_CTX_new(TLS_client_method()) else { opensslFailure("SSL_CTX_new") }
        configure(context)
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        return SendablePointer(pointer: context)
    }()

    private static func configure(_ context: OpaquePointer) {
        gentcp_tls_ctx_harden(context)
        guard gentcp_tls_ctx_set_versions(context, gentcp_tls_version_1_2(), gentcp_tls_version_1_3()) == 1 else {
            opensslFailure("setting versions")
        }
    }

    /// A connected `SSL` over the blocking descriptor `fd`, handshake done.
    static func open(_ fd: Int32, server: Bool) -> OpaquePointer {
        guard let ssl = SSL_new(server ? Self.server.pointer : client.pointer) else { opensslFailure("SSL_new") }
        SSL_set_fd(ssl, fd)
        ERR_clear_error()
        let rc = server ? SSL_accept(ssl) : SSL_connect(ssl)
        if rc != 1 { opensslFailure(server ? "SSL_accept" : "SSL_connect") }
        return ssl
    }

    /// The RFC name of the suite an `SSL` agreed.
    static func cipherSuite(_ ssl: OpaquePointer) -> String {
        guard let cipher = SSL_get_current_cipher(ssl), let name = SSL_CIPHER_standard_name(cipher) else { return "?" }
        return String(cString: name)
    }

    static func writeAll(_ ssl: OpaquePointer, _ buffer: UnsafeRawPointer, _ count: Int) {
        var written = 0
        if SSL_write_ex(ssl, buffer, count, &written) != 1 || written != count { opensslFailure("SSL_write_ex") }
    }

    /// Reads up to `count` bytes; 0 at the peer's close_notify or end of stream.
    static func readSome(_ ssl: OpaquePointer, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        var read = 0
        if SSL_read_ex(ssl, buffer, count, &read) == 1 { return read }
        return 0
    }

    /// Closes an `SSL` and its descriptor: close_notify, then close.
    static func finish(_ ssl: OpaquePointer, _ fd: Int32) {
        _ = SSL_shutdown(ssl)
        SSL_free(ssl)
        close(fd)
    }

    /// The bulk sender: accepts one connection, runs the server handshake, waits for the
    /// receiver's one-byte "go", writes `total` bytes in `chunk`-sized `SSL_write_ex` calls (so
    /// 16 KiB records), sends close_notify and closes.
    static func bulkWriter(listener: Int32, total: Int, chunk: Int, suite: ThreadResult<String>? = nil) -> RawThread {
        RawThread {
            let fd = Raw.accept(listener)
            let ssl = open(fd, server: true)
            suite?.value = cipherSuite(ssl)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
            defer { buffer.deallocate() }
            memset(buffer, 0x5A, chunk)
            check(readSome(ssl, buffer, 1) == 1, "reading the go byte")
            var left = total
            while left > 0 {
                let n = min(left, chunk)
                writeAll(ssl, buffer, n)
                left -= n
            }
            finish(ssl, fd)
        }
    }

    /// The timed receiver: connects, runs the client handshake (untimed), sends "go" and reads
    /// `total` bytes with `SSL_read_ex(readSize)` (one record at most per call).
    static func receive(port: Int, total: Int, readSize: Int) -> (Sample, suite: String) {
        let fd = Raw.connect(port: port)
        let ssl = open(fd, server: false)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: readSize, alignment: 64)
        defer {
            buffer.deallocate()
            finish(ssl, fd)
        }
        let start = Snapshot.now()
        var go: UInt8 = 1
        writeAll(ssl, &go, 1)
        var got = 0
        var reads = 0
        while got < total {
            let n = readSome(ssl, buffer, readSize)
            check(n > 0, "SSL_read_ex (early end after \(got) bytes)")
            got += n
            reads += 1
        }
        var sample = Snapshot.now() - start
        sample.deliveries = reads
        return (sample, cipherSuite(ssl))
    }

    /// OpenSSL at both ends: the reference of every TLS bulk case.
    static func bulk(total: Int, readSize: Int) -> Sample {
        let (listener, port) = Raw.listen()
        let writer = bulkWriter(listener: listener, total: total, chunk: Bulk.writeSize)
        let (sample, suite) = receive(port: port, total: total, readSize: readSize)
        writer.join()
        close(listener)
        TLSBench.note(suite: suite, side: "reference")
        return sample
    }

    /// `count` full handshakes one after the other over fresh loopback connections: the client
    /// connects and handshakes, the server writes one byte, the client reads it (so the session
    /// tickets of TLS 1.3 are read too), both send close_notify and close.
    static func handshakes(count: Int) -> Sample {
        let (listener, port) = Raw.listen()
        let server = RawThread {
            var byte: UInt8 = 1
            for _ in 0..<count {
                let fd = Raw.accept(listener)
                let ssl = open(fd, server: true)
                writeAll(ssl, &byte, 1)
                finish(ssl, fd)
            }
        }
        let start = Snapshot.now()
        var byte: UInt8 = 0
        for i in 0..<count {
            let fd = Raw.connect(port: port)
            let ssl = open(fd, server: false)
            check(readSome(ssl, &byte, 1) == 1, "reading the server's byte")
            if i == 0 { TLSBench.note(suite: cipherSuite(ssl), side: "reference") }
            finish(ssl, fd)
        }
        var sample = Snapshot.now() - start
        sample.deliveries = count
        server.join()
        close(listener)
        return sample
    }
}

/// GenTCP's TLS sockets on the posix driver.
enum TLSBench {
    static let serverContext: TLSContext = {
        let files = BenchPKI.files
        do {
            return try TLSContext(.server(certificateChainFile: files.certificate, privateKeyFile: files.key))
        } catch {
            fatalError("gentcp-bench: the TLS server context failed: \(error)")
        }
    }()

    static let clientContext: TLSContext = {
        do {
            return try TLSContext(.client(verify: .none))
        } catch {
            fatalError("gentcp-bench: the TLS client context failed: \(error)")
        }
    }()

    /// Cipher suites seen, by side: the table's header says what was measured, and a run where
    /// the two sides disagree says so.
    nonisolated(unsafe) static var suites: [String: Set<String>] = [:]
    private static let suitesLock = NSLockish()

    static func note(suite: String, side: String) {
        suitesLock.locked { _ = suites[side, default: []].insert(suite) }
    }

    static func suiteSummary() -> String {
        suitesLock.locked {
            let ours = suites["GenTCP", default: []], reference = suites["reference", default: []]
            let all = ours.union(reference).sorted().joined(separator: ", ")
            if ours == reference || ours.isEmpty || reference.isEmpty { return all }
            return "MISMATCH: GenTCP \(ours.sorted()), reference \(reference.sorted())"
        }
    }

    static func note(_ socket: Socket) {
        if let suite = try? socket.connectionInformation().cipherSuite { note(suite: suite, side: "GenTCP") }
    }

    /// GenTCP TLS client receiving from the OpenSSL writer thread. `active`: `{active, true}`
    /// with `.ssl` messages; otherwise passive `recv(0)`.
    static func receiver(total: Int, buffer: Int, active: Bool, driver: POSIXDriver) async throws -> Sample {
        let (listener, port) = Raw.listen()
        let writer = OpenSSLReference.bulkWriter(listener: listener, total: total, chunk: Bulk.writeSize)
        defer {
            writer.join()
            close(listener)
        }
        return try await Process.run {
            let socket = try await Socket.connect(
                "127.0.0.1", port: port, options: [.binary, .active(active ? .active : .passive), .buffer(buffer)],
                tls: clientContext, driver: driver)
            defer { socket.close() }
            note(socket)
            return try await receive(total: total, on: socket, active: active)
        }
    }

    /// GenTCP TLS server sending (`send` of 64 KiB) to an OpenSSL receiver thread, which is timed.
    static func sender(total: Int, driver: POSIXDriver) async throws -> Sample {
        let result = ThreadResult<Sample>()
        let reader: RawThread = try await Process.run {
            let listener = try ListenSocket.listen(
                port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)], driver: driver)
            defer { listener.close() }
            let port = try listener.port()
            let reader = RawThread {
                let (sample, _) = OpenSSLReference.receive(port: port, total: total, readSize: 64 * 1024)
                result.value = sample
            }
            let s = try await listener.accept(tls: serverContext, timeout: 10_000)
            defer { s.close() }
            note(s)
            try await Bulk.sendAfterGo(total: total, on: s)
            return reader
        }
        reader.join()
        return result.value!
    }

    /// GenTCP at both ends: a TLS server process sending 64 KiB `send`s, a passive TLS client.
    static func bothEnds(total: Int, buffer: Int, driver: POSIXDriver) async throws -> Sample {
        try await Process.run {
            let listener = try ListenSocket.listen(
                port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)], driver: driver)
            defer { listener.close() }
            let port = try listener.port()
            let sender = Process.spawn {
                let s = try await listener.accept(tls: serverContext, timeout: 10_000)
                defer { s.close() }
                try await Bulk.sendAfterGo(total: total, on: s)
            }
            let socket = try await Socket.connect(
                "127.0.0.1", port: port, options: [.binary, .active(.passive), .buffer(buffer)],
                tls: clientContext, driver: driver)
            defer { socket.close() }
            note(socket)
            let sample = try await receive(total: total, on: socket, active: false)
            let reason = await sender.waitForExit()
            precondition(reason == .normal, "gentcp-bench: the GenTCP TLS sender failed: \(reason)")
            return sample
        }
    }

    /// The timed part of a GenTCP TLS receiver: "go", then every byte.
    private static func receive(total: Int, on socket: Socket, active: Bool) async throws -> Sample {
        let start = Snapshot.now()
        try await socket.send([1])
        var got = 0
        var deliveries = 0
        if active {
            while got < total {
                switch try await Process.receive() {
                case .ssl(_, let payload)?:
                    got += payload.count
                    deliveries += 1
                case let other:
                    fatalError("gentcp-bench: unexpected message \(String(describing: other)) after \(got) bytes")
                }
            }
        } else {
            while got < total {
                got += try await socket.recv(0).count
                deliveries += 1
            }
        }
        var sample = Snapshot.now() - start
        sample.deliveries = deliveries
        return sample
    }

    /// `count` full handshakes, GenTCP at both ends, as ``OpenSSLReference/handshakes(count:)``:
    /// the client connects (`connect(tls:)`), the server (`accept(tls:)`) sends one byte, the
    /// client reads it, both close.
    static func handshakes(count: Int, driver: POSIXDriver) async throws -> Sample {
        try await Process.run {
            let listener = try ListenSocket.listen(
                port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)], driver: driver)
            defer { listener.close() }
            let port = try listener.port()
            let server = Process.spawn {
                for _ in 0..<count {
                    let s = try await listener.accept(tls: serverContext, timeout: 10_000)
                    try await s.send([1])
                    s.close()
                }
            }
            let start = Snapshot.now()
            for i in 0..<count {
                let s = try await Socket.connect(
                    "127.0.0.1", port: port, options: [.binary, .active(.passive)], tls: clientContext, driver: driver)
                _ = try await s.recv(1)
                if i == 0 { note(s) }
                s.close()
            }
            var sample = Snapshot.now() - start
            sample.deliveries = count
            let reason = await server.waitForExit()
            precondition(reason == .normal, "gentcp-bench: the GenTCP TLS server failed: \(reason)")
            return sample
        }
    }
}

/// A pthread mutex around a closure (the bench has no Foundation).
final class NSLockish: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

/// The TLS cases: bulk one way (the OpenSSL reference at both ends for every row) and handshakes.
func tlsCases(bytes: Int, handshakes: Int) -> [Case] {
    let big = 64 * 1024
    let reference = "OpenSSL both ends"
    return [
        Case(name: "tls-passive-64k", title: "TLS bulk, passive recv(0), buffer 64 KiB", reference: reference,
             work: .bytes(bytes), goal: 0.9,
             genTCP: { try await TLSBench.receiver(total: bytes, buffer: big, active: false, driver: $0) },
             raw: { OpenSSLReference.bulk(total: bytes, readSize: big) }),
        Case(name: "tls-active-64k", title: "TLS bulk, {active,true}, buffer 64 KiB", reference: reference,
             work: .bytes(bytes), goal: 0.9,
             genTCP: { try await TLSBench.receiver(total: bytes, buffer: big, active: true, driver: $0) },
             raw: { OpenSSLReference.bulk(total: bytes, readSize: big) }),
        Case(name: "tls-send-64k", title: "TLS bulk, GenTCP sends 64 KiB", reference: reference,
             work: .bytes(bytes), goal: 0.9,
             genTCP: { try await TLSBench.sender(total: bytes, driver: $0) },
             raw: { OpenSSLReference.bulk(total: bytes, readSize: big) }),
        Case(name: "tls-both-64k", title: "TLS bulk, GenTCP both ends, 64 KiB", reference: reference,
             work: .bytes(bytes), goal: 0.9,
             genTCP: { try await TLSBench.bothEnds(total: bytes, buffer: big, driver: $0) },
             raw: { OpenSSLReference.bulk(total: bytes, readSize: big) }),
        Case(name: "tls-handshakes", title: "TLS full handshakes, GenTCP both ends", reference: "OpenSSL both ends",
             work: .handshakes(handshakes), goal: nil,
             genTCP: { try await TLSBench.handshakes(count: handshakes, driver: $0) },
             raw: { OpenSSLReference.handshakes(count: handshakes) }),
    ]
}
