import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPStack
import GenTCPWire

/// One UDP socket of a ``SLIPDriver``: a handle into the engine's stack, whose fixed receive
/// queue (`recbuf` bytes) drops whole datagrams when full and counts them.
final class SLIPDatagramEndpoint: DatagramEndpoint, @unchecked Sendable {
    let engine: SLIPEngine
    let handle: DatagramHandle
    let local: SocketAddress
    // Guarded by the engine's lock.
    private var closed = false

    init(engine: SLIPEngine, handle: DatagramHandle, port: UInt16) {
        self.engine = engine
        self.handle = handle
        local = SocketAddress(.v4(engine.local.rawValue), port: Int(port))
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> DatagramReceiveResult {
        engine.locked { _ in
            if closed { return .failed(.closed) }
            let receipt: DatagramReceipt
            do throws(TCPError) {
                receipt = try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in
                    try stack.receiveDatagram(handle, into: buffer)
                }
            } catch {
                return .failed(engine.isShutDown ? (engine.linkFailure ?? .networkDown) : error.reason)
            }
            switch receipt {
            case .datagram(let copied, let length, let source, let port):
                return .datagram(copied: copied, length: length, source: SocketAddress(.v4(source.rawValue), port: Int(port)))
            case .refused:
                return .error(.connectionRefused)
            case .wouldBlock:
                // Datagrams that came before the line failed are still delivered, then its reason.
                if let failure = engine.linkFailure { return .failed(engine.isShutDown ? .networkDown : failure) }
                return .wouldBlock
            }
        }
    }

    func send(_ chunks: [UnsafeRawBufferPointer], to destination: SocketAddress?) -> DatagramSendResult {
        engine.locked { fx in
            if closed { return .failed(.closed) }
            if let failure = engine.linkFailure { return .failed(engine.isShutDown ? .networkDown : failure) }
            var target: (address: IPv4Address, port: UInt16)?
            if let destination {
                guard let v4 = SLIPConfiguration.v4(destination.address) else { return .failed(.addressFamilyNotSupported) }
                target = (v4, UInt16(destination.port))
            }
            do throws(TCPError) {
                try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in
                    try stack.sendDatagram(handle, chunks: chunks, to: target)
                }
            } catch {
                if error == .wouldBlock { return .wouldBlock }
                return .failed(error.reason)
            }
            engine.pump(&fx)
            return .sent
        }
    }

    func sendPermit() -> Int {
        engine.locked { _ in
            closed || engine.linkFailure != nil ? 0 : engine.withStackLocked { (stack: inout Stack) in stack.datagramSendRoom }
        }
    }

    func armReceive() { engine.locked { fx in engine.armDatagram(handle, read: true, &fx) } }
    func armSend() { engine.locked { fx in engine.armDatagram(handle, read: false, &fx) } }

    func connect(to peer: SocketAddress?) async throws(SocketError) {
        let result: SocketError? = engine.locked { _ in
            if closed { return .closed }
            var target: (address: IPv4Address, port: UInt16)?
            if let peer {
                guard let v4 = SLIPConfiguration.v4(peer.address) else {
                    return SocketError(.addressFamilyNotSupported, "SLIP carries IPv4 only")
                }
                target = (v4, UInt16(peer.port))
            }
            do throws(TCPError) {
                try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in try stack.connectDatagram(handle, to: target) }
                return nil
            } catch {
                return SocketError(error.reason)
            }
        }
        if let result { throw result }
    }

    func apply(_ option: Option) -> SocketError.Reason? {
        engine.locked { _ in
            switch option {
            case .broadcast(let on):
                try? engine.withStackLocked { (stack: inout Stack) throws(TCPError) in try stack.setDatagramBroadcast(handle, on) }
                return nil
            case .addMembership, .dropMembership:
                return .notSupported  // A point-to-point line has no multicast groups.
            default:
                return nil
            }
        }
    }

    func close() {
        engine.locked { _ in
            guard !closed else { return }
            closed = true
            engine.forgetDatagram(handle)
            engine.withStackLocked { (stack: inout Stack) in stack.closeDatagram(handle) }
        }
    }

    func localAddress() -> SocketAddress? { local }

    var droppedDatagramCount: UInt64 {
        engine.locked { _ in (try? engine.withStackLocked { (stack: inout Stack) throws(TCPError) in try stack.droppedDatagrams(handle) }) ?? 0 }
    }

    var maximumDatagramSize: Int { engine.configuration.mtu - 28 }
}

extension SLIPDriver: DatagramDriver {
    /// Opens a UDP socket in the stack on our address on the line (port 0: a free port from
    /// 49152...65535), with a receive queue of `recbuf` bytes (64 KiB by default) and
    /// `max(16, recbuf / 256)` datagrams, allocated now. No fragmentation: the largest datagram
    /// is the line's MTU less 28 bytes (978 at MTU 1006). Multicast memberships are `enotsup`.
    /// - Throws: `eaddrnotavail` for an address other than ours or the any address,
    ///   `eafnosupport` for IPv6, `eaddrinuse`, `emfile` when every UDP slot is taken,
    ///   `enetdown` after ``close()``, the line's reason once it failed.
    public func openDatagram(
        on address: SocketAddress, options: DatagramOptions, delegate: any DatagramDelegate
    ) async throws(SocketError) -> any DatagramEndpoint {
        guard let v4 = SLIPConfiguration.v4(address.address) else {
            throw SocketError(.addressFamilyNotSupported, "SLIP carries IPv4 only")
        }
        let local = configuration.localAddress
        guard v4.rawValue == 0 || IPAddress.v4(v4.rawValue) == local else {
            throw SocketError(.addressNotAvailable, "not the line's local address")
        }
        let engine = self.engine
        let limit = options.queueLimit
        let result: Result<SLIPDatagramEndpoint, SocketError> = engine.locked { _ in
            if let failure = engine.linkFailure { return .failure(SocketError(engine.isShutDown ? .networkDown : failure)) }
            do throws(TCPError) {
                let handle = try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in
                    try stack.openDatagram(port: UInt16(address.port), queueBytes: limit.bytes,
                                           queueDatagrams: limit.datagrams, reuse: options.reuseaddr)
                }
                if options.broadcast {
                    try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in try stack.setDatagramBroadcast(handle, true) }
                }
                let port = try engine.withStackLocked { (stack: inout Stack) throws(TCPError) in try stack.datagramPort(handle) }
                engine.registerDatagram(handle, delegate: delegate)
                return .success(SLIPDatagramEndpoint(engine: engine, handle: handle, port: port))
            } catch {
                return .failure(SocketError(error.reason))
            }
        }
        return try result.get()
    }
}

extension DatagramHandle {
    /// Slot, then generation: the order the slip engine walks its tables in.
    var rank: UInt32 { UInt32(index) << 16 | UInt32(generation) }
}
