import GenTCP
import GenTCPCore
import ModemSimulator
import Testing

/// `AT+CIPDINFO=1` (ESP-AT) and `AT+CIPSRIP=1` (SIM800) on TCP links: the same forms as on UDP
/// links (ESP-7, ESP-10, ESP-U4; SIM-U5, SIM-U6), with the link's peer as the sender.
@Suite("Remote info on TCP links")
struct RemoteInfoTests {
    @Test("ESP-7, ESP-10: with AT+CIPDINFO=1 pushed +IPD and passive +CIPRECVDATA carry the peer")
    func espTCP() async throws {
        try await senderSession(.espAT(), payload: []) { m, tape, net in
            _ = tape.take()
            _ = await say(m, tape, net, "ATE0\r\n")
            _ = await say(m, tape, net, "AT+CIPMUX=1\r\n")
            #expect(await say(m, tape, net, "AT+CIPDINFO=1\r\n") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",7\r\n") == "0,CONNECT\r\n\r\nOK\r\n")
            _ = await say(m, tape, net, "AT+CIPSEND=0,5\r\n")
            #expect(await say(m, tape, net, "hello") == "\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n\r\n+IPD,0,5,\"10.0.0.1\",7:hello")
            #expect(await say(m, tape, net, "AT+CIPRECVMODE=1\r\n") == "\r\nOK\r\n")
            _ = await say(m, tape, net, "AT+CIPSEND=0,5\r\n")
            #expect(await say(m, tape, net, "world") == "\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n\r\n+IPD,0,5\r\n")
            #expect(await say(m, tape, net, "AT+CIPRECVDATA=0,100\r\n") == "+CIPRECVDATA:5,\"10.0.0.1\",7,world\r\nOK\r\n")
        }
    }

    @Test("SIM-U6: with AT+CIPSRIP=1 the manual-receive notice and reads of a TCP link carry the peer")
    func simTCP() async throws {
        try await senderSession(.sim800(), payload: []) { m, tape, net in
            await sim800Up(m, tape, net)
            #expect(await say(m, tape, net, "AT+CIPSRIP=1\r") == "\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSTART=0,\"TCP\",\"server\",\"7\"\r") == "\r\nOK\r\n\r\n0, CONNECT OK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSEND=0,5\r") == "\r\n> ")
            #expect(await say(m, tape, net, "hello") == "\r\n0, SEND OK\r\n\r\n+CIPRXGET: 1,0,10.0.0.1:7\r\n")
            #expect(await say(m, tape, net, "AT+CIPRXGET=2,0,100\r") == "\r\n+CIPRXGET: 2,0,5,0,10.0.0.1:7\r\nhello\r\nOK\r\n")
            #expect(await say(m, tape, net, "AT+CIPSRIP?\r") == "\r\n+CIPSRIP: 1\r\n\r\nOK\r\n")
        }
    }
}
