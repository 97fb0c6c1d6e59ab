import Testing
import GenTCPModem

/// Feeds `text` to `engine` at `now`, returning the events.
func feed<D: ModemDialect>(_ engine: inout ModemEngine<D>, _ text: String, now: Int64 = 0) -> [Ev] {
    var out: [Ev] = []
    b(text).withUnsafeBytes { raw in
        engine.receive(raw, now: at(now)) { engine, event in out.append(normalise(event, engine)) }
    }
    #expect(engine.invariantViolation() == nil)
    return merged(out)
}

func tick<D: ModemDialect>(_ engine: inout ModemEngine<D>, _ now: Int64) -> [Ev] {
    var out: [Ev] = []
    engine.advance(now: at(now)) { engine, event in out.append(normalise(event, engine)) }
    #expect(engine.invariantViolation() == nil)
    return out
}

func written<D: ModemDialect>(_ engine: inout ModemEngine<D>) -> String {
    var s = ""
    engine.withPendingOutput { bytes in
        s += String(decoding: bytes, as: UTF8.self)
        return bytes.count
    }
    return s
}

@Suite("Command engine")
struct EngineTests {
    @Test("a silent module: the command times out, the count of timeouts in a row grows, an answer resets it")
    func silentModule() throws {
        var engine = ModemEngine(dialect: ESPATDialect())
        try engine.submit(.probe, now: at(1_000))
        #expect(written(&engine) == "AT\r\n")
        // ESP-AT's 2 s for a plain command, plus the command and a 256-byte answer at 115200
        // baud (260 bytes, 23 ms).
        let limit: Int64 = 2_000 + 23
        #expect(engine.nextDeadline == at(1_000 + limit))
        #expect(tick(&engine, 1_000 + limit - 1).isEmpty)
        #expect(tick(&engine, 1_000 + limit) == [.failed(.probe, nil, .timeout, .timeout)])
        #expect(engine.consecutiveTimeouts == 1)
        #expect(engine.nextDeadline == nil)
        try engine.submit(.probe, now: at(3_000), timeout: 500)
        _ = written(&engine)
        #expect(tick(&engine, 3_500) == [.failed(.probe, nil, .timeout, .timeout)])
        #expect(engine.consecutiveTimeouts == 2)
        #expect(engine.statistics.timeouts == 2)
        try engine.submit(.probe, now: at(4_000))
        _ = written(&engine)
        #expect(feed(&engine, "\r\nOK\r\n", now: 4_010) == [.ok(.probe)])
        #expect(engine.consecutiveTimeouts == 0)
    }

    @Test("a connect that times out on ESP-AT is etimedout and frees the link")
    func connectTimeout() throws {
        var engine = ModemEngine(dialect: ESPATDialect())
        try engine.submit(.connect(link: 0, host: "example.com", port: 80), now: at(0), timeout: 10_000)
        _ = written(&engine)
        #expect(engine.linkState(0) == .connecting)
        #expect(tick(&engine, 10_000) == [.failed(.connect, 0, .timeout, .connectionTimedOut), .connectFailed(0, .connectionTimedOut)])
        #expect(engine.linkState(0) == .closed)
    }

    @Test("busy p... on every retry fails the command with ebusy")
    func busyExhausted() throws {
        var configuration = ModemConfiguration()
        configuration.maxBusyRetries = 2
        configuration.busyRetryDelay = 100
        var engine = ModemEngine(dialect: ESPATDialect(), configuration: configuration)
        try engine.submit(.probe, now: at(0))
        #expect(written(&engine) == "AT\r\n")
        #expect(feed(&engine, "busy p...\r\n", now: 10).isEmpty)
        #expect(engine.nextDeadline == at(110))
        // A late OK during the back-off belongs to nobody.
        #expect(feed(&engine, "\r\nOK\r\n", now: 50).isEmpty)
        #expect(tick(&engine, 110).isEmpty)
        #expect(written(&engine) == "AT\r\n")
        #expect(feed(&engine, "busy p...\r\n", now: 120).isEmpty)
        #expect(tick(&engine, 220).isEmpty)
        #expect(written(&engine) == "AT\r\n")
        #expect(feed(&engine, "busy p...\r\n", now: 230) == [.failed(.probe, nil, .busy, .resourceBusy)])
        #expect(engine.statistics.busyRetries == 3)
        #expect(engine.isIdle == true)
    }

