import Testing
import GenTCPModem

/// SIMCom SIM800 sessions from the reference doc (SIM800 AT manual §8, TCP/IP application note,
/// TinyGSM #111/#221 logs: `1, CONNECT FAIL`, `1, SEND FAIL`, `1, CLOSE OK`).
@Suite("SIM800 transcripts")
struct SIM800TranscriptTests {
    static let muxOn: [Step] = [.submit(.enableMultiplexing), .modem("\r\nOK\r\n"),
                                .submit(.enablePassiveReceive), .modem("\r\nOK\r\n")]
    static let muxOnEvents: [Ev] = [.ok(.enableMultiplexing), .ok(.enablePassiveReceive)]
    static let muxOnWritten = "AT+CIPMUX=1\rAT+CIPRXGET=1\r"

    static let connected: [Step] = muxOn + [
        .submit(.connect(link: 1, host: "example.com", port: 80)),
        .modem("\r\nOK\r\n"),
        .modem("\r\n1, CONNECT OK\r\n"),
    ]
    static let connectedEvents: [Ev] = muxOnEvents + [.ok(.connect, 1), .connected(1)]
    static let connectedWritten = muxOnWritten + "AT+CIPSTART=1,\"TCP\",\"example.com\",\"80\"\r"

    static let transcripts: [Transcript] = [
        Transcript(
            name: "boot with a fixed rate: RDY and its banner are one reset",
            steps: [.modem("\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n")],
            events: [.reset],
            written: ""),
        Transcript(
            name: "3GPP echo: AT<CR><CR><LF>OK (atat #191)",
            steps: [.submit(.probe), .modem("AT\r\r\nOK\r\n"), .submit(.echoOff), .modem("ATE0\r\r\nOK\r\n"), .submit(.probe), .modem("\r\nOK\r\n")],
            events: [.ok(.probe), .ok(.echoOff), .ok(.probe)],
            written: "AT\rATE0\rAT\r"),
        Transcript(
            name: "readiness: +CPIN, +CGATT, +CIPMUX answers; AT+CIPSTATUS prints its STATE after the OK (§8.2.8)",
            steps: [
                .submit(.queryStatus(.sim)), .modem("\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"),
                .submit(.queryStatus(.attach)), .modem("\r\n+CGATT: 0\r\n\r\nOK\r\n"),
                .submit(.queryStatus(.multiplexing)), .modem("\r\n+CIPMUX: 1\r\n\r\nOK\r\n"),
                .submit(.queryStatus(.bearer)), .modem("\r\nOK\r\n\r\nSTATE: IP INITIAL\r\n"),
                .submit(.queryStatus(.bearer)), .modem("\r\nOK\r\n\r\nSTATE: IP GPRSACT\r\n"),
                .submit(.queryStatus(.bearer)), .modem("\r\nOK\r\n\r\nSTATE: TCP CLOSED\r\n"),
                .submit(.queryStatus(.bearer)), .modem("\r\nOK\r\n\r\nSTATE: PDP DEACT\r\n"),
            ],
            events: [
                .status(.simReady(false)), .ok(.queryStatus), .status(.attached(false)), .ok(.queryStatus),
                .status(.multiplexing(true)), .ok(.queryStatus),
                .ok(.queryStatus), .status(.bearer(.initial)), .ok(.queryStatus), .status(.bearer(.active)),
                .ok(.queryStatus), .status(.bearer(.linked)), .ok(.queryStatus), .status(.bearer(.deactivated)),
            ],
            written: "AT+CPIN?\rAT+CGATT?\rAT+CIPMUX?\rAT+CIPSTATUS\rAT+CIPSTATUS\rAT+CIPSTATUS\rAT+CIPSTATUS\r"),
        Transcript(
            name: "a module found in multi-link mode (+CIPMUX: 1) gets the multi-link forms without AT+CIPMUX=1",
            steps: [
                .submit(.queryStatus(.multiplexing)), .modem("\r\n+CIPMUX: 1\r\n\r\nOK\r\n"),
                .submit(.connect(link: 2, host: "10.0.0.1", port: 80)), .modem("\r\nOK\r\n\r\n2, CONNECT OK\r\n"),
            ],
            events: [.status(.multiplexing(true)), .ok(.queryStatus), .ok(.connect, 2), .connected(2)],
            written: "AT+CIPMUX?\rAT+CIPSTART=2,\"TCP\",\"10.0.0.1\",\"80\"\r"),
        Transcript(
            name: "bearer: CSTT, CIICR, CIFSR answering a bare address with no OK",
            steps: [
                .submit(.configureBearer(apn: "internet", user: "", password: "")), .modem("\r\nOK\r\n"),
                .submit(.activateBearer), .modem("\r\nOK\r\n"),
                .submit(.localAddress), .modem("\r\n10.170.12.34\r\n"),
            ],
            events: [.ok(.configureBearer), .ok(.activateBearer), .localAddress(ipv4(10, 170, 12, 34)), .ok(.localAddress)],
            written: "AT+CSTT=\"internet\",\"\",\"\"\rAT+CIICR\rAT+CIFSR\r"),
        Transcript(
            name: "CIPSHUT answers SHUT OK",
            steps: [.submit(.deactivateBearer), .modem("\r\nSHUT OK\r\n")],
            events: [.ok(.deactivateBearer)],
            written: "AT+CIPSHUT\r"),
        Transcript(
            name: "connect: OK at once, <n>, CONNECT OK later",
            steps: connected,
            events: connectedEvents,
            written: connectedWritten),
        Transcript(
            name: "connect: the manual's form without the space also matches",
            steps: muxOn + [.submit(.connect(link: 2, host: "1.2.3.4", port: 8080)), .modem("\r\nOK\r\n\r\n2,CONNECT OK\r\n")],
            events: muxOnEvents + [.ok(.connect, 2), .connected(2)],
            written: muxOnWritten + "AT+CIPSTART=2,\"TCP\",\"1.2.3.4\",\"8080\"\r"),
        Transcript(
            name: "connect fails later: 1, CONNECT FAIL (TinyGSM #221)",
            steps: muxOn + [.submit(.connect(link: 1, host: "example.com", port: 81)), .modem("\r\nOK\r\n\r\n1, CONNECT FAIL\r\n")],
            events: muxOnEvents + [.ok(.connect, 1), .connectFailed(1, .connectionRefused)],
            written: muxOnWritten + "AT+CIPSTART=1,\"TCP\",\"example.com\",\"81\"\r"),
        Transcript(
            name: "connect refused at once with +CME ERROR",
            steps: muxOn + [.submit(.connect(link: 0, host: "example.com", port: 80)), .modem("\r\n+CME ERROR: 3\r\n")],
            events: muxOnEvents + [.failed(.connect, 0, .cmeError(3), .connectionRefused), .connectFailed(0, .connectionRefused)],
            written: muxOnWritten + "AT+CIPSTART=0,\"TCP\",\"example.com\",\"80\"\r"),
        Transcript(
            name: "send: prompt with a trailing space, exactly N bytes, <n>, SEND OK",
            steps: connected + [.send("hello", link: 1), .modem("\r\n> "), .modem("\r\n1, SEND OK\r\n")],
            events: connectedEvents + [.ok(.send, 1)],
            written: connectedWritten + "AT+CIPSEND=1,5\rhello"),
        Transcript(
            name: "send with echo on: the command echo, then the prompt",
            steps: connected + [.send("hello", link: 1), .modem("AT+CIPSEND=1,5\r\r\n> "), .modem("\r\n1, SEND OK\r\n")],
            events: connectedEvents + [.ok(.send, 1)],
            written: connectedWritten + "AT+CIPSEND=1,5\rhello"),
        Transcript(
            name: "send fails: 1, SEND FAIL (TinyGSM #111)",
            steps: connected + [.send("hello", link: 1), .modem("\r\n> "), .modem("\r\n1, SEND FAIL\r\n")],
            events: connectedEvents + [.failed(.send, 1, .sendFailed, .closed)],
            written: connectedWritten + "AT+CIPSEND=1,5\rhello"),
        Transcript(
            name: "quick send: DATA ACCEPT:<n>,<len>",
            steps: connected + [.send("abc", link: 1), .modem("\r\n> "), .modem("\r\nDATA ACCEPT:1,3\r\n")],
            events: connectedEvents + [.ok(.send, 1)],
            written: connectedWritten + "AT+CIPSEND=1,3\rabc"),
        Transcript(
            name: "manual receive: +CIPRXGET: 1,<n>, then a read whose data holds OK, CR-LF and 1, CLOSED",
            steps: connected + [
                .modem("\r\n+CIPRXGET: 1,1\r\n"),
                .submit(.read(link: 1, maximum: 1460)),
                .modem("\r\n+CIPRXGET: 2,1,13,0\r\nOK\r\n1, CLOSED\r\nOK\r\n"),
            ],
            // The header's <left> (0) makes the module's total known: 13 before this read.
            events: connectedEvents + [.available(1, nil), .available(1, 13), .received(1, "OK\r\n1, CLOSED"), .ok(.read, 1)],
            written: connectedWritten + "AT+CIPRXGET=2,1,1460\r"),
        Transcript(
            name: "manual receive reports what is left, and the query form",
            steps: connected + [
                .submit(.read(link: 1, maximum: 4)), .modem("\r\n+CIPRXGET: 2,1,4,6\r\nabcd\r\nOK\r\n"),
                .submit(.queryAvailable(link: 1)), .modem("\r\n+CIPRXGET: 4,1,6\r\n\r\nOK\r\n"),
            ],
            events: connectedEvents + [.available(1, 10), .received(1, "abcd"), .ok(.read, 1), .available(1, 6),
                                       .ok(.queryAvailable, 1)],
            written: connectedWritten + "AT+CIPRXGET=2,1,4\rAT+CIPRXGET=4,1\r"),
        Transcript(
            name: "close: 1, CLOSE OK is the final result",
            steps: connected + [.submit(.close(link: 1)), .modem("\r\n1, CLOSE OK\r\n")],
            events: connectedEvents + [.ok(.close, 1), .closed(1)],
            written: connectedWritten + "AT+CIPCLOSE=1\r"),
        Transcript(
            name: "remote close: 1, CLOSED",
            steps: connected + [.modem("\r\n1, CLOSED\r\n")],
            events: connectedEvents + [.closed(1)],
            written: connectedWritten),
        Transcript(
            name: "bearer loss: +PDP: DEACT closes every link",
            steps: connected + [
                .submit(.connect(link: 3, host: "example.org", port: 80)), .modem("\r\nOK\r\n"),
                .modem("\r\n+PDP: DEACT\r\n"),
            ],
            events: connectedEvents + [.ok(.connect, 3), .network(.bearerLost), .closed(1), .connectFailed(3, .networkDown)],
            written: connectedWritten + "AT+CIPSTART=3,\"TCP\",\"example.org\",\"80\"\r"),
        Transcript(
            name: "a URC between the echo and the final result",
            steps: connected + [.submit(.probe), .modem("AT\r\r\n+CIPRXGET: 1,1\r\n1, CLOSED\r\nOK\r\n")],
            events: connectedEvents + [.available(1, nil), .closed(1), .ok(.probe)],
            written: connectedWritten + "AT\r"),
        Transcript(
            name: "DNS: OK, then +CDNSGIP later",
            steps: [.submit(.resolve(host: "example.com")), .modem("\r\nOK\r\n\r\n+CDNSGIP: 1,\"example.com\",\"93.184.216.34\"\r\n")],
            events: [.ok(.resolve), .resolved(ipv4(93, 184, 216, 34))],
            written: "AT+CDNSGIP=\"example.com\"\r"),
        Transcript(
            name: "DNS failure: +CDNSGIP: 0,<err>",
            steps: [.submit(.resolve(host: "nowhere.invalid")), .modem("\r\nOK\r\n\r\n+CDNSGIP: 0,8\r\n")],
            events: [.ok(.resolve), .resolveFailed(.nonExistentDomain)],
            written: "AT+CDNSGIP=\"nowhere.invalid\"\r"),
        Transcript(
            name: "an unexpected Call Ready long after boot is a reset",
            steps: connected + [.wait(40_000), .modem("\r\nCall Ready\r\n\r\nSMS Ready\r\n")],
            events: connectedEvents + [.reset, .closed(1)],
            written: connectedWritten),
        Transcript(
            name: "connect that never reports: etimedout after 75 s",
            steps: muxOn + [.submit(.connect(link: 0, host: "example.com", port: 80)), .modem("\r\nOK\r\n"),
                            .wait(74_000), .wait(1_000)],
            events: muxOnEvents + [.ok(.connect, 0), .connectFailed(0, .connectionTimedOut)],
            written: muxOnWritten + "AT+CIPSTART=0,\"TCP\",\"example.com\",\"80\"\r"),
    ]

    @Test(arguments: transcripts)
    func transcript(_ t: Transcript) {
        check(t, SIM800Dialect())
    }
}
