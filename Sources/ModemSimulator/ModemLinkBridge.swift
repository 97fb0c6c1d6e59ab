import GenTCP
import GenTCPSerial
import Synchronization

/// Puts a ``ModemSimulator`` on a `SerialLink` (one end of a `MemoryLink` pair, or a pty):
/// what the host writes on the other end is the module's input; the module's output goes back
/// over the line, paced by it. The simulator's own backlog limit bounds what waits here.
public final class ModemLinkBridge: SerialLinkDelegate, @unchecked Sendable {
    /// The module's end of the line; the bridge is its delegate.
    public let link: any SerialLink
    /// The simulated module; `powerOn()` it to boot.
    public private(set) var modem: ModemSimulator!
    private let pending = Mutex<[UInt8]>([])
    private let armed = Atomic<Bool>(false)

    /// Creates the module (not yet powered on) on `link` and starts reading the line.
    /// - Parameters:
    ///   - link: the module's end of the line.
    ///   - configuration: dialect, firmware, faults, seed.
    ///   - driver: opens the module's sockets (`.posix` for loopback peers, `.sim(net, host:)`).
    public init(link: any SerialLink, configuration: ModemSimulatorConfiguration, driver: any Driver) {
        self.link = link
        modem = ModemSimulator(configuration, driver: driver) { [weak self] bytes in self?.output(bytes) }
        // The `portVanishesAfterBytes` fault: the module's end of the line goes away.
        modem.onPortVanished { link.close() }
        link.setDelegate(self)
        link.armRead()
    }

    /// The module's bytes still waiting for room on the line.
    public var backlog: Int { pending.withLock { $0.count } }

    private func output(_ bytes: [UInt8]) {
        pending.withLock { $0 += bytes }
        flush()
    }

    private func flush() {
        let more: Bool = pending.withLock { p in
            guard !p.isEmpty else { return false }
            if case .bytes(let n) = link.write(p) { p.removeFirst(n) }
            return !p.isEmpty
        }
        if more, !armed.exchange(true, ordering: .relaxed) { link.armWrite() }
    }

    public func linkIsReadable(_ link: any SerialLink) {
        while true {
            let (bytes, result) = link.read(upTo: 1024)
            guard case .bytes = result else { break }
            modem.input(bytes)
        }
        link.armRead()
    }

    public func linkIsWritable(_ link: any SerialLink) {
        armed.store(false, ordering: .relaxed)
        flush()
    }

    /// Powers the module off and closes the line.
    public func close() {
        modem.powerOff()
        link.close()
    }
}
