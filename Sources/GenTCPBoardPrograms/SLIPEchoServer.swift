import GenTCPBoard
import GenTCPCore
import GenTCPWire

/// The settings of the SLIP echo firmware: the line's addresses and speed, and its buffers.
public struct SLIPEchoSettings: Sendable {
    /// The board's address on the line.
    public var local: IPv4Address
    /// The host's address on the line.
    public var peer: IPv4Address
    /// The line's MTU.
    public var mtu: Int
    /// The line's speed (sets the RTO floor).
    public var baud: Int
    /// The largest message (`buffer`), and the echo's holding buffer.
    public var buffer: Int
    /// Each connection's send and receive ring in the stack. Three segments or more keep a
    /// serial line busy; 1,460 bytes is one segment at MTU 1006 (stop and wait).
    public var window: Int

    /// Settings for a board at `local` with the host at `peer`.
    public init(local: IPv4Address, peer: IPv4Address, mtu: Int = 1006, baud: Int = 115_200, buffer: Int = 1460,
                window: Int = 4096) {
        self.local = local
        self.peer = peer
        self.mtu = mtu
        self.baud = baud
        self.buffer = buffer
        self.window = window
    }

    /// The interface these settings describe.
    public var interface: SLIPInterfaceConfiguration {
        SLIPInterfaceConfiguration(local: local, peer: peer, mtu: mtu, baud: baud, maximumConnections: 2,
                                   maximumListeners: 3, sendBuffer: window, receiveBuffer: window)
    }
}

/// Echo (RFC 862, TCP 7), discard (RFC 863, TCP 9) and source (TCP 19: 1 MiB of a fixed
/// xorshift32 sequence, then close) over gen_tcp, as the simulated SLIP boards serve them.
///
/// Echo reads `{active, once}` and re-arms only after everything it read went out, so a peer
/// that sends faster than it reads fills the board's window instead of its memory; it closes
/// after the peer's FIN once every echoed byte was queued.
public struct SLIPEchoServer: BoardProgram, ~Copyable {
    enum Service: Equatable { case none, echo, discard, source }

    struct Session {
        var socket: BoardSocket?
        var service = Service.none
        /// Echo: bytes read and not yet taken by `send`. Source: bytes still to send.
        var pendingStart = 0
        var pendingEnd = 0
        var peerClosed = false
        var sourceLeft = 0
        var sourceState: UInt32 = 0x1234_5678
    }

    let settings: SLIPEchoSettings
    var listeners: [BoardListener?] = [nil, nil, nil]
    var sessions: [Session]
    let pending: UnsafeMutableRawBufferPointer
    /// Bytes the source service sends, in total.
    public static let sourceLength = 1 << 20

