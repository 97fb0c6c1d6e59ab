import GenTCPCore

/// Espressif ESP-AT (ESP32 family, ESP8266 ESP-AT, tolerant of the NonOS AT 1.7 formats).
///
/// Commands end with CR-LF. Multiplexed links 0–4 after ``ModemCommand/enableMultiplexing``
/// (the driver always turns it on); before that, only link 0 in single-link forms.
/// Passive receive uses `AT+CIPRECVTYPE` from v3.3 on and `AT+CIPRECVMODE` before (or when the
/// version was never read), chosen from the `AT+GMR` answer.
public struct ESPATDialect: ModemDialect {
    /// Whether `AT+CIPMUX=1` took effect.
    public private(set) var multiplexed = false
    /// Whether passive receive was turned on.
    public private(set) var passiveReceive = false
    /// The `AT version:` the module reported, if any.
    public private(set) var version: ModemVersion?
    /// Whether the module prints remote info in `+IPD` and `+CIPRECVDATA` (`AT+CIPDINFO=1`):
    /// as given at init (a module set up elsewhere), and on from a successful
    /// ``ModemCommand/enableRemoteInfo``; a restart takes it back to the init value.
    public private(set) var remoteInfo: Bool
    let initialRemoteInfo: Bool

    /// The dialect, told whether the module has `AT+CIPDINFO=1` set (off by default).
    public init(remoteInfo: Bool = false) {
        self.remoteInfo = remoteInfo
        self.initialRemoteInfo = remoteInfo
    }

    /// The first version that has `AT+CIPRECVTYPE` (git 0f6bc33, tag v3.3.0.0).
    public static let receiveTypeVersion = ModemVersion(3, 3)

    public var limits: ModemLimits {
        ModemLimits(maxLinks: 5, maxSendLength: 8192, maxReadLength: 8192, maxPayloadLength: 8192,
                    maxHostLength: 64, maxCredentialLength: 64,
                    asyncConnectTimeout: 0, asyncResolveTimeout: 0)
    }
    public var framing: ATFraming {
        remoteInfo ? [.ipd, .cipRecvData, .cipRecvDataRemoteInfo] : [.ipd, .cipRecvData]
    }
    public var commandTerminator: StaticString { "\r\n" }
    public var connectsAsynchronously: Bool { false }
    public var resolvesAsynchronously: Bool { false }
    public var keepsLinkAfterPeerClose: Bool { false }

    func linkPrefix(_ link: Int, _ w: inout CommandWriter) throws(ModemError) {
        try w.appendLinkPrefix(link, multiplexed: multiplexed)
    }

