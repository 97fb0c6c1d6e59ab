import Testing
import GenTCPModem

/// ESP-AT sessions from the reference doc (docs/en AT Messages and TCP/IP examples, and the
/// captures quoted there: atat #219, esp-at-nal #10, esp-at #280/#994, ESP8266 parser #27).
/// Every transcript is run whole, byte by byte, cut at every single point, and cut randomly.
@Suite("ESP-AT transcripts")
struct ESPATTranscriptTests {
    /// Multiplexing is on: most sessions start from here.
    static let muxOn: [Step] = [.submit(.enableMultiplexing), .modem("\r\nOK\r\n")]
    static let muxOnEvents: [Ev] = [.ok(.enableMultiplexing)]
    static let muxOnWritten = "AT+CIPMUX=1\r\n"

    static let connected: [Step] = muxOn + [
        .submit(.connect(link: 0, host: "example.com", port: 80)),
        .modem("0,CONNECT\r\n\r\nOK\r\n"),
    ]
    static let connectedEvents: [Ev] = muxOnEvents + [.connected(0), .ok(.connect, 0)]
    static let connectedWritten = muxOnWritten + "AT+CIPSTART=0,\"TCP\",\"example.com\",80\r\n"

    static let transcripts: [Transcript] = [
        Transcript(
            name: "boot: ROM garbage at the wrong baud, then ready",
            steps: [.modemBytes([0x00, 0xE0, 0x8F, 0x12, 0xFF, 0x0D, 0x0A, 0x83, 0x7F, 0x0D, 0x0A] + b("\r\nready\r\n"))],
            events: [.reset],
            written: ""),
        Transcript(
            name: "echo before ATE0: the whole line comes back, then the answer (atat #219)",
            steps: [
                .submit(.probe), .modem("AT\r\n\r\nOK\r\n"),
                .submit(.echoOff), .modem("ATE0\r\n\r\nOK\r\n"),
                .submit(.enableMultiplexing), .modem("\r\nOK\r\n"),
            ],
            events: [.ok(.probe), .ok(.echoOff), .ok(.enableMultiplexing)],
            written: "AT\r\nATE0\r\nAT+CIPMUX=1\r\n"),
        Transcript(
            name: "AT+GMR on 2.2 picks CIPRECVMODE",
            steps: [
                .submit(.version),
                .modem("AT version:2.2.0.0(b097cdf - ESP32 - Jun 17 2021 12:04:59)\r\nSDK version:v4.2.2-76-gefa6eca\r\n"
                    + "compile time(3a696ba):Jul 28 2021 11:21:50\r\nBin version:2.2.0(WROOM-32)\r\n\r\nOK\r\n"),
                .submit(.enablePassiveReceive), .modem("\r\nOK\r\n"),
            ],
            events: [.version(ModemVersion(2, 2, 0, 0)), .ok(.version), .ok(.enablePassiveReceive)],
            written: "AT+GMR\r\nAT+CIPRECVMODE=1\r\n"),
        Transcript(
            name: "AT+GMR on 3.3 with multiplexing picks CIPRECVTYPE=5,1",
            steps: muxOn + [
                .submit(.version),
                .modem("AT version:3.3.0.0(3b13d04 - ESP32C3 - May  8 2024 08:21:54)\r\nSDK version:v5.0.6\r\n\r\nOK\r\n"),
                .submit(.enablePassiveReceive), .modem("\r\nOK\r\n"),
            ],
            events: muxOnEvents + [.version(ModemVersion(3, 3, 0, 0)), .ok(.version), .ok(.enablePassiveReceive)],
            written: muxOnWritten + "AT+GMR\r\nAT+CIPRECVTYPE=5,1\r\n"),
        Transcript(
            name: "AT 1.7 version line is parsed leniently",
            steps: [.submit(.version), .modem("AT version:1.7.4.0(May 11 2020 19:13:04)\r\nSDK version:3.0.4\r\nOK\r\n")],
            events: [.version(ModemVersion(1, 7, 4, 0)), .ok(.version)],
            written: "AT+GMR\r\n"),
        Transcript(
            name: "connect: <id>,CONNECT then OK",
            steps: connected,
            events: connectedEvents,
            written: connectedWritten),
        Transcript(
            name: "connect fails: ERROR then <id>,CLOSED (esp-at-nal #10)",
            steps: muxOn + [
                .submit(.connect(link: 1, host: "10.0.0.9", port: 7)),
                .modem("ERROR\r\n1,CLOSED\r\n"),
            ],
            events: muxOnEvents + [.failed(.connect, 1, .error, .connectionRefused), .connectFailed(1, .connectionRefused)],
            written: muxOnWritten + "AT+CIPSTART=1,\"TCP\",\"10.0.0.9\",7\r\n"),
        Transcript(
            name: "connect on a busy slot: ALREADY CONNECTED then ERROR",
            steps: muxOn + [
                .submit(.connect(link: 2, host: "example.com", port: 80)),
                .modem("ALREADY CONNECTED\r\n\r\nERROR\r\n"),
            ],
            events: muxOnEvents + [.failed(.connect, 2, .alreadyConnected, .alreadyConnected), .connectFailed(2, .alreadyConnected)],
            written: muxOnWritten + "AT+CIPSTART=2,\"TCP\",\"example.com\",80\r\n"),
        Transcript(
            name: "send: OK, prompt, exactly N bytes, Recv N bytes, SEND OK",
            steps: connected + [
                .send("hello", link: 0),
                .modem("\r\nOK\r\n\r\n>"),
                .modem("\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n"),
            ],
            events: connectedEvents + [.ok(.send, 0)],
            written: connectedWritten + "AT+CIPSEND=0,5\r\nhello"),
        Transcript(
            name: "send on an invalid link: link is not valid then ERROR",
            steps: connected + [.send("hi", link: 0), .modem("link is not valid\r\n\r\nERROR\r\n")],
            events: connectedEvents + [.failed(.send, 0, .linkInvalid, .closed)],
            written: connectedWritten + "AT+CIPSEND=0,2\r\n"),
        Transcript(
            name: "send fails after the payload: SEND FAIL",
            steps: connected + [.send("hello", link: 0), .modem("\r\nOK\r\n\r\n>"), .modem("\r\nRecv 5 bytes\r\n\r\nSEND FAIL\r\n")],
            events: connectedEvents + [.failed(.send, 0, .sendFailed, .closed)],
            written: connectedWritten + "AT+CIPSEND=0,5\r\nhello"),
        Transcript(
            name: "active +IPD whose payload holds OK, CR-LF, +IPD, > and ends right before 0,CLOSED (#27)",
            steps: connected + [.modem("\r\n+IPD,0,21:OK\r\n+IPD,0,5:>ERROR\r\n0,CLOSED\r\n")],
            events: connectedEvents + [.received(0, "OK\r\n+IPD,0,5:>ERROR\r\n"), .closed(0)],
            written: connectedWritten),
        Transcript(
            name: "back-to-back +IPD frames with no line end between (lwesp #42)",
            steps: connected + [.modem("\r\n+IPD,0,3:abc\r\n+IPD,0,4:defg+IPD,0,2:hi0,CLOSED\r\n")],
            events: connectedEvents + [.received(0, "abcdefghi"), .closed(0)],
            written: connectedWritten),
        Transcript(
            name: "+IPD with remote info, quoted IPv4 and quoted IPv6 with colons (CIPDINFO=1)",
            steps: connected + [.modem("\r\n+IPD,0,3,\"192.168.1.5\",8080:abc\r\n+IPD,0,2,\"fe80::1:2\",443:de")],
            events: connectedEvents + [.received(0, "abcde")],
            written: connectedWritten),
        Transcript(
            name: "single-link mode: +IPD,<len>:, CONNECT, CLOSED",
            steps: [
                .submit(.connect(link: 0, host: "example.com", port: 80)),
                .modem("CONNECT\r\n\r\nOK\r\n\r\n+IPD,5:hello\r\nCLOSED\r\n"),
            ],
            events: [.connected(0), .ok(.connect, 0), .received(0, "hello"), .closed(0)],
            written: "AT+CIPSTART=\"TCP\",\"example.com\",80\r\n"),
        Transcript(
            name: "passive: +IPD notice, CIPRECVDATA read whose data holds OK and CR-LF, then CLOSED",
            steps: connected + [
                .modem("\r\n+IPD,0,9\r\n"),
                .submit(.read(link: 0, maximum: 100)),
                .modem("+CIPRECVDATA:9,OK\r\nERROR\r\nOK\r\n"),
                .modem("0,CLOSED\r\n"),
            ],
            events: connectedEvents + [.available(0, 9), .received(0, "OK\r\nERROR"), .ok(.read, 0), .closed(0)],
            written: connectedWritten + "AT+CIPRECVDATA=0,100\r\n"),
        Transcript(
            name: "passive read in the AT 1.7 format +CIPRECVDATA,<n>:",
            steps: connected + [.submit(.read(link: 0, maximum: 100)), .modem("+CIPRECVDATA,5:hello\r\nOK\r\n")],
            events: connectedEvents + [.received(0, "hello"), .ok(.read, 0)],
            written: connectedWritten + "AT+CIPRECVDATA=0,100\r\n"),
        Transcript(
            name: "CIPRECVLEN: -1 (v2.x), empty (doc) and 0 (2024) fields",
            steps: connected + [
                .submit(.queryAvailable(link: 0)), .modem("+CIPRECVLEN:100,,,,,\r\n\r\nOK\r\n"),
                .submit(.queryAvailable(link: 0)), .modem("+CIPRECVLEN:-1,-1,-1,-1,-1\r\nOK\r\n"),
                .submit(.queryAvailable(link: 0)), .modem("+CIPRECVLEN:0,0,0,0,0\r\nOK\r\n"),
            ],
            events: connectedEvents + [
                .available(0, 100), .ok(.queryAvailable, 0),
                .ok(.queryAvailable, 0),
                .available(0, 0), .ok(.queryAvailable, 0),
            ],
            written: connectedWritten + "AT+CIPRECVLEN?\r\nAT+CIPRECVLEN?\r\nAT+CIPRECVLEN?\r\n"),
        Transcript(
            name: "close: <id>,CLOSED then OK, reported once",
            steps: connected + [.submit(.close(link: 0)), .modem("0,CLOSED\r\n\r\nOK\r\n")],
            events: connectedEvents + [.closed(0), .ok(.close, 0)],
            written: connectedWritten + "AT+CIPCLOSE=0\r\n"),
        Transcript(
            name: "CIPDOMAIN quoted and unquoted",
            steps: [
                .submit(.resolve(host: "example.com")), .modem("+CIPDOMAIN:\"93.184.216.34\"\r\n\r\nOK\r\n"),
                .submit(.resolve(host: "example.org")), .modem("+CIPDOMAIN:96.7.128.175\r\nOK\r\n"),
            ],
            events: [.resolved(ipv4(93, 184, 216, 34)), .ok(.resolve), .resolved(ipv4(96, 7, 128, 175)), .ok(.resolve)],
            written: "AT+CIPDOMAIN=\"example.com\"\r\nAT+CIPDOMAIN=\"example.org\"\r\n"),
        Transcript(
            name: "CIPDOMAIN failure is nxdomain",
            steps: [.submit(.resolve(host: "no.such.host")), .modem("DNS Fail\r\nERROR\r\n")],
            events: [.failed(.resolve, nil, .dnsFailed, .nonExistentDomain)],
            written: "AT+CIPDOMAIN=\"no.such.host\"\r\n"),
        Transcript(
            name: "URCs in the middle of a response: WIFI, CLOSED and an +IPD frame between info lines and OK",
            steps: connected + [
                .submit(.version),
                .modem("AT version:2.4.0.0(4c6eb5e)\r\nWIFI DISCONNECT\r\n+IPD,0,4:OK\r\n1,CONNECT\r\nSDK version:v4.3\r\n\r\nOK\r\n"),
            ],
            events: connectedEvents + [
                .version(ModemVersion(2, 4, 0, 0)), .network(.wifiDisconnected), .received(0, "OK\r\n"),
                .connected(1), .ok(.version),
            ],
            written: connectedWritten + "AT+GMR\r\n"),
        Transcript(
            name: "URCs between OK and the prompt, and between payload and SEND OK",
            steps: connected + [
                .submit(.connect(link: 1, host: "example.net", port: 443)), .modem("1,CONNECT\r\n\r\nOK\r\n"),
                .send("ping", link: 1),
                .modem("\r\nOK\r\n\r\n+IPD,0,2:>>\r\nWIFI GOT IP\r\n>"),
                .modem("\r\nRecv 4 bytes\r\n0,CLOSED\r\n\r\nSEND OK\r\n"),
            ],
            events: connectedEvents + [
                .connected(1), .ok(.connect, 1),
                .received(0, ">>"), .network(.wifiGotIP),
                .closed(0), .ok(.send, 1),
            ],
            written: connectedWritten + "AT+CIPSTART=1,\"TCP\",\"example.net\",443\r\nAT+CIPSEND=1,4\r\nping"),
        Transcript(
            name: "busy p... (with ERR CODE) is retried after a back-off, not failed",
            steps: muxOn + [
                .submit(.connect(link: 0, host: "example.com", port: 80)),
                .modem("ERR CODE:0x010b0000\r\nbusy p...\r\n"),
                .wait(100),
                .wait(150),
                .modem("0,CONNECT\r\n\r\nOK\r\n"),
            ],
            events: muxOnEvents + [.connected(0), .ok(.connect, 0)],
            written: muxOnWritten + "AT+CIPSTART=0,\"TCP\",\"example.com\",80\r\n" + "AT+CIPSTART=0,\"TCP\",\"example.com\",80\r\n"),
        Transcript(
            name: "busy s... during a send is retried, then the prompt comes",
            steps: connected + [
                .send("data", link: 0), .modem("busy s...\r\n"), .wait(250),
                .modem("\r\nOK\r\n\r\n>"), .modem("\r\nSEND OK\r\n"),
            ],
            events: connectedEvents + [.ok(.send, 0)],
            written: connectedWritten + "AT+CIPSEND=0,4\r\nAT+CIPSEND=0,4\r\ndata"),
        Transcript(
            name: "reset in the middle of a send: the command fails and every link is closed",
            steps: connected + [
                .submit(.connect(link: 3, host: "example.org", port: 80)), .modem("3,CONNECT\r\n\r\nOK\r\n"),
                .send("hello", link: 0), .modem("\r\nOK\r\n\r\n"),
                .modem("\r\nready\r\n"),
            ],
            events: connectedEvents + [
                .connected(3), .ok(.connect, 3),
                .reset, .failed(.send, 0, .moduleReset, .closed), .closed(0), .closed(3),
            ],
            written: connectedWritten + "AT+CIPSTART=3,\"TCP\",\"example.org\",80\r\nAT+CIPSEND=0,5\r\n"),
        Transcript(
            name: "+IPD,99999999 is rejected without allocation and the lexer resynchronises",
            steps: connected + [.modem("\r\n+IPD,0,99999999:xxxxxxxx\r\n0,CLOSED\r\n")],
            events: connectedEvents + [.framing(.payloadTooLong(announced: 99_999_999)), .closed(0)],
            written: connectedWritten),
        Transcript(
            name: "an absurd length saturates instead of overflowing",
            steps: connected + [.modem("\r\n+IPD,0,999999999999999999999999:x\r\n0,CLOSED\r\n")],
            events: connectedEvents + [.framing(.payloadTooLong(announced: 2_147_483_647)), .closed(0)],
            written: connectedWritten),
        Transcript(
            name: "a malformed +IPD header is skipped to the line end",
            steps: connected + [.modem("\r\n+IPD,zero,5:hello\r\n+IPD,0,2:ok")],
            events: connectedEvents + [.framing(.malformedHeader), .received(0, "ok")],
            written: connectedWritten),
        Transcript(
            name: "garbage glued to an +IPD header is dropped and the frame kept (atat #213)",
            steps: connected + [.modemBytes([0x01, 0x47, 0x61, 0x72, 0xFE] + b("bage+IPD,0,3:abc0,CLOSED\r\n"))],
            events: connectedEvents + [.received(0, "abc"), .closed(0)],
            written: connectedWritten),
        Transcript(
            name: "a > with no send in flight is an ordinary line",
            steps: [.modem("\r\n>\r\n")],
            events: [.unrecognised(">")],
            written: ""),
        Transcript(
            name: "Wi-Fi join: WIFI URCs inside the command, then OK",
            steps: [.submit(.joinNetwork(ssid: "lab", password: "secret pass")),
                    .modem("WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n")],
            events: [.network(.wifiConnected), .network(.wifiGotIP), .ok(.joinNetwork)],
            written: "AT+CWJAP=\"lab\",\"secret pass\"\r\n"),
        Transcript(
            name: "Wi-Fi join failure: +CWJAP:<n> then FAIL",
            steps: [.submit(.joinNetwork(ssid: "lab", password: "wrong")), .modem("+CWJAP:2\r\n\r\nFAIL\r\n")],
            events: [.failed(.joinNetwork, nil, .fail, .networkUnreachable)],
            written: "AT+CWJAP=\"lab\",\"wrong\"\r\n"),
        Transcript(
            name: "local address from +CIFSR:STAIP",
            steps: [.submit(.localAddress), .modem("+CIFSR:STAIP,\"192.168.4.2\"\r\n+CIFSR:STAMAC,\"24:0a:c4:00:00:01\"\r\n\r\nOK\r\n")],
            events: [.localAddress(ipv4(192, 168, 4, 2)), .ok(.localAddress)],
            written: "AT+CIFSR\r\n"),
    ]

