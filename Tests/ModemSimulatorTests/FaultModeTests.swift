import GenTCP
import GenTCPModem
import GenTCPCore
import GenTCPSerial
import GenTCPSim
import ModemSimulator
import Testing

extension ATDialect: CustomTestStringConvertible {
    public var testDescription: String { description }
}

/// The dialect's command terminator (ESP-AT CR-LF, 3GPP modules CR).
func term(_ d: ATDialect) -> String { d == .espAT ? "\r\n" : "\r" }

/// The boot lines each dialect prints (ESP-1, SIM-15, BG-11).
func banner(_ d: ATDialect) -> String {
    switch d {
    case .espAT: "\r\nready\r\n"
    case .sim800: "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n"
    case .bg96: "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\nAPP RDY\r\n"
    }
}

func configuration(_ d: ATDialect, seed: UInt64 = 0, _ faults: ModemFaults) -> ModemSimulatorConfiguration {
    ModemSimulatorConfiguration(dialect: d, seed: seed, faults: faults)
}

/// Opens link 0 to "server":`port` the way the dialect wants (bring-up first), echo off.
/// Returns what the module said to the connect.
func openLink0(_ d: ATDialect, _ m: ModemSimulator, _ tape: TimedTape, _ net: SimNetwork, port: Int = 7,
               passive: Bool) async -> String {
    switch d {
    case .espAT:
        _ = tape.take()
        _ = await say(m, tape, net, "ATE0\r\n")
        _ = await say(m, tape, net, "AT+CIPMUX=1\r\n")
        if passive { _ = await say(m, tape, net, "AT+CIPRECVMODE=1\r\n") }
        return await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",\(port)\r\n")
    case .sim800:
        await sim800Up(m, tape, net, manualReceive: passive)
        return await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",\"\(port)\"\r")
    case .bg96:
        _ = tape.take()
        _ = await say(m, tape, net, "ATE0\r")
        _ = await say(m, tape, net, "AT+QIACT=1\r")
        return await say(m, tape, net, "AT+QIOPEN=1,0,\"TCP\",\"server\",\(port),0,\(passive ? 0 : 1)\r")
    }
}

/// Sends `text` on link 0 (prompt, payload) and returns what came after the payload.
func send0(_ d: ATDialect, _ m: ModemSimulator, _ tape: TimedTape, _ net: SimNetwork, _ text: String) async -> String {
    switch d {
    case .espAT: _ = await say(m, tape, net, "AT+CIPSEND=0,\(text.utf8.count)\r\n")
    case .sim800: _ = await say(m, tape, net, "AT+CIPSEND=0,\(text.utf8.count)\r")
    case .bg96: _ = await say(m, tape, net, "AT+QISEND=0,\(text.utf8.count)\r")
    }
    return await say(m, tape, net, text)
}

@Suite("Fault modes")
struct FaultModeTests {
    @Test("resetAfterBytes: the output stops at exactly N UART bytes, then the dialect's boot lines",
          arguments: ATDialect.allCases)
    func resetBanner(dialect: ATDialect) async throws {
        let limit = banner(dialect).utf8.count + 60
        try await senderSession(configuration(dialect, ModemFaults(resetAfterBytes: limit)), payload: []) { m, tape, net in
            var all = tape.take()
            #expect(all == banner(dialect))
            for _ in 0..<40 where m.statistics.resets == 0 {
                all += await say(m, tape, net, "AT" + term(dialect))
            }
            all += await say(m, tape, net, "", wait: .milliseconds(100))
            #expect(m.statistics.resets == 1)
            #expect(all.hasSuffix(banner(dialect)))
            // Everything before the new banner, plus what the host sent, is the N bytes.
            #expect(all.utf8.count - banner(dialect).utf8.count + m.statistics.bytesIn == limit)
            #expect(await say(m, tape, net, "AT" + term(dialect)) == "AT" + term(dialect) + "\r\nOK\r\n")
        }
    }