    @Test("a send whose prompt never comes times out and its payload is never written")
    func promptTimeout() throws {
        var engine = ModemEngine(dialect: BG96Dialect())
        try engine.submit(.connect(link: 0, host: "h", port: 1), now: at(0))
        _ = written(&engine)
        _ = feed(&engine, "\r\nOK\r\n\r\n+QIOPEN: 0,0\r\n")
        #expect(try engine.send(b("secret"), link: 0, now: at(100)) == 6)
        #expect(written(&engine) == "AT+QISEND=0,6\r")
        #expect(engine.pendingOutputCount == 0)
        // 5 s for the prompt, plus the command line's time on the wire (29 bytes: 3 ms).
        #expect(tick(&engine, 5_102).isEmpty)
        #expect(tick(&engine, 5_103) == [.failed(.send, 0, .timeout, .timeout)])
        #expect(engine.isIdle == true)
        #expect(written(&engine) == "")
        // A prompt arriving now is stray: nothing is written.
        #expect(feed(&engine, "> ").isEmpty)
        #expect(written(&engine) == "")
        #expect(engine.statistics.strays == 0)  // not expected, so ">" stays in the line buffer
    }

    @Test("send timeout after the payload grows with the length and the baud rate")
    func sendTimeout() throws {
        var configuration = ModemConfiguration()
        configuration.baudRate = 9_600
        configuration.maxSendChunk = 4_096
        var engine = ModemEngine(dialect: ESPATDialect(), configuration: configuration)
        try engine.submit(.connect(link: 0, host: "h", port: 1), now: at(0))
        _ = written(&engine)
        _ = feed(&engine, "CONNECT\r\n\r\nOK\r\n")
        let payload = [UInt8](repeating: 0x55, count: 960)
        #expect(try engine.send(payload, link: 0, now: at(0)) == 960)
        _ = written(&engine)
        _ = feed(&engine, "\r\nOK\r\n\r\n>", now: 10)
        #expect(engine.pendingOutputCount == 960)
        // 960 bytes (and 32 of framing) at 9600 baud is 1,034 ms on the wire, plus 10 s.
        #expect(engine.nextDeadline == at(10 + 10_000 + 1_034))
    }

    @Test("a read's timeout grows with what it may bring at the line's baud rate; extraLatency adds to it")
    func readTimeout() throws {
        var configuration = ModemConfiguration()
        configuration.baudRate = 9_600
        var engine = ModemEngine(dialect: ESPATDialect(), configuration: configuration)
        try engine.submit(.read(link: 0, maximum: 8_192), now: at(0))
        // "AT+CIPRECVDATA=8192" and CR-LF (21 bytes), 8,192 bytes and 128 of framing: 8,689 ms at
        // 9600 baud, beside ESP-AT's 5 s for a read. A flat 5 s loses such an answer.
        #expect(written(&engine) == "AT+CIPRECVDATA=8192\r\n")
        #expect(engine.nextDeadline == at(5_000 + 8_689))
        #expect(engine.lineTimeout(for: .read(link: 0, maximum: 8_192)) == 13_689)
        configuration.extraLatency = 1_500
        configuration.baudRate = 115_200
        let slow = ModemEngine(dialect: ESPATDialect(), configuration: configuration)
        #expect(slow.lineTimeout(for: .probe) > 3_500)
        #expect(ModemEngine<ESPATDialect>.wireMilliseconds(11_520, baud: 115_200) == 1_000)
        #expect(ModemEngine<ESPATDialect>.wireMilliseconds(0, baud: 9_600) == 1)
    }

    @Test("pushed +IPD payload is told apart from a read's answer")
    func pushedPayload() throws {
        var engine = ModemEngine(dialect: ESPATDialect())
        try engine.submit(.connect(link: 0, host: "h", port: 1), now: at(0))
        _ = written(&engine)
        _ = feed(&engine, "CONNECT\r\n\r\nOK\r\n")
        var pushed: [Bool] = []
        let input = Array("\r\n+IPD,0,3:abc".utf8)
        input.withUnsafeBytes { raw in
            engine.receive(raw, now: at(10)) { engine, event in
                if case .received = event { pushed.append(engine.isReceivingPushedPayload) }
            }
        }
        #expect(pushed == [true])
        #expect(engine.isReceivingPushedPayload == false)
        #expect(engine.readInFlightLink == nil)
        try engine.submit(.read(link: 0, maximum: 10), now: at(20))
        #expect(engine.readInFlightLink == 0)
        _ = written(&engine)
        pushed = []
        let answer = Array("+CIPRECVDATA:2,xy\r\nOK\r\n".utf8)
        answer.withUnsafeBytes { raw in
            engine.receive(raw, now: at(30)) { engine, event in
                if case .received = event { pushed.append(engine.isReceivingPushedPayload) }
            }
        }
        #expect(pushed == [false])
    }

