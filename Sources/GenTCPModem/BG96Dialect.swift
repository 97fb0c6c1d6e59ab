import GenTCPCore

/// Quectel BG96 (and BG95/BG77/EC2x) TCP/IP (`AT+QI*`).
///
/// Commands end with CR. Links (connect ids) 0–11 on PDP context ``contextID``; sockets are
/// opened in buffer access mode, so receive is always pull (`+QIURC: "recv"`, `AT+QIRD`).
/// `+QIOPEN: <id>,<err>` reports the connect; socket errors (5xx) map to gen_tcp reasons.
/// A peer close (`+QIURC: "closed"`) leaves the id in use until `AT+QICLOSE`.
public struct BG96Dialect: ModemDialect {
    /// The PDP context the sockets use (1–16).
    public let contextID: Int
    /// Links opened as `"UDP SERVICE"` (bit per id): their reads take no length (BG-U4).
    public private(set) var serviceLinks: UInt32 = 0
    /// Links opened with `AT+QSSLOPEN` (bit per id): their data, reads and close use the
    /// `AT+QSSL*` commands (BG-T3..BG-T6).
    public private(set) var secureLinks: UInt32 = 0

    /// The dialect for PDP context `contextID`, clamped to 1–16.
    public init(contextID: Int = 1) {
        self.contextID = min(max(contextID, 1), 16)
    }

    public var limits: ModemLimits {
        ModemLimits(maxLinks: 12, maxSendLength: 1460, maxReadLength: 1500, maxPayloadLength: 1500,
                    maxHostLength: 128, maxCredentialLength: 64,
                    asyncConnectTimeout: 150_000, asyncResolveTimeout: 60_000)
    }
    public var framing: ATFraming { [.qird, .qsslRecv] }
    public var commandTerminator: StaticString { "\r" }
    public var connectsAsynchronously: Bool { true }
    public var resolvesAsynchronously: Bool { true }
    public var keepsLinkAfterPeerClose: Bool { true }

