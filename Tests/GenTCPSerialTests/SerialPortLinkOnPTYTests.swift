import GenTCPCore
import GenTCPSerial
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// True when tools/ptyshim/run-smoke.sh started this process with the shim preloaded.
private let shimLoaded = getenv("GENTCP_PTYSHIM") != nil && getenv("LD_PRELOAD") != nil

/// libserialport on a pty: runs only under the LD_PRELOAD shim (`tools/ptyshim/run-smoke.sh`),
/// because libserialport refuses ptys (no sysfs entry, and `TIOCMGET` fails with ENOTTY).
@Suite("SerialPortLinkOnPTY",
       .enabled(if: shimLoaded, "needs LD_PRELOAD=libptyshim.so: run tools/ptyshim/run-smoke.sh"),
       .timeLimit(.minutes(1)))
struct SerialPortLinkOnPTYTests {
    @Test("open a pty slave through libserialport, move bytes both ways byte-exact")
    func bothWays() async throws {
        let pair = try PTYLink.openPair()
        defer { pair.master.close(); pair.slave.close() }
        let port = try SerialPortLink(path: pair.slavePath,
                                      configuration: SerialConfiguration(baudRate: 12345, flowControl: .rtsCts))
        defer { port.close() }
        #expect(port.description.contains(pair.slavePath))
        try port.setDTR(true)
        try port.setRTS(true)
        let all = (0...255).map { UInt8($0) }
        let (inbound, end1) = await Pump(writer: pair.master, reader: port, data: all).run()
        #expect(end1 == nil)
        #expect(inbound == all)
        let data = pattern(1 << 18, seed: 5)
        let (outbound, end2) = await Pump(writer: port, reader: pair.master, data: data).run()
        #expect(end2 == nil)
        #expect(outbound == data)
    }

    @Test("closing the pty master is a hang-up, though sp_nonblocking_read says 0")
    func hangUp() async throws {
        let pair = try PTYLink.openPair()
        defer { pair.slave.close() }
        let port = try SerialPortLink(path: pair.slavePath)
        defer { port.close() }
        #expect(port.read(upTo: 8).1 == .wouldBlock)
        let probe = ReadinessProbe()
        port.setDelegate(probe.delegate())
        port.armRead()
        pair.master.close()
        await probe.wait()
        #expect(port.read(upTo: 8).1 == .hangUp)
        #expect(port.write([1]) == .hangUp)
    }

    @Test("DTR/DSR flow control is enotsup on Linux, and the error says which call")
    func dtrDsr() throws {
        let pair = try PTYLink.openPair()
        defer { pair.master.close(); pair.slave.close() }
        do {
            _ = try SerialPortLink(path: pair.slavePath, configuration: SerialConfiguration(flowControl: .dtrDsr))
            Issue.record("DTR/DSR accepted")
        } catch {
            #expect(error.reason == .notSupported)
            #expect(error.operation == "sp_set_flowcontrol")
        }
    }
}