    @Test("sends are cut to the chunk size; an empty send does nothing")
    func sendChunking() throws {
        var configuration = ModemConfiguration()
        configuration.maxSendChunk = 100_000  // clamped to BG96's 1460
        var engine = ModemEngine(dialect: BG96Dialect(), configuration: configuration)
        #expect(engine.maxSendChunk == 1460)
        try engine.submit(.connect(link: 0, host: "h", port: 1), now: at(0))
        _ = written(&engine)
        _ = feed(&engine, "\r\nOK\r\n\r\n+QIOPEN: 0,0\r\n")
        #expect(try engine.send([], link: 0, now: at(0)) == 0)
        #expect(engine.isIdle == true)
        #expect(try engine.send([UInt8](repeating: 1, count: 5000), link: 0, now: at(0)) == 1460)
        #expect(written(&engine) == "AT+QISEND=0,1460\r")
    }

    @Test("one command at a time; unwritten output blocks the next")
    func oneInFlight() throws {
        var engine = ModemEngine(dialect: ESPATDialect())
        try engine.submit(.probe, now: at(0))
        #expect(throws: ModemError(.alreadyInProgress)) { try engine.submit(.probe, now: at(0)) }
        _ = feed(&engine, "\r\nOK\r\n")
        // The answer came, but the driver never wrote the command: the stale bytes must go first.
        #expect(throws: ModemError(.wouldBlock)) { try engine.submit(.probe, now: at(0)) }
        _ = written(&engine)
        try engine.submit(.probe, now: at(0))
    }

    @Test("argument checks", arguments: [
        (ModemCommand.connect(link: 5, host: "h", port: 80), ModemReason.invalidArgument),
        (.connect(link: -1, host: "h", port: 80), .invalidArgument),
        (.connect(link: 0, host: "h", port: 0), .invalidArgument),
        (.connect(link: 0, host: "h", port: 65_536), .invalidArgument),
        (.read(link: 0, maximum: 0), .invalidArgument),
        (.read(link: 0, maximum: 8193), .invalidArgument),
        (.close(link: 9), .invalidArgument),
        (.send(link: 0, count: 1), .invalidArgument),
        (.configureBearer(apn: "a", user: "", password: ""), .notSupported),
        (.setBaudRate(0, hardwareFlowControl: false), .invalidArgument),
    ])
    func argumentChecks(_ command: ModemCommand, _ reason: ModemReason) {
        var engine = ModemEngine(dialect: ESPATDialect())
        #expect(throws: ModemError(reason)) { try engine.submit(command, now: at(0)) }
        #expect(engine.isIdle == true)
        #expect(engine.pendingOutputCount == 0)
    }

    @Test("ESP-AT: only link 0 until multiplexing is on; multiplexing is forgotten on reset")
    func espSingleLink() throws {
        var engine = ModemEngine(dialect: ESPATDialect())
        #expect(throws: ModemError(.invalidArgument)) { try engine.submit(.connect(link: 1, host: "h", port: 1), now: at(0)) }
        try engine.submit(.enableMultiplexing, now: at(0))
        _ = written(&engine)
        _ = feed(&engine, "\r\nOK\r\n")
        #expect(engine.dialect.multiplexed == true)
        try engine.submit(.connect(link: 1, host: "h", port: 1), now: at(0))
        #expect(written(&engine) == "AT+CIPSTART=1,\"TCP\",\"h\",1\r\n")
        _ = feed(&engine, "1,CONNECT\r\n\r\nOK\r\n")
        #expect(throws: ModemError(.alreadyConnected)) { try engine.submit(.connect(link: 1, host: "h", port: 1), now: at(0)) }
        #expect(feed(&engine, "ready\r\n") == [.reset, .closed(1)])
        #expect(engine.dialect.multiplexed == false)
        #expect(throws: ModemError(.notConnected)) { try engine.send(b("x"), link: 1, now: at(0)) }
    }

