import CGenTCPShims
import GenTCPCore
#if canImport(Glibc)
import Glibc
#endif

/// A serial link over a pty or tty, driven through termios directly.
///
/// libserialport refuses ptys (its configuration calls issue `TIOCMGET`, which the pty driver
/// rejects with `ENOTTY`), so ptys go through here: `open(2)`, `cfmakeraw(3)`, `cfsetspeed(3)`,
/// `tcsetattr(3)`, non-blocking `read(2)`/`write(2)`, and readiness from the reactor. It works on
/// real ttys as well (the baud rate then takes effect); on a pty the baud rate is recorded but
/// **nothing is paced**: a pty moves bytes as fast as the kernel copies them.
///
/// ``openPair(configuration:)`` makes a connected pair with `openpty(3)`; give
/// ``PTYPair/slavePath`` to another program (a terminal, a board simulator) to talk to the
/// master.
///
/// Hang-up: when every descriptor of the other side is closed, the kernel reports `POLLHUP`;
/// reads and writes then return ``LinkIO/hangUp`` (after the bytes already received are read).
/// Keep the slave end of a pair open while other programs come and go on its path, or the
/// master sees a hang-up each time the last of them closes it.
///
/// See ``SerialLink`` for the threading rules.
public final class PTYLink: SerialLink {
    public let configuration: SerialConfiguration
    /// The device path (for the master of a pair: `ptmx for ` and the slave's path).
    public let path: String
    private let channel: DescriptorChannel

    private init(fd: Int32, path: String, configuration: SerialConfiguration) {
        self.configuration = configuration
        self.path = path
        channel = DescriptorChannel(fd: fd)
        channel.start(owner: self)
    }

    deinit { close() }

    /// Opens a pty or tty by path, raw, 8N1, non-blocking, with the given speed and flow control.
    ///
    /// Calls `open(2)` (`O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC`), `isatty(3)`,
    /// `tcgetattr(3)`, `cfmakeraw(3)`, `cfsetspeed(3)` and `tcsetattr(3)`.
    /// - Throws: ``SerialLinkError`` naming the path: `enoent` (no such device), `eacces`,
    ///   `enotty` (not a terminal), `einval` (a baud rate termios has no constant for),
    ///   `enotsup` (DTR/DSR flow control).
    public convenience init(path: String, configuration: SerialConfiguration = SerialConfiguration()) throws(SerialLinkError) {
        let fd = Glibc.open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .errno(cgentcp_errno(), path: path, operation: "open(2)") }
        guard isatty(fd) == 1 else {
            let code = cgentcp_errno()
            _ = Glibc.close(fd)
            throw .errno(code == 0 ? ENOTTY : code, path: path, operation: "isatty(3)")
        }
        do throws(SerialLinkError) {
            var attributes = termios()
            guard tcgetattr(fd, &attributes) == 0 else {
                throw SerialLinkError.errno(cgentcp_errno(), path: path, operation: "tcgetattr(3)")
            }
            try PTYLink.makeRaw(&attributes, configuration: configuration, path: path)
            guard tcsetattr(fd, TCSANOW, &attributes) == 0 else {
                throw SerialLinkError.errno(cgentcp_errno(), path: path, operation: "tcsetattr(3)")
            }
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
        self.init(fd: fd, path: path, configuration: configuration)
    }

    /// Both ends of a new pty, from ``PTYLink/openPair(configuration:)``.
    public struct PTYPair: Sendable {
        /// The master (controlling) end.
        public let master: PTYLink
        /// The slave end, a terminal device like a serial port.
        public let slave: PTYLink
        /// The slave's path (`/dev/pts/N`), for other programs to open.
        public let slavePath: String
    }

