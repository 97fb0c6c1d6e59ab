import GenTCP
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Connects a ``ModemSimulator`` to a pair of byte pipes: what arrives on `readFD` is the host's
/// input, and the module's output is written to `writeFD` (a pty master, a socketpair, two
/// pipes). The reader thread ends at end of file or on an error.
public final class ModemPipeBridge: Sendable {
    /// The simulated module, powered on at creation.
    public let simulator: ModemSimulator
    /// The descriptor the host's bytes are read from (not closed by the bridge).
    public let readFD: Int32
    /// The descriptor the module's output is written to (not closed by the bridge).
    public let writeFD: Int32
    private let stopped = Atomic<Bool>(false)

    /// Creates the simulator with its output going to `writeFD`, powers it on and starts reading
    /// `readFD` on a thread of its own.
    public init(_ configuration: ModemSimulatorConfiguration, driver: any Driver, readFD: Int32, writeFD: Int32) {
        self.readFD = readFD
        self.writeFD = writeFD
        simulator = ModemSimulator(configuration, driver: driver) { bytes in
            ModemPipeBridge.writeAll(writeFD, bytes)
        }
        simulator.powerOn()
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let bridge = Unmanaged<ModemPipeBridge>.fromOpaque(arg!).takeRetainedValue()
            bridge.readLoop()
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "ModemSimulator: cannot start the pipe reader (pthread_create \(rc))")
        pthread_detach(thread)
    }

    /// Stops feeding input (the thread leaves at its next read) and powers the module off.
    public func stop() {
        stopped.store(true, ordering: .relaxed)
        simulator.powerOff()
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopped.load(ordering: .relaxed) {
            let n = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
            if n > 0 {
                simulator.input(buffer[0..<n])
            } else if n < 0, errno == EINTR {
                continue
            } else {
                return
            }
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n > 0 {
                offset += n
            } else if n < 0, errno == EINTR || errno == EAGAIN {
                continue
            } else {
                return
            }
        }
    }
}
