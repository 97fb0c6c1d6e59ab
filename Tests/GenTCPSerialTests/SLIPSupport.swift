import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSLIP
import GenTCPSim
import GenTCPStack
import GenTCPWire
import Synchronization
import Testing

let slipHost = IPAddress(10, 0, 0, 1)
let slipBoard = IPAddress(10, 0, 0, 2)

/// Two slip drivers joined by a paced `MemoryLink` on a simulated runtime: `host` is the driver
/// under test, `board` plays the board (its services are GenTCP sockets on its own stack).
struct SLIPLine: Sendable {
    let net: SimNetwork
    let host: SLIPDriver
    let board: SLIPDriver
    let hostLink: MemoryLink
    let boardLink: MemoryLink
    let baud: Int

    var runtime: SimRuntime { net.runtime }

    init(
        baud: Int = 115_200, mtu: Int = 1006, faults: LineFaults = .none, seed: UInt64 = 1,
        linkBuffer: Int = 1024, tcp: ConnectionOptions = SLIPConfiguration.defaultTCP,
        boardTCP: ConnectionOptions? = nil, capturePath: String? = nil, dedicatedLink: Bool = true,
        boardMTU: Int? = nil
    ) throws {
        net = try SimNetwork(seed: seed, configuration: SimNetwork.Configuration(deadlockTimeout: .seconds(5)))
        self.baud = baud
        (hostLink, boardLink) = try MemoryLink.pair(
            configuration: SerialConfiguration(baudRate: baud), runtime: net.runtime, bufferSize: linkBuffer,
            faults: faults, seed: seed, names: ("memory:host", "memory:board"))
        var hostConfiguration = SLIPConfiguration(
            local: slipHost, peer: slipBoard, mtu: mtu, seed: seed, tcp: tcp, capturePath: capturePath)
        hostConfiguration.dedicatedLink = dedicatedLink
        var boardConfiguration = SLIPConfiguration(
            local: slipBoard, peer: slipHost, mtu: boardMTU ?? mtu, peerName: "host", seed: seed ^ 0xB0A4D, tcp: boardTCP ?? tcp)
        boardConfiguration.dedicatedLink = dedicatedLink
        host = try SLIPDriver(link: hostLink, configuration: hostConfiguration, runtime: net.runtime)
        board = try SLIPDriver(link: boardLink, configuration: boardConfiguration, runtime: net.runtime)
    }

    /// Runs `body` inside the simulation, then closes both drivers as the run's last step, so
    /// the teardown happens on the virtual clock at the instant the body ended, and the counters
    /// read afterwards never depend on how long the machine took to get there. (Closed from the
    /// test's task after the run, the board's FIN went unanswered while the clock ran on and
    /// retransmitted it, as often as the task was delayed.)
    @discardableResult
    func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let (host, board) = (self.host, self.board)
        do {
            return try await net.run {
                defer {
                    host.close()
                    board.close()
                }
                return try await body()
            }
        } catch {
            // A deadlock leaves the body suspended: close from here (the clock is stopped).
            host.close()
            board.close()
            throw error
        }
    }

    /// Sleeps on the virtual clock.
    func sleep(milliseconds: Int) async {
        await runtime.sleep(nanoseconds: UInt64(milliseconds) * 1_000_000)
    }

    /// Starts an echo service on the board: every accepted connection gets its bytes back until
    /// it closes its sending side; then the board closes.
    func startEcho(port: Int = 7) throws -> ListenSocket {
        let listener = try ListenSocket.listen(port: port, options: [.binary, .active(.passive), .buffer(16384)], driver: board)
        net.spawn {
            while true {
                let s = try await listener.accept()
                Process.spawn(runtime: self.runtime) {
                    defer { s.close() }
                    while true {
                        guard let data = try? await s.recv(0) else { return }
                        try await s.send(data.bytes)
                    }
                }
            }
        }
        return listener
    }

    /// A discard service on the board that answers, once the client half-closes, with the
    /// SHA-256 of what it got (32 bytes) and closes.
    func startDigestSink(port: Int = 9) throws -> ListenSocket {
        let listener = try ListenSocket.listen(
            port: port, options: [.binary, .active(.passive), .buffer(16384), .exitOnClose(false)], driver: board)
        net.spawn {
            while true {
                let s = try await listener.accept()
                Process.spawn(runtime: self.runtime) {
                    defer { s.close() }
                    var digest = SHA256()
                    while let data = try? await s.recv(0) {
                        digest.update(data.bytes)
                    }
                    try await s.send(digest.finalize())
                }
            }
        }
        return listener
    }

    /// A source service on the board: sends `data` then closes.
    func startSource(port: Int = 19, data: [UInt8]) throws -> ListenSocket {
        let listener = try ListenSocket.listen(port: port, options: [.binary, .active(.passive)], driver: board)
        net.spawn {
            while true {
                let s = try await listener.accept()
                Process.spawn(runtime: self.runtime) {
                    defer { s.close() }
                    var offset = 0
                    while offset < data.count {
                        let end = min(data.count, offset + 8192)
                        try await s.send(data[offset..<end])
                        offset = end
                    }
                }
            }
        }
        return listener
    }
}

/// Reads until end of stream; returns everything.
func readAll(_ s: Socket, expected: Int? = nil) async throws -> [UInt8] {
    var all: [UInt8] = []
    if let expected { all.reserveCapacity(expected) }
    while true {
        do throws(SocketError) {
            all += try await s.recv(0).bytes
        } catch {
            if error.reason == .closed { return all }
            throw error
        }
    }
}

/// Reads until end of stream, hashing.
func digestAll(_ s: Socket) async throws -> (count: Int, digest: [UInt8]) {
    var digest = SHA256()
    var count = 0
    while true {
        do throws(SocketError) {
            let bytes = try await s.recv(0).bytes
            count += bytes.count
            digest.update(bytes)
        } catch {
            if error.reason == .closed { return (count, digest.finalize()) }
            throw error
        }
    }
}

/// Sends `data` in chunks.
func sendAll(_ s: Socket, _ data: [UInt8], chunk: Int = 8192) async throws {
    var offset = 0
    while offset < data.count {
        let end = min(data.count, offset + chunk)
        try await s.send(data[offset..<end])
        offset = end
    }
}

/// The best one-way payload rate of a SLIP line (bytes/s): each full segment carries `mtu - 40`
/// payload bytes in `mtu` datagram bytes, which grow by 2/256 from escaping random bytes, plus
/// the two ENDs; 10 bit times a byte (8N1).
func slipLimit(baud: Int, mtu: Int) -> Double {
    let mss = Double(mtu - 40)
    let wire = Double(mtu) * (1 + 2.0 / 256) + 2
    return Double(baud) / 10 * mss / wire
}
