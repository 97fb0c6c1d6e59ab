import GenTCP
import GenTCPCore
import GenTCPSim
import ModemSimulator
import Synchronization
import Testing

/// Output of the module with the virtual time of each piece.
final class TimedTape: Sendable {
    private let pieces = Mutex<[(UInt64, [UInt8])]>([])
    private let history = Mutex<[(UInt64, [UInt8])]>([])
    func append(_ time: UInt64, _ bytes: [UInt8]) {
        pieces.withLock { $0.append((time, bytes)) }
        history.withLock { $0.append((time, bytes)) }
    }
    /// What was recorded since the last `take()`.
    var all: [(UInt64, [UInt8])] { pieces.withLock { $0 } }
    /// Everything ever recorded.
    var log: [(UInt64, [UInt8])] { history.withLock { $0 } }
    var bytes: [UInt8] { all.flatMap { $0.1 } }
    var text: String { String(decoding: bytes, as: UTF8.self) }
    /// Takes everything recorded so far, as text.
    func take() -> String {
        String(decoding: pieces.withLock { p in defer { p = [] }; return p.flatMap { $0.1 } }, as: UTF8.self)
    }
}

/// A module on a fresh simulated network whose "server":80 sends `payload` to each connection
/// and then closes it (HTTP/1.0 style); "server":7 echoes.
func senderSession(_ configuration: ModemSimulatorConfiguration, payload: [UInt8],
                   _ body: @escaping @Sendable (ModemSimulator, TimedTape, SimNetwork) async throws -> Void) async throws {
    let net = try SimNetwork(seed: 4)
    let server = try net.addHost("server")
    let modemHost = try net.addHost("modem")
    try await net.run {
        let sender = try ListenSocket.listen(port: 80, options: [.binary, .active(.passive)], driver: .sim(net, host: server))
        net.spawn {
            while true {
                let s = try await sender.accept()
                net.spawn {
                    try? await s.send(payload)
                    s.close()
                }
            }
        }
        let echo = try ListenSocket.listen(port: 7, options: [.binary, .active(.passive)], driver: .sim(net, host: server))
        net.spawn {
            while true {
                let s = try await echo.accept()
                net.spawn {
                    while true {
                        guard let p = try? await s.recv(0) else { break }
                        try await s.send(p.bytes)
                    }
                    s.close()
                }
            }
        }
        let tape = TimedTape()
        let runtime = net.runtime
        let modem = ModemSimulator(configuration, driver: try SimDriver.sim(net, host: modemHost)) { bytes in
            tape.append(runtime.now, bytes)
        }
        modem.powerOn()
        await net.sleep(for: .milliseconds(100))
        try await body(modem, tape, net)
        sender.close()
        echo.close()
    }
}

func say(_ modem: ModemSimulator, _ tape: TimedTape, _ net: SimNetwork, _ text: String,
         wait: Duration = .milliseconds(50)) async -> String {
    modem.input(Array(text.utf8))
    await net.sleep(for: wait)
    return tape.take()
}

/// ASCII test data, so answers compare as text.
func letters(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(65 + $0 % 26) } }

/// The SIM800 bring-up the manual asks for before a multi-link CIPSTART (SIM-2..SIM-6).
func sim800Up(_ m: ModemSimulator, _ tape: TimedTape, _ net: SimNetwork, manualReceive: Bool = true) async {
    _ = tape.take()
    _ = await say(m, tape, net, "ATE0\r")
    _ = await say(m, tape, net, "AT+CIPMUX=1\r")
    if manualReceive { _ = await say(m, tape, net, "AT+CIPRXGET=1\r") }
    _ = await say(m, tape, net, "AT+CSTT=\"internet\"\r")
    _ = await say(m, tape, net, "AT+CIICR\r")
    _ = await say(m, tape, net, "AT+CIFSR\r")
}

/// One `C:` line of SIM800's multi-link `AT+CIPSTATUS`.
func cLine(_ n: Int, _ kind: String = "", _ ip: String = "", _ port: String = "", _ state: String = "INITIAL") -> String {
    "\r\nC: \(n),0,\"\(kind)\",\"\(ip)\",\"\(port)\",\"\(state)\"\r\n"
}

@Suite("docs/modem-behaviour.md, item by item")
struct ChecklistTests {
    // MARK: ESP-AT

