@testable import GenTCPBoard
import GenTCPCore
import Testing

/// An interface the test drives by hand: bytes, ends and failures arrive when the test says.
struct ScriptedInterface: NetworkInterface {
    struct Link {
        var open = true
        var inbox: [UInt8] = []
        var ended = false
        var failure: SocketError?
        var sent: [UInt8] = []
        var room = 1 << 20
        var closedGracefully = false
        var aborted = false
    }
    var links: [Link] = []
    var events: [InterfaceEvent] = []
    var up = true

    mutating func start(now: MillisecondInstant) { events.append(.up) }
    mutating func input(_ bytes: UnsafeRawBufferPointer, now: MillisecondInstant) {}
    mutating func output(into buffer: UnsafeMutableRawBufferPointer, now: MillisecondInstant) -> Int { 0 }
    mutating func poll(now: MillisecondInstant) -> MillisecondInstant? { nil }
    mutating func nextEvent() -> InterfaceEvent? { events.isEmpty ? nil : events.removeFirst() }
    var isUp: Bool { up }
    mutating func connect(to address: IPAddress, port: UInt16, settings: InterfaceSettings, now: MillisecondInstant)
        throws(SocketError) -> InterfaceConnection {
        links.append(Link())
        return InterfaceConnection(raw: UInt32(links.count - 1))
    }
    mutating func listen(port: UInt16, backlog: Int, settings: InterfaceSettings) throws(SocketError) -> InterfaceListener {
        InterfaceListener(raw: UInt32(port))
    }
    mutating func accept(_ listener: InterfaceListener) throws(SocketError) -> InterfaceConnection? { nil }
    mutating func close(listener: InterfaceListener) {}
    mutating func send(_ c: InterfaceConnection, _ bytes: UnsafeRawBufferPointer, now: MillisecondInstant) throws(SocketError) -> Int {
        let i = Int(c.raw)
        if let failure = links[i].failure { throw failure }
        let n = min(bytes.count, links[i].room)
        links[i].sent += bytes[0..<n]
        links[i].room -= n
        return n
    }
    mutating func recv(_ c: InterfaceConnection, into buffer: UnsafeMutableRawBufferPointer, now: MillisecondInstant)
        throws(SocketError) -> InterfaceRead {
        let i = Int(c.raw)
        if !links[i].inbox.isEmpty {
            let n = min(buffer.count, links[i].inbox.count)
            for k in 0..<n { buffer[k] = links[i].inbox[k] }
            links[i].inbox.removeFirst(n)
            return .data(n)
        }
        if let failure = links[i].failure { throw failure }
        return links[i].ended ? .end : .wouldBlock
    }
    func readableCount(_ c: InterfaceConnection) -> Int { links[Int(c.raw)].inbox.count }
    func unsentCount(_ c: InterfaceConnection) -> Int { 0 }
    mutating func shutdown(_ c: InterfaceConnection, now: MillisecondInstant) throws(SocketError) {}
    mutating func close(_ c: InterfaceConnection, now: MillisecondInstant) { links[Int(c.raw)].closedGracefully = true }
    mutating func abort(_ c: InterfaceConnection, now: MillisecondInstant) { links[Int(c.raw)].aborted = true }
    mutating func configure(_ c: InterfaceConnection, noDelay: Bool, keepalive: Bool) throws(SocketError) {}
    func peer(_ c: InterfaceConnection) -> (address: IPAddress, port: UInt16)? { (.loopbackV4, 7) }
    func local(_ c: InterfaceConnection) -> (address: IPAddress, port: UInt16)? { (.loopbackV4, 40000) }
    func peerFinished(_ c: InterfaceConnection) -> Bool { links[Int(c.raw)].ended || links[Int(c.raw)].failure != nil }
}

/// A message copied out of the delivery buffer, for comparisons.
enum Seen: Equatable {
    case tcp(Int), closed, error(SocketError.Reason), passive, connected, connectFailed(SocketError.Reason)
    case received(Int), recvFailed(SocketError.Reason), sendable, timer(UInt32), up, other

    init(_ m: BoardMessage) {
        switch m {
        case .tcp(_, let b): self = .tcp(b.count)
        case .tcpClosed: self = .closed
        case .tcpError(_, let r): self = .error(r)
        case .tcpPassive: self = .passive
        case .connected: self = .connected
        case .connectFailed(_, let e): self = .connectFailed(e.reason)
        case .received(_, let b): self = .received(b.count)
        case .recvFailed(_, let e): self = .recvFailed(e.reason)
        case .sendable: self = .sendable
        case .timer(let t): self = .timer(t)
        case .networkUp: self = .up
        default: self = .other
        }
    }
}