    @Test("echo is dropped only when it is the command itself (esp-at-nal #13)")
    func echoIsExact() throws {
        var engine = ModemEngine(dialect: ESPATDialect())
        try engine.submit(.localAddress, now: at(0))
        _ = written(&engine)
        let events = feed(&engine, "AT+CIFSR\r\n+CIFSR:STAIP,\"192.168.1.9\"\r\n\r\nOK\r\n")
        #expect(events == [.localAddress(ipv4(192, 168, 1, 9)), .ok(.localAddress)])
        #expect(engine.statistics.echoes == 1)
        // Echo off: the first line is the answer, not an echo.
        try engine.submit(.localAddress, now: at(0))
        _ = written(&engine)
        #expect(feed(&engine, "+CIFSR:STAIP,\"192.168.1.9\"\r\nOK\r\n") == [.localAddress(ipv4(192, 168, 1, 9)), .ok(.localAddress)])
        #expect(engine.statistics.echoes == 1)
    }

    @Test("information lines are kept, bounded, for the driver to read")
    func responseLines() throws {
        var configuration = ModemConfiguration()
        configuration.maxResponseLines = 3
        var engine = ModemEngine(dialect: ESPATDialect(), configuration: configuration)
        try engine.submit(.raw("AT+CWLAP"), now: at(0))
        #expect(written(&engine) == "AT+CWLAP\r\n")
        let lines = (0..<5).map { "+CWLAP:(3,\"net\($0)\",-5\($0))" }
        #expect(feed(&engine, lines.joined(separator: "\r\n") + "\r\n\r\nOK\r\n") == [.ok(.raw)])
        #expect(engine.responseLineCount == 3)
        #expect(engine.withResponseLine(1) { text($0.bytes.map { $0 }) } == lines[1])
        #expect(engine.withResponseLine(3) { _ in 0 } == nil)
        #expect(engine.statistics.droppedResponseLines == 2)
    }

    @Test("stray finals and unknown lines outside a command")
    func strays() {
        var engine = ModemEngine(dialect: SIM800Dialect())
        #expect(feed(&engine, "\r\nOK\r\n\r\nSEND OK\r\n\r\n+CSQ: 17,0\r\n") == [.unrecognised("SEND OK"), .unrecognised("+CSQ: 17,0")])
        #expect(engine.statistics.strays == 1)
    }

    @Test("a resolve that never reports fails with timeout")
    func resolveTimeout() throws {
        var engine = ModemEngine(dialect: BG96Dialect())
        try engine.submit(.resolve(host: "example.com"), now: at(0))
        _ = written(&engine)
        #expect(feed(&engine, "\r\nOK\r\n", now: 5) == [.ok(.resolve)])
        #expect(engine.nextDeadline == at(60_005))
        #expect(tick(&engine, 60_005) == [.resolveFailed(.timeout)])
        // A late answer is ignored.
        #expect(feed(&engine, "+QIURC: \"dnsgip\",\"1.2.3.4\"\r\n", now: 60_010).isEmpty)
    }

    @Test("a reset drops output the driver has not written yet")
    func resetDropsOutput() throws {
        var engine = ModemEngine(dialect: ESPATDialect())
        try engine.submit(.probe, now: at(0))
        #expect(engine.pendingOutputCount == 4)
        #expect(feed(&engine, "\r\nready\r\n") == [.reset, .failed(.probe, nil, .moduleReset, .closed)])
        #expect(engine.pendingOutputCount == 0)
        #expect(engine.isIdle == true)
    }

    @Test("drainOutput copies with short writes")
    func drain() throws {
        var engine = ModemEngine(dialect: SIM800Dialect())
        try engine.submit(.probe, now: at(0))
        var first = [UInt8](repeating: 0, count: 2)
        let n = first.withUnsafeMutableBytes { engine.drainOutput(into: $0) }
        #expect(n == 2 && first == b("AT"))
        var rest = [UInt8](repeating: 0, count: 10)
        let m = rest.withUnsafeMutableBytes { engine.drainOutput(into: $0) }
        #expect(m == 1 && rest[0] == 0x0D)
        #expect(engine.statistics.bytesOut == 3)
    }