    public func build(_ command: ModemCommand, into w: inout CommandWriter) throws(ModemError) -> Bool {
        switch command {
        case .probe: try w.append("AT")
        case .echoOff: try w.append("ATE0")
        case .restart: try w.append("AT+CFUN=1,1")
        case .version: try w.append("ATI")
        case .enableMultiplexing, .enablePassiveReceive:
            return false  // always multi-link; buffer access mode is chosen in AT+QIOPEN
        case .joinNetwork: throw ModemError(.notSupported, "BG96 has no Wi-Fi")
        case .configureBearer(let apn, let user, let password):
            try w.append("AT+QICSGP=")
            try w.append(decimal: contextID)
            try w.append(",1,")
            try w.append(quoted: apn, maxLength: limits.maxCredentialLength)
            try w.append(",")
            try w.append(quoted: user, maxLength: limits.maxCredentialLength, allowEmpty: true)
            try w.append(",")
            try w.append(quoted: password, maxLength: limits.maxCredentialLength, allowEmpty: true)
            // Authentication: none without a user name, otherwise PAP or CHAP.
            try w.append(user.isEmpty ? ",0" : ",3")
        case .activateBearer:
            try w.append("AT+QIACT=")
            try w.append(decimal: contextID)
        case .deactivateBearer:
            try w.append("AT+QIDEACT=")
            try w.append(decimal: contextID)
        case .localAddress: try w.append("AT+QIACT?")
        case .resolve(let host):
            try w.append("AT+QIDNSGIP=")
            try w.append(decimal: contextID)
            try w.append(",")
            try w.append(quoted: host, maxLength: limits.maxHostLength)
        case .connect(let link, let host, let port):
            try w.append("AT+QIOPEN=")
            try w.append(decimal: contextID)
            try w.append(",")
            try w.append(decimal: link)
            try w.append(",\"TCP\",")
            try w.append(quoted: host, maxLength: limits.maxHostLength)
            try w.append(",")
            try w.append(decimal: port)
            try w.append(",0,0")  // any local port, buffer access mode
        case .connectSecure(let link, let host, let port):
            // BG-T2: SSL context = link % 6, configured just before (BG-T1); buffer access mode.
            try w.append("AT+QSSLOPEN=")
            try w.append(decimal: contextID)
            try w.append(",")
            try w.append(decimal: BG96Dialect.sslContext(link))
            try w.append(",")
            try w.append(decimal: link)
            try w.append(",")
            try w.append(quoted: host, maxLength: limits.maxHostLength)
            try w.append(",")
            try w.append(decimal: port)
            try w.append(",0")
        case .configureTLS(let link, let step):
            try buildTLS(step, link: link, into: &w)
        case .uploadFile(_, let name, let count):
            // BG-T8: AT+QFUPL="<name>",<size>,<timeout s>; CONNECT, the bytes, +QFUPL, OK.
            try w.append("AT+QFUPL=")
            try w.append(quoted: name, maxLength: 80)
            try w.append(",")
            try w.append(decimal: count)
            try w.append(",60")
        case .openDatagram(let link, let host, let port, let localPort):
            // BG-U1: "UDP SERVICE" takes anyone's datagrams and a destination per send; "UDP"
            // is bound to one remote. Buffer access mode, as for TCP.
            try w.append("AT+QIOPEN=")
            try w.append(decimal: contextID)
            try w.append(",")
            try w.append(decimal: link)
            if port == 0 {
                try w.append(",\"UDP SERVICE\",\"127.0.0.1\",0,")
            } else {
                try w.append(",\"UDP\",")
                try w.append(quoted: host, maxLength: limits.maxHostLength)
                try w.append(",")
                try w.append(decimal: port)
                try w.append(",")
            }
            try w.append(decimal: localPort)
            try w.append(",0")
        case .bindLocalPort, .enableRemoteInfo, .setReceiveMode:
            return false
        case .send(let link, let count) where isSecureLink(link):
            try w.append("AT+QSSLSEND=")
            try w.append(decimal: link)
            try w.append(",")
            try w.append(decimal: count)
        case .read(let link, let maximum) where isSecureLink(link):
            try w.append("AT+QSSLRECV=")
            try w.append(decimal: link)
            try w.append(",")
            try w.append(decimal: maximum)
        case .queryAvailable(let link) where isSecureLink(link):
            // BG-T4: no length query for SSL links; the state query proves the module alive.
            try w.append("AT+QSSLSTATE=")
            try w.append(decimal: link)
        case .close(let link) where isSecureLink(link):
            try w.append("AT+QSSLCLOSE=")
            try w.append(decimal: link)
        case .send(let link, let count):
            try w.append("AT+QISEND=")
            try w.append(decimal: link)
            try w.append(",")
            try w.append(decimal: count)
        case .sendDatagram(let link, let count, let destination):
            guard case .ipv4 = destination.address else {
                throw ModemError(.notSupported, "BG96 sends UDP to IPv4 addresses")
            }
            try w.append("AT+QISEND=")
            try w.append(decimal: link)
            try w.append(",")
            try w.append(decimal: count)
            try w.append(",")
            try w.append(endpoint: destination)
        case .read(let link, let maximum):
            try w.append("AT+QIRD=")
            try w.append(decimal: link)
            if !isServiceLink(link) {
                // A "UDP SERVICE" read takes no length and returns one datagram (BG-U4).
                try w.append(",")
                try w.append(decimal: maximum)
            }
        case .queryAvailable(let link):
            try w.append("AT+QIRD=")
            try w.append(decimal: link)
            try w.append(",0")
        case .close(let link):
            try w.append("AT+QICLOSE=")
            try w.append(decimal: link)
        case .setBaudRate(let rate, _):
            try w.append("AT+IPR=")
            try w.append(decimal: rate)
        case .raw(let text): try w.append(text)
        case .queryStatus(let query):
            switch query {
            case .sim: try w.append("AT+CPIN?")
            case .attach: try w.append("AT+CGATT?")
            case .bearer, .multiplexing:
                throw ModemError(.notSupported, "BG96 reports its context with AT+QIACT?")
            }
        }
        return true
    }

