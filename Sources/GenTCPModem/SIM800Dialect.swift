import GenTCPCore

/// SIMCom SIM800/SIM900 TCP/IP toolkit (`AT+CIP*`).
///
/// Commands end with CR. Multiplexed links 0–5 after ``ModemCommand/enableMultiplexing``.
/// Connect answers `OK` and the result comes later (`<n>, CONNECT OK`); receive is manual
/// (`AT+CIPRXGET=1`, read with `AT+CIPRXGET=2`, where the number after the length is what is
/// *left*, as TinyGSM found). Result lines come with and without the space after the comma.
public struct SIM800Dialect: ModemDialect {
    /// Whether `AT+CIPMUX=1` took effect.
    public private(set) var multiplexed = false
    /// Whether manual receive (`AT+CIPRXGET=1`) was turned on.
    public private(set) var passiveReceive = false
    /// Whether `AT+CIPSSL=1` is in force: the next `AT+CIPSTART` opens a TLS link (SIM-T1).
    public private(set) var sslEnabled = false

    /// The dialect of a module that has not been set up yet.
    public init() {}

    public var limits: ModemLimits {
        ModemLimits(maxLinks: 6, maxSendLength: 1460, maxReadLength: 1460, maxPayloadLength: 1460,
                    maxHostLength: 128, maxCredentialLength: 64,
                    asyncConnectTimeout: 75_000, asyncResolveTimeout: 30_000)
    }
    public var framing: ATFraming { [.cipRxGet, .ipd, .receive] }
    public var commandTerminator: StaticString { "\r" }
    public var connectsAsynchronously: Bool { true }
    public var resolvesAsynchronously: Bool { true }
    public var keepsLinkAfterPeerClose: Bool { false }

    func linkPrefix(_ link: Int, _ w: inout CommandWriter) throws(ModemError) {
        try w.appendLinkPrefix(link, multiplexed: multiplexed)
    }

    public func build(_ command: ModemCommand, into w: inout CommandWriter) throws(ModemError) -> Bool {
        switch command {
        case .probe: try w.append("AT")
        case .echoOff: try w.append("ATE0")
        case .restart: try w.append("AT+CFUN=1,1")
        case .version: try w.append("ATI")
        case .enableMultiplexing: try w.append("AT+CIPMUX=1")
        case .enablePassiveReceive: try w.append("AT+CIPRXGET=1")
        case .joinNetwork: throw ModemError(.notSupported, "SIM800 has no Wi-Fi")
        case .configureBearer(let apn, let user, let password) where apn.isEmpty && user.isEmpty && password.isEmpty:
            // The execution form starts the task with the module's default APN (SIM800 AT
            // manual §8.2.9); it is valid in IP INITIAL only, like the write form. (`isEmpty`,
            // not a `""` pattern: comparing strings would link the Unicode tables, 22 KB.)
            try w.append("AT+CSTT")
        case .configureBearer(let apn, let user, let password):
            try w.append("AT+CSTT=")
            try w.append(quoted: apn, maxLength: limits.maxCredentialLength)
            try w.append(",")
            try w.append(quoted: user, maxLength: limits.maxCredentialLength, allowEmpty: true)
            try w.append(",")
            try w.append(quoted: password, maxLength: limits.maxCredentialLength, allowEmpty: true)
        case .activateBearer: try w.append("AT+CIICR")
        case .deactivateBearer: try w.append("AT+CIPSHUT")
        case .localAddress: try w.append("AT+CIFSR")
        case .resolve(let host):
            try w.append("AT+CDNSGIP=")
            try w.append(quoted: host, maxLength: limits.maxHostLength)
        case .connect(let link, let host, let port):
            try w.append("AT+CIPSTART=")
            try linkPrefix(link, &w)
            try w.append("\"TCP\",")
            try w.append(quoted: host, maxLength: limits.maxHostLength)
            try w.append(",\"")
            try w.append(decimal: port)
            try w.append("\"")
        case .connectSecure(let link, let host, let port):
            // SIM-T2: a plain CIPSTART; AT+CIPSSL=1 (SIM-T1) makes it TLS.
            guard sslEnabled else { throw ModemError(.invalidArgument, "AT+CIPSSL=1 must come first") }
            try w.append("AT+CIPSTART=")
            try linkPrefix(link, &w)
            try w.append("\"TCP\",")
            try w.append(quoted: host, maxLength: limits.maxHostLength)
            try w.append(",\"")
            try w.append(decimal: port)
            try w.append("\"")
        case .uploadFile:
            throw ModemError(.notSupported, "this module takes no file uploads")
        case .configureTLS(_, let step):
            guard case .simcomSSL(let on) = step else { throw ModemError(.notSupported, "not a SIMCom TLS setting") }
            try w.append(on ? "AT+CIPSSL=1" : "AT+CIPSSL=0")
        case .openDatagram(let link, let host, let port, _):
            // SIM-U1: a UDP link is connected to one remote; its local port was set by
            // AT+CLPORT just before (SIM-U2).
            guard port != 0 else { throw ModemError(.notSupported, "SIM800 UDP links are connected to one remote") }
            try w.append("AT+CIPSTART=")
            try linkPrefix(link, &w)
            try w.append("\"UDP\",")
            try w.append(quoted: host, maxLength: limits.maxHostLength)
            try w.append(",\"")
            try w.append(decimal: port)
            try w.append("\"")
        case .bindLocalPort(let link, let port):
            try w.append("AT+CLPORT=")
            try linkPrefix(link, &w)
            try w.append("\"UDP\",")
            try w.append(decimal: port)
        case .enableRemoteInfo:
            try w.append("AT+CIPSRIP=1")
        case .setReceiveMode:
            return false
        case .sendDatagram:
            throw ModemError(.notSupported, "SIM800 sends only to a UDP link's own remote")
        case .send(let link, let count):
            try w.append("AT+CIPSEND=")
            try linkPrefix(link, &w)
            try w.append(decimal: count)
        case .read(let link, let maximum):
            try w.append("AT+CIPRXGET=2,")
            try linkPrefix(link, &w)
            try w.append(decimal: maximum)
        case .queryAvailable(let link):
            if multiplexed {
                try w.append("AT+CIPRXGET=4,")
                try w.append(decimal: link)
            } else {
                guard link == 0 else { throw ModemError(.invalidArgument, "only link 0 before multiplexing is on") }
                try w.append("AT+CIPRXGET=4")
            }
        case .close(let link):
            if multiplexed {
                try w.append("AT+CIPCLOSE=")
                try w.append(decimal: link)
            } else {
                guard link == 0 else { throw ModemError(.invalidArgument, "only link 0 before multiplexing is on") }
                try w.append("AT+CIPCLOSE")
            }
        case .setBaudRate(let rate, _):
            try w.append("AT+IPR=")
            try w.append(decimal: rate)
        case .raw(let text): try w.append(text)
        case .queryStatus(let query):
            switch query {
            case .sim: try w.append("AT+CPIN?")
            case .attach: try w.append("AT+CGATT?")
            case .bearer: try w.append("AT+CIPSTATUS")
            case .multiplexing: try w.append("AT+CIPMUX?")
            }
        }
        return true
    }

