import GenTCP
import GenTCPCore
import GenTCPTLS
import GenTCPTLSEngine
#if canImport(Glibc)
import Glibc
#endif

/// A client certificate and its key in the simulated module's store (PEM files on the host).
public struct ModemClientCertificate: Sendable, Hashable {
    /// The certificate chain, leaf first (PEM).
    public var certificateChainFile: String
    /// The private key (PEM).
    public var privateKeyFile: String

    /// A certificate and key, as host paths.
    public init(certificateChainFile: String, privateKeyFile: String) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
    }
}

/// What the simulated module's TLS stack holds: CA certificates in ESP-AT slots or BG96 files,
/// client certificates in ESP-AT PKI slots. Each entry names a PEM file on the host, which the
/// module's TLS engine reads when a link opens (docs/modem-behaviour.md, ESP-T and BG-T items).
public struct ModemTLSStore: Sendable, Hashable {
    /// ESP-AT CA slots (`ca_number` of `AT+CIPSSLCCONF`) → a PEM file of trusted CA certificates.
    public var caSlots: [Int: String]
    /// ESP-AT PKI slots (`pki_number`) → the module's client certificate and key.
    public var clientSlots: [Int: ModemClientCertificate]
    /// BG96 files (`"UFS:cacert.pem"`, as `AT+QSSLCFG="cacert"` names them) → a PEM file on the host.
    public var files: [String: String]
    /// Whether the firmware has TLS at all: false answers `ERROR` to every TLS command (an
    /// ESP-AT build without SSL, a SIM800 build without `AT+CIPSSL`).
    public var supported: Bool

    /// A store with the given entries (empty by default) and TLS on.
    public init(caSlots: [Int: String] = [:], clientSlots: [Int: ModemClientCertificate] = [:],
                files: [String: String] = [:], supported: Bool = true) {
        self.caSlots = caSlots
        self.clientSlots = clientSlots
        self.files = files
        self.supported = supported
    }
}

/// What a TLS link of the simulated module checks and offers, gathered from the dialect's
/// setting commands.
struct SimTLSSettings: Sendable, Equatable {
    /// Host path of the CA PEM to verify against; nil: no verification.
    var caFile: String?
    /// Verification was asked for but the slot or file is empty: the handshake fails (unverified).
    var missingTrust = false
    var clientCertificate: ModemClientCertificate?
    /// The SNI name (ESP-AT `AT+CIPSSLCSNI`); nil: the host, when `sendsHostAsSNI`.
    var serverName: String?
    var sendsHostAsSNI = true
    var applicationProtocols: [String] = []
}

extension SimState {
    /// TLS failures (alerts, a peer that hung up mid-handshake) as opposed to connect failures.
    static func handshakeFailed(_ reason: SocketError.Reason) -> Bool {
        switch reason {
        case .tlsAlert, .closed, .truncated, .protocolError: true
        default: false
        }
    }

    /// The BG96 socket error code for a failed open (BG-3; 566 "socket connect failed" by default).
    static func bgCode(_ reason: SocketError.Reason) -> Int {
        switch reason {
        case .addressInUse: 556
        case .nonExistentDomain: 565
        case .timeout, .connectionTimedOut: 569
        default: 566
        }
    }

    // MARK: ESP-AT (ESP-T1..ESP-T6)

