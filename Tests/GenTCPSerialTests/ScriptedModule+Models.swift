import CGenTCPShims
import GenTCPModem
import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPAT
import GenTCPSim
import Synchronization
#if canImport(Glibc)
import Glibc
#endif


// Each dialect's side of a scripted module (see ScriptedModule.swift).

// MARK: The module's side of each dialect

/// Bytes a module holds for link 0, handed out by reads.
final class ReadFeed: Sendable {
    private let state: Mutex<(data: [UInt8], offset: Int)>

    init(_ data: [UInt8]) { state = Mutex((data, 0)) }

    /// Bytes handed out so far.
    var offset: Int { state.withLock { $0.offset } }
    /// Bytes the module still holds.
    var left: Int { state.withLock { $0.data.count - $0.offset } }
    var total: Int { state.withLock { $0.data.count } }

    /// More bytes arrive in the module (after those it holds).
    func append(_ bytes: [UInt8]) { state.withLock { $0.data += bytes } }

    /// Takes up to `count` bytes; returns them and what the module holds after.
    func take(_ count: Int) -> (bytes: [UInt8], left: Int) {
        state.withLock { s in
            let n = max(0, min(count, s.data.count - s.offset))
            let bytes = Array(s.data[s.offset..<(s.offset + n)])
            s.offset += n
            return (bytes, s.data.count - s.offset)
        }
    }
}

/// What a documented module of `dialect` answers: init commands, connects, data notices, reads,
/// closes and restarts, for link 0. Its answers follow the vendor formats in
/// `reference/at-modems.md` §2.1-2.3, not the driver.
final class ModuleModel: Sendable {
    struct State {
        var echo = true
        /// SIM800's `AT+CIPSTATUS` state.
        var ipState = "IP INITIAL"
    }

    let dialect: ATDialect
    /// ESP-AT's `AT version:`.
    let version: String
    /// SIM800: `AT+CIICR` answers `ERROR` (no APN, no bearer).
    let refuseBearer: Bool
    /// The bytes the module holds for link 0.
    let feed: ReadFeed
    private let state = Mutex(State())

    init(_ dialect: ATDialect, data: [UInt8] = [], version: String = "3.3.0.0", refuseBearer: Bool = false) {
        self.dialect = dialect
        self.version = version
        self.refuseBearer = refuseBearer
        feed = ReadFeed(data)
    }

    /// A script for this module: its command terminator, and harmless queries answered wherever
    /// they come.
    func script() -> ModuleScript {
        ModuleScript(terminator: dialect == .espAT ? [13, 10] : [13], standing: { [self] line in standingAnswer(line) })
    }