    @Test("silentAfterConnect: the connect is reported, then nothing; a reset ends it",
          arguments: ATDialect.allCases)
    func silentAfterConnect(dialect: ATDialect) async throws {
        try await senderSession(configuration(dialect, ModemFaults(silentAfterConnect: true)), payload: []) { m, tape, net in
            let connected = await openLink0(dialect, m, tape, net, passive: true)
            switch dialect {
            case .espAT: #expect(connected == "0,CONNECT\r\n\r\nOK\r\n")
            case .sim800: #expect(connected == "\r\nOK\r\n\r\n0, CONNECT OK\r\n")
            case .bg96: #expect(connected == "\r\nOK\r\n\r\n+QIOPEN: 0,0\r\n")
            }
            #expect(m.isLinkInUse(0))
            #expect(await say(m, tape, net, "AT" + term(dialect), wait: .seconds(1)) == "")
            #expect(await send0(dialect, m, tape, net, "ping") == "")
            m.reset()
            #expect(await say(m, tape, net, "", wait: .milliseconds(100)) == banner(dialect))
            #expect(!m.isLinkInUse(0))
            #expect(await say(m, tape, net, "AT" + term(dialect)) == "AT" + term(dialect) + "\r\nOK\r\n")
        }
    }

    @Test("silentAfterConnect ends with setSilent(false); the link was kept")
    func silentAfterConnectSpeaksAgain() async throws {
        try await senderSession(.espAT(faults: ModemFaults(silentAfterConnect: true)), payload: []) { m, tape, net in
            _ = await openLink0(.espAT, m, tape, net, passive: false)
            #expect(await say(m, tape, net, "AT\r\n") == "")
            m.setSilent(false)
            #expect(await send0(.espAT, m, tape, net, "ping") == "\r\nRecv 4 bytes\r\n\r\nSEND OK\r\n\r\n+IPD,0,4:ping")
        }
    }

    @Test("silenceAfterBytes: output cut at exactly that byte, mid-message; input ignored afterwards")
    func silenceAfterBytes() async throws {
        try await senderSession(.espAT(faults: ModemFaults(silenceAfterBytes: 30)), payload: []) { m, tape, net in
            #expect(tape.take() == "\r\nready\r\n")                                  // 9
            #expect(await say(m, tape, net, "AT\r\n") == "AT\r\n\r\nOK\r\n")         // 4 in, 10 out: 23
            #expect(await say(m, tape, net, "AT\r\n") == "AT\r")                     // 4 in: 27, 3 out: 30
            #expect(await say(m, tape, net, "AT\r\n", wait: .seconds(1)) == "")
            #expect(m.statistics.bytesIn == 8)
            #expect(m.statistics.bytesOut == 22)
        }
    }