    /// `AT+CIPSSLCCONF`, `AT+CIPSSLCSNI`, `AT+CIPSSLCALPN`; false when `c` is none of them.
    mutating func espTLSExecute(_ c: ATCommandLine) -> Bool {
        guard c.name == "+CIPSSLCCONF" || c.name == "+CIPSSLCSNI" || c.name == "+CIPSSLCALPN" else { return false }
        guard configuration.tlsStore.supported, c.kind == .set else {
            error()
            return true
        }
        var args = c.arguments
        var link = 0
        if multiplexed {
            guard let id = c.int(0), (0..<links.count).contains(id) else {
                error()
                return true
            }
            link = id
            args.removeFirst()
        }
        // ESP-T1..T3: settings for a link that is open would apply only to its next open; the
        // simulator refuses them (unverified), as the module documents them for "before connecting".
        if links[link].inUse {
            error()
            return true
        }
        var settings = espTLS[link] ?? SimTLSSettings()
        switch c.name {
        case "+CIPSSLCCONF":
            // ESP-T1: <auth_mode>[,<pki_number>,<ca_number>].
            guard let mode = args.first?.int, (0...3).contains(mode) else {
                error()
                return true
            }
            let pki = args.count > 1 ? args[1].int : 0
            let ca = args.count > 2 ? args[2].int : 0
            guard let pki, let ca, pki >= 0, ca >= 0 else {
                error()
                return true
            }
            settings.caFile = nil
            settings.missingTrust = false
            settings.clientCertificate = nil
            if mode & 2 != 0 {
                settings.caFile = configuration.tlsStore.caSlots[ca]
                settings.missingTrust = settings.caFile == nil
            }
            if mode & 1 != 0 {
                settings.clientCertificate = configuration.tlsStore.clientSlots[pki]
            }
        case "+CIPSSLCSNI":
            // ESP-T2: one quoted name, 1...64 bytes.
            guard args.count == 1, case .quoted(let name) = args[0], !name.isEmpty, name.utf8.count <= 64 else {
                error()
                return true
            }
            settings.serverName = name
        default:
            // ESP-T3: <counts>,"<alpn>"... with 1...3 names.
            guard let count = args.first?.int, (1...3).contains(count), args.count == count + 1 else {
                error()
                return true
            }
            var names: [String] = []
            for a in args.dropFirst() {
                guard case .quoted(let name) = a, !name.isEmpty else {
                    error()
                    return true
                }
                names.append(name)
            }
            settings.applicationProtocols = names
        }
        espTLS[link] = settings
        ok()
        return true
    }

    // MARK: BG96 (BG-T1..BG-T7)

    /// The `AT+QSSL*` commands; false when `c` is none of them.
    mutating func bgTLSExecute(_ c: ATCommandLine) -> Bool {
        guard c.name.hasPrefix("+QSSL") else { return false }
        guard configuration.tlsStore.supported else {
            error()
            return true
        }
        switch (c.name, c.kind) {
        case ("+QSSLCFG", .set):
            bgConfigure(c)
        case ("+QSSLOPEN", .set):
            // BG-T2: <pdpctx>,<sslctx>,<id>,"<host>",<port>[,<access>]; OK, then +QSSLOPEN.
            guard c.arguments.count >= 5, let pdp = c.int(0), (1...16).contains(pdp),
                  let ctx = c.int(1), (0...5).contains(ctx), let id = linkIndex(c.int(2)),
                  let host = c.quoted(3), !host.isEmpty, let port = c.int(4), (1...65535).contains(port) else {
                return tlsError()
            }
            let access = c.int(5) ?? 0
            guard access == 0 || access == 1 else { return tlsError() }  // transparent mode is not simulated
            ok()
            if links[id].inUse {
                emit("\r\n+QSSLOPEN: \(id),563\r\n")
                return true
            }
            var settings = bgSSLContexts[ctx] ?? SimTLSSettings(sendsHostAsSNI: false)
            settings.serverName = nil
            startConnect(link: id, host: host, port: port, tls: settings)
            links[id].accessMode = access
        case ("+QSSLSEND", .set):
            // BG-T3: <id>,<len> → "> ", the bytes, SEND OK.
            guard c.arguments.count == 2, let id = linkIndex(c.int(0)), links[id].secure,
                  let count = c.int(1), (1...1460).contains(count), links[id].phase == .open else { return tlsError() }
            emit("\r\n> ")
            mode = .payload(link: id, count: count)
        case ("+QSSLRECV", .set):
            // BG-T4: <id>,<len> → "+QSSLRECV: <n>" CRLF data CRLF OK; n 0 when empty.
            guard c.arguments.count == 2, let id = linkIndex(c.int(0)), links[id].secure, links[id].readable,
                  let maximum = c.int(1), (1...1500).contains(maximum) else { return tlsError() }
            let data = take(id, maximum)
            if data.isEmpty {
                emit("\r\n+QSSLRECV: 0\r\n\r\nOK\r\n")
            } else {
                emit(Array("\r\n+QSSLRECV: \(lengthField(data.count))\r\n".utf8) + data + Array("\r\n\r\nOK\r\n".utf8))
            }
            afterDrain(id)
        case ("+QSSLCLOSE", .set):
            // BG-T6: <id>[,<timeout>] → OK; the id is free again.
            guard let id = linkIndex(c.int(0)), links[id].secure || !links[id].inUse else { return tlsError() }
            dropLink(id, abortive: false)
            ok()
        case ("+QSSLSTATE", .set):
            guard let id = linkIndex(c.int(0)) else { return tlsError() }
            if links[id].secure, links[id].inUse {
                // Same fields as +QISTATE, service type "SSLClient" (BG-T4, unverified).
                let l = links[id]
                let state = l.phase == .open ? 2 : l.phase == .connecting ? 1 : 4
                emit("\r\n+QSSLSTATE: \(id),\"SSLClient\",\"\(l.remote.map { "\($0.address)" } ?? "")\",\(l.remote?.port ?? 0),"
                    + "\(l.local?.port ?? 0),\(state),1,\(id),\(l.accessMode),\"uart1\"\r\n\r\nOK\r\n")
            } else {
                ok()
            }
        default:
            error()
        }
        return true
    }

