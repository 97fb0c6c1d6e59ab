import Testing
import GenTCPModem

/// Quectel BG96 sessions from the reference doc (BG96 TCP/IP AT manual and application note:
/// `+QIOPEN: <id>,<err>`, `+QIRD: <n>\r\n<data>`, `+QIURC: "recv"|"closed"|"pdpdeact"|"dnsgip"`).
@Suite("BG96 transcripts")
struct BG96TranscriptTests {
    static let connected: [Step] = [
        .submit(.connect(link: 0, host: "tcpbin.com", port: 4242)),
        .modem("\r\nOK\r\n"),
        .modem("\r\n+QIOPEN: 0,0\r\n"),
    ]
    static let connectedEvents: [Ev] = [.ok(.connect, 0), .connected(0)]
    static let connectedWritten = "AT+QIOPEN=1,0,\"TCP\",\"tcpbin.com\",4242,0,0\r"

    static let transcripts: [Transcript] = [
        Transcript(
            name: "boot: RDY then APP RDY and the rest of the banner are one reset",
            steps: [.modem("\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\nAPP RDY\r\n")],
            events: [.reset, .unrecognised("+CFUN: 1"), .unrecognised("+QUSIM: 1"),
                     .unrecognised("+QIND: SMS DONE")],
            written: ""),
        Transcript(
            name: "multiplexing and passive receive need no command",
            steps: [.submit(.enableMultiplexing), .submit(.enablePassiveReceive)],
            events: [.ok(.enableMultiplexing), .ok(.enablePassiveReceive)],
            written: ""),
        Transcript(
            name: "bearer: QICSGP, QIACT, QIACT? for the address",
            steps: [
                .submit(.configureBearer(apn: "iot.1nce.net", user: "", password: "")), .modem("\r\nOK\r\n"),
                .submit(.activateBearer), .modem("\r\nOK\r\n"),
                .submit(.localAddress), .modem("\r\n+QIACT: 1,1,1,\"10.64.3.7\"\r\n\r\nOK\r\n"),
            ],
            events: [.ok(.configureBearer), .ok(.activateBearer), .localAddress(ipv4(10, 64, 3, 7)), .ok(.localAddress)],
            written: "AT+QICSGP=1,1,\"iot.1nce.net\",\"\",\"\",0\rAT+QIACT=1\rAT+QIACT?\r"),
        Transcript(
            name: "connect: OK, then +QIOPEN: <id>,0",
            steps: connected,
            events: connectedEvents,
            written: connectedWritten),
        Transcript(
            name: "connect errors map to reasons: 566 econnrefused, 565 nxdomain, 563 eisconn, 569 etimedout",
            steps: [
                .submit(.connect(link: 0, host: "a.example", port: 1)), .modem("\r\nOK\r\n\r\n+QIOPEN: 0,566\r\n"),
                .submit(.connect(link: 1, host: "b.example", port: 1)), .modem("\r\nOK\r\n\r\n+QIOPEN: 1,565\r\n"),
                .submit(.connect(link: 2, host: "c.example", port: 1)), .modem("\r\nOK\r\n\r\n+QIOPEN: 2,563\r\n"),
                .submit(.connect(link: 3, host: "d.example", port: 1)), .modem("\r\nOK\r\n\r\n+QIOPEN: 3,569\r\n"),
            ],
            events: [
                .ok(.connect, 0), .connectFailed(0, .connectionRefused),
                .ok(.connect, 1), .connectFailed(1, .nonExistentDomain),
                .ok(.connect, 2), .connectFailed(2, .alreadyConnected),
                .ok(.connect, 3), .connectFailed(3, .connectionTimedOut),
            ],
            written: "AT+QIOPEN=1,0,\"TCP\",\"a.example\",1,0,0\rAT+QIOPEN=1,1,\"TCP\",\"b.example\",1,0,0\r"
                + "AT+QIOPEN=1,2,\"TCP\",\"c.example\",1,0,0\rAT+QIOPEN=1,3,\"TCP\",\"d.example\",1,0,0\r"),
        Transcript(
            name: "connect refused at once: +CME ERROR: 552 is einval",
            steps: [.submit(.connect(link: 4, host: "example.com", port: 80)), .modem("\r\n+CME ERROR: 552\r\n")],
            events: [.failed(.connect, 4, .cmeError(552), .invalidArgument), .connectFailed(4, .invalidArgument)],
            written: "AT+QIOPEN=1,4,\"TCP\",\"example.com\",80,0,0\r"),
        Transcript(
            name: "send: prompt, exactly N bytes, SEND OK",
            steps: connected + [.send("hello", link: 0), .modem("\r\n> "), .modem("\r\nSEND OK\r\n")],
            events: connectedEvents + [.ok(.send, 0)],
            written: connectedWritten + "AT+QISEND=0,5\rhello"),
        Transcript(
            name: "send: SEND FAIL means the buffer is full (eagain)",
            steps: connected + [.send("hello", link: 0), .modem("\r\n> "), .modem("\r\nSEND FAIL\r\n")],
            events: connectedEvents + [.failed(.send, 0, .sendFailed, .tryAgain)],
            written: connectedWritten + "AT+QISEND=0,5\rhello"),
        Transcript(
            name: "receive: +QIURC recv, QIRD with data holding OK and +QIURC, then an empty read",
            steps: connected + [
                .modem("\r\n+QIURC: \"recv\",0\r\n"),
                .submit(.read(link: 0, maximum: 1500)),
                .modem("\r\n+QIRD: 24\r\nOK\r\n+QIURC: \"closed\",0\r\n\r\n\r\nOK\r\n"),
                .submit(.read(link: 0, maximum: 1500)),
                .modem("\r\n+QIRD: 0\r\n\r\nOK\r\n"),
            ],
            events: connectedEvents + [
                .available(0, nil), .received(0, "OK\r\n+QIURC: \"closed\",0\r\n"), .ok(.read, 0), .ok(.read, 0),
            ],
            written: connectedWritten + "AT+QIRD=0,1500\rAT+QIRD=0,1500\r"),
        Transcript(
            name: "BG95-style recv URC with a length, and the QIRD=<id>,0 query",
            steps: connected + [
                .modem("\r\n+QIURC: \"recv\",0,12\r\n"),
                .submit(.queryAvailable(link: 0)), .modem("\r\n+QIRD: 12,6,6\r\n\r\nOK\r\n"),
            ],
            events: connectedEvents + [.available(0, 12), .available(0, 6), .ok(.queryAvailable, 0)],
            written: connectedWritten + "AT+QIRD=0,0\r"),
        Transcript(
            name: "peer close: +QIURC closed, then QICLOSE frees the id without a second report",
            steps: connected + [
                .modem("\r\n+QIURC: \"closed\",0\r\n"),
                .send("late", link: 0),
                .submit(.connect(link: 0, host: "tcpbin.com", port: 4242)),
                .submit(.close(link: 0)), .modem("\r\nOK\r\n"),
            ],
            events: connectedEvents + [.closed(0), .ok(.close, 0)],
            written: connectedWritten + "AT+QICLOSE=0\r",
            errors: [.closed, .alreadyConnected]),
        Transcript(
            name: "bearer loss: +QIURC pdpdeact",
            steps: connected + [.modem("\r\n+QIURC: \"pdpdeact\",1\r\n")],
            events: connectedEvents + [.network(.bearerLost), .closed(0)],
            written: connectedWritten),
        Transcript(
            name: "DNS: OK, then the dnsgip header and one line per address",
            steps: [
                .submit(.resolve(host: "example.com")),
                .modem("\r\nOK\r\n\r\n+QIURC: \"dnsgip\",0,2,600\r\n\r\n+QIURC: \"dnsgip\",\"93.184.216.34\"\r\n"
                    + "\r\n+QIURC: \"dnsgip\",\"2606:2800:220:1:248:1893:25c8:1946\"\r\n"),
            ],
            events: [.ok(.resolve), .resolved(ipv4(93, 184, 216, 34))],
            written: "AT+QIDNSGIP=1,\"example.com\"\r"),
        Transcript(
            name: "DNS failure: dnsgip 565",
            steps: [.submit(.resolve(host: "nowhere.invalid")), .modem("\r\nOK\r\n\r\n+QIURC: \"dnsgip\",565\r\n")],
            events: [.ok(.resolve), .resolveFailed(.nonExistentDomain)],
            written: "AT+QIDNSGIP=1,\"nowhere.invalid\"\r"),
        Transcript(
            name: "RDY in the middle of a read fails it and closes the link",
            steps: connected + [.submit(.read(link: 0, maximum: 100)), .modem("\r\nRDY\r\n")],
            events: connectedEvents + [.reset, .failed(.read, 0, .moduleReset, .closed), .closed(0)],
            written: connectedWritten + "AT+QIRD=0,100\r"),
        Transcript(
            name: "restart: OK, then RDY is the expected reset",
            steps: [.submit(.restart), .modem("\r\nOK\r\n"), .modem("\r\nRDY\r\n")],
            events: [.ok(.restart), .reset],
            written: "AT+CFUN=1,1\r"),
    ]

    @Test(arguments: transcripts)
    func transcript(_ t: Transcript) {
        check(t, BG96Dialect())
    }
}
