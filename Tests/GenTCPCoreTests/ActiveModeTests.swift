import GenTCPCore
import Testing

/// OTP's `{active, N}` arithmetic, case F59 of the acceptance list, as a table.
@Suite("Active mode arithmetic")
struct ActiveModeTests {
    struct Step: Sendable, CustomTestStringConvertible {
        var from: ActiveMode
        var apply: ActiveMode
        var to: ActiveMode?          // nil: einval, state unchanged
        var passive: Bool = false
        var testDescription: String { "\(from) + \(apply)" }
    }

    static let steps: [Step] = [
        Step(from: .count(3), apply: .count(-1), to: .count(2)),
        Step(from: .count(2), apply: .count(-5), to: .passive, passive: true),
        Step(from: .passive, apply: .count(0), to: .passive, passive: true),
        Step(from: .count(4), apply: .count(0), to: .count(4)),
        Step(from: .passive, apply: .count(32767), to: .count(32767)),
        Step(from: .count(32767), apply: .count(1), to: nil),
        Step(from: .passive, apply: .count(32768), to: nil),
        Step(from: .passive, apply: .count(-32769), to: nil),
        Step(from: .count(10), apply: .count(-32768), to: .passive, passive: true),
        Step(from: .active, apply: .count(5), to: .count(5)),
        Step(from: .once, apply: .count(5), to: .count(5)),
        Step(from: .count(5), apply: .once, to: .once),
        Step(from: .count(5), apply: .passive, to: .passive),
        Step(from: .count(5), apply: .active, to: .active),
    ]

    @Test(arguments: steps)
    func apply(_ step: Step) throws {
        if let expected = step.to {
            let change = try step.from.applying(step.apply)
            #expect(change.mode == expected)
            #expect(change.sendsPassive == step.passive)
        } else {
            #expect(throws: SocketError.invalidArgument) { try step.from.applying(step.apply) }
        }
    }

    @Test func deliveryCountsDown() {
        #expect(ActiveMode.count(2).afterDelivery() == .init(mode: .count(1), sendsPassive: false))
        #expect(ActiveMode.count(1).afterDelivery() == .init(mode: .passive, sendsPassive: true))
        #expect(ActiveMode.once.afterDelivery() == .init(mode: .passive, sendsPassive: false))
        #expect(ActiveMode.active.afterDelivery() == .init(mode: .active, sendsPassive: false))
        #expect(!ActiveMode.passive.delivers)
        #expect(ActiveMode.count(1).delivers)
    }
}

@Suite("Options")
struct OptionTests {
    @Test func defaultsMatchOTP() throws {
        let o = try SocketOptions(connect: [])
        #expect(o.active == .active)
        #expect(o.mode == .list)
        #expect(o.buffer == 1460)
        #expect(!o.nodelay && !o.keepalive && !o.reuseaddr)
        #expect(o.exitOnClose)
        #expect(!o.showEconnreset)
        #expect(o.sendTimeout == .infinity)
        #expect(o.linger == nil)
    }

    @Test func connectListIsAppliedInOrder() throws {
        let o = try SocketOptions(connect: [.binary, .active(.passive), .buffer(4096), .list, .nodelay(true)])
        #expect(o.mode == .list)
        #expect(o.buffer == 4096)
        #expect(o.active == .passive)
        #expect(o.nodelay)
    }

    @Test(arguments: [
        Option.buffer(0), .buffer(-5), .buffer(SocketOptions.maximumBuffer + 1), .backlog(5),
        .active(.count(40000)), .localPort(70000), .sendTimeout(.milliseconds(-1)), .linger(-1),
    ])
    func badConnectOptionIsBadarg(_ option: Option) {
        #expect(throws: SocketError.badArgument) { try SocketOptions(connect: [option]) }
    }

    @Test func setoptsIsAtomicAndEinval() throws {
        var o = try SocketOptions(connect: [.buffer(100)])
        #expect(throws: SocketError.invalidArgument) { try o.apply(all: [.buffer(200), .buffer(0)]) }
        #expect(o.buffer == 100)
        #expect(throws: SocketError.invalidArgument) { try o.apply(.localPort(5)) }
        #expect(throws: SocketError.invalidArgument) { try o.apply(.backlog(5)) }
        try o.apply(.backlog(7), kind: .listen)
        #expect(o.backlog == 7)
    }

    @Test func getoptsReturnsInRequestOrder() throws {
        let o = try SocketOptions(connect: [.binary, .buffer(77)])
        #expect(o.value(of: .buffer) == .buffer(77))
        #expect(o.value(of: .mode) == .binary)
        #expect(o.value(of: .active) == .active(.active))
    }
}

