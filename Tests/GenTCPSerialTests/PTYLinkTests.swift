import GenTCPCore
import GenTCPSerial
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("PTYLink", .timeLimit(.minutes(1)))
struct PTYLinkTests {
    @Test("binary 0...255 crosses a pty pair byte-exact, both ways")
    func binaryBothWays() async throws {
        let pair = try PTYLink.openPair()
        defer { pair.master.close(); pair.slave.close() }
        let all = (0...255).map { UInt8($0) }
        let (toSlave, end1) = await Pump(writer: pair.master, reader: pair.slave, data: all).run()
        #expect(end1 == nil)
        #expect(toSlave == all)
        let reversed = Array(all.reversed())
        let (toMaster, end2) = await Pump(writer: pair.slave, reader: pair.master, data: reversed).run()
        #expect(end2 == nil)
        #expect(toMaster == reversed)
    }

    @Test("1 MiB crosses a pty pair byte-exact through reactor readiness")
    func oneMebibyte() async throws {
        let pair = try PTYLink.openPair(configuration: SerialConfiguration(baudRate: 921_600))
        defer { pair.master.close(); pair.slave.close() }
        let data = pattern(1 << 20)
        let pump = Pump(writer: pair.slave, reader: pair.master, data: data)
        let (received, end) = await pump.run()
        #expect(end == nil)
        // The pty's buffer (a few KiB) filled: the writer waited for write readiness.
        #expect(pump.writeWaits > 0)
        #expect(received.count == data.count)
        #expect(received == data)
    }

    @Test("readiness: armRead fires once the other side writes, not before, not inside the call")
    func readinessThroughReactor() async throws {
        let pair = try PTYLink.openPair()
        defer { pair.master.close(); pair.slave.close() }
        let probe = ReadinessProbe()
        pair.slave.setDelegate(probe.delegate())
        #expect(pair.slave.read(upTo: 16).1 == .wouldBlock)
        pair.slave.armRead()
        #expect(probe.count == 0)
        #expect(pair.master.write([1, 2, 3]) == .bytes(3))
        await probe.wait()
        let (bytes, result) = pair.slave.read(upTo: 16)
        #expect(result == .bytes(3))
        #expect(bytes == [1, 2, 3])
        #expect(pair.slave.read(upTo: 16).1 == .wouldBlock)
    }

    @Test("closing the master is a hang-up on the slave, for reads and writes")
    func hangUpOnMasterClose() async throws {
        let pair = try PTYLink.openPair()
        defer { pair.slave.close() }
        let probe = ReadinessProbe()
        pair.slave.setDelegate(probe.delegate())
        pair.slave.armRead()
        pair.master.close()
        await probe.wait()
        #expect(pair.slave.read(upTo: 16).1 == .hangUp)
        #expect(pair.slave.read(upTo: 16).1 == .hangUp)
        #expect(pair.slave.write([1]) == .hangUp)
    }

    @Test("closing the slave is a hang-up on the master, after the bytes it wrote")
    func hangUpOnSlaveClose() async throws {
        let pair = try PTYLink.openPair()
        defer { pair.master.close() }
        #expect(pair.slave.write([7, 8, 9]) == .bytes(3))
        pair.slave.close()
        let probe = ReadinessProbe()
        pair.master.setDelegate(probe.delegate())
        pair.master.armRead()
        await probe.wait()
        let (bytes, result) = pair.master.read(upTo: 16)
        #expect(result == .bytes(3))
        #expect(bytes == [7, 8, 9])
        #expect(pair.master.read(upTo: 16).1 == .hangUp)
    }

    @Test("a closed link reports closed")
    func closedLink() throws {
        let pair = try PTYLink.openPair()
        pair.master.close()
        pair.master.close()
        #expect(pair.master.read(upTo: 4).1 == .failed(.closed))
        #expect(pair.master.write([1]) == .failed(.closed))
        pair.slave.close()
    }

    @Test("opening by path: the slave's path opens as a second link; errors name the path")
    func openByPath() async throws {
        let pair = try PTYLink.openPair()
        defer { pair.master.close(); pair.slave.close() }
        let other = try PTYLink(path: pair.slavePath, configuration: SerialConfiguration(baudRate: 9600, flowControl: .xonXoff))
        defer { other.close() }
        #expect(other.description.contains(pair.slavePath))
        #expect(pair.master.write([0x42]) == .bytes(1))
        let probe = ReadinessProbe()
        other.setDelegate(probe.delegate())
        other.armRead()
        await probe.wait()
        // Either slave descriptor may get the byte; together they get it exactly once.
        let a = other.read(upTo: 4).0, b = pair.slave.read(upTo: 4).0
        #expect(a + b == [0x42])

        #expect(throws: SerialLinkError.self) { try PTYLink(path: "/dev/null") }
        do {
            _ = try PTYLink(path: "/dev/gentcp-no-such-tty")
            Issue.record("opened a missing path")
        } catch {
            #expect(error.reason == .noSuchFile)
            #expect(error.description.contains("/dev/gentcp-no-such-tty"))
        }
        do {
            _ = try PTYLink(path: pair.slavePath, configuration: SerialConfiguration(flowControl: .dtrDsr))
            Issue.record("DTR/DSR accepted")
        } catch {
            #expect(error.reason == .notSupported)
        }
        do {
            _ = try PTYLink(path: pair.slavePath, configuration: SerialConfiguration(baudRate: 12345))
            Issue.record("a baud rate without termios constant accepted")
        } catch {
            #expect(error.reason == .invalidArgument)
        }
    }

    @Test("opening applies raw 8N1, the speed and the flow control to the tty", arguments: [
        (FlowControl.none, 9600), (.rtsCts, 57_600), (.xonXoff, 921_600),
    ])
    func termiosApplied(flow: FlowControl, baud: Int) throws {
        let pair = try PTYLink.openPair()
        defer { pair.master.close(); pair.slave.close() }
        let link = try PTYLink(path: pair.slavePath, configuration: SerialConfiguration(baudRate: baud, flowControl: flow))
        defer { link.close() }
        #expect(link.configuration == SerialConfiguration(baudRate: baud, flowControl: flow))
        let fd = open(pair.slavePath, O_RDWR | O_NOCTTY | O_NONBLOCK)
        try #require(fd >= 0)
        defer { _ = close(fd) }
        var t = termios()
        try #require(tcgetattr(fd, &t) == 0)
        let expectedSpeed: Int32 = switch baud {
        case 9600: B9600
        case 57_600: B57600
        default: B921600
        }
        #expect(cfgetospeed(&t) == speed_t(expectedSpeed))
        #expect(cfgetispeed(&t) == speed_t(expectedSpeed))
        #expect(t.c_lflag & tcflag_t(ICANON | ECHO | ISIG) == 0)
        #expect(t.c_cflag & tcflag_t(CSIZE) == tcflag_t(CS8))
        #expect(t.c_cflag & tcflag_t(PARENB | CSTOPB) == 0)
        let crtscts: tcflag_t = 0o20000000000
        #expect((t.c_cflag & crtscts != 0) == (flow == .rtsCts))
        #expect((t.c_iflag & tcflag_t(IXON | IXOFF) != 0) == (flow == .xonXoff))
    }
}
