import GenTCP
import GenTCPCore
import GenTCPSim
import ModemSimulator
import Synchronization
import Testing

/// Records the module's output, for exact wire checks without an engine.
final class Tape: Sendable {
    private let bytes = Mutex<[UInt8]>([])
    func append(_ b: [UInt8]) { bytes.withLock { $0 += b } }
    var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
    /// Takes everything recorded so far.
    func take() -> String {
        String(decoding: bytes.withLock { b in defer { b = [] }; return b }, as: UTF8.self)
    }
}

/// A module on a fresh simulated network with an echo server on "server":7.
func rawSession(_ configuration: ModemSimulatorConfiguration,
                _ body: @escaping @Sendable (ModemSimulator, Tape, SimNetwork) async throws -> Void) async throws {
    let net = try SimNetwork(seed: 3)
    let server = try net.addHost("server")
    let modemHost = try net.addHost("modem")
    try await net.run {
        let listener = try ListenSocket.listen(port: 7, options: [.binary, .active(.passive)], driver: .sim(net, host: server))
        net.spawn {
            while true {
                let s = try await listener.accept()
                net.spawn {
                    while true {
                        guard let p = try? await s.recv(0) else { break }
                        try await s.send(p.bytes)
                    }
                    s.close()
                }
            }
        }
        let tape = Tape()
        let modem = ModemSimulator(configuration, driver: try SimDriver.sim(net, host: modemHost)) { tape.append($0) }
        modem.powerOn()
        await net.sleep(for: .milliseconds(100))
        try await body(modem, tape, net)
        listener.close()
    }
}

/// Sends a line and returns what the module said within `wait`.
func say(_ modem: ModemSimulator, _ tape: Tape, _ net: SimNetwork, _ text: String,
         wait: Duration = .milliseconds(50)) async -> String {
    modem.input(Array(text.utf8))
    await net.sleep(for: wait)
    return tape.take()
}

