import GenTCP
import GenTCPModem
import GenTCPCore
import GenTCPSerial
import GenTCPAT
import Testing

/// gen_udp against scripted hostile modules: headers that lie about their length or name a
/// sender that is no address, a module that restarts under an open UDP socket. Each script is
/// written from the vendor forms (`docs/modem-behaviour.md` ESP-U1..U4, SIM-U1..U6, BG-U1..U4),
/// not from the driver.
@Suite("Hostile modules: UDP")
struct HostileUDPTests {
    static let far = SocketAddress(.v4(0x0A00_0001), port: 7000)

    /// ESP-AT v3.3: the UDP socket's set-up, answered as the docs say.
    static func espOpen(_ script: inout ModuleScript) {
        script.expectExact("AT+CIPDINFO=1") { _ in [.send(Array("\r\nOK\r\n".utf8))] }
        script.expect("AT+CIPSTART=0,\"UDP\",\"0.0.0.0\",0,") { _ in [.send(Array("0,CONNECT\r\n\r\nOK\r\n".utf8))] }
        script.expectExact("AT+CIPRECVTYPE=0,0") { _ in [.send(Array("\r\nOK\r\n".utf8))] }
    }

    /// BG96: the UDP SERVICE socket's open, answered as BG-U1 says.
    static func bg96Open(_ script: inout ModuleScript) {
        script.expect("AT+QIOPEN=1,0,\"UDP SERVICE\",\"127.0.0.1\",0,") { _ in
            [.send(Array("\r\nOK\r\n\r\n+QIOPEN: 0,0\r\n".utf8))]
        }
    }

    /// BG96: reads of an empty buffer (`+QIRD: 0`), the close, and the usual queries, whenever
    /// they come (the script's last step).
    static func bg96Tail(_ script: inout ModuleScript, _ model: ModuleModel) {
        script.respond("reads of the empty buffer and the close, whenever they come") { line in
            switch line {
            case "AT+QIRD=0": [.send(Array("\r\n+QIRD: 0\r\n\r\nOK\r\n".utf8))]
            case "AT+QICLOSE=0": [.send(Array("\r\nOK\r\n".utf8))]
            default: model.standingAnswer(line)
            }
        }
    }