    public func classify(_ line: ATLine, context: ModemLineContext) -> ModemLineMeaning {
        if line.equals("RDY") { return .reset }
        if line.equals("APP RDY") { return .bootBanner }
        if line.equals("POWERED DOWN") { return .ignored }

        if context.phase == .awaitingSendResult {
            if line.equals("SEND OK") { return .success }
            if line.equals("SEND FAIL") { return .failure(.sendFailed) }
        }
        if let final = ATCommon.finalResult(line) { return final }

        if var fields = line.fields(afterPrefix: "+QIOPEN:") {
            guard let link = fields.nextInteger(), link >= 0, let error = fields.nextInteger() else {
                return .unrecognised
            }
            if error == 0 { return .unsolicited(.connected(link: link)) }
            return .unsolicited(.connectFailed(link: link, reason: BG96Dialect.socketReason(error)))
        }
        if var fields = line.fields(afterPrefix: "+QIURC:") {
            let name = fields.nextString()
            if name.equals("closed") {
                if let link = fields.nextInteger(), link >= 0 { return .unsolicited(.closed(link: link)) }
            } else if name.equals("recv") {
                // Buffer access mode: "recv",<id>; BG95/EC2x may add ,<len>.
                if let link = fields.nextInteger(), link >= 0 {
                    return .unsolicited(.dataAvailable(link: link, length: fields.nextInteger()))
                }
            } else if name.equals("pdpdeact") {
                return .unsolicited(.network(.bearerLost))
            } else if name.equals("dnsgip") {
                // "dnsgip",<err>,<count>,<ttl> then one "dnsgip","<ip>" per address.
                let save = fields
                if let error = fields.nextInteger() {
                    return error == 0 ? .ignored : .unsolicited(.resolveFailed(BG96Dialect.socketReason(error)))
                }
                fields = save
                if let address = ModemAddress(text: fields.nextString()) { return .unsolicited(.resolved(address)) }
            } else {
                return .ignored  // "incoming full", "incoming" and others this engine does not model
            }
            return .unrecognised
        }
        if var fields = line.fields(afterPrefix: "+QSSLOPEN:") {
            // BG-T2: "+QSSLOPEN: <id>,<err>"; 0 is success, -1 a failed handshake (BG-T7).
            guard let link = fields.nextInteger(), link >= 0, let error = fields.nextInteger() else {
                return .unrecognised
            }
            if error == 0 { return .unsolicited(.connected(link: link)) }
            return .unsolicited(.connectFailed(link: link, reason: BG96Dialect.sslReason(error)))
        }
        if var fields = line.fields(afterPrefix: "+QSSLURC:") {
            // BG-T5: "recv",<id> and "closed",<id>.
            let name = fields.nextString()
            if name.equals("closed") {
                if let link = fields.nextInteger(), link >= 0 { return .unsolicited(.closed(link: link)) }
            } else if name.equals("recv") {
                if let link = fields.nextInteger(), link >= 0 {
                    return .unsolicited(.dataAvailable(link: link, length: fields.nextInteger()))
                }
            } else {
                return .ignored
            }
            return .unrecognised
        }
        if context.phase == .awaitingPrompt, context.command == .configureTLS, line.equals("CONNECT") {
            return .prompt  // BG-T8: AT+QFUPL's data prompt
        }
        if line.hasPrefix("+QFUPL:") { return context.phase == .idle ? .ignored : .information(.text) }
        if line.hasPrefix("+QSSLSTATE:") { return context.phase == .idle ? .ignored : .information(.text) }
        if var fields = line.fields(afterPrefix: "+QIRD:") {
            // AT+QIRD=<id>,0 answers "+QIRD: <total>,<read>,<unread>".
            _ = fields.nextInteger()
            _ = fields.nextInteger()
            if let unread = fields.nextInteger(), unread >= 0, let link = context.link {
                return .information(.available(link: link, length: unread))
            }
            return .information(.text)
        }
        if let status = ATCommon.status(line) {
            return context.phase == .idle ? .ignored : .information(.status(status))
        }
        if var fields = line.fields(afterPrefix: "+QIACT:") {
            // "+QIACT: <ctx>,<state>,<type>,"<ip>"".
            _ = fields.nextInteger()
            _ = fields.nextInteger()
            _ = fields.nextInteger()
            if let address = ModemAddress(text: fields.nextString()) { return .information(.localAddress(address)) }
            return .information(.text)
        }
        return .unrecognised
    }