/// gen_tcp's rules on the board's socket layer, against a scripted interface: what OTP does
/// (../shared/reference/gen-tcp-semantics.md §4-§9, §13) is what `Net` must do.
@Suite("board sockets follow gen_tcp")
final class NetSemanticsTests {
    var net = Net(interface: ScriptedInterface(), limits: NetLimits(sockets: 2, listeners: 1, timers: 2, largestBuffer: 4096),
                  now: 0)

    init() {
        net.interface.start(now: 0)
        _ = drain()
    }

    func drain() -> [Seen] {
        var seen: [Seen] = []
        while let m = net.nextMessage() { seen.append(Seen(m)) }
        return seen
    }

    func open(_ options: [Option]) throws -> BoardSocket {
        let s = try net.connect(to: .loopbackV4, port: 7, options: options)
        net.interface.events.append(.connected(InterfaceConnection(raw: UInt32(net.interface.links.count - 1))))
        #expect(drain() == [.connected])
        return s
    }

    func arrive(_ count: Int, link: Int = 0) { net.interface.links[link].inbox += [UInt8](repeating: 0x41, count: count) }

    @Test("{active, once}: one message of at most buffer bytes, then passive until re-armed")
    func activeOnce() throws {
        let s = try open([.binary, .active(.once), .buffer(1000)])
        arrive(2500)
        #expect(drain() == [.tcp(1000)])
        #expect(try net.getopts(s, [.active]) == [.active(.passive)])
        try net.setopts(s, [.active(.once)])
        #expect(drain() == [.tcp(1000)])
        try net.setopts(s, [.active(.active)])
        #expect(drain() == [.tcp(500)])
    }

    @Test("{active, N}: N messages then tcp_passive at once; the counter's arithmetic is OTP's")
    func activeN() throws {
        let s = try open([.binary, .active(.count(2)), .buffer(100)])
        arrive(500)
        #expect(drain() == [.tcp(100), .tcp(100), .passive])
        try net.setopts(s, [.active(.count(3))])
        try net.setopts(s, [.active(.count(-5))])   // 3 - 5 clamps to 0: passive, and tcp_passive
        #expect(drain() == [.passive])
        #expect(throws: SocketError.invalidArgument) { try net.setopts(s, [.active(.count(40000))]) }
        #expect(try net.getopts(s, [.active]) == [.active(.passive)])
    }

    @Test("passive recv: length 0 takes up to buffer; an exact length waits; a timeout keeps the bytes")
    func passiveRecv() throws {
        let s = try open([.binary, .active(.passive), .buffer(300)])
        arrive(1000)
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = try buffer.withUnsafeMutableBytes { raw throws(SocketError) in try net.recv(s, into: raw) }
        #expect(n == 300)
        try net.recv(s, length: 800, timeout: 50)
        #expect(throws: SocketError.alreadyInProgress) { try net.recv(s, length: 1) }
        #expect(drain() == [])                 // 700 here, 800 asked: it waits
        net.now = 60
        #expect(drain() == [.recvFailed(.timeout)])
        arrive(100)
        try net.recv(s, length: 800)
        #expect(drain() == [.received(800)])   // nothing was lost to the timeout
        #expect(try net.getstat(s).recvOct == 1100)
    }

    @Test("recv in an active mode is einval; a locally closed socket answers closed")
    func recvRules() throws {
        let s = try open([.binary, .active(.active)])
        #expect(throws: SocketError.invalidArgument) { try net.recv(s, length: 0) }
        net.close(s)
        net.close(s)   // twice is fine
        #expect(throws: SocketError.closed) { _ = try net.send(s, [1, 2, 3]) }
        #expect(throws: SocketError.closed) { try net.setopts(s, [.active(.once)]) }
    }

    @Test("passive end of stream: the bytes, then closed once, then enotconn")
    func passiveEnd() throws {
        let s = try open([.binary, .active(.passive)])
        arrive(10)
        net.interface.links[0].ended = true
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(try buffer.withUnsafeMutableBytes { raw throws(SocketError) in try net.recv(s, into: raw) } == 10)
        #expect(throws: SocketError.closed) { _ = try buffer.withUnsafeMutableBytes { raw throws(SocketError) in try net.recv(s, into: raw) } }
        #expect(throws: SocketError.notConnected) { _ = try buffer.withUnsafeMutableBytes { raw throws(SocketError) in try net.recv(s, into: raw) } }
    }