    public func build(_ command: ModemCommand, into w: inout CommandWriter) throws(ModemError) -> Bool {
        switch command {
        case .probe: try w.append("AT")
        case .echoOff: try w.append("ATE0")
        case .restart: try w.append("AT+RST")
        case .version: try w.append("AT+GMR")
        case .enableMultiplexing: try w.append("AT+CIPMUX=1")
        case .enablePassiveReceive:
            if let version, version >= ESPATDialect.receiveTypeVersion {
                // Id 5 means every link.
                try w.append(multiplexed ? "AT+CIPRECVTYPE=5,1" : "AT+CIPRECVTYPE=1")
            } else {
                try w.append("AT+CIPRECVMODE=1")
            }
        case .joinNetwork(let ssid, let password):
            try w.append("AT+CWJAP=")
            try w.append(quoted: ssid, maxLength: 32)
            try w.append(",")
            try w.append(quoted: password, maxLength: limits.maxCredentialLength, allowEmpty: true)
        case .configureBearer, .activateBearer, .deactivateBearer:
            throw ModemError(.notSupported, "ESP-AT has no packet bearer")
        case .localAddress: try w.append("AT+CIFSR")
        case .resolve(let host):
            try w.append("AT+CIPDOMAIN=")
            try w.append(quoted: host, maxLength: limits.maxHostLength)
        case .connect(let link, let host, let port):
            try w.append("AT+CIPSTART=")
            try linkPrefix(link, &w)
            try w.append("\"TCP\",")
            try w.append(quoted: host, maxLength: limits.maxHostLength)
            try w.append(",")
            try w.append(decimal: port)
        case .connectSecure(let link, let host, let port):
            // ESP-T4: the same command with type "SSL"; the settings of ESP-T1..T3 apply.
            try w.append("AT+CIPSTART=")
            try linkPrefix(link, &w)
            try w.append("\"SSL\",")
            try w.append(quoted: host, maxLength: limits.maxHostLength)
            try w.append(",")
            try w.append(decimal: port)
        case .uploadFile:
            throw ModemError(.notSupported, "this module takes no file uploads")
        case .configureTLS(let link, let step):
            try buildTLS(step, link: link, into: &w)
        case .openDatagram(let link, let host, let port, let localPort):
            // Remote mode 2 (ESP-U2): the stored remote follows each sender; every send names
            // its destination, so the stored one is never used.
            try w.append("AT+CIPSTART=")
            try linkPrefix(link, &w)
            try w.append("\"UDP\",")
            try w.append(quoted: host, maxLength: limits.maxHostLength)
            try w.append(",")
            try w.append(decimal: port)
            try w.append(",")
            try w.append(decimal: localPort)
            try w.append(",2")
        case .bindLocalPort:
            return false
        case .enableRemoteInfo:
            try w.append("AT+CIPDINFO=1")
        case .setReceiveMode(let link, let passive):
            guard let version, version >= ESPATDialect.receiveTypeVersion else {
                throw ModemError(.notSupported, "ESP-AT before v3.3 has no per-link receive mode")
            }
            try w.append("AT+CIPRECVTYPE=")
            try linkPrefix(link, &w)
            try w.append(passive ? "1" : "0")
        case .send(let link, let count):
            try w.append("AT+CIPSEND=")
            try linkPrefix(link, &w)
            try w.append(decimal: count)
        case .sendDatagram(let link, let count, let destination):
            try w.append("AT+CIPSEND=")
            try linkPrefix(link, &w)
            try w.append(decimal: count)
            try w.append(",")
            try w.append(endpoint: destination)
        case .read(let link, let maximum):
            try w.append("AT+CIPRECVDATA=")
            try linkPrefix(link, &w)
            try w.append(decimal: maximum)
        case .queryAvailable: try w.append("AT+CIPRECVLEN?")
        case .close(let link):
            if multiplexed {
                try w.append("AT+CIPCLOSE=")
                try w.append(decimal: link)
            } else {
                guard link == 0 else { throw ModemError(.invalidArgument, "only link 0 before multiplexing is on") }
                try w.append("AT+CIPCLOSE")
            }
        case .setBaudRate(let rate, let flow):
            try w.append("AT+UART_CUR=")
            try w.append(decimal: rate)
            try w.append(flow ? ",8,1,0,3" : ",8,1,0,0")
        case .raw(let text): try w.append(text)
        case .queryStatus:
            throw ModemError(.notSupported, "ESP-AT has no SIM or packet bearer")
        }
        return true
    }