    @Test(arguments: transcripts)
    func transcript(_ t: Transcript) {
        check(t, ESPATDialect())
    }

    @Test("a payload split into bounded pieces never exceeds the piece size")
    func boundedPieces() {
        var configuration = ModemConfiguration()
        configuration.maxPieceLength = 7
        let payload = String(repeating: "0123456789", count: 30)
        var engine = ModemEngine(dialect: ESPATDialect(), configuration: configuration)
        let input = b("\r\n+IPD,300:" + payload + "CLOSED\r\n")
        var pieces: [Int] = []
        var got = ""
        input.withUnsafeBytes { raw in
            var cursor = 0
            while let event = engine.nextEvent(reading: raw, cursor: &cursor, now: at(0)) {
                if case .received(let link, let bytes) = event {
                    #expect(link == 0)
                    pieces.append(bytes.count)
                    got += String(decoding: bytes, as: UTF8.self)
                }
            }
        }
        #expect(got == payload)
        #expect(pieces.allSatisfy { $0 <= 7 })
        #expect(pieces.reduce(0, +) == 300)
    }

    @Test("ESP CIPDINFO form of CIPRECVDATA, with the dialect told so")
    func recvDataRemoteInfo() {
        let t = Transcript(
            name: "dinfo",
            steps: Self.connected + [.submit(.read(link: 0, maximum: 64)),
                                     .modem("+CIPRECVDATA:4,\"10.0.0.2\",5000,a,\"b\r\nOK\r\n")],
            events: Self.connectedEvents + [.received(0, "a,\"b"), .ok(.read, 0)],
            written: Self.connectedWritten + "AT+CIPRECVDATA=0,64\r\n")
        check(t, ESPATDialect(remoteInfo: true))
    }
}
