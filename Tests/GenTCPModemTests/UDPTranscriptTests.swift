import Testing
import GenTCPModem

/// gen_udp on the three dialects, from the vendor forms in `docs/modem-behaviour.md`
/// (ESP-U1..U4, SIM-U1..U6, BG-U1..U4): opening UDP links, datagrams with their senders, sends
/// with a destination, and headers that lie.
@Suite("UDP transcripts")
struct UDPTranscriptTests {
    static let sender = ModemEndpoint(address: ipv4(127, 0, 0, 1), port: 4000)
    static let far = ModemEndpoint(address: ipv4(10, 0, 0, 1), port: 4000)

    static let espSetUp: [Step] = [
        .submit(.version), .modem("AT version:3.3.0.0(abc - ESP32 - Jun  1 2024)\r\n\r\nOK\r\n"),
        .submit(.enableMultiplexing), .modem("\r\nOK\r\n"),
        .submit(.enableRemoteInfo), .modem("\r\nOK\r\n"),
        .submit(.openDatagram(link: 0, host: "0.0.0.0", port: 0, localPort: 50_000)),
        .modem("0,CONNECT\r\n\r\nOK\r\n"),
        .submit(.setReceiveMode(link: 0, passive: false)), .modem("\r\nOK\r\n"),
    ]
    static let espSetUpEvents: [Ev] = [
        .version(ModemVersion(3, 3)), .ok(.version), .ok(.enableMultiplexing), .ok(.enableRemoteInfo),
        .connected(0), .ok(.openDatagram, 0), .ok(.setReceiveMode, 0),
    ]
    static let espSetUpWritten = "AT+GMR\r\nAT+CIPMUX=1\r\nAT+CIPDINFO=1\r\n"
        + "AT+CIPSTART=0,\"UDP\",\"0.0.0.0\",0,50000,2\r\nAT+CIPRECVTYPE=0,0\r\n"

    static let espCases: [Transcript] = [
        Transcript(
            name: "ESP-AT: open, pushed datagrams with senders (empty, bad sender), send with a destination",
            steps: espSetUp + [
                .modem("+IPD,0,5,\"127.0.0.1\",4000:hello"),
                .modem("+IPD,0,0,\"127.0.0.1\",4000:"),
                .modem("+IPD,0,3,\"999.0.0.1\",4000:OK\n"),
                .sendDatagram("ping", link: 0, to: sender),
                .modem("\r\nOK\r\n\r\n>"),
                .modem("\r\nRecv 4 bytes\r\n\r\nSEND OK\r\n"),
            ],
            events: espSetUpEvents + [
                .datagram(0, 5, sender), .received(0, "hello"),
                .datagram(0, 0, sender),
                .datagram(0, 3, nil), .received(0, "OK\n"),
                .ok(.send, 0),
            ],
            written: espSetUpWritten + "AT+CIPSEND=0,4,\"127.0.0.1\",4000\r\nping"),
        Transcript(
            name: "ESP-AT: before v3.3 there is no per-link receive mode; CIPDINFO changes the read header",
            steps: [
                .submit(.enableRemoteInfo), .modem("\r\nOK\r\n"),
                .submit(.setReceiveMode(link: 0, passive: false)),
                .submit(.read(link: 0, maximum: 100)),
                .modem("+CIPRECVDATA:5,\"127.0.0.1\",4000,hello\r\nOK\r\n"),
            ],
            events: [.ok(.enableRemoteInfo), .received(0, "hello"), .ok(.read, 0)],
            written: "AT+CIPDINFO=1\r\nAT+CIPRECVDATA=100\r\n",
            errors: [.notSupported]),
        Transcript(
            name: "ESP-AT: a datagram too large for one send, an empty one, a TCP link are refused before writing",
            steps: espSetUp + [
                .sendDatagram(String(repeating: "x", count: 8193), link: 0, to: sender),
                .sendDatagram("", link: 0, to: sender),
                .submit(.connect(link: 1, host: "127.0.0.1", port: 80)), .modem("1,CONNECT\r\n\r\nOK\r\n"),
                .sendDatagram("x", link: 1, to: sender),
            ],
            events: espSetUpEvents + [.connected(1), .ok(.connect, 1)],
            written: espSetUpWritten + "AT+CIPSTART=1,\"TCP\",\"127.0.0.1\",80\r\n",
            errors: [.messageTooLong, .notSupported, .invalidArgument]),
    ]

    @Test("ESP-AT", arguments: espCases)
    func espAT(_ t: Transcript) {
        check(t, ESPATDialect())
    }