    @Test("ESP-AT: +IPD with a sender that is no address, or an impossible length, is dropped; the socket lives on",
          arguments: HostileLine.allCases)
    func espLyingHeaders(line: HostileLine) async throws {
        let model = ModuleModel(.espAT)
        var script = model.script()
        script.answerInit(model)
        HostileUDPTests.espOpen(&script)
        script.pause(50)
        // A sender that does not parse: framed by its length, dropped and counted.
        script.send("+IPD,0,5,\"10.0.0\",7000:hello")
        // A length no datagram has: refused; what follows is read as lines again.
        script.send("+IPD,0,99999999,\"10.0.0.1\",7000:junk\r\n")
        // A sender with a port out of range.
        script.send("+IPD,0,3,\"10.0.0.1\",70000:bad")
        script.send("+IPD,0,4,\"10.0.0.1\",7000:good")
        script.send("+IPD,0,0,\"10.0.0.1\",7000:")
        script.respond("the close, whenever it comes") { line in
            line == "AT+CIPCLOSE=0" ? [.send(Array("0,CLOSED\r\n\r\nOK\r\n".utf8))] : model.standingAnswer(line)
        }
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.espAT)) { b in
            let u = try await UDPSocket.open(options: passive, driver: b.at)
            let first = try await u.recv(timeout: 20_000)
            #expect(first.payload.bytes == Array("good".utf8))
            #expect(first.source == HostileUDPTests.far)
            let second = try await u.recv(timeout: 20_000)
            #expect(second.payload.bytes.isEmpty && second.source == HostileUDPTests.far)
            #expect(try u.getstat().recvDropped == 2)
            #expect(b.at.statistics.malformedDatagrams == 2)
            #expect(b.at.statistics.framingErrors >= 1)
            u.close()
        }
    }

    @Test("ESP-AT restarts under an open UDP socket: recv fails with econnaborted, not a timeout or closed",
          arguments: HostileLine.allCases)
    func espRestart(line: HostileLine) async throws {
        let model = ModuleModel(.espAT)
        var script = model.script()
        script.answerInit(model)
        HostileUDPTests.espOpen(&script)
        script.send("+IPD,0,3,\"10.0.0.1\",7000:one")
        script.pause(100)
        script.restart(model)
        script.respond("init again") { model.initAnswer($0) ?? model.standingAnswer($0) }
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.espAT), checkScript: false) { b in
            let u = try await UDPSocket.open(options: passive, driver: b.at)
            let first = try await u.recv(timeout: 20_000)
            #expect(first.payload.bytes == Array("one".utf8))
            await #expect(throws: SocketError(.connectionAborted)) { _ = try await u.recv(timeout: 20_000) }
            #expect(b.at.lastIncident?.contains("restarted") == true)
            u.close()
        }
    }

    @Test("BG96: a datagram whose \"recv\" notice never comes is read anyway, within the liveness interval",
          arguments: HostileLine.allCases)
    func bg96LostNotice(line: HostileLine) async throws {
        let model = ModuleModel(.bg96)
        var script = model.script()
        script.answerInit(model)
        HostileUDPTests.bg96Open(&script)
        // The datagram is in the module, but the module never says so (no +QIURC: "recv").
        script.expectExact("AT+QIRD=0", within: 30_000) { _ in
            [.send(Array("\r\n+QIRD: 4,\"10.0.0.1\",7000\r\nlate\r\n\r\nOK\r\n".utf8))]
        }
        HostileUDPTests.bg96Tail(&script, model)
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.bg96)) { b in
            let u = try await UDPSocket.open(options: passive, driver: b.at)
            let start = b.now
            let d = try await u.recv(timeout: 30_000)
            #expect(d.payload.bytes == Array("late".utf8) && d.source == HostileUDPTests.far)
            // Found by the liveness read (10 s by default), not by chance.
            #expect(b.seconds(since: start) < 25)
            u.close()
        }
    }

    @Test("BG96: a UDP SERVICE read with an impossible length or a bad sender is refused; later reads deliver",
          arguments: HostileLine.allCases)
    func bg96LyingReads(line: HostileLine) async throws {
        let model = ModuleModel(.bg96)
        var script = model.script()
        script.answerInit(model)
        HostileUDPTests.bg96Open(&script)
        script.pause(50)
        script.sendLine("+QIURC: \"recv\",0")
        script.expectExact("AT+QIRD=0") { _ in [.send(Array("\r\n+QIRD: 5,\"10.0.0.1\",99999\r\nhello\r\n\r\nOK\r\n".utf8))] }
        script.pause(50)
        script.sendLine("+QIURC: \"recv\",0")
        script.expectExact("AT+QIRD=0") { _ in [.send(Array("\r\n+QIRD: 150000,\"10.0.0.1\",7000\r\n\r\nOK\r\n".utf8))] }
        script.pause(50)
        script.sendLine("+QIURC: \"recv\",0")
        script.expectExact("AT+QIRD=0") { _ in [.send(Array("\r\n+QIRD: 4,\"10.0.0.1\",7000\r\ngood\r\n\r\nOK\r\n".utf8))] }
        HostileUDPTests.bg96Tail(&script, model)
        try await withScriptedModule(line, script: script, driver: hostileConfiguration(.bg96)) { b in
            let u = try await UDPSocket.open(options: passive, driver: b.at)
            let d = try await u.recv(timeout: 30_000)
            #expect(d.payload.bytes == Array("good".utf8) && d.source == HostileUDPTests.far)
            #expect(b.at.statistics.framingErrors >= 2)
            u.close()
        }
    }
}