@Suite("Reasons")
struct ReasonTests {
    @Test func atomsAreUniqueAndLowercase() {
        var seen = Set<String>()
        for r in SocketError.Reason.allCases {
            let atom = "\(r.atom)"
            #expect(!atom.isEmpty)
            #expect(atom == atom.lowercased())
            #expect(seen.insert(atom).inserted, "duplicate atom \(atom)")
            #expect("\(r.summary)".count > 3)
        }
    }

    @Test func everyReasonOfTheSeedsIsPresent() {
        // mug's and toss's error lists (the POSIX set inet can return) plus GenTCP's own.
        let required = """
        closed timeout eaddrinuse eaddrnotavail eafnosupport ealready econnaborted econnrefused
        econnreset edestaddrreq ehostdown ehostunreach einprogress eisconn emsgsize enetdown
        enetunreach enopkg enoprotoopt enotconn enotty enotsock eproto eprotonosupport eprototype
        esocktnosupport etimedout ewouldblock exbadport exbadseq nxdomain eacces eagain ebadf
        ebadmsg ebusy edeadlk edeadlock edquot eexist efault efbig eftype eintr einval eio eisdir
        eloop emfile emlink emultihop enametoolong enfile enobufs enodev enolck enolink enoent
        enomem enospc enosr enostr enosys enotblk enotdir enotsup enxio eopnotsupp eoverflow eperm
        epipe erange erofs espipe esrch estale etxtbsy exdev not_owner badarg system_limit
        """.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        let atoms = Set(SocketError.Reason.allCases.map { "\($0.atom)" })
        for atom in required { #expect(atoms.contains(atom), "missing \(atom)") }
    }

    @Test func descriptionNamesAtomAndSummary() {
        #expect(SocketError(.connectionRefused).description == "econnrefused: connection refused")
        #expect(SocketError(.badArgument, "port must be 0...65535").description
                == "badarg: bad argument (port must be 0...65535)")
    }
}

@Suite("Addresses")
struct AddressTests {
    @Test(arguments: [
        ("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("255.255.255.255", "255.255.255.255"),
        ("::1", "::1"), ("::", "::"), ("fe80::1", "fe80::1"), ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:DB8::8:800:200C:417A", "2001:db8::8:800:200c:417a"), ("::ffff:1.2.3.4", "::ffff:102:304"),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("1::", "1::"), ("0:0:0:0:0:0:0:1", "::1"),
    ])
    func parsesAndFormats(_ input: String, _ canonical: String) throws {
        let a = try #require(IPAddress(input))
        #expect(a.description == canonical)
        #expect(IPAddress(canonical) == a)
    }

    @Test(arguments: [
        "", "localhost", "127.0.0.256", "127.0.0", "127.0.0.1.2", "01.2.3.4", "1.2.3.4 ", ":::", "1:2:3:4:5:6:7:8:9",
        "1::2::3", "12345::", "g::1", ":1", "1:", "::1.2.3", "1.2.3.4::",
    ])
    func rejects(_ input: String) {
        #expect(IPAddress(input) == nil)
    }

    @Test func bytesRoundTrip() throws {
        #expect(IPAddress.loopbackV4.bytes == [127, 0, 0, 1])
        #expect(IPAddress(bytes: [127, 0, 0, 1]) == .loopbackV4)
        let v6 = try #require(IPAddress("2001:db8::1"))
        #expect(IPAddress(bytes: v6.bytes) == v6)
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
        #expect(SocketAddress(.loopbackV6, port: 80).description == "[::1]:80")
    }
}

@Suite("Statistics and payloads")
struct StatisticsTests {
    @Test func countersFollowOTP() {
        var s = Statistics()
        s.sent(5); s.sent(5); s.sent(5); s.sent(0)
        #expect(s.sendOct == 15 && s.sendCnt == 4 && s.sendMax == 5)
        s.delivered(4); s.delivered(4); s.delivered(8)
        #expect(s.recvOct == 16 && s.recvCnt == 3 && s.recvMax == 8 && s.recvAvg == 5)
    }

    @Test func octetCountersDoNotWrapAt4GiB() {
        var s = Statistics()
        for _ in 0..<3 { s.delivered(Int(UInt32.max)) }
        #expect(s.recvOct == 3 * UInt64(UInt32.max))
    }

    @Test func payloadKeepsModeAndBytes() {
        let p = Payload([104, 105, 0xE9], mode: .list)
        #expect(p.mode == .list)
        #expect(p.text == "hi\u{E9}")
        #expect(Payload([1], mode: .binary) == .binary([1]))
    }

    @Test func timeoutConversion() throws {
        #expect(Timeout.infinity.nanoseconds == nil)
        #expect(Timeout.milliseconds(0).nanoseconds == 0)
        #expect(Timeout.milliseconds(5).nanoseconds == 5_000_000)
        #expect(throws: SocketError.badArgument) { try Timeout.milliseconds(-1).validated() }
    }
}