    public func classify(_ line: ATLine, context: ModemLineContext) -> ModemLineMeaning {
        if line.equals("ready") { return .reset }
        if line.hasPrefix("busy ") { return .busy }
        if context.phase == .awaitingSendResult {
            if line.equals("SEND OK") { return .success }
            if line.equals("SEND FAIL") { return .failure(.sendFailed) }
            if line.hasPrefix("Recv ") { return .ignored }
        }
        if line.equals("SEND OK") || line.equals("SEND FAIL") || line.hasPrefix("Recv ")
            || line.equals("SEND Canceled") {
            return .ignored  // a send result with no send in flight
        }
        if line.equals("FAIL") { return .failure(.fail) }
        if let final = ATCommon.finalResult(line) { return final }

        if let link = ATCommon.link(in: line, before: "CONNECT") { return .unsolicited(.connected(link: link)) }
        if let link = ATCommon.link(in: line, before: "CLOSED") { return .unsolicited(.closed(link: link)) }
        if let link = ATCommon.link(in: line, before: "CONNECT FAIL") {
            return .unsolicited(.connectFailed(link: link, reason: .connectionRefused))
        }
        if var fields = line.fields(afterPrefix: "+IPD,") {
            // The passive-mode notice: link,len | len | link,len,ip,port | len,ip,port.
            let count = ESPATDialect.fieldCount(line, from: 5)
            let first = fields.nextInteger()
            let second = fields.nextInteger()
            switch count {
            case 1, 3: if let len = first, len >= 0 { return .unsolicited(.dataAvailable(link: 0, length: len)) }
            case 2, 4:
                if let link = first, let len = second, link >= 0, len >= 0 {
                    return .unsolicited(.dataAvailable(link: link, length: len))
                }
            default: break
            }
            return .unrecognised
        }
        if line.equals("WIFI CONNECTED") { return .unsolicited(.network(.wifiConnected)) }
        if line.equals("WIFI GOT IP") { return .unsolicited(.network(.wifiGotIP)) }
        if line.equals("WIFI DISCONNECT") { return .unsolicited(.network(.wifiDisconnected)) }
        if line.hasPrefix("ERR CODE:") || line.hasPrefix("+ERRNO:") || line.hasPrefix("+TIME_UPDATED")
            || line.hasPrefix("+QUITT") {
            return .ignored
        }

        if line.equals("ALREADY CONNECTED") { return .information(.failureHint(.alreadyConnected)) }
        if line.equals("link is not valid") { return .information(.failureHint(.linkInvalid)) }
        if line.equals("DNS Fail") { return .information(.failureHint(.dnsFailed)) }
        if let fields = line.fields(afterPrefix: "AT version:") {
            let rest = ATLine(UnsafeRawBufferPointer(rebasing: line.bytes[fields.position...]))
            if let version = ModemVersion(text: rest) { return .information(.version(version)) }
            return .information(.text)
        }
        if var fields = line.fields(afterPrefix: "+CIPDOMAIN:") {
            if let address = ModemAddress(text: fields.nextString()) { return .information(.resolved(address)) }
            return .information(.text)
        }
        if var fields = line.fields(afterPrefix: "+CIFSR:STAIP,") {
            if let address = ModemAddress(text: fields.nextString()) { return .information(.localAddress(address)) }
            return .information(.text)
        }
        if var fields = line.fields(afterPrefix: "+CIPRECVLEN:") {
            // One field per link; closed links read -1, empty or 0 depending on the version.
            let wanted = multiplexed ? (context.link ?? 0) : 0
            var index = 0
            while !fields.isAtEnd || index == 0 {
                let value = fields.nextInteger()
                if index == wanted {
                    if let value, value >= 0 { return .information(.available(link: wanted, length: value)) }
                    return .information(.text)
                }
                index += 1
                if index > 16 { break }
            }
            return .information(.text)
        }
        return .unrecognised
    }

    /// Fields in `line` after `start`, counting commas outside quotes.
    static func fieldCount(_ line: ATLine, from start: Int) -> Int {
        var count = 1
        var quoted = false
        var i = start
        while i < line.count {
            let b = line.bytes[i]
            if b == ASCII.quote { quoted.toggle() } else if b == ASCII.comma, !quoted { count += 1 }
            i += 1
        }
        return count
    }

    public func reason(for failure: ModemFailure, of command: ModemCommandKind) -> ModemReason {
        switch failure {
        case .timeout: return command == .connect ? .connectionTimedOut : .timeout
        case .moduleReset: return .closed
        case .busy: return .resourceBusy
        case .alreadyConnected: return .alreadyConnected
        case .dnsFailed: return .nonExistentDomain
        case .linkInvalid: return command == .send ? .closed : .notConnected
        case .sendFailed: return .closed
        case .error, .fail, .cmeError, .cmsError:
            switch command {
            case .connect: return .connectionRefused
            case .openDatagram: return .addressInUse
            case .resolve: return .nonExistentDomain
            case .send: return .closed
            case .read, .queryAvailable: return .tryAgain
            case .close: return .notConnected
            case .joinNetwork: return .networkUnreachable
            case .localAddress: return .networkDown
            default: return .invalidArgument
            }
        }
    }

    public func timeout(for command: ModemCommand) -> UInt32 {
        switch command {
        case .restart: 5_000
        case .joinNetwork: 20_000
        case .connect: 30_000
        case .connectSecure: 60_000  // a handshake on top of the connect
        case .openDatagram: 5_000
        case .resolve: 20_000
        case .close: 5_000
        case .send: 5_000
        case .read: 5_000
        default: 2_000
        }
    }

