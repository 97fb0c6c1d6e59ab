import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPStack
import GenTCPWire

/// One TCP connection of a ``SLIPDriver``: a handle into the engine's stack.
///
/// Reads take bytes out of the stack's receive buffer, whose free space is the window we
/// advertise: a socket nobody reads closes its window (the backpressure). Writes go into the
/// stack's send buffer (short counts when it fills).
final class SLIPConnection: Connection, @unchecked Sendable {
    let engine: SLIPEngine
    let handle: ConnectionHandle
    let local: SocketAddress
    let remote: SocketAddress
    // Guarded by the engine's lock (the port calls one method at a time per connection anyway).
    private var readShut = false
    private var resetReported = false
    private var closed = false

    init(engine: SLIPEngine, handle: ConnectionHandle, remote: SocketAddress) {
        self.engine = engine
        self.handle = handle
        self.remote = remote
        let port = (try? engine.stack.localPort(handle)) ?? 0
        local = SocketAddress(.v4(engine.local.rawValue), port: Int(port))
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        engine.locked { fx in
            if closed { return .failed(.closed) }
            if readShut { return .endOfStream }
            let result: IOResult
            do throws(TCPError) {
                switch try engine.withStackLocked({ (stack: inout Stack) throws(TCPError) in try stack.recv(handle, into: buffer) }) {
                case .data(let n): result = n > 0 ? .bytes(n) : .wouldBlock
                case .wouldBlock:
                    if let failure = engine.linkFailure { return .failed(failure) }
                    result = .wouldBlock
                case .endOfStream: result = .endOfStream
                }
            } catch {
                // A stopped driver aborted its connections: the stop's reason, not the abort's.
                result = .failed(engine.isShutDown ? (engine.linkFailure ?? .networkDown) : error.reason)
            }
            engine.pump(&fx)  // Reading may have opened the window: a window update may be due.
            return result
        }
    }

    func write(_ chunks: [UnsafeRawBufferPointer]) -> IOResult {
        engine.locked { fx in
            if closed { return .failed(.closed) }
            if let failure = engine.linkFailure { return .failed(failure) }
            var total = 0
            var failure: TCPError?
            for chunk in chunks where !chunk.isEmpty {
                do throws(TCPError) {
                    let n = try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in try stack.send(handle, chunk) }
                    total += n
                    if n < chunk.count { break }
                } catch {
                    failure = error
                    break
                }
            }
            if total > 0 {
                engine.pump(&fx)
                return .bytes(total)
            }
            if let failure {
                if failure == .connectionReset {
                    // As POSIX: the reset once, then a broken pipe.
                    if resetReported { return .failed(.brokenPipe) }
                    resetReported = true
                }
                return .failed(failure.reason)
            }
            return .wouldBlock
        }
    }

    func armRead() {
        engine.locked { fx in
            if closed { return }
            engine.armRead(handle, &fx)
        }
    }

    func armWrite() {
        engine.locked { fx in
            if closed { return }
            engine.armWrite(handle, &fx)
        }
    }

    func shutdown(_ how: ShutdownHow) -> SocketError.Reason? {
        engine.locked { fx in
            if closed { return .notConnected }
            if how != .write {
                readShut = true
                engine.armRead(handle, &fx)  // A waiting reader now sees the end.
            }
            if how != .read {
                do throws(TCPError) {
                    try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in try stack.shutdown(handle) }
                } catch {
                    return error == .closed ? .notConnected : error.reason
                }
                engine.pump(&fx)
            }
            return nil
        }
    }

    func close(abortive: Bool) {
        engine.locked { fx in
            if closed { return }
            closed = true
            engine.forget(handle)
            engine.withStackLocked { (stack: inout Stack) in
                if abortive { stack.abort(handle) } else { stack.close(handle) }
            }
            engine.pump(&fx)
        }
    }

    func localAddress() -> SocketAddress? { local }
    func remoteAddress() -> SocketAddress? { remote }

    func apply(_ option: Option) -> SocketError.Reason? {
        engine.locked { fx in
            if closed { return nil }
            do throws(TCPError) {
                switch option {
                case .nodelay(let on):
                    try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in try stack.setNoDelay(handle, on) }
                    engine.pump(&fx)  // Data Nagle held may go now.
                case .keepalive(let on):
                    try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in try stack.setKeepalive(handle, on) }
                    engine.pump(&fx)
                default:
                    break  // linger arrives as close(abortive:); reuseaddr means nothing here.
                }
            } catch {
                return nil  // A connection that already ended: nothing to change.
            }
            return nil
        }
    }
}

/// A listening socket of a ``SLIPDriver``.
final class SLIPListener: Listener, @unchecked Sendable {
    let engine: SLIPEngine
    let handle: ListenerHandle
    let address: SocketAddress
    private var closed = false

    init(engine: SLIPEngine, handle: ListenerHandle, address: SocketAddress) {
        self.engine = engine
        self.handle = handle
        self.address = address
    }

    func accept(delegate: any ConnectionDelegate) throws(SocketError) -> (any Connection)? {
        let result: Result<SLIPConnection?, SocketError> = engine.locked { fx in
            if closed { return .failure(.closed) }
            if let failure = engine.linkFailure { return .failure(SocketError(failure)) }
            do throws(TCPError) {
                let accepted = try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in try stack.accept(handle) }
                guard let accepted else {
                    engine.noneToAccept(handle)
                    return .success(nil)
                }
                engine.register(accepted, delegate: delegate)
                let peer = try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in try stack.remoteEndpoint(accepted) }
                let connection = SLIPConnection(
                    engine: engine, handle: accepted,
                    remote: SocketAddress(.v4(peer.address.rawValue), port: Int(peer.port)))
                engine.pump(&fx)
                return .success(connection)
            } catch {
                return .failure(SocketError(error.reason))
            }
        }
        return try result.get()
    }

    func armAccept() {
        engine.locked { fx in
            if closed { return }
            engine.armAccept(handle, &fx)
        }
    }

    func close() {
        engine.locked { fx in
            if closed { return }
            closed = true
            engine.removeListener(handle)
            engine.withStackLocked { (stack: inout Stack) in stack.close(handle) }
            engine.pump(&fx)
        }
    }

    func localAddress() -> SocketAddress? { address }
}