@Suite("Wire formats as documented")
struct WireTests {
    @Test("ESP-AT: ready, echo of the whole line, ATE0, CIPMUX, connect, send, +IPD, close")
    func espActive() async throws {
        try await rawSession(.espAT()) { m, tape, net in
            #expect(tape.take() == "\r\nready\r\n")
            #expect(await say(m, tape, net, "AT\r\n") == "AT\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "ATE0\r\n") == "ATE0\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT\r\n") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+BOGUS\r\n") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPMUX=1\r\n") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",7\r\n") == "0,CONNECT\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",7\r\n") == "ALREADY CONNECTED\r\n\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPMUX=0\r\n") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPSEND=0,8\r\n", wait: .zero) == "\r\nOK\r\n\r\n>")
            // The payload holds what a line parser would take for results and prompts.
            #expect(await say(m, tape, net, "OK\r\n>+IP") == "\r\nRecv 8 bytes\r\n\r\nSEND OK\r\n\r\n+IPD,0,8:OK\r\n>+IP")
            #expect(await say(m, tape, net, "AT+CIPSEND=3,1\r\n") == "link is not valid\r\n\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPCLOSE=0\r\n") == "0,CLOSED\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPCLOSE=0\r\n") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=1,\"TCP\",\"server\",9\r\n", wait: .seconds(5))
                == "\r\nERROR\r\n1,CLOSED\r\n")
            #expect(await say(m, tape, net, "AT+CIPDOMAIN=\"server\"\r\n") == "+CIPDOMAIN:\"10.0.0.1\"\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPDOMAIN=\"nowhere\"\r\n") == "\r\nERROR\r\n")
        }
    }

    @Test("ESP-AT single link: CONNECT, +IPD,<len>:, CLOSED without an id")
    func espSingle() async throws {
        try await rawSession(.espAT()) { m, tape, net in
            _ = tape.take()
            _ = await say(m, tape, net, "ATE0\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=\"TCP\",\"10.0.0.1\",7\r\n") == "CONNECT\r\n\r\nOK\r\n")
            _ = await say(m, tape, net, "AT+CIPSEND=2\r\n")
            #expect(await say(m, tape, net, "hi") == "\r\nRecv 2 bytes\r\n\r\nSEND OK\r\n\r\n+IPD,2:hi")
            #expect(await say(m, tape, net, "AT+CIPCLOSE\r\n") == "CLOSED\r\n\r\nOK\r\n")
        }
    }

    @Test("ESP-AT busy p... while CIPSTART runs; the command is ignored")
    func espBusy() async throws {
        try await rawSession(.espAT()) { m, tape, net in
            _ = tape.take()
            _ = await say(m, tape, net, "ATE0\r\n")
            _ = await say(m, tape, net, "AT+CIPMUX=1\r\n")
            // Port 9 has no listener: the connect takes a round trip, during which AT is refused.
            let out = await say(m, tape, net, "AT+CIPSTART=2,\"TCP\",\"server\",7\r\nAT\r\n")
            #expect(out == "busy p...\r\n2,CONNECT\r\n\r\nOK\r\n")
            #expect(m.statistics.busyReplies == 1)
        }
    }

    @Test("ESP-AT passive: CIPRECVMODE on 2.x, CIPRECVTYPE on 3.3, notice, CIPRECVDATA, CIPRECVLEN, CLOSED after the data",
          arguments: ["2.2.0.0", "3.3.0.0"])
    func espPassive(firmware: String) async throws {
        let new = firmware == "3.3.0.0"
        try await rawSession(.espAT(firmware: firmware)) { m, tape, net in
            _ = tape.take()
            _ = await say(m, tape, net, "ATE0\r\n")
            _ = await say(m, tape, net, "AT+CIPMUX=1\r\n")
            #expect(await say(m, tape, net, "AT+CIPRECVMODE=1\r\n") == (new ? "\r\nERROR\r\n" : "\r\nOK\r\n"))
            #expect(await say(m, tape, net, "AT+CIPRECVTYPE=5,1\r\n") == (new ? "\r\nOK\r\n" : "\r\nERROR\r\n"))
            _ = await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",7\r\n")
            _ = await say(m, tape, net, "AT+CIPSEND=0,10\r\n")
            #expect(await say(m, tape, net, "0123456789") == "\r\nRecv 10 bytes\r\n\r\nSEND OK\r\n\r\n+IPD,0,10\r\n")
            #expect(await say(m, tape, net, "AT+CIPRECVLEN?\r\n")
                == "+CIPRECVLEN:10,\(new ? ",,," : "-1,-1,-1,-1")\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPRECVDATA=0,4\r\n") == "+CIPRECVDATA:4,0123\r\nOK\r\n\r\n+IPD,0,6\r\n")
            #expect(await say(m, tape, net, "AT+CIPRECVDATA=0,100\r\n") == "+CIPRECVDATA:6,456789\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPRECVDATA=0,100\r\n") == "\r\nERROR\r\n")
        }
    }

    @Test("ESP-AT passive: the peer's close waits until the buffered data is read")
    func espCloseAfterData() async throws {
        let net = try SimNetwork(seed: 4)
        let server = try net.addHost("server")
        let modemHost = try net.addHost("modem")
        try await net.run {
            let listener = try ListenSocket.listen(port: 80, options: [.binary, .active(.passive)], driver: .sim(net, host: server))
            net.spawn {
                let s = try await listener.accept()
                try await s.send("OK\r\n+IPD,0,1:>")
                s.close()
            }
            let tape = Tape()
            let m = ModemSimulator(.espAT(), driver: try SimDriver.sim(net, host: modemHost)) { tape.append($0) }
            m.powerOn()
            await net.sleep(for: .milliseconds(100))
            _ = tape.take()
            _ = await say(m, tape, net, "ATE0\r\n")
            _ = await say(m, tape, net, "AT+CIPMUX=1\r\n")
            _ = await say(m, tape, net, "AT+CIPRECVMODE=1\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=3,\"TCP\",\"server\",80\r\n", wait: .seconds(1))
                == "3,CONNECT\r\n\r\nOK\r\n\r\n+IPD,3,14\r\n")
            #expect(m.isLinkInUse(3))
            #expect(await say(m, tape, net, "AT+CIPRECVDATA=3,100\r\n") == "+CIPRECVDATA:14,OK\r\n+IPD,0,1:>\r\nOK\r\n3,CLOSED\r\n")
            #expect(!m.isLinkInUse(3))
        }
    }

    @Test("SIM800: RDY banner, echo with CR, CIPSTART async, CIPSEND prompt, CIPRXGET, CLOSE OK")
    func sim800() async throws {
        try await rawSession(.sim800()) { m, tape, net in
            #expect(tape.take() == "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n")
            #expect(await say(m, tape, net, "AT\r") == "AT\r\r\nOK\r\n")
            #expect(await say(m, tape, net, "ATE0\r") == "ATE0\r\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPMUX=1\r") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPRXGET=1\r") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CSTT=\"internet\"\r") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIICR\r") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIFSR\r") == "\r\n10.170.12.34\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=1,\"TCP\",\"server\",\"7\"\r") == "\r\nOK\r\n\r\n1, CONNECT OK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=1,\"TCP\",\"server\",\"7\"\r") == "\r\n1, ALREADY CONNECT\r\n")
            #expect(await say(m, tape, net, "AT+CIPSEND=1,5\r", wait: .zero) == "\r\n> ")
            #expect(await say(m, tape, net, "OK\r\n>") == "\r\n1, SEND OK\r\n\r\n+CIPRXGET: 1,1\r\n")
            #expect(await say(m, tape, net, "AT+CIPRXGET=4,1\r") == "\r\n+CIPRXGET: 4,1,5\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPRXGET=2,1,3\r") == "\r\n+CIPRXGET: 2,1,3,2\r\nOK\r\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPRXGET=2,1,100\r") == "\r\n+CIPRXGET: 2,1,2,0\r\n\n>\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPCLOSE=1\r") == "\r\n1, CLOSE OK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=2,\"TCP\",\"server\",\"9\"\r", wait: .seconds(5))
                == "\r\nOK\r\n\r\n2, CONNECT FAIL\r\n")
            #expect(await say(m, tape, net, "AT+CDNSGIP=\"server\"\r") == "\r\nOK\r\n\r\n+CDNSGIP: 1,\"server\",\"10.0.0.1\"\r\n")
            #expect(await say(m, tape, net, "AT+CIPSHUT\r") == "\r\nSHUT OK\r\n")
        }
    }

    @Test("BG96: RDY ... APP RDY, QIOPEN + URC, QISEND, recv URC, QIRD, closed URC then QICLOSE")
    func bg96() async throws {
        try await rawSession(.bg96()) { m, tape, net in
            #expect(tape.take().hasSuffix("\r\nAPP RDY\r\n"))
            #expect(await say(m, tape, net, "ATE0\r") == "ATE0\r\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+QIOPEN=1,0,\"TCP\",\"server\",7,0,0\r") == "\r\nOK\r\n\r\n+QIOPEN: 0,0\r\n")
            #expect(await say(m, tape, net, "AT+QIOPEN=1,0,\"TCP\",\"server\",7,0,0\r") == "\r\nOK\r\n\r\n+QIOPEN: 0,563\r\n")
            #expect(await say(m, tape, net, "AT+QIOPEN=1,1,\"TCP\",\"server\",9,0,0\r", wait: .seconds(5))
                == "\r\nOK\r\n\r\n+QIOPEN: 1,566\r\n")
            #expect(await say(m, tape, net, "AT+QISEND=0,4\r", wait: .zero) == "\r\n> ")
            #expect(await say(m, tape, net, "OK\r\n") == "\r\nSEND OK\r\n\r\n+QIURC: \"recv\",0\r\n")
            #expect(await say(m, tape, net, "AT+QIRD=0,0\r") == "\r\n+QIRD: 4,0,4\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+QIRD=0,1500\r") == "\r\n+QIRD: 4\r\nOK\r\n\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+QIRD=0,1500\r") == "\r\n+QIRD: 0\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+QISEND=5,4\r") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+QICLOSE=0\r") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+QIDNSGIP=1,\"server\"\r")
                == "\r\nOK\r\n\r\n+QIURC: \"dnsgip\",0,2,600\r\n\r\n+QIURC: \"dnsgip\",\"10.0.0.1\"\r\n\r\n+QIURC: \"dnsgip\",\"fd00::1\"\r\n")
        }
    }
}
