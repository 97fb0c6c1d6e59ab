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
    /// Sessions at once (echo, discard and source together). Every one is a preallocated slot
    /// in the stack: with 1,460-byte windows, 3.5 KB of heap each (two rings, reassembly and
    /// the SACK scoreboard). A connection beyond them waits: the stack drops its SYN, as for a
    /// full backlog, and the peer's retransmitted SYN gets in once a session ends.
    public var connections: Int

    /// Settings for a board at `local` with the host at `peer`.
    public init(local: IPv4Address, peer: IPv4Address, mtu: Int = 1006, baud: Int = 115_200, buffer: Int = 1460,
                window: Int = 4096, connections: Int = 2) {
        self.local = local
        self.peer = peer
        self.mtu = mtu
        self.baud = baud
        self.buffer = buffer
        self.window = window
        self.connections = max(connections, 1)
    }

    /// The interface these settings describe.
    public var interface: SLIPInterfaceConfiguration {
        SLIPInterfaceConfiguration(local: local, peer: peer, mtu: mtu, baud: baud, maximumConnections: connections,
                                   maximumListeners: 3, sendBuffer: window, receiveBuffer: window)
    }
}

/// Echo (RFC 862, TCP 7), discard (RFC 863, TCP 9) and source (TCP 19: 1 MiB of a fixed
/// xorshift32 sequence, then close) over gen_tcp, as the simulated SLIP boards serve them.
///
/// It holds no bytes of its own: echo reads `{active, once}` and re-arms only while the
/// connection's send buffer has room for a whole message (`buffer` bytes), so every send takes
/// all it is given, and a peer that sends faster than it reads fills the board's window instead
/// of its memory. Source sends a chunk only when it fits. Where the room is not there yet, a
/// 10 ms timer looks again. Echo closes after the peer's FIN once every byte was queued.
public struct SLIPEchoServer: BoardProgram, ~Copyable {
    enum Service: Equatable { case none, echo, discard, source }

    struct Session {
        var socket: BoardSocket?
        var service = Service.none
        var sourceLeft = 0
        var sourceState: UInt32 = 0x1234_5678
        var waiting = false
    }

    let settings: SLIPEchoSettings
    var listeners: [BoardListener?] = [nil, nil, nil]
    var sessions: [Session]
    /// Bytes the source service sends, in total.
    public static let sourceLength = 1 << 20
    /// The source's chunk, generated on the stack.
    static let chunk = 256

    /// A server with the given settings (``SLIPEchoSettings/connections`` sessions at once).
    /// `window` must hold at least one `buffer` (the echo waits for that much room before it
    /// reads again).
    public init(settings: SLIPEchoSettings) {
        self.settings = settings
        sessions = [Session](repeating: Session(), count: settings.connections)
    }

    public mutating func start<I: NetworkInterface & ~Copyable>(_ net: inout Net<I>) {
        let ports: [UInt16] = [7, 9, 19]
        guard settings.window >= settings.buffer else {
            net.stop(status: 2)
            return
        }
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
                pumpSource(s, &net)
            }
        case .acceptFailed(let listener, _):
            try? net.accept(listener)
        case .tcp(let socket, let bytes):
            guard let s = session(socket), sessions[s].service == .echo else { return }
            do throws(SocketError) {
                // Room for `buffer` bytes was there when the socket was armed: all is taken.
                guard try net.send(socket, bytes) == bytes.count else { return finish(s, &net) }
            } catch {
                return finish(s, &net)
            }
            rearm(s, &net)
        case .timer(let tag):
            let s = Int(tag)
            guard s < sessions.count, sessions[s].waiting else { return }
            sessions[s].waiting = false
            if sessions[s].service == .echo { rearm(s, &net) } else { pumpSource(s, &net) }
        case .tcpClosed(let socket), .tcpError(let socket, _):
            // Everything read was queued already: the close follows it out (FIN after the data).
            guard let s = session(socket) else { return }
            finish(s, &net)
        default:
            break
        }
    }

    func session(_ socket: BoardSocket) -> Int? { sessions.firstIndex { $0.socket == socket } }

    /// Reads the next message once the send buffer can take all of it.
    mutating func rearm<I: NetworkInterface & ~Copyable>(_ s: Int, _ net: inout Net<I>) {
        guard let socket = sessions[s].socket else { return }
        if net.unsent(socket) + settings.buffer <= settings.window {
            try? net.setopts(socket, [.active(.once)])
        } else {
            wait(s, &net)
        }
    }

    mutating func wait<I: NetworkInterface & ~Copyable>(_ s: Int, _ net: inout Net<I>) {
        sessions[s].waiting = true
        do throws(SocketError) { try net.sendAfter(10, tag: UInt32(s)) } catch { finish(s, &net) }
    }

    /// Sends source chunks while they fit; closes after the last.
    mutating func pumpSource<I: NetworkInterface & ~Copyable>(_ s: Int, _ net: inout Net<I>) {
        guard let socket = sessions[s].socket else { return }
        var chunk: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        while sessions[s].sourceLeft > 0 {
            let room = settings.window - net.unsent(socket)
            let count = min(min(SLIPEchoServer.chunk, sessions[s].sourceLeft), room)
            guard count > 0 else { return wait(s, &net) }
            var state = sessions[s].sourceState
            let sent: Int? = withUnsafeMutableBytes(of: &chunk) { raw in
                for i in 0..<count {
                    state ^= state << 13
                    state ^= state >> 17
                    state ^= state << 5
                    raw[i] = UInt8(truncatingIfNeeded: state)
                }
                return try? net.send(socket, UnsafeRawBufferPointer(rebasing: raw[0..<count]))
            }
            guard sent == count else { return finish(s, &net) }
            sessions[s].sourceState = state
            sessions[s].sourceLeft -= count
        }
        finish(s, &net)
    }

    mutating func finish<I: NetworkInterface & ~Copyable>(_ s: Int, _ net: inout Net<I>) {
        if let socket = sessions[s].socket { net.close(socket) }
        if sessions[s].waiting { net.cancelTimer(tag: UInt32(s)) }
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

    /// The socket table the server needs: its sessions, three listeners, a look-again timer per
    /// session, `buffer`-sized messages.
    public static func limits(_ settings: SLIPEchoSettings) -> NetLimits {
        NetLimits(sockets: settings.connections, listeners: 3, timers: settings.connections, largestBuffer: settings.buffer, notices: 16)
    }
}