    static let bg96Cases: [Transcript] = [
        Transcript(
            name: "BG96: UDP SERVICE, recv notice, reads of one datagram with its sender until +QIRD: 0, send with a destination",
            steps: [
                .submit(.openDatagram(link: 2, host: "127.0.0.1", port: 0, localPort: 50_001)),
                .modem("\r\nOK\r\n\r\n+QIOPEN: 2,0\r\n"),
                .modem("\r\n+QIURC: \"recv\",2\r\n"),
                .submit(.read(link: 2, maximum: 1500)),
                .modem("\r\n+QIRD: 5,\"10.0.0.1\",4000\r\nhello\r\n\r\nOK\r\n"),
                .submit(.read(link: 2, maximum: 1500)),
                .modem("\r\n+QIRD: 0\r\n\r\nOK\r\n"),
                .sendDatagram("ping", link: 2, to: far),
                .modem("\r\n> "),
                .modem("\r\nSEND OK\r\n"),
            ],
            events: [
                .ok(.openDatagram, 2), .connected(2), .available(2, nil),
                .datagram(2, 5, far), .received(2, "hello"), .ok(.read, 2),
                .datagram(2, 0, nil), .ok(.read, 2),
                .ok(.send, 2),
            ],
            written: "AT+QIOPEN=1,2,\"UDP SERVICE\",\"127.0.0.1\",0,50001,0\rAT+QIRD=2\rAT+QIRD=2\r"
                + "AT+QISEND=2,4,\"10.0.0.1\",4000\rping"),
        Transcript(
            name: "BG96: a connected UDP link reads with a length; a sender that does not parse is a framing error",
            steps: [
                .submit(.openDatagram(link: 3, host: "10.0.0.1", port: 4000, localPort: 50_002)),
                .modem("\r\nOK\r\n\r\n+QIOPEN: 3,0\r\n"),
                .submit(.read(link: 3, maximum: 1500)),
                .modem("\r\n+QIRD: 5\r\nhello\r\n\r\nOK\r\n"),
                .submit(.openDatagram(link: 4, host: "127.0.0.1", port: 0, localPort: 50_003)),
                .modem("\r\nOK\r\n\r\n+QIOPEN: 4,556\r\n"),
                .submit(.openDatagram(link: 5, host: "127.0.0.1", port: 0, localPort: 50_004)),
                .modem("\r\nOK\r\n\r\n+QIOPEN: 5,0\r\n"),
                .submit(.read(link: 5, maximum: 1500)),
                .modem("\r\n+QIRD: 5,\"10.0.0.1\",99999\r\nhello\r\n\r\nOK\r\n"),
            ],
            events: [
                .ok(.openDatagram, 3), .connected(3),
                .datagram(3, 5, nil), .received(3, "hello"), .ok(.read, 3),
                .ok(.openDatagram, 4), .connectFailed(4, .addressInUse),
                .ok(.openDatagram, 5), .connected(5),
                .framing(.malformedHeader), .ok(.read, 5),
            ],
            written: "AT+QIOPEN=1,3,\"UDP\",\"10.0.0.1\",4000,50002,0\rAT+QIRD=3,1500\r"
                + "AT+QIOPEN=1,4,\"UDP SERVICE\",\"127.0.0.1\",0,50003,0\r"
                + "AT+QIOPEN=1,5,\"UDP SERVICE\",\"127.0.0.1\",0,50004,0\rAT+QIRD=5\r"),
    ]

    @Test("BG96", arguments: bg96Cases)
    func bg96(_ t: Transcript) {
        check(t, BG96Dialect())
    }

    static let sim800Cases: [Transcript] = [
        Transcript(
            name: "SIM800: CIPSRIP, CLPORT, a connected UDP link, reads with the sender, send to the link's remote",
            steps: [
                .submit(.enableMultiplexing), .modem("\r\nOK\r\n"),
                .submit(.enableRemoteInfo), .modem("\r\nOK\r\n"),
                .submit(.bindLocalPort(link: 1, port: 50_002)), .modem("\r\nOK\r\n"),
                .submit(.openDatagram(link: 1, host: "10.0.0.1", port: 4000, localPort: 50_002)),
                .modem("\r\nOK\r\n\r\n1, CONNECT OK\r\n"),
                .modem("\r\n+CIPRXGET: 1,1,10.0.0.1:4000\r\n"),
                .submit(.read(link: 1, maximum: 1460)),
                .modem("\r\n+CIPRXGET: 2,1,5,3,10.0.0.1:4000\r\nhello\r\nOK\r\n"),
                .sendDatagram("ping", link: 1, to: nil),
                .modem("\r\n> "),
                .modem("\r\n1, SEND OK\r\n"),
                .sendDatagram("ping", link: 1, to: far),
                .submit(.openDatagram(link: 2, host: "10.0.0.1", port: 0, localPort: 50_003)),
            ],
            events: [
                .ok(.enableMultiplexing), .ok(.enableRemoteInfo), .ok(.bindLocalPort, 1),
                .ok(.openDatagram, 1), .connected(1), .available(1, nil),
                .available(1, 8), .datagram(1, 5, far), .received(1, "hello"), .ok(.read, 1),
                .ok(.send, 1),
            ],
            written: "AT+CIPMUX=1\rAT+CIPSRIP=1\rAT+CLPORT=1,\"UDP\",50002\rAT+CIPSTART=1,\"UDP\",\"10.0.0.1\",\"4000\"\r"
                + "AT+CIPRXGET=2,1,1460\rAT+CIPSEND=1,4\rping",
            errors: [.notSupported, .notSupported]),
    ]

    @Test("SIM800", arguments: sim800Cases)
    func sim800(_ t: Transcript) {
        check(t, SIM800Dialect())
    }

    @Test("SIMCom's <ip>:<port> senders parse, and nothing else does")
    func colonSeparated() {
        func parse(_ text: String) -> ModemEndpoint? {
            let box = ATLineBox(text)
            return withExtendedLifetime(box) { ModemEndpoint(colonSeparated: box.line) }
        }
        #expect(parse("192.168.1.20:65535") == ModemEndpoint(address: ipv4(192, 168, 1, 20), port: 65_535))
        #expect(parse("192.168.1.20:65536") == nil)
        #expect(parse("::1:53") == ModemEndpoint(address: .ipv6(high: 0, low: 1), port: 53))
        #expect(parse("1.2.3.4") == nil)
        #expect(parse("1.2.3.4:") == nil)
        #expect(parse("1.2.3:7") == nil)
    }
}

/// Keeps the bytes of an ``ATLine`` alive for a test.
final class ATLineBox {
    let storage: UnsafeMutableRawBufferPointer
    init(_ text: String) {
        let bytes = Array(text.utf8)
        storage = .allocate(byteCount: bytes.count, alignment: 1)
        storage.copyBytes(from: bytes)
    }
    deinit { storage.deallocate() }
    var line: ATLine { ATLine(UnsafeRawBufferPointer(storage)) }
}
