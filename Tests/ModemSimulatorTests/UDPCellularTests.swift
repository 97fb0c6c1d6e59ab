import GenTCP
import GenTCPCore
import GenTCPPOSIX
import ModemSimulator
import Testing

/// SIM800 and BG96 UDP links bridged to loopback UDP (docs/modem-behaviour.md SIM-U*n*, BG-U*n*).
@Suite("UDP links: SIM800 and BG96")
struct UDPCellularTests {
    /// Datagrams the peers send in every test: back to back, an empty one, a 1460-byte one.
    static let burst: [[UInt8]] = [Array("abc".utf8), Array("defg".utf8), [], letters(1460)]

    @Test("SIM-U1, U2, U3, U6, U7: CLPORT, CIPSTART UDP, one datagram per send, CIPSRIP reads one datagram each with its sender, close")
    func sim800() async throws {
        try await Process.run {
            let m = UDPModem(.sim800())
            try await m.boot()
            defer { m.powerOff() }
            for c in ["AT+CIPMUX=1", "AT+CIPRXGET=1", "AT+CSTT=\"internet\"", "AT+CIICR"] { try await m.sayOK(c) }
            _ = try await m.say("AT+CIFSR", until: "\r\n10.170.12.34\r\n")
            try await m.sayOK("AT+CIPSRIP=1")
            let peer = try await udpPeer()
            defer { peer.close() }
            let pp = try peer.port()
            let lp = try await freeUDPPort()
            try await m.sayOK("AT+CLPORT=0,\"UDP\",\(lp)")
            #expect(try await m.say("AT+CIPSTART=0,\"UDP\",\"127.0.0.1\",\"\(pp)\"", until: "CONNECT OK\r\n")
                    == "\r\nOK\r\n\r\n0, CONNECT OK\r\n")
            let status = try await m.say("AT+CIPSTATUS", until: "C: 5,0,\"\",\"\",\"\",\"INITIAL\"\r\n")
            #expect(status.contains("C: 0,0,\"UDP\",\"127.0.0.1\",\"\(pp)\",\"CONNECTED\""))
            // One AT+CIPSEND, one datagram, from the CLPORT port.
            #expect(try await m.say("AT+CIPSEND=0,5", until: "> ") == "\r\n> ")
            m.modem.input(Array("hello".utf8))
            #expect(try await m.tape.next("SEND OK\r\n") == "\r\n0, SEND OK\r\n")
            let got = try await nextDatagram(peer)
            #expect(got.payload.bytes == Array("hello".utf8))
            #expect(got.source == SocketAddress(.loopbackV4, port: lp))
            #expect(try await m.say("AT+CIPSEND=0,1461", until: "ERROR\r\n") == "\r\nERROR\r\n")

            // The burst: one notice with the sender, then one datagram per read.
            let module = SocketAddress(.loopbackV4, port: lp)
            for d in Self.burst { try await peer.send(d, to: module) }
            #expect(try await m.tape.next("+CIPRXGET: 1,0,127.0.0.1:\(pp)\r\n") == "\r\n+CIPRXGET: 1,0,127.0.0.1:\(pp)\r\n")
            try await m.waitUntil("the burst") { $0.statistics.datagramsReceived == 4 }
            var left = 1467
            for d in Self.burst {
                left -= d.count
                #expect(try await m.sayOK("AT+CIPRXGET=2,0,1460")
                        == "\r\n+CIPRXGET: 2,0,\(d.count),\(left),127.0.0.1:\(pp)\r\n\(String(decoding: d, as: UTF8.self))\r\nOK\r\n")
            }
            #expect(try await m.sayOK("AT+CIPRXGET=2,0,1460") == "\r\n+CIPRXGET: 2,0,0,0\r\n\r\nOK\r\n")
            // A short read loses the rest of its datagram.
            try await peer.send(Array("truncate".utf8), to: module)
            _ = try await m.tape.next("+CIPRXGET: 1,0,127.0.0.1:\(pp)\r\n")
            #expect(try await m.sayOK("AT+CIPRXGET=2,0,3") == "\r\n+CIPRXGET: 2,0,3,0,127.0.0.1:\(pp)\r\ntru\r\nOK\r\n")
            #expect(try await m.sayOK("AT+CIPRXGET=4,0") == "\r\n+CIPRXGET: 4,0,0\r\n\r\nOK\r\n")
            // Normal mode: another sender is dropped (the simulator's choice, SIM-U1).
            let other = try await udpPeer()
            defer { other.close() }
            try await other.send(Array("stranger".utf8), to: module)
            try await m.waitUntil("the stranger's datagram") { $0.statistics.datagramsFiltered == 1 }
            #expect(m.modem.bufferedBytes(link: 0) == 0)
            #expect(try await m.say("AT+CIPCLOSE=0", until: "CLOSE OK\r\n") == "\r\n0, CLOSE OK\r\n")
            #expect(!m.modem.isLinkInUse(0))
            #expect(try await m.say("AT+CIPCLOSE=0", until: "ERROR\r\n") == "\r\nERROR\r\n")
        }
    }

    @Test("SIM-U4, U5: extended mode hears anyone; push mode headers name the sender")
    func sim800Extended() async throws {
        try await Process.run {
            let m = UDPModem(.sim800())
            try await m.boot()
            defer { m.powerOff() }
            for c in ["AT+CIPMUX=1", "AT+CSTT=\"internet\"", "AT+CIICR"] { try await m.sayOK(c) }
            _ = try await m.say("AT+CIFSR", until: "\r\n10.170.12.34\r\n")
            try await m.sayOK("AT+CIPSRIP=1")
            try await m.sayOK("AT+CIPUDPMODE=1,1")
            let peer = try await udpPeer()
            defer { peer.close() }
            let other = try await udpPeer()
            defer { other.close() }
            let lp = try await freeUDPPort()
            try await m.sayOK("AT+CLPORT=1,\"UDP\",\(lp)")
            _ = try await m.say("AT+CIPSTART=1,\"UDP\",\"127.0.0.1\",\"\(try peer.port())\"", until: "CONNECT OK\r\n")
            try await other.send(Array("hey".utf8), to: SocketAddress(.loopbackV4, port: lp))
            #expect(try await m.tape.next("hey") == "\r\n+RECEIVE,1,3,127.0.0.1:\(try other.port())\r\nhey")
            // Mode 2 points the next sends at the other peer.
            try await m.sayOK("AT+CIPUDPMODE=1,2,\"127.0.0.1\",\(try other.port())")
            _ = try await m.say("AT+CIPSEND=1,2", until: "> ")
            m.modem.input(Array("yo".utf8))
            _ = try await m.tape.next("1, SEND OK\r\n")
            #expect(try await nextDatagram(other).payload.bytes == Array("yo".utf8))
            _ = try await m.say("AT+CIPCLOSE=1", until: "CLOSE OK\r\n")
        }
    }

    /// A BG96 with its context active.
    func bg96Modem() async throws -> UDPModem {
        let m = UDPModem(.bg96())
        try await m.boot()
        try await m.sayOK("AT+QICSGP=1,1,\"internet\",\"\",\"\",1")
        try await m.sayOK("AT+QIACT=1")
        return m
    }

    @Test("BG-U1, U3, U4, U6: UDP SERVICE: open, sends to a destination, recv once, one datagram per QIRD with its sender, close")
    func bg96Service() async throws {
        try await Process.run {
            let m = try await bg96Modem()
            defer { m.powerOff() }
            let peer = try await udpPeer()
            defer { peer.close() }
            let pp = try peer.port()
            let lp = try await freeUDPPort()
            let module = SocketAddress(.loopbackV4, port: lp)
            #expect(try await m.say("AT+QIOPEN=1,0,\"UDP SERVICE\",\"127.0.0.1\",0,\(lp),0", until: "+QIOPEN: 0,0\r\n")
                    == "\r\nOK\r\n\r\n+QIOPEN: 0,0\r\n")
            #expect(try await m.sayOK("AT+QISTATE=1,0")
                    == "\r\n+QISTATE: 0,\"UDP SERVICE\",\"10.64.3.7\",0,\(lp),2,1,0,0,\"uart1\"\r\n\r\nOK\r\n")
            // A second socket on the same local port: bind failed.
            #expect(try await m.say("AT+QIOPEN=1,1,\"UDP SERVICE\",\"127.0.0.1\",0,\(lp),0", until: "+QIOPEN: 1,")
                    == "\r\nOK\r\n\r\n+QIOPEN: 1,")
            #expect(try await m.tape.next("\r\n") == "556\r\n")
            #expect(try await m.say("AT+QISEND=0,5", until: "ERROR\r\n") == "\r\nERROR\r\n")
            #expect(try await m.say("AT+QISEND=0,1461,\"127.0.0.1\",\(pp)", until: "ERROR\r\n") == "\r\nERROR\r\n")
            #expect(try await m.say("AT+QISEND=0,5,\"127.0.0.1\",\(pp)", until: "> ") == "\r\n> ")
            m.modem.input(Array("hello".utf8))
            #expect(try await m.tape.next("SEND OK\r\n") == "\r\nSEND OK\r\n")
            let got = try await nextDatagram(peer)
            #expect(got.payload.bytes == Array("hello".utf8))
            #expect(got.source == module)

            for d in Self.burst { try await peer.send(d, to: module) }
            #expect(try await m.tape.next("+QIURC: \"recv\",0\r\n") == "\r\n+QIURC: \"recv\",0\r\n")
            try await m.waitUntil("the burst") { $0.statistics.datagramsReceived == 4 }
            for d in Self.burst {
                #expect(try await m.sayOK("AT+QIRD=0")
                        == "\r\n+QIRD: \(d.count),\"127.0.0.1\",\(pp)\r\n\(String(decoding: d, as: UTF8.self))\r\n\r\nOK\r\n")
            }
            #expect(try await m.sayOK("AT+QIRD=0") == "\r\n+QIRD: 0\r\n\r\nOK\r\n")
            #expect(try await m.sayOK("AT+QIRD=0,0") == "\r\n+QIRD: 1467,1467,0\r\n\r\nOK\r\n")
            #expect(try await m.say("AT+QIRD=0,100", until: "ERROR\r\n") == "\r\nERROR\r\n")
            // Drained, so the next datagram is announced again; any sender is heard.
            let other = try await udpPeer()
            defer { other.close() }
            try await other.send(Array("hi".utf8), to: module)
            _ = try await m.tape.next("+QIURC: \"recv\",0\r\n")
            #expect(try await m.sayOK("AT+QIRD=0") == "\r\n+QIRD: 2,\"127.0.0.1\",\(try other.port())\r\nhi\r\n\r\nOK\r\n")
            try await m.sayOK("AT+QICLOSE=0")
            #expect(!m.modem.isLinkInUse(0))
        }
    }

    @Test("BG-U1, U2, U4, U5: UDP (connected): sends to its remote, QIRD without sender; direct push names the sender on UDP SERVICE")
    func bg96Connected() async throws {
        try await Process.run {
            let m = try await bg96Modem()
            defer { m.powerOff() }
            let peer = try await udpPeer()
            defer { peer.close() }
            let pp = try peer.port()
            #expect(try await m.say("AT+QIOPEN=1,1,\"UDP\",\"127.0.0.1\",\(pp),0,0", until: "+QIOPEN: 1,0\r\n")
                    == "\r\nOK\r\n\r\n+QIOPEN: 1,0\r\n")
            #expect(try await m.say("AT+QISEND=1,3,\"127.0.0.1\",\(pp)", until: "ERROR\r\n") == "\r\nERROR\r\n")
            _ = try await m.say("AT+QISEND=1,3", until: "> ")
            m.modem.input(Array("abc".utf8))
            _ = try await m.tape.next("SEND OK\r\n")
            let got = try await nextDatagram(peer)
            #expect(got.payload.bytes == Array("abc".utf8))
            try await peer.send(Array("reply".utf8), to: got.source)
            _ = try await m.tape.next("+QIURC: \"recv\",1\r\n")
            try await m.waitUntil("the reply") { $0.bufferedBytes(link: 1) == 5 }
            #expect(try await m.sayOK("AT+QIRD=1,1500") == "\r\n+QIRD: 5\r\nreply\r\n\r\nOK\r\n")
            try await m.sayOK("AT+QICLOSE=1")

            // Access mode 1 on UDP SERVICE: each datagram pushed with its sender.
            let lp = try await freeUDPPort()
            _ = try await m.say("AT+QIOPEN=1,2,\"UDP SERVICE\",\"127.0.0.1\",0,\(lp),1", until: "+QIOPEN: 2,0\r\n")
            for d in Self.burst { try await peer.send(d, to: SocketAddress(.loopbackV4, port: lp)) }
            let from = "\"127.0.0.1\",\(pp)"
            let expected = Self.burst.map { "\r\n+QIURC: \"recv\",2,\($0.count),\(from)\r\n" + String(decoding: $0, as: UTF8.self) }
            #expect(try await m.tape.next(String(decoding: letters(1460), as: UTF8.self)) == expected.joined())
            try await m.sayOK("AT+QICLOSE=2")
        }
    }

    @Test("Faults: resetAfterBytes drops UDP links as it drops TCP ones")
    func resetDropsUDP() async throws {
        try await Process.run {
            let m = UDPModem(.espAT(firmware: "3.3.0.0", faults: ModemFaults(resetAfterBytes: 400)))
            try await m.boot()
            defer { m.powerOff() }
            try await m.sayOK("AT+CIPMUX=1")
            let peer = try await udpPeer()
            defer { peer.close() }
            _ = try await m.say("AT+CIPSTART=0,\"UDP\",\"127.0.0.1\",\(try peer.port())", until: "OK\r\n")
            #expect(m.modem.isLinkInUse(0))
            let state = try await m.sayOK("AT+CIPSTATE?")
            let lp = try #require(Int(state.split(separator: ",")[4]))
            try await peer.send(letters(600), to: SocketAddress(.loopbackV4, port: lp))
            _ = try await m.tape.next("ready\r\n")
            #expect(!m.modem.isLinkInUse(0))
            #expect(m.modem.statistics.resets == 1)
        }
    }

    @Test("Faults: passiveRevertsAfterBytes pushes a UDP link's queued datagrams, then every new one, in order")
    func passiveRevertUDP() async throws {
        try await Process.run {
            let m = UDPModem(.espAT(firmware: "3.3.0.0", faults: ModemFaults(passiveRevertsAfterBytes: 5)))
            try await m.boot()
            defer { m.powerOff() }
            try await m.sayOK("AT+CIPMUX=1")
            try await m.sayOK("AT+CIPDINFO=1")
            let peer = try await udpPeer()
            defer { peer.close() }
            let pp = try peer.port()
            let lp = try await freeUDPPort()
            let module = SocketAddress(.loopbackV4, port: lp)
            _ = try await m.say("AT+CIPSTART=0,\"UDP\",\"0.0.0.0\",0,\(lp),2", until: "OK\r\n")
            try await m.sayOK("AT+CIPRECVTYPE=0,1")
            try await peer.send(Array("abc".utf8), to: module)
            #expect(try await m.tape.next("+IPD,0,3\r\n") == "\r\n+IPD,0,3\r\n")
            try await peer.send(Array("defgh".utf8), to: module)
            #expect(try await m.tape.next("defgh")
                    == "\r\n+IPD,0,3,\"127.0.0.1\",\(pp):abc\r\n+IPD,0,5,\"127.0.0.1\",\(pp):defgh")
            #expect(m.modem.bufferedBytes(link: 0) == 0)
        }
    }
}
