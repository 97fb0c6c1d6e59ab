/// The built-in dialects behind one enum, for a dialect chosen at run time (from a board
/// profile, say) without existentials: `ModemEngine<StandardDialect>`.
public enum StandardDialect: ModemDialect {
    /// Espressif ESP-AT.
    case espAT(ESPATDialect)
    /// SIMCom SIM800.
    case sim800(SIM800Dialect)
    /// Quectel BG96.
    case bg96(BG96Dialect)

    public var limits: ModemLimits {
        switch self {
        case .espAT(let d): d.limits
        case .sim800(let d): d.limits
        case .bg96(let d): d.limits
        }
    }
    public var framing: ATFraming {
        switch self {
        case .espAT(let d): d.framing
        case .sim800(let d): d.framing
        case .bg96(let d): d.framing
        }
    }
    public var commandTerminator: StaticString {
        switch self {
        case .espAT(let d): d.commandTerminator
        case .sim800(let d): d.commandTerminator
        case .bg96(let d): d.commandTerminator
        }
    }
    public var connectsAsynchronously: Bool {
        switch self {
        case .espAT(let d): d.connectsAsynchronously
        case .sim800(let d): d.connectsAsynchronously
        case .bg96(let d): d.connectsAsynchronously
        }
    }
    public var resolvesAsynchronously: Bool {
        switch self {
        case .espAT(let d): d.resolvesAsynchronously
        case .sim800(let d): d.resolvesAsynchronously
        case .bg96(let d): d.resolvesAsynchronously
        }
    }
    public var keepsLinkAfterPeerClose: Bool {
        switch self {
        case .espAT(let d): d.keepsLinkAfterPeerClose
        case .sim800(let d): d.keepsLinkAfterPeerClose
        case .bg96(let d): d.keepsLinkAfterPeerClose
        }
    }

    public func build(_ command: ModemCommand, into writer: inout CommandWriter) throws(ModemError) -> Bool {
        switch self {
        case .espAT(let d): try d.build(command, into: &writer)
        case .sim800(let d): try d.build(command, into: &writer)
        case .bg96(let d): try d.build(command, into: &writer)
        }
    }

    public func classify(_ line: ATLine, context: ModemLineContext) -> ModemLineMeaning {
        switch self {
        case .espAT(let d): d.classify(line, context: context)
        case .sim800(let d): d.classify(line, context: context)
        case .bg96(let d): d.classify(line, context: context)
        }
    }

    public func reason(for failure: ModemFailure, of command: ModemCommandKind) -> ModemReason {
        switch self {
        case .espAT(let d): d.reason(for: failure, of: command)
        case .sim800(let d): d.reason(for: failure, of: command)
        case .bg96(let d): d.reason(for: failure, of: command)
        }
    }

    public func timeout(for command: ModemCommand) -> UInt32 {
        switch self {
        case .espAT(let d): d.timeout(for: command)
        case .sim800(let d): d.timeout(for: command)
        case .bg96(let d): d.timeout(for: command)
        }
    }

    public mutating func commandSucceeded(_ command: ModemCommand) {
        switch self {
        case .espAT(var d):
            d.commandSucceeded(command)
            self = .espAT(d)
        case .sim800(var d):
            d.commandSucceeded(command)
            self = .sim800(d)
        case .bg96(var d):
            d.commandSucceeded(command)
            self = .bg96(d)
        }
    }

    public mutating func learn(_ information: ModemInformation) {
        switch self {
        case .espAT(var d):
            d.learn(information)
            self = .espAT(d)
        case .sim800(var d):
            d.learn(information)
            self = .sim800(d)
        case .bg96(var d):
            d.learn(information)
            self = .bg96(d)
        }
    }

    public mutating func moduleDidReset() {
        switch self {
        case .espAT(var d):
            d.moduleDidReset()
            self = .espAT(d)
        case .sim800(var d):
            d.moduleDidReset()
            self = .sim800(d)
        case .bg96(var d):
            d.moduleDidReset()
            self = .bg96(d)
        }
    }

    public func tlsSteps(link: Int, host: String, settings: ModemTLSSettings) throws(ModemError) -> [ModemTLSStep] {
        switch self {
        case .espAT(let d): try d.tlsSteps(link: link, host: host, settings: settings)
        case .sim800(let d): try d.tlsSteps(link: link, host: host, settings: settings)
        case .bg96(let d): try d.tlsSteps(link: link, host: host, settings: settings)
        }
    }

    public func plainConnectSteps(link: Int) -> [ModemTLSStep] {
        switch self {
        case .espAT(let d): d.plainConnectSteps(link: link)
        case .sim800(let d): d.plainConnectSteps(link: link)
        case .bg96(let d): d.plainConnectSteps(link: link)
        }
    }
}