    private func text(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// `OK` with the module's echo in front while echo is on.
    private func answer(_ line: String, _ body: String) -> [ModuleStep] {
        let echo = state.withLock { $0.echo }
        let echoed = echo ? line + (dialect == .espAT ? "\r\n" : "\r") : ""
        return [.send(text(echoed + body))]
    }

    // MARK: Init

    /// The answer to an initialisation command, or nil for one this module does not take here.
    func initAnswer(_ line: String) -> [ModuleStep]? {
        if line == "ATE0" {
            let steps = answer(line, "\r\nOK\r\n")
            state.withLock { $0.echo = false }
            return steps
        }
        if line == "ATE1" {
            state.withLock { $0.echo = true }
            return answer(line, "\r\nOK\r\n")
        }
        if line == "AT" { return answer(line, "\r\nOK\r\n") }
        let common = ["AT+CMEE=", "AT+IFC=", "AT+CSCLK="]
        if common.contains(where: line.hasPrefix) { return answer(line, "\r\nOK\r\n") }
        switch dialect {
        case .espAT: return espInit(line)
        case .sim800: return simInit(line)
        case .bg96: return bg96Init(line)
        }
    }

    private func espInit(_ line: String) -> [ModuleStep]? {
        switch line {
        case "AT+GMR":
            return answer(line, "AT version:\(version)(s-4b2a3d4 - ESP32 - Jun  6 2024 06:10:01)\r\n"
                + "SDK version:v5.0.6\r\ncompile time(2e2da6d):Jun  6 2024 06:25:06\r\n"
                + "Bin version:v\(version)(WROOM-32)\r\n\r\nOK\r\n")
        case "AT+CIPMUX=1", "AT+CIPRECVMODE=1", "AT+CIPRECVTYPE=5,1", "AT+CIPRECVTYPE=1", "AT+CIPRECVTYPE=0,1",
             "AT+CIPDINFO=0", "AT+CWMODE=1", "AT+CIPSERVER=0", "AT+SYSLOG=0", "AT+SYSLOG=1":
            return answer(line, "\r\nOK\r\n")
        case "AT+CIPMUX?": return answer(line, "+CIPMUX:1\r\n\r\nOK\r\n")
        case "AT+CIPRECVMODE?": return answer(line, "+CIPRECVMODE:1\r\n\r\nOK\r\n")
        case "AT+CIPRECVTYPE?": return answer(line, "+CIPRECVTYPE:0,1\r\n\r\nOK\r\n")
        case "AT+CIPDINFO?": return answer(line, "+CIPDINFO:0\r\n\r\nOK\r\n")
        case "AT+CIFSR":
            return answer(line, "+CIFSR:STAIP,\"192.168.4.2\"\r\n+CIFSR:STAMAC,\"24:0a:c4:00:00:01\"\r\n\r\nOK\r\n")
        case "AT+CWSTATE?": return answer(line, "+CWSTATE:2,\"hostile\"\r\n\r\nOK\r\n")
        case "AT+CWJAP?":
            return answer(line, "+CWJAP:\"hostile\",\"aa:bb:cc:dd:ee:ff\",6,-50,0,0,0,0,0\r\n\r\nOK\r\n")
        case "AT+CWMODE?": return answer(line, "+CWMODE:1\r\n\r\nOK\r\n")
        case "AT+SYSMSG?": return answer(line, "+SYSMSG:0\r\n\r\nOK\r\n")
        case "AT+UART_CUR?": return answer(line, "+UART_CUR:115200,8,1,0,0\r\n\r\nOK\r\n")
        default:
            if line.hasPrefix("AT+SYSMSG=") { return answer(line, "\r\nOK\r\n") }
            return nil
        }
    }

    private func simInit(_ line: String) -> [ModuleStep]? {
        switch line {
        case "ATI": return answer(line, "\r\nSIM800 R14.18\r\n\r\nOK\r\n")
        case "AT+CPIN?": return answer(line, "\r\n+CPIN: READY\r\n\r\nOK\r\n")
        case "AT+CSQ": return answer(line, "\r\n+CSQ: 21,0\r\n\r\nOK\r\n")
        case "AT+CREG?": return answer(line, "\r\n+CREG: 0,1\r\n\r\nOK\r\n")
        case "AT+CGREG?": return answer(line, "\r\n+CGREG: 0,1\r\n\r\nOK\r\n")
        case "AT+CGATT?": return answer(line, "\r\n+CGATT: 1\r\n\r\nOK\r\n")
        case "AT+CFUN?": return answer(line, "\r\n+CFUN: 1\r\n\r\nOK\r\n")
        case "AT+CIPMUX?": return answer(line, "\r\n+CIPMUX: 1\r\n\r\nOK\r\n")
        case "AT+CIPRXGET?": return answer(line, "\r\n+CIPRXGET: 1\r\n\r\nOK\r\n")
        case "AT+CGATT=1", "AT+CIPMUX=1", "AT+CIPRXGET=1", "AT+CIPQSEND=0", "AT+CIPQSEND=1", "AT+CIPHEAD=0",
             "AT+CIPHEAD=1", "AT+CIPSPRT=0", "AT+CIPSPRT=1", "AT+CIPSRIP=0":
            return answer(line, "\r\nOK\r\n")
        case "AT+CSTT?":
            return answer(line, "\r\n+CSTT: \"CMNET\",\"\",\"\"\r\n\r\nOK\r\n")
        case "AT+CIPSTATUS":
            let s = state.withLock { $0.ipState }
            return answer(line, "\r\nOK\r\n\r\nSTATE: \(s)\r\n")
        case "AT+CIPSHUT":
            state.withLock { $0.ipState = "IP INITIAL" }
            return answer(line, "\r\nSHUT OK\r\n")
        case "AT+CIICR":
            if refuseBearer { return answer(line, "\r\nERROR\r\n") }
            state.withLock { $0.ipState = "IP GPRSACT" }
            return answer(line, "\r\nOK\r\n")
        case "AT+CIFSR":
            if state.withLock({ $0.ipState }) != "IP GPRSACT" && state.withLock({ $0.ipState }) != "IP STATUS" {
                return answer(line, "\r\nERROR\r\n")
            }
            state.withLock { $0.ipState = "IP STATUS" }
            return answer(line, "\r\n10.1.2.3\r\n")
        default:
            if line.hasPrefix("AT+CSTT") {
                state.withLock { $0.ipState = "IP START" }
                return answer(line, "\r\nOK\r\n")
            }
            if line.hasPrefix("AT+CDNSCFG=") { return answer(line, "\r\nOK\r\n") }
            return nil
        }
    }

    private func bg96Init(_ line: String) -> [ModuleStep]? {
        switch line {
        case "ATI": return answer(line, "\r\nQuectel\r\nBG96\r\nRevision: BG96MAR02A07M1G\r\n\r\nOK\r\n")
        case "AT+CPIN?": return answer(line, "\r\n+CPIN: READY\r\n\r\nOK\r\n")
        case "AT+CSQ": return answer(line, "\r\n+CSQ: 21,99\r\n\r\nOK\r\n")
        case "AT+CREG?": return answer(line, "\r\n+CREG: 0,1\r\n\r\nOK\r\n")
        case "AT+CGREG?": return answer(line, "\r\n+CGREG: 0,1\r\n\r\nOK\r\n")
        case "AT+CEREG?": return answer(line, "\r\n+CEREG: 0,1\r\n\r\nOK\r\n")
        case "AT+CGATT?": return answer(line, "\r\n+CGATT: 1\r\n\r\nOK\r\n")
        case "AT+CFUN?": return answer(line, "\r\n+CFUN: 1\r\n\r\nOK\r\n")
        case "AT+QIACT?": return answer(line, "\r\n+QIACT: 1,1,1,\"10.1.2.3\"\r\n\r\nOK\r\n")
        case "AT+QICSGP=1": return answer(line, "\r\n+QICSGP: 1,\"internet\",\"\",\"\",0\r\n\r\nOK\r\n")
        case "AT+QIACT=1", "AT+QIDEACT=1", "AT+CGATT=1": return answer(line, "\r\nOK\r\n")
        case "AT+QISTATE?", "AT+QISTATE=0,1": return answer(line, "\r\nOK\r\n")
        default:
            if line.hasPrefix("AT+QICSGP=1,") || line.hasPrefix("AT+QURCCFG=") || line.hasPrefix("AT+QCFG=") {
                return answer(line, "\r\nOK\r\n")
            }
            return nil
        }
    }

    /// Commands a driver may send at any time: probes, versions, status, how much data the
    /// module holds, and asking again for the passive receive mode it already has.
    func standingAnswer(_ line: String) -> [ModuleStep]? {
        let passiveAgain = ["AT+CIPRECVMODE=1", "AT+CIPRECVTYPE=5,1", "AT+CIPRECVTYPE=1", "AT+CIPRECVTYPE=0,1",
                            "AT+CIPRXGET=1"]
        if passiveAgain.contains(line) { return answer(line, "\r\nOK\r\n") }
        if line == "AT" || line == "ATI" || line == "AT+GMR" || line == "AT+CIFSR" || line == "AT+CIPSTATUS"
            || line.hasSuffix("?") {
            if line == "AT+CIPRECVLEN?" {
                return [.send(text("+CIPRECVLEN:\(feed.left),-1,-1,-1,-1\r\n\r\nOK\r\n"))]
            }
            return initAnswer(line)
        }
        if line == "AT+CIPRXGET=4,0" { return [.send(text("\r\n+CIPRXGET: 4,0,\(feed.left)\r\n\r\nOK\r\n"))] }
        if line == "AT+QIRD=0,0" {
            return [.send(text("\r\n+QIRD: \(feed.total),\(feed.offset),\(feed.left)\r\n\r\nOK\r\n"))]
        }
        return nil
    }

    // MARK: Links

    /// How the driver's connect on link 0 starts.
    var connectPrefix: String {
        switch dialect {
        case .espAT, .sim800: "AT+CIPSTART=0,"
        case .bg96: "AT+QIOPEN=1,0,"
        }
    }

    /// A successful connect of link 0.
    var connectAnswer: [UInt8] {
        switch dialect {
        case .espAT: text("0,CONNECT\r\n\r\nOK\r\n")
        case .sim800: text("\r\nOK\r\n\r\n0, CONNECT OK\r\n")
        case .bg96: text("\r\nOK\r\n\r\n+QIOPEN: 0,0\r\n")
        }
    }

    /// Data waits in the module for link 0 (the passive-mode notice; ESP-AT gives the total).
    func dataNotice(total: Int) -> [UInt8] {
        switch dialect {
        case .espAT: text("\r\n+IPD,0,\(total)\r\n")
        case .sim800: text("\r\n+CIPRXGET: 1,0\r\n")
        case .bg96: text("\r\n+QIURC: \"recv\",0\r\n")
        }
    }

    /// How the driver's read of link 0 starts.
    var readPrefix: String {
        switch dialect {
        case .espAT: "AT+CIPRECVDATA=0,"
        case .sim800: "AT+CIPRXGET=2,0,"
        case .bg96: "AT+QIRD=0,"
        }
    }

    /// The answer to a read that delivers `bytes`, `left` bytes staying in the module.
    func readAnswer(_ bytes: [UInt8], left: Int) -> [UInt8] {
        switch dialect {
        case .espAT:
            if bytes.isEmpty { return text("\r\nERROR\r\n") }
            return text("+CIPRECVDATA:\(bytes.count),") + bytes + text("\r\nOK\r\n")
        case .sim800:
            return text("\r\n+CIPRXGET: 2,0,\(bytes.count),\(left)\r\n") + bytes + text("\r\nOK\r\n")
        case .bg96:
            return text("\r\n+QIRD: \(bytes.count)\r\n") + bytes + text("\r\n\r\nOK\r\n")
        }
    }

    /// The peer closed link 0.
    var closedNotice: [UInt8] {
        switch dialect {
        case .espAT: text("0,CLOSED\r\n")
        case .sim800: text("\r\n0, CLOSED\r\n")
        case .bg96: text("\r\n+QIURC: \"closed\",0\r\n")
        }
    }

    /// The host closing link 0 after the peer did: what the module answers.
    func closeAnswer(_ line: String) -> [ModuleStep]? {
        switch dialect {
        case .espAT: line == "AT+CIPCLOSE=0" ? [.send(text("\r\nERROR\r\n"))] : nil
        case .sim800: line == "AT+CIPCLOSE=0" || line == "AT+CIPCLOSE=0,1" ? [.send(text("\r\nERROR\r\n"))] : nil
        case .bg96: line.hasPrefix("AT+QICLOSE=0") ? [.send(text("\r\nOK\r\n"))] : nil
        }
    }

    /// The boot banner after a restart; echo is on again and the bearer is down.
    var restartBanner: [UInt8] {
        switch dialect {
        case .espAT: text("\r\nready\r\n")
        case .sim800: text("\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n")
        case .bg96: text("\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\nAPP RDY\r\n")
        }
    }

    /// The steps that serve reads of link 0 until `target` bytes of ``feed`` were handed out,
    /// at most `maxPerAnswer` per answer. ESP-AT announces what is left after each read (esp-at
    /// #994), so a short answer is followed by a fresh `+IPD` notice.
    /// `trailer` goes out in the same write as the last answer (a close notice that arrives
    /// with the data, say).
    func serveSteps(upTo target: Int, maxPerAnswer: Int = .max, within: UInt32 = 10_000,
                    trailer: [UInt8] = []) -> [ModuleStep] {
        guard feed.offset < target else { return trailer.isEmpty ? [] : [.send(trailer)] }
        return [.expect(.prefix(readPrefix), within: within, then: { [self] line in
            let asked = commandLastInteger(line) ?? 0
            if dialect == .bg96 && asked == 0 {
                // AT+QIRD=0,0: how much is there; then keep serving.
                return [.send(text("\r\n+QIRD: \(feed.total),\(feed.offset),\(feed.left)\r\n\r\nOK\r\n"))]
                    + serveSteps(upTo: target, maxPerAnswer: maxPerAnswer, within: within, trailer: trailer)
            }
            let (bytes, left) = feed.take(min(asked, maxPerAnswer, target - feed.offset))
            var answer = readAnswer(bytes, left: left)
            if dialect == .espAT && left > 0 { answer += dataNotice(total: left) }
            if feed.offset >= target {
                return [.send(answer + trailer)]
            }
            return [.send(answer)] + serveSteps(upTo: target, maxPerAnswer: maxPerAnswer, within: within, trailer: trailer)
        })]
    }

    /// Answers reads from ``feed`` for as long as they come (an open-ended `respond`).
    func readAnswerAnyTime(_ line: String) -> [ModuleStep]? {
        guard line.hasPrefix(readPrefix), let asked = commandLastInteger(line) else { return nil }
        if dialect == .bg96 && asked == 0 {
            return [.send(text("\r\n+QIRD: \(feed.total),\(feed.offset),\(feed.left)\r\n\r\nOK\r\n"))]
        }
        let (bytes, left) = feed.take(asked)
        return [.send(readAnswer(bytes, left: left))]
    }

    /// Echo on, bearer down: what a restart leaves.
    func restarted() {
        state.withLock { s in
            s.echo = true
            s.ipState = "IP INITIAL"
        }
    }
}

extension ModuleScript {
    /// Answers the module's usual initialisation (whatever the dialect sends of it) until a
    /// command it does not know arrives; the next step takes that one.
    mutating func answerInit(_ model: ModuleModel, idleLimit: UInt32? = nil) {
        respond("answer the usual init (\(model.dialect.description))", idleLimit: idleLimit) { model.initAnswer($0) }
    }