    /// A server with the given settings; two sessions at once.
    public init(settings: SLIPEchoSettings) {
        self.settings = settings
        sessions = [Session](repeating: Session(), count: 2)
        pending = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * settings.buffer, alignment: 8)
    }

    deinit { pending.deallocate() }

    public mutating func start<I: NetworkInterface & ~Copyable>(_ net: inout Net<I>) {
        let ports: [UInt16] = [7, 9, 19]
        for i in 0..<3 {
            do throws(SocketError) {
                let listener = try net.listen(port: ports[i], options: [.binary, .active(.once), .buffer(settings.buffer),
                                                                        .exitOnClose(false)])
                listeners[i] = listener
                try net.accept(listener)
            } catch {
                net.stop(status: 2)
            }
        }
    }

    public mutating func receive<I: NetworkInterface & ~Copyable>(_ message: BoardMessage, _ net: inout Net<I>) {
        switch message {
        case .accepted(let listener, let socket):
            try? net.accept(listener)  // keep accepting
            guard let s = sessions.firstIndex(where: { $0.socket == nil }) else {
                net.close(socket)
                return
            }
            sessions[s] = Session()
            sessions[s].socket = socket
            if listener == listeners[0] { sessions[s].service = .echo }
            if listener == listeners[1] {
                sessions[s].service = .discard
                try? net.setopts(socket, [.active(.active)])
            }
            if listener == listeners[2] {
                sessions[s].service = .source
                sessions[s].sourceLeft = SLIPEchoServer.sourceLength
                try? net.setopts(socket, [.active(.active)])
                pump(s, &net)
            }
        case .acceptFailed(let listener, _):
            try? net.accept(listener)
        case .tcp(let socket, let bytes):
            guard let s = session(socket) else { return }
            if sessions[s].service == .echo {
                let base = s * settings.buffer
                UnsafeMutableRawBufferPointer(rebasing: pending[base..<(base + bytes.count)]).copyMemory(from: bytes)
                sessions[s].pendingStart = 0
                sessions[s].pendingEnd = bytes.count
                pump(s, &net)
            }
        case .sendable(let socket):
            guard let s = session(socket) else { return }
            pump(s, &net)
        case .tcpClosed(let socket), .tcpError(let socket, _):
            guard let s = session(socket) else { return }
            sessions[s].peerClosed = true
            if sessions[s].service != .echo || sessions[s].pendingStart == sessions[s].pendingEnd { finish(s, &net) }
        default:
            break
        }
    }

    func session(_ socket: BoardSocket) -> Int? { sessions.firstIndex { $0.socket == socket } }

    /// Moves a session's bytes into the socket as far as it takes them.
    mutating func pump<I: NetworkInterface & ~Copyable>(_ s: Int, _ net: inout Net<I>) {
        guard let socket = sessions[s].socket else { return }
        let base = s * settings.buffer
        if sessions[s].service == .source {
            while sessions[s].sourceLeft > 0 {
                if sessions[s].pendingStart == sessions[s].pendingEnd {
                    let count = min(settings.buffer, sessions[s].sourceLeft)
                    for i in 0..<count {
                        var x = sessions[s].sourceState
                        x ^= x << 13
                        x ^= x >> 17
                        x ^= x << 5
                        sessions[s].sourceState = x
                        pending[base + i] = UInt8(truncatingIfNeeded: x)
                    }
                    sessions[s].pendingStart = 0
                    sessions[s].pendingEnd = count
                }
                guard sendPending(s, base, socket, &net) else { return }
                if sessions[s].pendingStart < sessions[s].pendingEnd { return }
                sessions[s].sourceLeft -= sessions[s].pendingEnd
                sessions[s].pendingStart = 0
                sessions[s].pendingEnd = 0
            }
            finish(s, &net)
            return
        }
        guard sendPending(s, base, socket, &net) else { return }
        if sessions[s].pendingStart < sessions[s].pendingEnd { return }  // `sendable` follows
        if sessions[s].peerClosed {
            finish(s, &net)
        } else {
            try? net.setopts(socket, [.active(.once)])
        }
    }

    /// False when the socket failed (the session is finished then).
    mutating func sendPending<I: NetworkInterface & ~Copyable>(_ s: Int, _ base: Int, _ socket: BoardSocket,
                                                               _ net: inout Net<I>) -> Bool {
        let start = sessions[s].pendingStart
        let end = sessions[s].pendingEnd
        guard start < end else { return true }
        do throws(SocketError) {
            sessions[s].pendingStart += try net.send(socket, UnsafeRawBufferPointer(rebasing: pending[(base + start)..<(base + end)]))
            return true
        } catch {
            finish(s, &net)
            return false
        }
    }

    mutating func finish<I: NetworkInterface & ~Copyable>(_ s: Int, _ net: inout Net<I>) {
        if let socket = sessions[s].socket { net.close(socket) }
        sessions[s] = Session()
    }
}

/// The SLIP echo firmware's entry point.
public enum SLIPEchoFirmware {
    /// Serves echo, discard and source on `board`'s line forever (returns only if the
    /// listeners cannot be opened: status 2).
    public static func run<B: Board>(board: consuming B, settings: SLIPEchoSettings) -> Int32 {
        var board = board
        board.log("gentcp: slip-echo starting")
        let seed = board.entropy()
        var runtime = BoardRuntime(
            board: board, interface: SLIPInterface(configuration: settings.interface, seed: seed),
            program: SLIPEchoServer(settings: settings), limits: limits(settings))
        return runtime.run()
    }

    /// The socket table the server needs: two sessions, three listeners, `buffer`-sized messages.
    public static func limits(_ settings: SLIPEchoSettings) -> NetLimits {
        NetLimits(sockets: 2, listeners: 3, timers: 1, largestBuffer: settings.buffer, notices: 16)
    }
}