    @Test("StandardDialect behaves as the dialect it wraps")
    func standardDialect() throws {
        var engine = ModemEngine(dialect: StandardDialect.sim800(SIM800Dialect()))
        try engine.submit(.enableMultiplexing, now: at(0))
        #expect(written(&engine) == "AT+CIPMUX=1\r")
        _ = feed(&engine, "\r\nOK\r\n")
        try engine.submit(.connect(link: 2, host: "example.com", port: 80), now: at(0))
        #expect(written(&engine) == "AT+CIPSTART=2,\"TCP\",\"example.com\",\"80\"\r")
        #expect(feed(&engine, "\r\nOK\r\n\r\n2, CONNECT OK\r\n") == [.ok(.connect, 2), .connected(2)])
        #expect(engine.linkCount == 6)
    }
}

@Suite("Event queue bounds")
struct EventQueueTests {
    @Test("immediate completions cannot pile up past the reserve (found by the fuzzer)")
    func immediateCompletions() throws {
        var engine = ModemEngine(dialect: BG96Dialect())
        for _ in 0..<4 { try engine.submit(.enableMultiplexing, now: at(0)) }
        #expect(throws: ModemError(.wouldBlock)) { try engine.submit(.enableMultiplexing, now: at(0)) }
        var count = 0
        while engine.nextEvent(now: at(0)) != nil { count += 1 }
        #expect(count == 4)
        #expect(engine.statistics.droppedEvents == 0)
        try engine.submit(.enablePassiveReceive, now: at(0))
    }

    @Test("a reset with every link open and a connect pending fits the queue")
    func resetWithAllLinks() throws {
        var engine = ModemEngine(dialect: BG96Dialect())
        for link in 0..<12 {
            try engine.submit(.connect(link: link, host: "h", port: 1), now: at(0))
            _ = written(&engine)
            _ = feed(&engine, "\r\nOK\r\n\r\n+QIOPEN: \(link),0\r\n")
        }
        try engine.submit(.close(link: 3), now: at(0))
        _ = written(&engine)
        let events = feed(&engine, "+QIURC: \"recv\",1\r\nRDY\r\n")
        #expect(events.count == 1 + 1 + 1 + 12)
        #expect(events.prefix(3) == [.available(1, nil), .reset, .failed(.close, 3, .moduleReset, .closed)])
        #expect(engine.statistics.droppedEvents == 0)
    }
}

@Suite("Driver pattern")
struct DriverPatternTests {
    @Test("a handler may submit from inside receive: passive ESP-AT read on +IPD notice")
    func pullOnNotice() throws {
        var engine = ModemEngine(dialect: ESPATDialect())
        try engine.submit(.enableMultiplexing, now: at(0))
        _ = written(&engine)
        _ = feed(&engine, "\r\nOK\r\n")
        try engine.submit(.connect(link: 2, host: "example.com", port: 80), now: at(0))
        _ = written(&engine)
        _ = feed(&engine, "2,CONNECT\r\n\r\nOK\r\n")

        // The owner's buffer has room for 6 bytes: read at most that, as the passive design asks.
        var room = 6
        var got: [UInt8] = []
        var reads = 0
        func react(_ engine: inout ModemEngine<ESPATDialect>, _ event: ModemEvent) {
            switch event {
            case .dataAvailable(let link, _) where room > 0:
                try? engine.submit(.read(link: link, maximum: room), now: at(10))
                reads += 1
            case .received(_, let bytes):
                got += Array(bytes)
                room -= bytes.count
            default:
                break
            }
        }
        b("\r\n+IPD,2,10\r\n").withUnsafeBytes { engine.receive($0, now: at(10), react) }
        #expect(reads == 1)
        #expect(written(&engine) == "AT+CIPRECVDATA=2,6\r\n")
        b("+CIPRECVDATA:6,abcdef\r\nOK\r\n\r\n+IPD,2,4\r\n").withUnsafeBytes { engine.receive($0, now: at(20), react) }
        #expect(got == b("abcdef"))
        // No room left: the notice is not acted on, so the module's window fills (backpressure).
        #expect(reads == 1)
        #expect(engine.isIdle == true)
        #expect(engine.invariantViolation() == nil)
    }
}