    /// Takes the connect of link 0 and answers that it succeeded.
    mutating func acceptConnect(_ model: ModuleModel, within: UInt32 = 20_000) {
        let answer = model.connectAnswer
        expect(model.connectPrefix, within: within) { _ in [.send(answer)] }
    }

    /// Announces that `total` bytes wait for link 0.
    mutating func announce(_ model: ModuleModel, total: Int) { send(model.dataNotice(total: total)) }

    /// Serves reads until `target` bytes of the model's data were handed out.
    mutating func serveReads(_ model: ModuleModel, upTo target: Int, maxPerAnswer: Int = .max, within: UInt32 = 10_000,
                             trailer: [UInt8] = []) {
        append(model.serveSteps(upTo: target, maxPerAnswer: maxPerAnswer, within: within, trailer: trailer))
    }

    /// The module restarts: its boot banner, and echo on again.
    mutating func restart(_ model: ModuleModel) {
        let banner = model.restartBanner
        steps.append(.perform("restart (\(ModuleReport.show(banner, limit: 20)))") {
            model.restarted()
            return [.send(banner)]
        })
    }

    /// Takes `AT+CIPSEND=0,<n>` (or `AT+QISEND=0,<n>`), gives the prompt, consumes the n bytes
    /// into `sink` and answers `SEND OK`.
    mutating func acceptSend(_ model: ModuleModel, into sink: ByteSink? = nil, within: UInt32 = 10_000) {
        let prefix = model.dialect == .bg96 ? "AT+QISEND=0," : "AT+CIPSEND=0,"
        let dialect = model.dialect
        expect(prefix, within: within) { line in
            let n = commandLastInteger(line) ?? 0
            let prompt: String = dialect == .espAT ? "\r\nOK\r\n\r\n>" : "\r\n> "
            let done: String = switch dialect {
            case .espAT: "\r\nRecv \(n) bytes\r\n\r\nSEND OK\r\n"
            case .sim800: "\r\n0, SEND OK\r\n"
            case .bg96: "\r\nSEND OK\r\n"
            }
            return [.send(Array(prompt.utf8)), .consume(n, within: within, into: sink), .send(Array(done.utf8))]
        }
    }
}