    /// Creates a connected pty pair with `openpty(3)`, raw (`cfmakeraw(3)`), at the given speed
    /// (`cfsetspeed(3)`; recorded, not paced), both ends non-blocking and close-on-exec. The
    /// slave's path comes from `ttyname_r(3)`.
    /// - Throws: ``SerialLinkError`` (`emfile`/`system_limit` when out of ptys or descriptors,
    ///   `einval` for a baud rate termios has no constant for, `enotsup` for DTR/DSR).
    public static func openPair(configuration: SerialConfiguration = SerialConfiguration()) throws(SerialLinkError) -> PTYPair {
        var attributes = termios()
        try makeRaw(&attributes, configuration: configuration, path: "/dev/ptmx")
        var master: Int32 = -1
        var slave: Int32 = -1
        guard openpty(&master, &slave, nil, &attributes, nil) == 0 else {
            throw .errno(cgentcp_errno(), path: "/dev/ptmx", operation: "openpty(3)")
        }
        var name = [CChar](repeating: 0, count: 256)
        let rc = ttyname_r(slave, &name, name.count)
        guard rc == 0 else {
            _ = Glibc.close(master)
            _ = Glibc.close(slave)
            throw .errno(rc, path: "/dev/ptmx", operation: "ttyname_r(3)")
        }
        let slavePath = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        for fd in [master, slave] {
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        return PTYPair(
            master: PTYLink(fd: master, path: "ptmx for \(slavePath)", configuration: configuration),
            slave: PTYLink(fd: slave, path: slavePath, configuration: configuration),
            slavePath: slavePath)
    }

    /// Raw mode (`cfmakeraw(3)`), receiver on, modem lines ignored, 8N1, flow control, speed
    /// (`cfsetspeed(3)`).
    private static func makeRaw(_ t: inout termios, configuration: SerialConfiguration, path: String) throws(SerialLinkError) {
        cfmakeraw(&t)
        t.c_cflag |= tcflag_t(CLOCAL | CREAD)
        t.c_cflag &= ~tcflag_t(CSTOPB | PARENB)
        switch configuration.flowControl {
        case .none:
            break
        case .rtsCts:
            t.c_cflag |= PTYLink.crtscts
        case .xonXoff:
            t.c_iflag |= tcflag_t(IXON | IXOFF)
        case .dtrDsr:
            throw SerialLinkError(.notSupported, path: path, operation: "tcsetattr(3)",
                                  message: "Linux termios has no DTR/DSR flow control")
        }
        guard let speed = PTYLink.speed(forBaud: configuration.baudRate) else {
            throw SerialLinkError(.invalidArgument, path: path, operation: "cfsetspeed(3)",
                                  message: "no termios speed constant for \(configuration.baudRate) baud")
        }
        guard cfsetspeed(&t, speed) == 0 else {
            throw .errno(cgentcp_errno(), path: path, operation: "cfsetspeed(3)")
        }
    }

    /// `CRTSCTS` from `<termios.h>` (0o20000000000), which does not import into Swift.
    private static let crtscts: tcflag_t = 0o20000000000

    /// The termios `Bnnn` constant for a baud rate, or nil when there is none.
    static func speed(forBaud baud: Int) -> speed_t? {
        let table: [(Int, Int32)] = [
            (50, B50), (75, B75), (110, B110), (134, B134), (150, B150), (200, B200), (300, B300),
            (600, B600), (1200, B1200), (1800, B1800), (2400, B2400), (4800, B4800), (9600, B9600),
            (19200, B19200), (38400, B38400), (57600, B57600), (115_200, B115200),
            (230_400, B230400), (460_800, B460800), (500_000, B500000), (576_000, B576000),
            (921_600, B921600), (1_000_000, B1000000), (1_152_000, B1152000),
            (1_500_000, B1500000), (2_000_000, B2000000), (2_500_000, B2500000),
            (3_000_000, B3000000), (3_500_000, B3500000), (4_000_000, B4000000),
        ]
        return table.first { $0.0 == baud }.map { speed_t($0.1) }
    }

    public func setDelegate(_ delegate: (any SerialLinkDelegate)?) { channel.setDelegate(delegate) }

    /// `read(2)` on the non-blocking descriptor; see ``SerialLink/read(into:)``.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> LinkIO {
        if buffer.isEmpty { return channel.isClosed ? .failed(.closed) : .bytes(0) }
        return channel.transfer { fd in
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            return n >= 0 ? n : -Int(cgentcp_errno())
        }
    }

    /// `write(2)` on the non-blocking descriptor; see ``SerialLink/write(_:)``.
    public func write(_ bytes: UnsafeRawBufferPointer) -> LinkIO {
        if bytes.isEmpty { return channel.isClosed ? .failed(.closed) : .bytes(0) }
        return channel.transfer { fd in
            let n = Glibc.write(fd, bytes.baseAddress, bytes.count)
            return n >= 0 ? n : -Int(cgentcp_errno())
        }
    }

    public func armRead() { channel.arm(read: true, write: false) }
    public func armWrite() { channel.arm(read: false, write: true) }

    /// Deregisters from the reactor and `close(2)`s the descriptor.
    public func close() { channel.close { _ = Glibc.close($0) } }

    /// E.g. `pty /dev/pts/3 (115200 8N1, flow none)`.
    public var description: String { "pty \(path) (\(configuration))" }
}