    @Test("ESP-1: AT+RST answers OK, restarts, prints ready; links gone, defaults back")
    func espReadyAfterRestart() async throws {
        try await senderSession(.espAT(), payload: []) { m, tape, net in
            #expect(tape.take() == "\r\nready\r\n")
            _ = await say(m, tape, net, "ATE0\r\n")
            _ = await say(m, tape, net, "AT+CIPMUX=1\r\n")
            _ = await say(m, tape, net, "AT+CIPRECVMODE=1\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",7\r\n") == "0,CONNECT\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+RST\r\n", wait: .milliseconds(200)) == "\r\nOK\r\n\r\nready\r\n")
            #expect(!m.isLinkInUse(0))
            #expect(m.statistics.resets == 1)
            // Echo on, one link, active receive again.
            #expect(await say(m, tape, net, "AT+CIPMUX?\r\n") == "AT+CIPMUX?\r\n+CIPMUX:0\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPRECVMODE?\r\n") == "AT+CIPRECVMODE?\r\n+CIPRECVMODE:0\r\n\r\nOK\r\n")
        }
    }

    @Test("ESP-7, ESP-8: CIPRECVDATA takes any length up to 0x7fffffff; ERROR in active mode or when empty")
    func espReceiveDataLimits() async throws {
        try await senderSession(.espAT(), payload: []) { m, tape, net in
            _ = tape.take()
            _ = await say(m, tape, net, "ATE0\r\n")
            _ = await say(m, tape, net, "AT+CIPMUX=1\r\n")
            _ = await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",7\r\n")
            _ = await say(m, tape, net, "AT+CIPSEND=0,5\r\n")
            #expect(await say(m, tape, net, "hello") == "\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n\r\n+IPD,0,5:hello")
            #expect(await say(m, tape, net, "AT+CIPRECVDATA=0,5\r\n") == "\r\nERROR\r\n")  // active mode
            _ = await say(m, tape, net, "AT+CIPRECVMODE=1\r\n")
            #expect(await say(m, tape, net, "AT+CIPRECVDATA=0,5\r\n") == "\r\nERROR\r\n")  // nothing buffered
            _ = await say(m, tape, net, "AT+CIPSEND=0,10\r\n")
            #expect(await say(m, tape, net, "0123456789").hasSuffix("\r\n+IPD,0,10\r\n"))
            #expect(await say(m, tape, net, "AT+CIPRECVDATA=0,2147483648\r\n") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPRECVDATA=0,2147483647\r\n") == "+CIPRECVDATA:10,0123456789\r\nOK\r\n")
        }
    }