    public func classify(_ line: ATLine, context: ModemLineContext) -> ModemLineMeaning {
        if line.equals("RDY") { return .reset }
        if line.equals("Call Ready") || line.equals("SMS Ready") { return .bootBanner }

        if context.phase == .awaitingSendResult {
            if ATCommon.link(in: line, before: "SEND OK") != nil { return .success }
            if line.hasPrefix("DATA ACCEPT:") { return .success }  // quick-send mode
            if ATCommon.link(in: line, before: "SEND FAIL") != nil { return .failure(.sendFailed) }
        }
        switch context.command {
        case .close?:
            if ATCommon.link(in: line, before: "CLOSE OK") != nil { return .success }
        case .deactivateBearer?:
            if line.equals("SHUT OK") { return .success }
        case .localAddress?:
            // AT+CIFSR answers the bare address and no OK.
            if let address = ModemAddress(text: line) { return .informationAndSuccess(.localAddress(address)) }
        case .connect?:
            if context.phase == .response, ATCommon.link(in: line, before: "ALREADY CONNECT") != nil {
                return .failure(.alreadyConnected)
            }
        default: break
        }
        if let final = ATCommon.finalResult(line) { return final }

        if let link = ATCommon.link(in: line, before: "CONNECT OK") { return .unsolicited(.connected(link: link)) }
        if let link = ATCommon.link(in: line, before: "CONNECT FAIL") {
            return .unsolicited(.connectFailed(link: link, reason: .connectionRefused))
        }
        if let link = ATCommon.link(in: line, before: "ALREADY CONNECT") {
            return .unsolicited(.connectFailed(link: link, reason: .alreadyConnected))
        }
        if let link = ATCommon.link(in: line, before: "CLOSED") { return .unsolicited(.closed(link: link)) }
        if line.equals("+PDP: DEACT") { return .unsolicited(.network(.bearerLost)) }
        if var fields = line.fields(afterPrefix: "+CIPRXGET:") {
            let mode = fields.nextInteger()
            let a = fields.nextInteger()
            let b = fields.nextInteger()
            if mode == 1 {
                // "+CIPRXGET: 1,<n>" (multi) or "+CIPRXGET: 1" (single).
                return .unsolicited(.dataAvailable(link: max(a ?? 0, 0), length: nil))
            }
            if mode == 4 {
                // "+CIPRXGET: 4,<n>,<len>" (multi) or "+CIPRXGET: 4,<len>" (single).
                if let link = a, let len = b, link >= 0, len >= 0 { return .information(.available(link: link, length: len)) }
                if let len = a, b == nil, len >= 0 { return .information(.available(link: 0, length: len)) }
            }
            return .information(.text)
        }
        if var fields = line.fields(afterPrefix: "+CDNSGIP:") {
            // "+CDNSGIP: 1,"<name>","<ip>"[,"<ip2>"]" or "+CDNSGIP: 0,<error>".
            if fields.nextInteger() == 1 {
                _ = fields.nextString()
                if let address = ModemAddress(text: fields.nextString()) { return .unsolicited(.resolved(address)) }
            }
            return .unsolicited(.resolveFailed(.nonExistentDomain))
        }
        if let fields = line.fields(afterPrefix: "STATE:") {
            // AT+CIPSTATUS prints its state after the OK (SIM800 AT manual §8.2.8).
            var i = fields.position
            while i < line.count, line.bytes[i] == ASCII.space { i += 1 }
            if let state = ModemBearerState(text: ATLine(UnsafeRawBufferPointer(rebasing: line.bytes[i...]))) {
                return .unsolicited(.status(.bearer(state)))
            }
            return .ignored
        }
        if let status = ATCommon.status(line) {
            return context.phase == .idle ? .ignored : .information(.status(status))
        }
        if var fields = line.fields(afterPrefix: "+CIPMUX:") {
            if context.phase == .idle { return .ignored }
            return .information(.status(.multiplexing(fields.nextInteger() == 1)))
        }
        if line.equals("SHUT OK") || line.hasPrefix("+CFUN:") {
            return context.phase == .idle ? .ignored : .information(.text)
        }
        return .unrecognised
    }

