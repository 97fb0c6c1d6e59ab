import Testing
import GenTCPModem

/// Module-run TLS (issue 12), as docs/modem-behaviour.md ESP-T, SIM-T and BG-T describe it:
/// the setting commands each dialect writes, the secure open, and for BG96 the `AT+QSSL*` data
/// commands and `+QSSLURC` notices.
@Suite("TLS offload transcripts")
struct TLSTranscriptTests {
    // MARK: ESP-AT

    static func espMultiplexed() -> ESPATDialect {
        var d = ESPATDialect()
        d.commandSucceeded(.enableMultiplexing)
        return d
    }

    static let espTranscripts: [Transcript] = [
        Transcript(
            name: "ESP-T1..T4: CIPSSLCCONF (CA slot 0), CIPSSLCSNI, CIPSSLCALPN, then CIPSTART \"SSL\" answers <id>,CONNECT",
            steps: [
                .submit(.configureTLS(link: 1, step: .espConfigure(authMode: 2, pki: 0, ca: 0))), .modem("\r\nOK\r\n"),
                .submit(.configureTLS(link: 1, step: .espServerName("example.com"))), .modem("\r\nOK\r\n"),
                .submit(.configureTLS(link: 1, step: .espApplicationProtocols(["h2", "http/1.1"]))), .modem("\r\nOK\r\n"),
                .submit(.connectSecure(link: 1, host: "example.com", port: 443)), .modem("1,CONNECT\r\n\r\nOK\r\n"),
                .send("GET", link: 1), .modem("\r\nOK\r\n\r\n>"), .modem("\r\nRecv 3 bytes\r\n\r\nSEND OK\r\n"),
            ],
            events: [.ok(.configureTLS, 1), .ok(.configureTLS, 1), .ok(.configureTLS, 1), .connected(1), .ok(.connect, 1),
                     .ok(.send, 1)],
            written: "AT+CIPSSLCCONF=1,2,0,0\r\nAT+CIPSSLCSNI=1,\"example.com\"\r\nAT+CIPSSLCALPN=1,2,\"h2\",\"http/1.1\"\r\n"
                + "AT+CIPSTART=1,\"SSL\",\"example.com\",443\r\nAT+CIPSEND=1,3\r\nGET"),
        Transcript(
            name: "ESP-T5: a failed SSL open is ERROR then <id>,CLOSED: econnrefused",
            steps: [.submit(.connectSecure(link: 0, host: "10.0.0.1", port: 443)), .modem("\r\nERROR\r\n0,CLOSED\r\n")],
            events: [.failed(.connect, 0, .error, .connectionRefused), .connectFailed(0, .connectionRefused)],
            written: "AT+CIPSTART=0,\"SSL\",\"10.0.0.1\",443\r\n"),
        Transcript(
            name: "a module without TLS answers ERROR to CIPSSLCCONF (the driver makes it enotsup)",
            steps: [.submit(.configureTLS(link: 0, step: .espConfigure(authMode: 0, pki: 0, ca: 0))), .modem("\r\nERROR\r\n")],
            events: [.failed(.configureTLS, 0, .error, .invalidArgument)],
            written: "AT+CIPSSLCCONF=0,0,0,0\r\n"),
    ]

    @Test(arguments: espTranscripts)
    func esp(_ t: Transcript) {
        check(t, TLSTranscriptTests.espMultiplexed())
    }