    @Test("ESP-11: after the peer's close the data stays readable; CIPCLOSE discards it and reports CLOSED")
    func espCloseHeldUntilCIPCLOSE() async throws {
        try await senderSession(.espAT(firmware: "3.3.0.0"), payload: Array("abcdef".utf8)) { m, tape, net in
            _ = tape.take()
            _ = await say(m, tape, net, "ATE0\r\n")
            _ = await say(m, tape, net, "AT+CIPMUX=1\r\n")
            #expect(await say(m, tape, net, "AT+CIPRECVTYPE=5,1,0\r\n") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=3,\"TCP\",\"server\",80\r\n", wait: .seconds(2))
                == "3,CONNECT\r\n\r\nOK\r\n\r\n+IPD,3,6\r\n")
            #expect(m.isLinkInUse(3))  // closed by the peer, CLOSED held back
            #expect(await say(m, tape, net, "AT+CIPRECVLEN?\r\n") == "+CIPRECVLEN:,,,6,\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPRECVDATA=3,2,0\r\n") == "+CIPRECVDATA:2,ab\r\nOK\r\n\r\n+IPD,3,4\r\n")
            #expect(await say(m, tape, net, "AT+CIPCLOSE=3\r\n") == "3,CLOSED\r\n\r\nOK\r\n")
            #expect(!m.isLinkInUse(3))
            #expect(await say(m, tape, net, "AT+CIPRECVDATA=3,2\r\n") == "\r\nERROR\r\n")
        }
    }

    // MARK: SIM800

    @Test("SIM-1..SIM-7: CIPSTATUS states; CSTT only in IP INITIAL, CIICR only in IP START, CIFSR to IP STATUS; CIPSTART, CIPMUX, CIPSHUT by state")
    func sim800BringUp() async throws {
        try await senderSession(.sim800(), payload: []) { m, tape, net in
            _ = tape.take()
            _ = await say(m, tape, net, "ATE0\r")
            let idle = (0..<6).map { cLine($0) }.joined()
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r") == "\r\nOK\r\n\r\nSTATE: IP INITIAL\r\n")
            #expect(await say(m, tape, net, "AT+CIICR\r") == "\r\nERROR\r\n")  // no CSTT yet
            #expect(await say(m, tape, net, "AT+CIFSR\r") == "\r\nERROR\r\n")  // no context
            #expect(await say(m, tape, net, "AT+CIPMUX=1\r") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",\"7\"\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CSTT=\"internet\",\"\",\"\"\r") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r") == "\r\nOK\r\n\r\nSTATE: IP START\r\n" + idle)
            #expect(await say(m, tape, net, "AT+CSTT=\"internet\"\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPMUX=0\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",\"7\"\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIICR\r") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r") == "\r\nOK\r\n\r\nSTATE: IP GPRSACT\r\n" + idle)
            #expect(await say(m, tape, net, "AT+CIICR\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIFSR\r") == "\r\n10.170.12.34\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r") == "\r\nOK\r\n\r\nSTATE: IP STATUS\r\n" + idle)
            #expect(await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",\"7\"\r") == "\r\nOK\r\n\r\n0, CONNECT OK\r\n")
            let busy = cLine(0, "TCP", "10.0.0.1", "7", "CONNECTED") + (1..<6).map { cLine($0) }.joined()
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r") == "\r\nOK\r\n\r\nSTATE: IP PROCESSING\r\n" + busy)
            #expect(await say(m, tape, net, "AT+CIFSR\r") == "\r\n10.170.12.34\r\n")
            #expect(await say(m, tape, net, "AT+CIPSHUT\r") == "\r\nSHUT OK\r\n")
            #expect(!m.isLinkInUse(0))
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r") == "\r\nOK\r\n\r\nSTATE: IP INITIAL\r\n" + idle)
            // Single link: CIPSTART from IP INITIAL brings the bearer up itself; after CIPCLOSE
            // the state is IP CLOSE and CIPSTART needs CIPSHUT first.
            #expect(await say(m, tape, net, "AT+CIPMUX=0\r") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=\"TCP\",\"server\",\"7\"\r") == "\r\nOK\r\n\r\nCONNECT OK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r") == "\r\nOK\r\n\r\nSTATE: CONNECT OK\r\n")
            #expect(await say(m, tape, net, "AT+CIPCLOSE\r") == "\r\nCLOSE OK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r") == "\r\nOK\r\n\r\nSTATE: IP CLOSE\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=\"TCP\",\"server\",\"7\"\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPSHUT\r") == "\r\nSHUT OK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r") == "\r\nOK\r\n\r\nSTATE: IP INITIAL\r\n")
        }
    }

    @Test("SIM-3: rejectCIICR: CIICR answers ERROR and leaves PDP DEACT until CIPSHUT")
    func sim800RejectCIICR() async throws {
        try await senderSession(.sim800(faults: ModemFaults(rejectCIICR: true)), payload: []) { m, tape, net in
            _ = tape.take()
            _ = await say(m, tape, net, "ATE0\r")
            #expect(await say(m, tape, net, "AT+CPIN?\r") == "\r\n+CPIN: READY\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CGATT?\r") == "\r\n+CGATT: 1\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CSTT=\"internet\"\r") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIICR\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r") == "\r\nOK\r\n\r\nSTATE: PDP DEACT\r\n")
            #expect(await say(m, tape, net, "AT+CIICR\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPSHUT\r") == "\r\nSHUT OK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r") == "\r\nOK\r\n\r\nSTATE: IP INITIAL\r\n")
        }
    }

    @Test("SIM-8, SIM-15: without SIM, registration or attach: +CPIN, +CREG, +CGATT say so; CIICR fails",
          arguments: ModemNetworkFault.allCases)
    func sim800NoNetwork(fault: ModemNetworkFault) async throws {
        try await senderSession(.sim800(faults: ModemFaults(noNetwork: fault)), payload: []) { m, tape, net in
            let banner = tape.take()
            #expect(banner.hasPrefix("\r\nRDY\r\n\r\n+CFUN: 1\r\n"))
            #expect(banner.contains("+CPIN: NOT READY") == (fault == .simNotReady))
            #expect(banner.contains("Call Ready") == (fault != .simNotReady))
            _ = await say(m, tape, net, "ATE0\r")
            let cpin = fault == .simNotReady ? "NOT READY" : "READY"
            let stat = [ModemNetworkFault.simNotReady: 0, .notRegistered: 2, .notAttached: 1][fault]!
            #expect(await say(m, tape, net, "AT+CPIN?\r") == "\r\n+CPIN: \(cpin)\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CREG?\r") == "\r\n+CREG: 0,\(stat)\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CGATT?\r") == "\r\n+CGATT: 0\r\n\r\nOK\r\n")
            let cstt = await say(m, tape, net, "AT+CSTT=\"internet\"\r")
            #expect(cstt == (fault == .simNotReady ? "\r\nERROR\r\n" : "\r\nOK\r\n"))
            #expect(await say(m, tape, net, "AT+CIICR\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIFSR\r") == "\r\nERROR\r\n")
        }
    }

    @Test("SIM-12, SIM-10, SIM-11, SIM-13, SIM-16: CLOSED at once; CIPRXGET=2 drains the closed link, then it is released")
    func sim800ClosedStillReadable() async throws {
        let payload = letters(3000)
        try await senderSession(.sim800(), payload: payload) { m, tape, net in
            await sim800Up(m, tape, net)
            #expect(await say(m, tape, net, "AT+CIPSTART=2,\"TCP\",\"server\",\"80\"\r", wait: .seconds(2))
                == "\r\nOK\r\n\r\n2, CONNECT OK\r\n\r\n+CIPRXGET: 1,2\r\n\r\n2, CLOSED\r\n")
            #expect(m.isLinkInUse(2))
            #expect(m.bufferedBytes(link: 2) == 3000)
            #expect(await say(m, tape, net, "AT+CIPRXGET=4,2\r") == "\r\n+CIPRXGET: 4,2,3000\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSEND=2,5\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPCLOSE=2\r") == "\r\nERROR\r\n")
            var got: [UInt8] = []
            for (n, left) in [(1460, 1540), (1460, 80), (80, 0)] {
                let answer = Array(await say(m, tape, net, "AT+CIPRXGET=2,2,1460\r").utf8)
                let header = Array("\r\n+CIPRXGET: 2,2,\(n),\(left)\r\n".utf8)
                #expect(Array(answer.prefix(header.count)) == header)
                #expect(Array(answer.suffix(6)) == Array("\r\nOK\r\n".utf8))
                got += answer.dropFirst(header.count).dropLast(6)
            }
            #expect(got == payload)
            #expect(!m.isLinkInUse(2))
            #expect(await say(m, tape, net, "AT+CIPRXGET=2,2,1460\r") == "\r\nERROR\r\n")
        }
    }

    @Test("SIM-14: +PDP: DEACT kills every link; PDP DEACT until CIPSHUT")
    func sim800PDPDeact() async throws {
        try await senderSession(.sim800(), payload: []) { m, tape, net in
            await sim800Up(m, tape, net)
            #expect(await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",\"7\"\r") == "\r\nOK\r\n\r\n0, CONNECT OK\r\n")
            m.dropBearer()
            await net.sleep(for: .milliseconds(50))
            #expect(tape.take() == "\r\n+PDP: DEACT\r\n")
            #expect(!m.isLinkInUse(0))
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r").hasPrefix("\r\nOK\r\n\r\nSTATE: PDP DEACT\r\n"))
            #expect(await say(m, tape, net, "AT+CIPSTART=1,\"TCP\",\"server\",\"7\"\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPSHUT\r") == "\r\nSHUT OK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTATUS\r").hasPrefix("\r\nOK\r\n\r\nSTATE: IP INITIAL\r\n"))
        }
    }

    // MARK: BG96

    @Test("BG-6, BG-7, BG-4, BG-5, BG-8, BG-9, BG-12: closed URC at once; QIRD drains the closed socket until QICLOSE")
    func bg96ClosedStillReadable() async throws {
        let payload = letters(3000)
        try await senderSession(.bg96(), payload: payload) { m, tape, net in
            _ = tape.take()
            _ = await say(m, tape, net, "ATE0\r")
            _ = await say(m, tape, net, "AT+QICSGP=1,1,\"internet\",\"\",\"\",1\r")
            _ = await say(m, tape, net, "AT+QIACT=1\r")
            #expect(await say(m, tape, net, "AT+QIOPEN=1,0,\"TCP\",\"server\",80,0,0\r", wait: .seconds(2))
                == "\r\nOK\r\n\r\n+QIOPEN: 0,0\r\n\r\n+QIURC: \"recv\",0\r\n\r\n+QIURC: \"closed\",0\r\n")
            #expect(await say(m, tape, net, "AT+QISTATE=1,0\r").contains(",4,1,0,0,\"uart1\"\r\n"))
            #expect(await say(m, tape, net, "AT+QIRD=0,0\r") == "\r\n+QIRD: 3000,0,3000\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+QISEND=0,5\r") == "\r\nERROR\r\n")
            var got: [UInt8] = []
            for n in [1500, 1500] {
                let answer = Array(await say(m, tape, net, "AT+QIRD=0,1500\r").utf8)
                let header = Array("\r\n+QIRD: \(n)\r\n".utf8)
                #expect(Array(answer.prefix(header.count)) == header)
                #expect(Array(answer.suffix(8)) == Array("\r\n\r\nOK\r\n".utf8))
                got += answer.dropFirst(header.count).dropLast(8)
            }
            #expect(got == payload)
            #expect(await say(m, tape, net, "AT+QIRD=0,1500\r") == "\r\n+QIRD: 0\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+QIRD=0,0\r") == "\r\n+QIRD: 3000,3000,0\r\n\r\nOK\r\n")
            #expect(m.isLinkInUse(0))
            #expect(await say(m, tape, net, "AT+QICLOSE=0\r") == "\r\nOK\r\n")
            #expect(!m.isLinkInUse(0))
            // QICLOSE also discards what was not read.
            _ = await say(m, tape, net, "AT+QIOPEN=1,1,\"TCP\",\"server\",80,0,0\r", wait: .seconds(2))
            #expect(m.bufferedBytes(link: 1) == 3000)
            #expect(await say(m, tape, net, "AT+QICLOSE=1\r") == "\r\nOK\r\n")
            #expect(m.bufferedBytes(link: 1) == 0)
            #expect(!m.isLinkInUse(1))
        }
    }

    @Test("BG-10: pdpdeact, then closed for each socket; its data stays readable until QICLOSE")
    func bg96PDPDeact() async throws {
        try await senderSession(.bg96(), payload: []) { m, tape, net in
            _ = tape.take()
            _ = await say(m, tape, net, "ATE0\r")
            _ = await say(m, tape, net, "AT+QIACT=1\r")
            _ = await say(m, tape, net, "AT+QIOPEN=1,0,\"TCP\",\"server\",7,0,0\r")
            _ = await say(m, tape, net, "AT+QISEND=0,4\r")
            #expect(await say(m, tape, net, "ping") == "\r\nSEND OK\r\n\r\n+QIURC: \"recv\",0\r\n")
            m.dropBearer()
            await net.sleep(for: .milliseconds(50))
            #expect(tape.take() == "\r\n+QIURC: \"pdpdeact\",1\r\n\r\n+QIURC: \"closed\",0\r\n")
            #expect(await say(m, tape, net, "AT+QIRD=0,1500\r") == "\r\n+QIRD: 4\r\nping\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+QICLOSE=0\r") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+QIACT?\r") == "\r\nOK\r\n")
        }
    }

    @Test("BG-1, BG-13: without SIM, registration or attach, QIACT answers ERROR", arguments: ModemNetworkFault.allCases)
    func bg96NoNetwork(fault: ModemNetworkFault) async throws {
        try await senderSession(.bg96(faults: ModemFaults(noNetwork: fault)), payload: []) { m, tape, net in
            #expect(tape.take().contains("+CPIN: NOT READY") == (fault == .simNotReady))
            _ = await say(m, tape, net, "ATE0\r")
            let stat = [ModemNetworkFault.simNotReady: 0, .notRegistered: 2, .notAttached: 1][fault]!
            #expect(await say(m, tape, net, "AT+CGREG?\r") == "\r\n+CGREG: 0,\(stat)\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CEREG?\r") == "\r\n+CEREG: 0,\(stat)\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CGATT?\r") == "\r\n+CGATT: 0\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+QIACT=1\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+QIACT?\r") == "\r\nOK\r\n")
        }
    }
}
