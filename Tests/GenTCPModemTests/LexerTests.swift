import Testing
import GenTCPModem

/// A lexer token with its bytes copied out.
enum Tok: Equatable, CustomStringConvertible {
    case line(String)
    case prompt
    case start(ATPayloadHeader)
    case data(String)
    case end
    case error(ATLexerError)

    var description: String {
        switch self {
        case .line(let s): "line(\(s.debugDescription))"
        case .prompt: "prompt"
        case .start(let h): "start(\(h.kind),\(h.link.map { "\($0)" } ?? "-"),\(h.length))"
        case .data(let s): "data(\(s.debugDescription))"
        case .end: "end"
        case .error(let e): "error(\(e))"
        }
    }
}

/// Lexes `chunks` one after another, merging adjacent data pieces.
func lex(_ chunks: [[UInt8]], framing: ATFraming, maxLine: Int = 300, maxPayload: Int = 4096, maxPiece: Int = 1024,
         prompt: Bool = false) -> (tokens: [Tok], lexer: ATLexer) {
    var lexer = ATLexer(configuration: .init(maxLineLength: maxLine, maxPayloadLength: maxPayload,
                                             maxPieceLength: maxPiece, framing: framing))
    lexer.expectsPrompt = prompt
    var tokens: [Tok] = []
    for chunk in chunks {
        chunk.withUnsafeBytes { raw in
            var cursor = 0
            while let token = lexer.next(raw, cursor: &cursor) {
                switch token {
                case .line: tokens.append(.line(lexer.withLine { String(decoding: $0.bytes, as: UTF8.self) }))
                case .prompt: tokens.append(.prompt)
                case .payloadStart(let h): tokens.append(.start(h))
                case .payload(let p):
                    #expect(p.count <= maxPiece)
                    let s = String(decoding: p, as: UTF8.self)
                    if case .data(let prev)? = tokens.last { tokens[tokens.count - 1] = .data(prev + s) } else { tokens.append(.data(s)) }
                case .payloadEnd: tokens.append(.end)
                case .error(let e): tokens.append(.error(e))
                }
            }
            #expect(cursor == raw.count)
        }
    }
    return (tokens, lexer)
}