    @Test("an exact recv that can never be completed fails closed, dropping the short tail (OTP)")
    func exactAcrossEnd() throws {
        let s = try open([.binary, .active(.passive)])
        arrive(5)
        net.interface.links[0].ended = true
        try net.recv(s, length: 10)
        #expect(drain() == [.recvFailed(.closed)])
    }

    @Test("active end: data first, then tcp_closed; with exit_on_close the socket is dead (einval, closed)")
    func activeEnd() throws {
        let s = try open([.binary, .active(.active)])
        arrive(10)
        net.interface.links[0].ended = true
        #expect(drain() == [.tcp(10), .closed])
        #expect(throws: SocketError.invalidArgument) { try net.setopts(s, [.active(.once)]) }
        #expect(throws: SocketError.closed) { _ = try net.send(s, [1]) }
        #expect(net.interface.links[0].closedGracefully)
    }

    @Test("a reset: tcp_closed alone, or tcp_error econnreset then tcp_closed with show_econnreset")
    func reset() throws {
        _ = try open([.binary, .active(.active)])
        net.interface.links[0].failure = SocketError(.connectionReset)
        #expect(drain() == [.closed])
        _ = try open([.binary, .active(.active), .showEconnreset(true)])
        net.interface.links[1].failure = SocketError(.connectionReset)
        #expect(drain() == [.error(.connectionReset), .closed])
        #expect(net.interface.links[1].aborted)
    }

    @Test("a failure other than a reset is always shown: tcp_error etimedout, tcp_closed")
    func timedOut() throws {
        _ = try open([.binary, .active(.once)])
        net.interface.links[0].failure = SocketError(.connectionTimedOut)
        #expect(drain() == [.error(.connectionTimedOut), .closed])
    }

    @Test("{active, once} holds the end back until re-armed, as OTP holds tcp_closed")
    func endWhilePassive() throws {
        let s = try open([.binary, .active(.once)])
        arrive(10)
        net.interface.links[0].ended = true
        #expect(drain() == [.tcp(10)])
        #expect(drain() == [])
        try net.setopts(s, [.active(.once)])
        #expect(drain() == [.closed])
    }

    @Test("a short send is followed by sendable when the interface makes room")
    func shortSend() throws {
        let s = try open([.binary, .active(.passive)])
        net.interface.links[0].room = 3
        #expect(try net.send(s, [1, 2, 3, 4, 5]) == 3)
        #expect(try net.getstat(s).sendOct == 3)
        net.interface.links[0].room = 100
        net.interface.events.append(.writable(InterfaceConnection(raw: 0)))
        #expect(drain() == [.sendable])
        #expect(try net.send(s, [4, 5]) == 2)
        #expect(net.interface.links[0].sent == [1, 2, 3, 4, 5])
    }

    @Test("connect: enetdown before the network is up, emfile when full, timeout as a message")
    func connectRules() throws {
        net.interface.events.append(.down(SocketError(.networkDown)))
        _ = drain()
        #expect(throws: SocketError(.networkDown)) { _ = try net.connect(to: .loopbackV4, port: 7) }
        net.interface.events.append(.up)
        #expect(drain() == [.up])
        _ = try net.connect(to: .loopbackV4, port: 7, timeout: 100)
        _ = try net.connect(to: .loopbackV4, port: 7)
        #expect(throws: SocketError(.tooManyOpenFiles)) { _ = try net.connect(to: .loopbackV4, port: 7) }
        #expect(throws: SocketError.badArgument) { _ = try net.connect(to: .loopbackV4, port: 7, options: [.buffer(0)]) }
        net.now = 150
        #expect(drain() == [.connectFailed(.timeout)])
        #expect(net.interface.links[0].aborted)
    }

    @Test("timers fire once, in order of their deadlines")
    func timers() throws {
        try net.sendAfter(20, tag: 2)
        try net.sendAfter(10, tag: 1)
        #expect(throws: SocketError(.systemLimit)) { try net.sendAfter(5, tag: 3) }
        net.now = 15
        #expect(drain() == [.timer(1)])
        net.now = 25
        #expect(drain() == [.timer(2)])
        #expect(drain() == [])
    }
}