    private mutating func tlsError() -> Bool {
        error()
        return true
    }

    // MARK: BG96 files (BG-T8)

    /// `AT+QFDEL="<name>"` and `AT+QFUPL="<name>",<size>[,<timeout>]`; false for other commands.
    mutating func bgFileExecute(_ c: ATCommandLine) -> Bool {
        switch (c.name, c.kind) {
        case ("+QFDEL", .set):
            guard let name = c.quoted(0), !name.isEmpty else { return tlsError() }
            guard let path = uploadedFiles.removeValue(forKey: name) else {
                emit("\r\n+CME ERROR: 405\r\n")  // file not found (unverified code)
                return true
            }
            _ = unlink(path)
            ok()
        case ("+QFUPL", .set):
            // CONNECT, then exactly <size> bytes, then +QFUPL: <size>,<checksum> and OK.
            guard let name = c.quoted(0), !name.isEmpty, let size = c.int(1), (1...65_536).contains(size) else {
                return tlsError()
            }
            if uploadedFiles[name] != nil {
                emit("\r\n+CME ERROR: 407\r\n")  // file already exists (unverified code)
                return true
            }
            emit("\r\nCONNECT\r\n")
            payload = []
            mode = .upload(name: name, count: size)
        default:
            return false
        }
        return true
    }

    /// The bytes of an `AT+QFUPL` arrived: kept as a file on the host, then the result.
    mutating func uploadComplete(name: String, data: [UInt8]) {
        guard let path = SimState.writeTemporaryFile(data) else {
            emit("\r\n+CME ERROR: 409\r\n")  // fail to write the file (unverified code)
            return
        }
        uploadedFiles[name] = path
        // The checksum: the XOR of the bytes taken two at a time (unverified).
        var sum: UInt16 = 0
        var i = 0
        while i < data.count {
            sum ^= UInt16(data[i]) << 8 | (i + 1 < data.count ? UInt16(data[i + 1]) : 0)
            i += 2
        }
        emit("\r\n+QFUPL: \(data.count),\(String(sum, radix: 16))\r\n\r\nOK\r\n")
    }