    @Test("passiveRevertsAfterBytes (ESP-AT): buffered data, then new data, pushed as +IPD,<id>,<len>:<data>, in order")
    func pushWhilePassiveESP() async throws {
        try await senderSession(.espAT(faults: ModemFaults(passiveRevertsAfterBytes: 10)), payload: []) { m, tape, net in
            #expect(await openLink0(.espAT, m, tape, net, passive: true) == "0,CONNECT\r\n\r\nOK\r\n")
            #expect(await send0(.espAT, m, tape, net, "abcdef") == "\r\nRecv 6 bytes\r\n\r\nSEND OK\r\n\r\n+IPD,0,6\r\n")
            #expect(await send0(.espAT, m, tape, net, "ghijkl")
                == "\r\nRecv 6 bytes\r\n\r\nSEND OK\r\n\r\n+IPD,0,6:abcdef\r\n+IPD,0,6:ghijkl")
            #expect(await say(m, tape, net, "AT+CIPRECVDATA=0,100\r\n") == "\r\nERROR\r\n")
            #expect(await say(m, tape, net, "AT+CIPRECVMODE?\r\n") == "+CIPRECVMODE:0\r\n\r\nOK\r\n")
            #expect(await send0(.espAT, m, tape, net, "mn") == "\r\nRecv 2 bytes\r\n\r\nSEND OK\r\n\r\n+IPD,0,2:mn")
        }
    }

    @Test("passiveRevertsAfterBytes 0 (SIM800, BG96): data pushed in the active form from the first byte",
          arguments: [ATDialect.sim800, .bg96])
    func pushWhilePassiveCellular(dialect: ATDialect) async throws {
        try await senderSession(configuration(dialect, ModemFaults(passiveRevertsAfterBytes: 0)), payload: []) { m, tape, net in
            _ = await openLink0(dialect, m, tape, net, passive: true)
            let pushed = await send0(dialect, m, tape, net, "hello")
            switch dialect {
            case .sim800: #expect(pushed == "\r\n0, SEND OK\r\n\r\n+RECEIVE,0,5:\r\nhello")
            default: #expect(pushed == "\r\nSEND OK\r\n\r\n+QIURC: \"recv\",0,5\r\nhello")
            }
            #expect(m.bufferedBytes(link: 0) == 0)
        }
    }

    @Test("overlongHeaders: length fields padded with zeros or spaces, values unchanged",
          arguments: ATDialect.allCases)
    func overlongHeaders(dialect: ATDialect) async throws {
        let zeros = String(repeating: "0", count: 300)
        try await senderSession(configuration(dialect, ModemFaults(overlongHeaders: ModemHeaderPadding())), payload: []) { m, tape, net in
            _ = await openLink0(dialect, m, tape, net, passive: true)
            let sent = await send0(dialect, m, tape, net, "hello")
            switch dialect {
            case .espAT:
                #expect(sent.hasSuffix("\r\n+IPD,0,\(zeros)5\r\n"))
                #expect(await say(m, tape, net, "AT+CIPRECVDATA=0,100\r\n") == "+CIPRECVDATA:\(zeros)5,hello\r\nOK\r\n")
            case .sim800:
                #expect(await say(m, tape, net, "AT+CIPRXGET=2,0,100\r") == "\r\n+CIPRXGET: 2,0,\(zeros)5,0\r\nhello\r\nOK\r\n")
            case .bg96:
                #expect(await say(m, tape, net, "AT+QIRD=0,1500\r") == "\r\n+QIRD: \(zeros)5\r\nhello\r\n\r\nOK\r\n")
            }
        }
    }

    @Test("overlongHeaders with spaces, first header only")
    func overlongHeadersOnce() async throws {
        let spaces = String(repeating: " ", count: 500)
        let padding = ModemHeaderPadding(fill: .spaces, count: 500, headers: 1)
        try await senderSession(.espAT(faults: ModemFaults(overlongHeaders: padding)), payload: []) { m, tape, net in
            _ = await openLink0(.espAT, m, tape, net, passive: false)
            #expect(await send0(.espAT, m, tape, net, "hi").hasSuffix("\r\n+IPD,0,\(spaces)2:hi"))
            #expect(await send0(.espAT, m, tape, net, "hi").hasSuffix("\r\n+IPD,0,2:hi"))
        }
    }

    @Test("portVanishesAfterBytes: ModemLinkBridge closes its end; the host reads what had arrived, then a hang-up")
    func portVanishes() async throws {
        let net = try SimNetwork(seed: 21)
        let server = try net.addHost("server")
        let modemHost = try net.addHost("modem")
        try await net.run {
            let echo = try ListenSocket.listen(port: 7, options: [.binary, .active(.passive)], driver: .sim(net, host: server))
            net.spawn {
                let s = try? await echo.accept()
                await net.sleep(for: .seconds(30))
                s?.close()
            }
            let line = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 115_200), runtime: net.runtime)
            let bridge = ModemLinkBridge(link: line.1, configuration: .espAT(faults: ModemFaults(portVanishesAfterBytes: 140)),
                                         driver: try SimDriver.sim(net, host: modemHost))
            bridge.modem.powerOn()
            let host = line.0
            var got: [UInt8] = []
            var hungUp = false
            func pump() {
                while true {
                    let (bytes, result) = host.read(upTo: 256)
                    got += bytes
                    if case .hangUp = result { hungUp = true }
                    guard case .bytes(let n) = result, n > 0 else { return }
                }
            }
            func command(_ text: String) async {
                _ = host.write(Array(text.utf8))
                await net.sleep(for: .milliseconds(50))
                pump()
            }
            await net.sleep(for: .milliseconds(100))
            pump()
            await command("AT+CIPMUX=1\r\n")
            await command("AT+CIPSTART=0,\"TCP\",\"server\",7\r\n")
            #expect(bridge.modem.isLinkInUse(0))
            let before = got.count
            await command("AT+CIPSTATE?\r\n")
            for _ in 0..<50 where !hungUp {
                await net.sleep(for: .milliseconds(10))
                pump()
            }
            #expect(hungUp)
            #expect(!bridge.modem.isLinkInUse(0))
            #expect(got.count >= before)
            #expect(got.count + bridge.modem.statistics.bytesIn <= 140)
            let text = String(decoding: got, as: UTF8.self)
            #expect(text.hasPrefix("\r\nready\r\nAT+CIPMUX=1\r\n\r\nOK\r\nAT+CIPSTART=0,\"TCP\",\"server\",7\r\n0,CONNECT\r\n\r\nOK\r\n"))
            if case .hangUp = host.write(Array("AT\r\n".utf8)) {} else { Issue.record("the host could still write") }
            host.close()
            echo.close()
        }
    }

    @Test("baudRate 9600: a 5.7 KB +CIPRECVDATA answer trickles in over 6 s, in pieces of at most 16 bytes")
    func pacedAt9600() async throws {
        let payload = letters(5760)
        try await senderSession(.espAT(faults: ModemFaults(baudRate: 9600)), payload: payload) { m, tape, net in
            _ = await openLink0(.espAT, m, tape, net, port: 80, passive: true)
            await net.sleep(for: .seconds(2))
            _ = tape.take()
            #expect(m.bufferedBytes(link: 0) == 5760)
            let t0 = net.now
            m.input(Array("AT+CIPRECVDATA=0,8192\r\n".utf8))
            await net.sleep(for: .seconds(8))
            let answer = Array("+CIPRECVDATA:5760,".utf8) + payload + Array("\r\nOK\r\n".utf8)
            let pieces = tape.all
            #expect(Array(pieces.flatMap { $0.1 }.prefix(answer.count)) == answer)
            #expect(pieces.allSatisfy { $0.1.count <= 16 })
            #expect(pieces.count >= answer.count / 16)
            var total = 0
            var end: UInt64 = 0
            for (time, bytes) in pieces where total < answer.count {
                total += bytes.count
                end = time
            }
            let first = (pieces.first?.0 ?? 0) - t0
            let last = end - t0
            let wire = UInt64(answer.count) * 10 * 1_000_000_000 / 9600
            #expect(first <= 20_000_000)  // the first piece within 20 ms
            #expect(last >= wire && last <= wire + 50_000_000)
        }
    }

    @Test("The new faults replay byte for byte and time for time with the same seed")
    func replay() async throws {
        func once(seed: UInt64) async throws -> [(UInt64, [UInt8])] {
            let faults = ModemFaults(maxFragmentLength: 7, maxFragmentDelay: .milliseconds(1), noiseProbability: 0.2,
                                     silenceAfterBytes: 700, passiveRevertsAfterBytes: 10,
                                     overlongHeaders: ModemHeaderPadding(count: 40, headers: 2))
            let result = TimedTape()
            try await senderSession(.espAT(seed: seed, faults: faults), payload: []) { m, tape, net in
                _ = await openLink0(.espAT, m, tape, net, passive: true)
                for word in ["abcdef", "ghijkl", "mnopqr", "stuvwx", "yz0123", "456789"] {
                    _ = await send0(.espAT, m, tape, net, word)
                }
                _ = await say(m, tape, net, "AT+CIPCLOSE=0\r\n")
                for (t, b) in tape.log { result.append(t, b) }
            }
            return result.all
        }
        let a = try await once(seed: 5)
        let b = try await once(seed: 5)
        let c = try await once(seed: 6)
        #expect(a.map(\.0) == b.map(\.0))
        #expect(a.map(\.1) == b.map(\.1))
        #expect(a.map(\.1) != c.map(\.1))
    }
}
