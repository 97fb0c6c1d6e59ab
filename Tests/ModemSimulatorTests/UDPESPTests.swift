import GenTCP
import GenTCPCore
import GenTCPPOSIX
import GenTCPSim
import ModemSimulator
import Testing

/// ESP-AT UDP links bridged to loopback UDP (docs/modem-behaviour.md ESP-U1 to ESP-U8).
@Suite("UDP links: ESP-AT")
struct UDPESPTests {
    /// ESP-AT 3.3 in multi-link mode with `AT+CIPDINFO=1`.
    func espModem() async throws -> UDPModem {
        let m = UDPModem(.espAT(firmware: "3.3.0.0"))
        try await m.boot()
        try await m.sayOK("AT+CIPMUX=1")
        try await m.sayOK("AT+CIPDINFO=1")
        return m
    }

    @Test("ESP-U1, U2, U3, U4, U7: the driver's unconnected link: open, one +IPD per datagram with its sender, sends, close")
    func espActive() async throws {
        try await Process.run {
            let m = try await espModem()
            defer { m.powerOff() }
            let peer = try await udpPeer()
            defer { peer.close() }
            let pp = try peer.port()
            let lp = try await freeUDPPort()
            // Remote port 0 only with a local port; the driver's form: remote 0.0.0.0:0, mode 2.
            #expect(try await m.say("AT+CIPSTART=0,\"UDP\",\"0.0.0.0\",0", until: "ERROR\r\n") == "\r\nERROR\r\n")
            #expect(try await m.say("AT+CIPSTART=0,\"UDP\",\"0.0.0.0\",0,\(lp),2", until: "OK\r\n")
                    == "0,CONNECT\r\n\r\nOK\r\n")
            try await m.sayOK("AT+CIPRECVTYPE=0,0")
            #expect(try await m.sayOK("AT+CIPSTATE?") == "+CIPSTATE:0,\"UDP\",\"0.0.0.0\",0,\(lp),0\r\n\r\nOK\r\n")
            // A local port another link holds: ERROR.
            #expect(try await m.say("AT+CIPSTART=1,\"UDP\",\"0.0.0.0\",0,\(lp),2", until: "ERROR\r\n") == "\r\nERROR\r\n")
            // No stored remote yet: a plain send has nowhere to go.
            #expect(try await m.say("AT+CIPSEND=0,3", until: "ERROR\r\n") == "\r\nERROR\r\n")

            // Back to back, an empty one, a 1460-byte one: one +IPD each, with the sender.
            let big = letters(1460)
            let module = SocketAddress(.loopbackV4, port: lp)
            for d in [Array("hello".utf8), Array("world".utf8), [], big] { try await peer.send(d, to: module) }
            let from = "\"127.0.0.1\",\(pp)"
            let expected = "\r\n+IPD,0,5,\(from):hello\r\n+IPD,0,5,\(from):world\r\n+IPD,0,0,\(from):"
                + "\r\n+IPD,0,1460,\(from):" + String(decoding: big, as: UTF8.self)
            #expect(try await m.tape.next(String(decoding: big, as: UTF8.self)) == expected)
            // Longer than 1460: dropped whole (ESP-U8).
            try await peer.send(letters(1461), to: module)
            try await m.waitUntil("the 1461-byte datagram") { $0.statistics.datagramsReceived == 5 }
            #expect(m.modem.statistics.datagramsDropped == 1)

            // A send with a destination: exactly one datagram, from the link's local port.
            #expect(try await m.say("AT+CIPSEND=0,5,\"127.0.0.1\",\(pp)", until: ">") == "\r\nOK\r\n\r\n>")
            m.modem.input(Array("abcde".utf8))
            #expect(try await m.tape.next("SEND OK\r\n") == "\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n")
            let got = try await nextDatagram(peer)
            #expect(got.payload.bytes == Array("abcde".utf8))
            #expect(got.source == module)
            // Mode 2: the stored remote is the last sender, so a plain send goes back to it.
            #expect(try await m.say("AT+CIPSEND=0,3", until: ">") == "\r\nOK\r\n\r\n>")
            m.modem.input(Array("xyz".utf8))
            _ = try await m.tape.next("SEND OK\r\n")
            #expect(try await nextDatagram(peer).payload.bytes == Array("xyz".utf8))
            // A second sender is not filtered, and becomes the remote (mode 2).
            let other = try await udpPeer()
            defer { other.close() }
            try await other.send(Array("hi".utf8), to: module)
            #expect(try await m.tape.next("hi") == "\r\n+IPD,0,2,\"127.0.0.1\",\(try other.port()):hi")
            #expect(try await m.sayOK("AT+CIPSTATE?")
                    == "+CIPSTATE:0,\"UDP\",\"127.0.0.1\",\(try other.port()),\(lp),0\r\n\r\nOK\r\n")
            // len 0 and len > 8192: ERROR.
            #expect(try await m.say("AT+CIPSEND=0,0", until: "ERROR\r\n") == "\r\nERROR\r\n")
            #expect(try await m.say("AT+CIPSEND=0,8193", until: "ERROR\r\n") == "\r\nERROR\r\n")
            #expect(try await m.say("AT+CIPCLOSE=0", until: "OK\r\n") == "0,CLOSED\r\n\r\nOK\r\n")
            #expect(!m.modem.isLinkInUse(0))
            #expect(try await m.sayOK("AT+CIPSTATE?") == "\r\nOK\r\n")
        }
    }

    @Test("ESP-U1, U2 mode 0: a connected link keeps its remote, still hears everyone; AT+CIPDINFO=0 hides senders")
    func espMode0() async throws {
        try await Process.run {
            let m = try await espModem()
            defer { m.powerOff() }
            let peer = try await udpPeer()
            defer { peer.close() }
            let other = try await udpPeer()
            defer { other.close() }
            #expect(try await m.say("AT+CIPSTART=2,\"UDP\",\"127.0.0.1\",\(try peer.port())", until: "OK\r\n")
                    == "2,CONNECT\r\n\r\nOK\r\n")
            let state = try await m.sayOK("AT+CIPSTATE?")
            let lp = try #require(Int(state.split(separator: ",")[4]))
            try await m.sayOK("AT+CIPDINFO=0")
            try await other.send(Array("from other".utf8), to: SocketAddress(.loopbackV4, port: lp))
            #expect(try await m.tape.next("from other") == "\r\n+IPD,2,10:from other")
            #expect(try await m.say("AT+CIPSEND=2,4", until: ">") == "\r\nOK\r\n\r\n>")
            m.modem.input(Array("ping".utf8))
            _ = try await m.tape.next("SEND OK\r\n")
            let got = try await nextDatagram(peer)
            #expect(got.payload.bytes == Array("ping".utf8))
            #expect(got.source.port == lp)
            #expect(try await m.say("AT+CIPCLOSE=2", until: "OK\r\n") == "2,CLOSED\r\n\r\nOK\r\n")
        }
    }

    @Test("ESP-U5, U6: passive UDP: reads merge datagrams, a short read loses the rest, the integrity flag keeps one, a full queue drops whole datagrams")
    func espPassive() async throws {
        try await Process.run {
            let m = try await espModem()
            defer { m.powerOff() }
            let peer = try await udpPeer()
            defer { peer.close() }
            let pp = try peer.port()
            let lp = try await freeUDPPort()
            let module = SocketAddress(.loopbackV4, port: lp)
            _ = try await m.say("AT+CIPSTART=0,\"UDP\",\"0.0.0.0\",0,\(lp),2", until: "OK\r\n")
            try await m.sayOK("AT+CIPRECVTYPE=0,1")
            try await peer.send(Array("abc".utf8), to: module)
            try await peer.send(Array("defg".utf8), to: module)
            #expect(try await m.tape.next("+IPD,0,3\r\n") == "\r\n+IPD,0,3\r\n")
            try await m.waitUntil("both datagrams") { $0.bufferedBytes(link: 0) == 7 }
            #expect(try await m.sayOK("AT+CIPRECVLEN?") == "+CIPRECVLEN:7,,,,\r\n\r\nOK\r\n")
            #expect(try await m.sayOK("AT+CIPRECVDATA=0,1460")
                    == "+CIPRECVDATA:7,\"127.0.0.1\",\(pp),abcdefg\r\nOK\r\n")
            // A read shorter than the datagram loses its rest.
            try await peer.send(Array("hello".utf8), to: module)
            _ = try await m.tape.next("+IPD,0,5\r\n")
            #expect(try await m.sayOK("AT+CIPRECVDATA=0,2") == "+CIPRECVDATA:2,\"127.0.0.1\",\(pp),he\r\nOK\r\n")
            #expect(m.modem.bufferedBytes(link: 0) == 0)
            #expect(m.modem.statistics.datagramsTruncated == 1)
            // The integrity flag: one whole datagram per read, the next announced.
            try await m.sayOK("AT+CIPRECVTYPE=0,1,1")
            try await peer.send(Array("one".utf8), to: module)
            try await peer.send(Array("three".utf8), to: module)
            _ = try await m.tape.next("+IPD,0,3\r\n")
            try await m.waitUntil("both datagrams") { $0.bufferedBytes(link: 0) == 8 }
            #expect(try await m.say("AT+CIPRECVDATA=0,2,1", until: "ERROR\r\n") == "\r\nERROR\r\n")
            #expect(try await m.sayOK("AT+CIPRECVDATA=0,1460,1") == "+CIPRECVDATA:3,\"127.0.0.1\",\(pp),one\r\nOK\r\n")
            #expect(try await m.tape.next("+IPD,0,5\r\n") == "\r\n+IPD,0,5\r\n")
            #expect(try await m.sayOK("AT+CIPRECVDATA=0,1460,1") == "+CIPRECVDATA:5,\"127.0.0.1\",\(pp),three\r\nOK\r\n")
            // The queue holds 5760 bytes: of five 1460-byte datagrams three fit, two are dropped whole.
            let before = m.modem.statistics
            for _ in 0..<5 { try await peer.send(letters(1460), to: module) }
            try await m.waitUntil("five datagrams") { $0.statistics.datagramsReceived == before.datagramsReceived + 5 }
            #expect(m.modem.statistics.datagramsDropped == before.datagramsDropped + 2)
            #expect(m.modem.bufferedBytes(link: 0) == 3 * 1460)
            // AT+CIPCLOSE discards them.
            #expect(try await m.say("AT+CIPCLOSE=0", until: "OK\r\n").hasSuffix("0,CLOSED\r\n\r\nOK\r\n"))
            #expect(m.modem.bufferedBytes(link: 0) == 0)
        }
    }

    @Test("ESP-U1, U3, U4 on the simulated network (driver sim): a named remote, a fixed local port, both directions")
    func espOnSimNetwork() async throws {
        try await senderSession(.espAT(), payload: []) { m, tape, net in
            let server = try await UDPSocket.open(port: 5000, options: [.binary, .active(.passive)],
                                                  driver: try SimDriver.sim(net, host: try #require(net.host(named: "server"))))
            _ = tape.take()
            _ = await say(m, tape, net, "ATE0\r\n")
            _ = await say(m, tape, net, "AT+CIPMUX=1\r\n")
            _ = await say(m, tape, net, "AT+CIPDINFO=1\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=0,\"UDP\",\"server\",5000,4000,0\r\n") == "0,CONNECT\r\n\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSEND=0,4\r\n") == "\r\nOK\r\n\r\n>")
            #expect(await say(m, tape, net, "ping") == "\r\nRecv 4 bytes\r\n\r\nSEND OK\r\n")
            let got = try await server.recv(timeout: .milliseconds(5000))
            #expect(got.payload.bytes == Array("ping".utf8))
            #expect(got.source.port == 4000)
            try await server.send(Array("pong".utf8), to: got.source)
            await net.sleep(for: .milliseconds(50))
            #expect(tape.take() == "\r\n+IPD,0,4,\"10.0.0.1\",5000:pong")
            #expect(await say(m, tape, net, "AT+CIPCLOSE=0\r\n") == "0,CLOSED\r\n\r\nOK\r\n")
            server.close()
        }
    }
}