@Suite("AT lexer")
struct LexerTests {
    static let all: ATFraming = [.ipd, .cipRecvData, .qird, .cipRxGet]

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var input: [UInt8]
        var tokens: [Tok]
        var framing: ATFraming = LexerTests.all
        var prompt = false
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "lines end at LF; CR and spaces trimmed; empty lines skipped",
             input: b("\r\nOK\r\n\r\n  +CSQ: 17,0  \r\n\r\n"), tokens: [.line("OK"), .line("+CSQ: 17,0")]),
        Case(name: "3GPP echo AT<CR><CR><LF>", input: b("AT\r\r\nOK\r\n"), tokens: [.line("AT"), .line("OK")]),
        Case(name: "prompt only when expected", input: b("\r\n> "), tokens: [.prompt], prompt: true),
        Case(name: "ESP prompt after OK", input: b("\r\nOK\r\n\r\n>"), tokens: [.line("OK"), .prompt], prompt: true),
        Case(name: "> is text when no prompt is expected", input: b(">x\r\n"), tokens: [.line(">x")]),
        Case(name: "+IPD with link", input: b("+IPD,3,5:a\r\nOK"), tokens: [.start(.init(kind: .ipd, link: 3, length: 5)), .data("a\r\nOK"), .end]),
        Case(name: "+IPD without link", input: b("+IPD,2:>>"), tokens: [.start(.init(kind: .ipd, link: nil, length: 2)), .data(">>"), .end]),
        Case(name: "+IPD with remote info", input: b("+IPD,1,2,\"1.2.3.4\",80:hi"),
             tokens: [.start(.init(kind: .ipd, link: 1, length: 2, remote: ModemEndpoint(address: .ipv4(0x0102_0304), port: 80))),
                      .data("hi"), .end]),
        Case(name: "+IPD mux 0 with remote info", input: b("+IPD,2,\"::1\",80:hi"),
             tokens: [.start(.init(kind: .ipd, link: nil, length: 2, remote: ModemEndpoint(address: .ipv6(high: 0, low: 1), port: 80))),
                      .data("hi"), .end]),
        Case(name: "passive +IPD notice is a line", input: b("\r\n+IPD,0,424\r\n"), tokens: [.line("+IPD,0,424")]),
        Case(name: "zero-length payload", input: b("+IPD,0,0:OK\r\n"),
             tokens: [.start(.init(kind: .ipd, link: 0, length: 0)), .end, .line("OK")]),
        Case(name: "+CIPRECVDATA:<n>,", input: b("+CIPRECVDATA:3,a,b\r\nOK\r\n"),
             tokens: [.start(.init(kind: .cipRecvData, link: nil, length: 3)), .data("a,b"), .end, .line("OK")]),
        Case(name: "+CIPRECVDATA,<n>: (AT 1.7)", input: b("+CIPRECVDATA,2:\r\n\r\nOK\r\n"),
             tokens: [.start(.init(kind: .cipRecvData, link: nil, length: 2)), .data("\r\n"), .end, .line("OK")]),
        Case(name: "+QIRD: <n> then data", input: b("+QIRD: 4\r\nOK\r\n\r\n\r\nOK\r\n"),
             tokens: [.start(.init(kind: .qird, link: nil, length: 4)), .data("OK\r\n"), .end, .line("OK")]),
        Case(name: "+QIRD: 0 is an empty payload", input: b("+QIRD: 0\r\n\r\nOK\r\n"),
             tokens: [.start(.init(kind: .qird, link: nil, length: 0)), .end, .line("OK")]),
        Case(name: "+QIRD: a,b,c is a line", input: b("+QIRD: 12,6,6\r\n"), tokens: [.line("+QIRD: 12,6,6")]),
        Case(name: "+CIPRXGET: 2 with link", input: b("+CIPRXGET: 2,1,3,7\r\nabc\r\nOK\r\n"),
             tokens: [.start(.init(kind: .cipRxGet, link: 1, length: 3, leftInModule: 7)), .data("abc"), .end, .line("OK")]),
        Case(name: "+CIPRXGET: 2 single link", input: b("+CIPRXGET: 2,3,0\r\nabc"),
             tokens: [.start(.init(kind: .cipRxGet, link: nil, length: 3, leftInModule: 0)), .data("abc"), .end]),
        Case(name: "SIMCom's pushed +RECEIVE,<link>,<len>: then CR-LF and data", input: b("+RECEIVE,2,4:\r\nOK\r\n\r\nCLOSED\r\n"),
             tokens: [.start(.init(kind: .receive, link: 2, length: 4)), .data("OK\r\n"), .end, .line("CLOSED")],
             framing: [.cipRxGet, .ipd, .receive]),
        Case(name: "+RECEIVE without its colon, or with a bad link, is not a header",
             input: b("+RECEIVE,2,4\r\n+RECEIVE,x,4:\r\n"),
             tokens: [.line("+RECEIVE,2,4"), .error(.malformedHeader)], framing: [.cipRxGet, .ipd, .receive]),
        Case(name: "+CIPRXGET: 1 and 4 are lines", input: b("+CIPRXGET: 1,1\r\n+CIPRXGET: 4,1,20\r\n"),
             tokens: [.line("+CIPRXGET: 1,1"), .line("+CIPRXGET: 4,1,20")]),
        Case(name: "headers outside the framing are lines", input: b("+QIRD: 3\r\nabc\r\n"),
             tokens: [.line("+QIRD: 3"), .line("abc")], framing: [.ipd]),
        Case(name: "oversized announce is an error, resync at LF",
             input: b("+IPD,0,99999999:junk\r\nOK\r\n"), tokens: [.error(.payloadTooLong(announced: 99_999_999)), .line("OK")]),
        Case(name: "oversized line-header announce", input: b("+QIRD: 5000\r\nOK\r\n"),
             tokens: [.error(.payloadTooLong(announced: 5000)), .line("OK")]),
        Case(name: "malformed headers", input: b("+IPD,-1,3:abc\r\n+IPD,,:x\r\n+CIPRXGET: 2,-3,1,0\r\nOK\r\n"),
             tokens: [.error(.malformedHeader), .error(.malformedHeader), .error(.malformedHeader), .line("OK")]),
        Case(name: "control bytes spoil a line; junk before a line is skipped",
             input: [0x00, 0x07, 0xFF] + b("ready\r\nbad\u{1}line\r\nOK\r\n"), tokens: [.line("ready"), .line("OK")]),
        Case(name: "+IPD glued to garbage mid-line", input: b("noise+IPD,0,1:x"),
             tokens: [.start(.init(kind: .ipd, link: 0, length: 1)), .data("x"), .end]),
    ]

    @Test(arguments: cases)
    func tokens(_ c: Case) {
        // Whole, then cut at every point, then byte by byte: always the same tokens.
        let whole = lex([c.input], framing: c.framing, prompt: c.prompt).tokens
        #expect(whole == c.tokens)
        for i in 1..<max(c.input.count, 1) {
            let split = lex([Array(c.input[..<i]), Array(c.input[i...])], framing: c.framing, prompt: c.prompt).tokens
            #expect(split == c.tokens, "cut at \(i)")
        }
        #expect(lex(c.input.map { [$0] }, framing: c.framing, prompt: c.prompt).tokens == c.tokens)
    }

    @Test("an overlong line is dropped and counted; the next line is intact")
    func overlong() {
        let (tokens, lexer) = lex([b(String(repeating: "A", count: 40) + "\r\nOK\r\n")], framing: [], maxLine: 16)
        #expect(tokens == [.error(.lineTooLong), .line("OK")])
        #expect(lexer.statistics.overlongLines == 1)
        #expect(lexer.statistics.garbageBytes == 41)  // the 40 bytes and the CR of the dropped line
    }

    @Test("an overlong line still lets an +IPD inside it resynchronise")
    func overlongThenIPD() {
        let (tokens, _) = lex([b(String(repeating: "Z", count: 40) + "+IPD,0,2:hi")], framing: [.ipd], maxLine: 16)
        #expect(tokens == [.error(.lineTooLong), .start(.init(kind: .ipd, link: 0, length: 2)), .data("hi"), .end])
    }

    @Test("garbage is counted")
    func garbageCount() {
        let (_, lexer) = lex([[0x00, 0x01, 0x02] + b("x\u{1}y\r\nab+IPD,0,1:z")], framing: [.ipd])
        #expect(lexer.statistics.garbageLines == 1)
        #expect(lexer.statistics.garbageBytes == 3 + 4 + 2)
    }

    @Test("payload pieces never exceed the piece size and are views of the input")
    func pieces() {
        let payload = [UInt8](repeating: 0x41, count: 100)
        let input = b("+IPD,0,100:") + payload
        var lexer = ATLexer(configuration: .init(maxPieceLength: 9, framing: [.ipd]))
        var total = 0
        input.withUnsafeBytes { raw in
            var cursor = 0
            while let token = lexer.next(raw, cursor: &cursor) {
                if case .payload(let p) = token {
                    #expect(p.count <= 9)
                    #expect(p.baseAddress! >= raw.baseAddress! && p.baseAddress! + p.count <= raw.baseAddress! + raw.count)
                    total += p.count
                }
            }
        }
        #expect(total == 100)
        #expect(lexer.statistics.payloadBytes == 100)
    }

    @Test("the length is checked against the maximum before anything else happens")
    func maximumIsInclusive() {
        let (ok, _) = lex([b("+IPD,0,8:12345678")], framing: [.ipd], maxPayload: 8)
        #expect(ok == [.start(.init(kind: .ipd, link: 0, length: 8)), .data("12345678"), .end])
        let (bad, _) = lex([b("+IPD,0,9:123456789\r\n")], framing: [.ipd], maxPayload: 8)
        #expect(bad == [.error(.payloadTooLong(announced: 9))])
    }

    @Test("ATFields reads leniently")
    func fields() {
        b("+X: 1, -2 ,\"a,b\",,x7,  9 ").withUnsafeBytes { raw in
            var f = ATLine(raw).fields(after: 3)
            #expect(f.nextInteger() == 1)
            #expect(f.nextInteger() == -2)
            #expect(String(decoding: f.nextString().bytes, as: UTF8.self) == "a,b")
            #expect(f.nextInteger() == nil)
            #expect(f.nextInteger() == nil)
            #expect(f.nextInteger() == 9)
            #expect(f.isAtEnd)
        }
    }

    @Test("addresses", arguments: [
        ("93.184.216.34", ModemAddress.ipv4(0x5DB8_D822)),
        ("\"10.0.0.1\"", .ipv4(0x0A00_0001)),
        ("::1", .ipv6(high: 0, low: 1)),
        ("::", .ipv6(high: 0, low: 0)),
        ("fe80::1:2", .ipv6(high: 0xFE80_0000_0000_0000, low: 0x0000_0000_0001_0002)),
        ("2606:2800:220:1:248:1893:25c8:1946", .ipv6(high: 0x2606_2800_0220_0001, low: 0x0248_1893_25C8_1946)),
        ("::ffff:1.2.3.4", .ipv6(high: 0, low: 0x0000_FFFF_0102_0304)),
        ("1::", .ipv6(high: 0x0001_0000_0000_0000, low: 0)),
    ])
    func addresses(_ text: String, _ address: ModemAddress) {
        b(text).withUnsafeBytes { #expect(ModemAddress(text: ATLine($0)) == address) }
    }

    @Test("not addresses", arguments: ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1234.1.1.1", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9",
                                       "12345::", "g::1", "1.2.3.4:80", ":1", "1:"])
    func notAddresses(_ text: String) {
        b(text).withUnsafeBytes { #expect(ModemAddress(text: ATLine($0)) == nil) }
    }
}