    public mutating func commandSucceeded(_ command: ModemCommand) {
        switch command {
        case .enableMultiplexing: multiplexed = true
        case .enablePassiveReceive: passiveReceive = true
        case .enableRemoteInfo: remoteInfo = true
        default: break
        }
    }

    public mutating func learn(_ information: ModemInformation) {
        if case .version(let v) = information { version = v }
    }

    public mutating func moduleDidReset() {
        multiplexed = false
        passiveReceive = false
        remoteInfo = initialRemoteInfo
    }
}

// MARK: TLS (docs/modem-behaviour.md, ESP-T1..ESP-T6)

extension ESPATDialect {
    /// The longest SNI name `AT+CIPSSLCSNI` takes (ESP-T2).
    public static let maxServerNameLength = 64
    /// The most ALPN protocols `AT+CIPSSLCALPN` takes (ESP-T3).
    public static let maxApplicationProtocols = 3

    func buildTLS(_ step: ModemTLSStep, link: Int, into w: inout CommandWriter) throws(ModemError) {
        switch step {
        case .espConfigure(let mode, let pki, let ca):
            guard (0...3).contains(mode), pki >= 0, ca >= 0 else { throw ModemError(.invalidArgument, "bad SSL auth settings") }
            try w.append("AT+CIPSSLCCONF=")
            try linkPrefix(link, &w)
            try w.append(decimal: mode)
            try w.append(",")
            try w.append(decimal: pki)
            try w.append(",")
            try w.append(decimal: ca)
        case .espServerName(let name):
            try w.append("AT+CIPSSLCSNI=")
            try linkPrefix(link, &w)
            try w.append(quoted: name, maxLength: ESPATDialect.maxServerNameLength)
        case .espApplicationProtocols(let protocols):
            guard !protocols.isEmpty, protocols.count <= ESPATDialect.maxApplicationProtocols else {
                throw ModemError(.notSupported, "ESP-AT offers 1 to 3 ALPN protocols")
            }
            try w.append("AT+CIPSSLCALPN=")
            try linkPrefix(link, &w)
            try w.append(decimal: protocols.count)
            for p in protocols {
                try w.append(",")
                try w.append(quoted: p, maxLength: 32)
            }
        default:
            throw ModemError(.notSupported, "not an ESP-AT TLS setting")
        }
    }

    /// ESP-T1..T3: `AT+CIPSSLCCONF` always (a link keeps the last settings it had), then SNI
    /// for a name, then ALPN when asked. A CA *file* is not something ESP-AT has.
    public func tlsSteps(link: Int, host: String, settings: ModemTLSSettings) throws(ModemError) -> [ModemTLSStep] {
        var mode = 0
        var ca = 0
        switch settings.trust {
        case .none: break
        case .slot(let n):
            guard n >= 0 else { throw ModemError(.invalidArgument, "CA slot must be 0 or more") }
            mode = 2
            ca = n
        case .file, .upload:
            throw ModemError(.notSupported, "ESP-AT keeps CAs in flash slots, not files")
        }
        var pki = 0
        if let slot = settings.clientCertificateSlot {
            guard slot >= 0 else { throw ModemError(.invalidArgument, "PKI slot must be 0 or more") }
            mode |= 1
            pki = slot
        }
        var steps: [ModemTLSStep] = [.espConfigure(authMode: mode, pki: pki, ca: ca)]
        if let name = settings.sniName(host: host) {
            try ModemValidation.check(name, maxLength: ESPATDialect.maxServerNameLength)
            steps.append(.espServerName(name))
        }
        if !settings.applicationProtocols.isEmpty {
            guard settings.applicationProtocols.count <= ESPATDialect.maxApplicationProtocols else {
                throw ModemError(.notSupported, "ESP-AT offers at most 3 ALPN protocols")
            }
            for p in settings.applicationProtocols { try ModemValidation.check(p, maxLength: 32) }
            steps.append(.espApplicationProtocols(settings.applicationProtocols))
        }
        return steps
    }
}