    @Test("ESP-AT plans: CA slot and client slot make auth mode 3; a name gets SNI, an address none; a CA file or 4 ALPN names are enotsup")
    func espPlans() throws {
        let d = ESPATDialect()
        #expect(try d.tlsSteps(link: 2, host: "example.com",
                               settings: ModemTLSSettings(trust: .slot(1), clientCertificateSlot: 0))
            == [.espConfigure(authMode: 3, pki: 0, ca: 1), .espServerName("example.com")])
        #expect(try d.tlsSteps(link: 0, host: "192.0.2.1", settings: ModemTLSSettings(trust: .none))
            == [.espConfigure(authMode: 0, pki: 0, ca: 0)])
        #expect(try d.tlsSteps(link: 0, host: "192.0.2.1", settings: ModemTLSSettings(trust: .none, serverName: "api.example"))
            == [.espConfigure(authMode: 0, pki: 0, ca: 0), .espServerName("api.example")])
        #expect(throws: ModemError.self) { _ = try d.tlsSteps(link: 0, host: "x", settings: ModemTLSSettings(trust: .file("a.pem"))) }
        let four = ModemTLSSettings(trust: .none, applicationProtocols: ["a", "b", "c", "d"])
        #expect(reason { try d.tlsSteps(link: 0, host: "x", settings: four) } == .notSupported)
    }

    // MARK: BG96

    static let bgOpened: [Step] = [
        .submit(.configureTLS(link: 2, step: .quectelAnyVersion)), .modem("\r\nOK\r\n"),
        .submit(.configureTLS(link: 2, step: .quectelCACertificate("UFS:ca.pem"))), .modem("\r\nOK\r\n"),
        .submit(.configureTLS(link: 2, step: .quectelSecurityLevel(1))), .modem("\r\nOK\r\n"),
        .submit(.configureTLS(link: 2, step: .quectelServerName(true))), .modem("\r\nOK\r\n"),
        .submit(.connectSecure(link: 2, host: "example.com", port: 443)), .modem("\r\nOK\r\n\r\n+QSSLOPEN: 2,0\r\n"),
    ]
    static let bgOpenedEvents: [Ev] = [.ok(.configureTLS, 2), .ok(.configureTLS, 2), .ok(.configureTLS, 2),
                                       .ok(.configureTLS, 2), .ok(.connect, 2), .connected(2)]
    static let bgOpenedWritten = "AT+QSSLCFG=\"sslversion\",2,4\rAT+QSSLCFG=\"cacert\",2,\"UFS:ca.pem\"\r"
        + "AT+QSSLCFG=\"seclevel\",2,1\rAT+QSSLCFG=\"sni\",2,1\rAT+QSSLOPEN=1,2,2,\"example.com\",443,0\r"

    static let bgTranscripts: [Transcript] = [
        Transcript(
            name: "BG-T1, BG-T2: QSSLCFG settings in the link's SSL context, QSSLOPEN, OK then +QSSLOPEN: <id>,0",
            steps: bgOpened, events: bgOpenedEvents, written: bgOpenedWritten),
        Transcript(
            name: "BG-T3..T6: QSSLSEND, +QSSLURC recv, QSSLRECV with bytes that look like lines, +QSSLURC closed, QSSLCLOSE",
            steps: bgOpened + [
                .send("hello", link: 2), .modem("\r\n> "), .modem("\r\nSEND OK\r\n"),
                .modem("\r\n+QSSLURC: \"recv\",2\r\n"),
                .submit(.read(link: 2, maximum: 1500)),
                .modem("\r\n+QSSLRECV: 12\r\nOK\r\n+QSSLURC\r\n\r\nOK\r\n"),
                .submit(.read(link: 2, maximum: 1500)), .modem("\r\n+QSSLRECV: 0\r\n\r\nOK\r\n"),
                .modem("\r\n+QSSLURC: \"closed\",2\r\n"),
                .submit(.close(link: 2)), .modem("\r\nOK\r\n"),
            ],
            events: bgOpenedEvents + [.ok(.send, 2), .available(2, nil), .received(2, "OK\r\n+QSSLURC"), .ok(.read, 2),
                                      .ok(.read, 2), .closed(2), .ok(.close, 2)],
            written: bgOpenedWritten + "AT+QSSLSEND=2,5\rhelloAT+QSSLRECV=2,1500\rAT+QSSLRECV=2,1500\rAT+QSSLCLOSE=2\r"),
        Transcript(
            name: "BG-T7: +QSSLOPEN: <id>,-1 (handshake failed) is eproto; 566 econnrefused",
            steps: [
                .submit(.connectSecure(link: 0, host: "a.example", port: 443)), .modem("\r\nOK\r\n\r\n+QSSLOPEN: 0,-1\r\n"),
                .submit(.connectSecure(link: 1, host: "b.example", port: 443)), .modem("\r\nOK\r\n\r\n+QSSLOPEN: 1,566\r\n"),
            ],
            events: [.ok(.connect, 0), .connectFailed(0, .protocolError), .ok(.connect, 1), .connectFailed(1, .connectionRefused)],
            written: "AT+QSSLOPEN=1,0,0,\"a.example\",443,0\rAT+QSSLOPEN=1,1,1,\"b.example\",443,0\r"),
        Transcript(
            name: "a plain connect on the same id goes back to QIOPEN, QISEND and QIRD",
            steps: bgOpened + [
                .submit(.close(link: 2)), .modem("\r\nOK\r\n"),
                .submit(.connect(link: 2, host: "example.com", port: 80)), .modem("\r\nOK\r\n\r\n+QIOPEN: 2,0\r\n"),
                .submit(.read(link: 2, maximum: 100)), .modem("\r\n+QIRD: 0\r\n\r\nOK\r\n"),
            ],
            events: bgOpenedEvents + [.ok(.close, 2), .closed(2), .ok(.connect, 2), .connected(2), .ok(.read, 2)],
            written: bgOpenedWritten + "AT+QSSLCLOSE=2\rAT+QIOPEN=1,2,\"TCP\",\"example.com\",80,0,0\rAT+QIRD=2,100\r"),
        Transcript(
            name: "BG-T8: QFDEL (no such file is fine for the driver), QFUPL, CONNECT, the bytes, +QFUPL: <size>,<checksum>, OK",
            steps: [
                .submit(.configureTLS(link: 3, step: .quectelDeleteFile("UFS:up.pem"))), .modem("\r\n+CME ERROR: 405\r\n"),
                .upload("-----PEM\r\nOK\r\n", name: "UFS:up.pem", link: 3),
                .modem("\r\nCONNECT\r\n"), .modem("\r\n+QFUPL: 14,3a2b\r\n\r\nOK\r\n"),
            ],
            events: [.failed(.configureTLS, 3, .cmeError(405), .invalidArgument), .ok(.configureTLS, 3)],
            written: "AT+QFDEL=\"UFS:up.pem\"\rAT+QFUPL=\"UFS:up.pem\",14,60\r-----PEM\r\nOK\r\n"),
        Transcript(
            name: "a malformed +QSSLRECV header is a framing error, never data",
            steps: bgOpened + [.submit(.read(link: 2, maximum: 10)), .modem("\r\n+QSSLRECV: 5,junk\r\n")],
            events: bgOpenedEvents + [.framing(.malformedHeader)],
            written: bgOpenedWritten + "AT+QSSLRECV=2,10\r"),
    ]

    @Test(arguments: bgTranscripts)
    func bg96(_ t: Transcript) {
        check(t, BG96Dialect())
    }

    @Test("BG96 plans: CA file and level 1, level 0 without one; SNI for names; ALPN, a CA slot, a client slot or another SNI name are enotsup")
    func bg96Plans() throws {
        let d = BG96Dialect()
        #expect(try d.tlsSteps(link: 7, host: "example.com", settings: ModemTLSSettings(trust: .file("UFS:ca.pem")))
            == [.quectelAnyVersion, .quectelCACertificate("UFS:ca.pem"), .quectelSecurityLevel(1), .quectelServerName(true)])
        #expect(try d.tlsSteps(link: 0, host: "10.0.0.1", settings: ModemTLSSettings(trust: .none))
            == [.quectelAnyVersion, .quectelSecurityLevel(0)])
        for bad in [ModemTLSSettings(trust: .none, applicationProtocols: ["h2"]), ModemTLSSettings(trust: .slot(0)),
                    ModemTLSSettings(trust: .none, clientCertificateSlot: 0),
                    ModemTLSSettings(trust: .none, serverName: "other.example")] {
            #expect(reason { try d.tlsSteps(link: 0, host: "example.com", settings: bad) } == .notSupported)
        }
        #expect(reason { try d.tlsSteps(link: 0, host: "x", settings: ModemTLSSettings(trust: .file("a\",\"b"))) } == .invalidArgument)
        let pem: [UInt8] = Array("-----BEGIN CERTIFICATE-----\n".utf8)
        #expect(try d.tlsSteps(link: 1, host: "10.0.0.1", settings: ModemTLSSettings(trust: .upload(name: "UFS:up.pem", pem: pem)))
            == [.quectelAnyVersion, .quectelDeleteFile("UFS:up.pem"), .quectelUpload(name: "UFS:up.pem", pem: pem),
                .quectelCACertificate("UFS:up.pem"), .quectelSecurityLevel(1)])
        #expect(reason { try d.tlsSteps(link: 0, host: "x", settings: ModemTLSSettings(trust: .upload(name: "UFS:big.pem", pem: [UInt8](repeating: 65, count: 1461)))) }
            == .messageTooLong)
        #expect(reason { try ESPATDialect().tlsSteps(link: 0, host: "x", settings: ModemTLSSettings(trust: .upload(name: "a", pem: pem))) }
            == .notSupported)
    }

    // MARK: SIM800

    static func simMultiplexed() -> SIM800Dialect {
        var d = SIM800Dialect()
        d.commandSucceeded(.enableMultiplexing)
        return d
    }

    static let simTranscripts: [Transcript] = [
        Transcript(
            name: "SIM-T1, SIM-T2: CIPSSL=1, then CIPSTART answers OK and <n>, CONNECT OK",
            steps: [
                .submit(.configureTLS(link: 0, step: .simcomSSL(true))), .modem("\r\nOK\r\n"),
                .submit(.connectSecure(link: 0, host: "example.com", port: 443)), .modem("\r\nOK\r\n\r\n0, CONNECT OK\r\n"),
            ],
            events: [.ok(.configureTLS, 0), .ok(.connect, 0), .connected(0)],
            written: "AT+CIPSSL=1\rAT+CIPSTART=0,\"TCP\",\"example.com\",\"443\"\r"),
        Transcript(
            name: "SIM-T2: a failed TLS open is <n>, CONNECT FAIL: econnrefused",
            steps: [
                .submit(.configureTLS(link: 1, step: .simcomSSL(true))), .modem("\r\nOK\r\n"),
                .submit(.connectSecure(link: 1, host: "example.com", port: 443)), .modem("\r\nOK\r\n\r\n1, CONNECT FAIL\r\n"),
            ],
            events: [.ok(.configureTLS, 1), .ok(.connect, 1), .connectFailed(1, .connectionRefused)],
            written: "AT+CIPSSL=1\rAT+CIPSTART=1,\"TCP\",\"example.com\",\"443\"\r"),
        Transcript(
            name: "a secure open without CIPSSL=1 first is refused before anything is written",
            steps: [.submit(.connectSecure(link: 0, host: "example.com", port: 443))],
            events: [], written: "", errors: [.invalidArgument]),
    ]

    @Test(arguments: simTranscripts)
    func sim800(_ t: Transcript) {
        check(t, TLSTranscriptTests.simMultiplexed())
    }

    @Test("SIM800 plans: CIPSSL=1 only with no CA, SNI name or ALPN; after it a plain connect turns it off first (SIM-T1)")
    func sim800Plans() throws {
        var d = SIM800Dialect()
        #expect(try d.tlsSteps(link: 0, host: "example.com", settings: ModemTLSSettings(trust: .none)) == [.simcomSSL(true)])
        for bad in [ModemTLSSettings(trust: .none, applicationProtocols: ["h2"]), ModemTLSSettings(trust: .slot(0)),
                    ModemTLSSettings(trust: .file("ca.pem")), ModemTLSSettings(trust: .none, serverName: "example.com")] {
            #expect(reason { try d.tlsSteps(link: 0, host: "example.com", settings: bad) } == .notSupported)
        }
        #expect(d.plainConnectSteps(link: 0) == [])
        d.commandSucceeded(.configureTLS(link: 0, step: .simcomSSL(true)))
        #expect(d.plainConnectSteps(link: 1) == [.simcomSSL(false)])
        d.commandSucceeded(.configureTLS(link: 1, step: .simcomSSL(false)))
        #expect(d.plainConnectSteps(link: 1) == [])
        d.commandSucceeded(.configureTLS(link: 0, step: .simcomSSL(true)))
        d.moduleDidReset()
        #expect(d.plainConnectSteps(link: 1) == [])
    }

    @Test("injection: SNI names, ALPN protocols and CA file names with quotes, commas or CR-LF are einval on every dialect")
    func injection() {
        let hostile = ["a\"b", "a,b", "a\r\nAT+RST", ""]
        for h in hostile {
            #expect(reason { try ESPATDialect().tlsSteps(link: 0, host: "x", settings: ModemTLSSettings(trust: .none, serverName: h)) }
                == .invalidArgument, "ESP SNI \(h.debugDescription)")
            #expect(reason { try ESPATDialect().tlsSteps(link: 0, host: "x", settings: ModemTLSSettings(trust: .none, applicationProtocols: [h])) }
                == .invalidArgument, "ESP ALPN \(h.debugDescription)")
            #expect(reason { try BG96Dialect().tlsSteps(link: 0, host: "x", settings: ModemTLSSettings(trust: .file(h))) }
                == .invalidArgument, "BG96 cacert \(h.debugDescription)")
        }
        // The builders check again (a step made by hand).
        var w = CommandWriterProbe()
        #expect(w.reason(ESPATDialect(), .configureTLS(link: 0, step: .espServerName("a\"b"))) == .invalidArgument)
        #expect(w.reason(BG96Dialect(), .configureTLS(link: 0, step: .quectelCACertificate("x\r\nAT"))) == .invalidArgument)
        #expect(w.reason(BG96Dialect(), .connectSecure(link: 0, host: "h\",1\r", port: 1)) == .invalidArgument)
        #expect(w.reason(ESPATDialect(), .configureTLS(link: 0, step: .quectelAnyVersion)) == .notSupported)
    }
}

/// The reason a dialect call threw, or nil.
func reason<T>(_ body: () throws -> T) -> ModemReason? {
    do {
        _ = try body()
        return nil
    } catch {
        return (error as? ModemError)?.reason
    }
}

/// Builds commands through an engine, for the builders' own checks.
struct CommandWriterProbe {
    mutating func reason<D: ModemDialect>(_ dialect: D, _ command: ModemCommand) -> ModemReason? {
        var engine = ModemEngine(dialect: dialect, configuration: ModemConfiguration())
        do throws(ModemError) {
            try engine.submit(command, now: at(0))
            return nil
        } catch {
            return error.reason
        }
    }
}