    public func reason(for failure: ModemFailure, of command: ModemCommandKind) -> ModemReason {
        switch failure {
        case .timeout: return command == .connect ? .connectionTimedOut : .timeout
        case .moduleReset: return .closed
        case .busy: return .resourceBusy
        case .alreadyConnected: return .alreadyConnected
        case .dnsFailed: return .nonExistentDomain
        case .linkInvalid: return .notConnected
        case .sendFailed: return .closed
        case .error, .fail, .cmeError, .cmsError:
            switch command {
            case .connect: return .connectionRefused
            case .openDatagram, .bindLocalPort: return .addressInUse
            case .resolve: return .nonExistentDomain
            case .send: return .closed
            case .read, .queryAvailable: return .tryAgain
            case .close: return .notConnected
            case .activateBearer, .configureBearer: return .networkUnreachable
            case .localAddress: return .networkDown
            default: return .invalidArgument
            }
        }
    }

    public func timeout(for command: ModemCommand) -> UInt32 {
        switch command {
        case .restart: 10_000
        case .activateBearer: 85_000
        case .deactivateBearer: 65_000
        case .connect: 10_000
        case .connectSecure: 10_000
        case .resolve: 10_000
        case .close: 10_000
        case .send: 5_000
        case .read: 5_000
        default: 2_000
        }
    }

    public mutating func commandSucceeded(_ command: ModemCommand) {
        switch command {
        case .enableMultiplexing: multiplexed = true
        case .enablePassiveReceive: passiveReceive = true
        case .configureTLS(_, .simcomSSL(let on)): sslEnabled = on
        default: break
        }
    }

    public mutating func learn(_ information: ModemInformation) {
        // A module found with multi-link mode already on (`+CIPMUX: 1`, after a run that left
        // it set up) takes the multi-link command forms from now on.
        if case .status(.multiplexing(let on)) = information { multiplexed = on }
    }

    public mutating func moduleDidReset() {
        multiplexed = false
        passiveReceive = false
        sslEnabled = false
    }

    /// SIM-T1..T3: `AT+CIPSSL=1` and nothing more. This firmware chooses no CA, sends no
    /// other SNI name and has no ALPN or client certificate slot: asking for any is `enotsup`.
    public func tlsSteps(link: Int, host: String, settings: ModemTLSSettings) throws(ModemError) -> [ModemTLSStep] {
        guard case .none = settings.trust else {
            throw ModemError(.notSupported, "SIM800 cannot be told which CA to trust")
        }
        guard settings.applicationProtocols.isEmpty else { throw ModemError(.notSupported, "SIM800 offers no ALPN") }
        guard settings.serverName == nil else { throw ModemError(.notSupported, "SIM800 cannot be given an SNI name") }
        guard settings.clientCertificateSlot == nil else {
            throw ModemError(.notSupported, "SIM800 has no client certificate slot")
        }
        return [.simcomSSL(true)]
    }

    /// `AT+CIPSSL=0` while TLS is switched on (it is module-wide: SIM-T1).
    public func plainConnectSteps(link: Int) -> [ModemTLSStep] {
        sslEnabled ? [.simcomSSL(false)] : []
    }
}