    /// Writes `bytes` to a new file under /tmp; its path, or nil.
    static func writeTemporaryFile(_ bytes: [UInt8]) -> String? {
        var template = Array("/tmp/gentcp-modem-XXXXXX.pem".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 4) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return nil }
            offset += n
        }
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The host file behind the module's file `name`: an upload, else the store's.
    func moduleFile(_ name: String) -> String? {
        uploadedFiles[name] ?? configuration.tlsStore.files[name]
    }

    /// `AT+QSSLCFG="<name>",<ctx>,<value>` (BG-T1): the settings the simulator acts on are
    /// `"seclevel"`, `"cacert"` and `"sni"`; `"sslversion"`, `"ciphersuite"`,
    /// `"ignorelocaltime"` and `"negotiatetime"` are accepted and kept nowhere.
    mutating func bgConfigure(_ c: ATCommandLine) {
        guard let name = c.quoted(0), let ctx = c.int(1), (0...5).contains(ctx), c.arguments.count == 3 else {
            return error()
        }
        var settings = bgSSLContexts[ctx] ?? SimTLSSettings(sendsHostAsSNI: false)
        switch name {
        case "sslversion":
            guard let v = c.int(2), (0...4).contains(v) else { return error() }
        case "ciphersuite", "ignorelocaltime", "negotiatetime":
            break
        case "seclevel":
            guard let level = c.int(2), (0...2).contains(level) else { return error() }
            settings.missingTrust = false
            if level == 0 {
                settings.caFile = nil
            } else {
                // BG-T1: the CA named by "cacert" (checked when the link opens).
                let file = bgCACertName[ctx] ?? "UFS:cacert.pem"
                settings.caFile = moduleFile(file)
                settings.missingTrust = settings.caFile == nil
            }
        case "cacert":
            guard let file = c.quoted(2), !file.isEmpty else { return error() }
            bgCACertName[ctx] = file
            if settings.caFile != nil || settings.missingTrust {
                settings.caFile = moduleFile(file)
                settings.missingTrust = settings.caFile == nil
            }
        case "sni":
            guard let on = c.int(2), on == 0 || on == 1 else { return error() }
            settings.sendsHostAsSNI = on == 1
        default:
            return error()
        }
        bgSSLContexts[ctx] = settings
        ok()
    }

    // MARK: SIM800 (SIM-T1..SIM-T4)

    /// `AT+CIPSSL=<n>` and its query; false for other commands.
    mutating func simTLSExecute(_ c: ATCommandLine) -> Bool {
        guard c.name == "+CIPSSL" else { return false }
        guard configuration.tlsStore.supported else {
            error()
            return true
        }
        switch c.kind {
        case .set:
            guard c.arguments.count == 1, let n = c.int(0), n == 0 || n == 1 else {
                error()
                return true
            }
            simSSL = n == 1
            ok()
        case .query:
            emit("\r\n+CIPSSL: \(simSSL ? 1 : 0)\r\n\r\nOK\r\n")
        default:
            error()
        }
        return true
    }

    /// SIM-T2: what the next TCP `AT+CIPSTART` runs under `AT+CIPSSL=1`: no verification, the
    /// host as SNI when it is a name (unverified), no ALPN.
    var simTLSSettings: SimTLSSettings? {
        simSSL ? SimTLSSettings() : nil
    }
}

extension ModemSimulator {
    /// The client context a TLS link runs: verification against the store's CA when asked,
    /// the SNI name, ALPN, a client certificate.
    static func clientContext(_ tls: SimTLSSettings) throws(SocketError) -> TLSContext {
        let sni: TLSConfiguration.ServerNameIndication
        if let name = tls.serverName {
            sni = .name(name)
        } else {
            sni = tls.sendsHostAsSNI ? .host : .disabled
        }
        let configuration = TLSConfiguration.client(
            verify: tls.caFile == nil ? .none : .peer,
            trustRoots: tls.caFile.map { .file($0) } ?? .system,
            serverNameIndication: sni,
            applicationProtocols: tls.applicationProtocols,
            certificateChainFile: tls.clientCertificate?.certificateChainFile,
            privateKeyFile: tls.clientCertificate?.privateKeyFile)
        do {
            return try TLSContext(configuration)
        } catch {
            throw SocketError(.badArgument, "the module's TLS settings do not load")
        }
    }
}