    /// The TCP/IP error codes of Quectel's manuals (550–574), as gen_tcp reasons.
    public static func socketReason(_ code: Int) -> ModemReason {
        switch code {
        case 551, 568: .resourceBusy        // operation blocked, operation busy
        case 552, 555, 572: .invalidArgument // invalid parameters, not supported, not allowed
        case 553: .outOfMemory
        case 554: .systemLimit              // create socket failed
        case 556, 574: .addressInUse        // bind failed, port busy
        case 558, 559: .ioError             // socket write/read failed
        case 561, 570, 573: .networkDown    // PDP open failed, PDP broken, APN not configured
        case 563: .alreadyConnected         // socket identity has been used
        case 564: .tryAgain                 // DNS busy
        case 565: .nonExistentDomain        // DNS parse failed
        case 566: .connectionRefused        // socket connect failed
        case 567: .closed                   // socket has been closed
        case 569: .connectionTimedOut       // operation timeout
        default: .ioError
        }
    }

    public func reason(for failure: ModemFailure, of command: ModemCommandKind) -> ModemReason {
        switch failure {
        case .timeout: return command == .connect ? .connectionTimedOut : .timeout
        case .moduleReset: return .closed
        case .busy: return .resourceBusy
        case .alreadyConnected: return .alreadyConnected
        case .dnsFailed: return .nonExistentDomain
        case .linkInvalid: return .notConnected
        case .sendFailed: return .tryAgain  // the module's send buffer is full; retry later
        case .cmeError(let code?) where code >= 550 && code < 600: return BG96Dialect.socketReason(code)
        case .error, .fail, .cmeError, .cmsError:
            switch command {
            case .connect: return .connectionRefused
            case .openDatagram: return .addressInUse
            case .resolve: return .nonExistentDomain
            case .send: return .closed
            case .read, .queryAvailable: return .notConnected
            case .close: return .notConnected
            case .activateBearer, .configureBearer: return .networkUnreachable
            case .localAddress: return .networkDown
            default: return .invalidArgument
            }
        }
    }

    public func timeout(for command: ModemCommand) -> UInt32 {
        switch command {
        case .restart: 15_000
        case .activateBearer: 150_000
        case .deactivateBearer: 40_000
        case .connect: 10_000
        case .connectSecure: 10_000  // OK at once; the +QSSLOPEN wait is the async limit
        case .resolve: 10_000
        case .close: 11_000
        case .send: 5_000
        case .read: 5_000
        default: 2_000
        }
    }

    /// Whether `link` was opened as `"UDP SERVICE"`.
    public func isServiceLink(_ link: Int) -> Bool {
        link >= 0 && link < 32 && serviceLinks & (1 << UInt32(link)) != 0
    }

    public mutating func commandSucceeded(_ command: ModemCommand) {
        switch command {
        case .openDatagram(let link, _, let port, _) where link >= 0 && link < 32:
            secureLinks &= ~(1 << UInt32(link))
            if port == 0 { serviceLinks |= 1 << UInt32(link) } else { serviceLinks &= ~(1 << UInt32(link)) }
        case .connect(let link, _, _) where link >= 0 && link < 32:
            serviceLinks &= ~(1 << UInt32(link))
            secureLinks &= ~(1 << UInt32(link))
        case .connectSecure(let link, _, _) where link >= 0 && link < 32:
            serviceLinks &= ~(1 << UInt32(link))
            secureLinks |= 1 << UInt32(link)
        default:
            break
        }
    }

    public mutating func learn(_ information: ModemInformation) {}
    public mutating func moduleDidReset() {
        serviceLinks = 0
        secureLinks = 0
    }
}

// MARK: TLS (docs/modem-behaviour.md, BG-T1..BG-T7)

extension BG96Dialect {
    /// The SSL context (0–5) a link's TLS settings go in: one per link id, modulo the six the
    /// module has (settings are written just before each open, which reads them).
    public static func sslContext(_ link: Int) -> Int { link % 6 }

    /// Whether `link` was opened with `AT+QSSLOPEN`.
    public func isSecureLink(_ link: Int) -> Bool {
        link >= 0 && link < 32 && secureLinks & (1 << UInt32(link)) != 0
    }

    /// `+QSSLOPEN: <id>,<err>` codes as gen_tcp reasons: -1 (the handshake failed: certificate,
    /// version or cipher) is `eproto`; the 5xx socket codes as for `AT+QIOPEN`.
    public static func sslReason(_ code: Int) -> ModemReason {
        code < 0 ? .protocolError : socketReason(code)
    }

    func buildTLS(_ step: ModemTLSStep, link: Int, into w: inout CommandWriter) throws(ModemError) {
        let context = BG96Dialect.sslContext(link)
        switch step {
        case .quectelAnyVersion:
            try w.append("AT+QSSLCFG=\"sslversion\",")
            try w.append(decimal: context)
            try w.append(",4")
        case .quectelSecurityLevel(let level):
            guard (0...2).contains(level) else { throw ModemError(.invalidArgument, "seclevel is 0...2") }
            try w.append("AT+QSSLCFG=\"seclevel\",")
            try w.append(decimal: context)
            try w.append(",")
            try w.append(decimal: level)
        case .quectelCACertificate(let path):
            try w.append("AT+QSSLCFG=\"cacert\",")
            try w.append(decimal: context)
            try w.append(",")
            try w.append(quoted: path, maxLength: 80)
        case .quectelDeleteFile(let name):
            try w.append("AT+QFDEL=")
            try w.append(quoted: name, maxLength: 80)
        case .quectelUpload:
            throw ModemError(.invalidArgument, "an upload goes through ModemEngine.upload")
        case .quectelServerName(let on):
            try w.append("AT+QSSLCFG=\"sni\",")
            try w.append(decimal: context)
            try w.append(on ? ",1" : ",0")
        default:
            throw ModemError(.notSupported, "not a Quectel TLS setting")
        }
    }

    /// BG-T1: version, then the CA file and level 1 (or level 0), then SNI for a name. The
    /// module sends the open's host as SNI: another name, ALPN or a client certificate slot is
    /// `enotsup`.
    public func tlsSteps(link: Int, host: String, settings: ModemTLSSettings) throws(ModemError) -> [ModemTLSStep] {
        guard settings.applicationProtocols.isEmpty else { throw ModemError(.notSupported, "BG96 offers no ALPN") }
        guard settings.clientCertificateSlot == nil else {
            throw ModemError(.notSupported, "BG96 takes client certificates as files, not slots")
        }
        if let name = settings.serverName {
            try ModemValidation.check(name, maxLength: limits.maxHostLength)
            guard sameBytes(name, host) else {
                throw ModemError(.notSupported, "BG96 sends the host it opens as SNI, no other name")
            }
        }
        var steps: [ModemTLSStep] = [.quectelAnyVersion]
        switch settings.trust {
        case .none:
            steps.append(.quectelSecurityLevel(0))
        case .file(let path):
            try ModemValidation.check(path, maxLength: 80)
            steps.append(.quectelCACertificate(path))
            steps.append(.quectelSecurityLevel(1))
        case .upload(let name, let pem):
            // BG-T8: replace the file (a missing one is fine), write it, then use it.
            try ModemValidation.check(name, maxLength: 80)
            guard !pem.isEmpty, pem.count <= limits.maxSendLength else {
                throw ModemError(.messageTooLong, "the CA file must be 1...1460 bytes (one upload)")
            }
            steps.append(.quectelDeleteFile(name))
            steps.append(.quectelUpload(name: name, pem: pem))
            steps.append(.quectelCACertificate(name))
            steps.append(.quectelSecurityLevel(1))
        case .slot:
            throw ModemError(.notSupported, "BG96 keeps CAs in files, not slots")
        }
        if settings.sniName(host: host) != nil { steps.append(.quectelServerName(true)) }
        return steps
    }
}
