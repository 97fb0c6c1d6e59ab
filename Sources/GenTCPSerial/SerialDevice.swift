import CGenTCPShims
import GenTCPCore
#if canImport(Glibc)
import Glibc
#endif

/// What a serial path names, decided from the device itself rather than from its name.
///
/// Users pass all sorts of paths for one device: `/dev/pts/3`, a symbolic link made by socat's
/// `link=` or an emulator's `--pty-link`, udev's `/dev/serial/by-id/usb-...`. ``init(path:)``
/// resolves symbolic links (`realpath(3)`), then looks at what the resolved path is
/// (`stat(2)`):
///
/// - a character device whose major number is a Unix98 pty slave's (136...143 on Linux), the
///   pty multiplexer `/dev/ptmx`, or anything under `/dev/pts/`: a ``Kind/pty``, opened through
///   ``PTYLink`` (libserialport refuses ptys);
/// - any other character device that is a terminal: a ``Kind/port``, opened through
///   ``SerialPortLink``. Whether it is a terminal comes from sysfs
///   (`/sys/dev/char/MAJOR:MINOR/subsystem` is `tty`) where there is one, so that checking never
///   opens the port (opening toggles DTR, which resets many boards); without sysfs, from
///   `isatty(3)` on the opened device;
/// - a regular file, a directory, a FIFO, a socket, a block device, or a character device that
///   is not a terminal (`/dev/null`): not a serial port, `enotty`;
/// - nothing at all (or a symbolic link to nothing): `enoent`, "no such device".
public struct SerialDevice: Sendable, Hashable {
    /// How the device is opened.
    public enum Kind: Sendable, Hashable {
        /// A pseudo-terminal: ``PTYLink``.
        case pty
        /// A real serial port (UART, USB adapter, Bluetooth serial): ``SerialPortLink``.
        case port
    }

    /// The path as given.
    public let path: String
    /// The path with every symbolic link resolved.
    public let resolvedPath: String
    /// How the device is opened.
    public let kind: Kind

    /// Classifies `path` without opening it (except to ask `isatty(3)` where sysfs cannot say).
    /// - Throws: ``SerialLinkError`` naming `path`: `enoent` ("no such device") when nothing is
    ///   there, `enotty` ("not a serial port: ...", saying what it is instead) for anything that
    ///   is not a terminal device, or the errno of a failed `realpath(3)`/`stat(2)` (`eacces`...).
    public init(path: String) throws(SerialLinkError) {
        self.path = path
        guard !path.isEmpty else {
            throw SerialLinkError(.noSuchFile, path: path, operation: "realpath(3)", message: "no such device: an empty path")
        }
        guard let resolved = realpath(path, nil) else {
            let code = cgentcp_errno()
            if code == ENOENT || code == ENOTDIR {
                var link = stat()
                let dangling = lstat(path, &link) == 0 && (link.st_mode & S_IFMT) == S_IFLNK
                throw SerialLinkError(.noSuchFile, path: path, operation: "realpath(3)",
                                      message: dangling ? "no such device: a symbolic link to nothing" : "no such device")
            }
            throw SerialLinkError.errno(code, path: path, operation: "realpath(3)")
        }
        resolvedPath = String(cString: resolved)
        free(resolved)

        var info = stat()
        guard stat(resolvedPath, &info) == 0 else {
            throw SerialLinkError.errno(cgentcp_errno(), path: path, operation: "stat(2)")
        }
        let type = info.st_mode & S_IFMT
        guard type == S_IFCHR else {
            throw SerialDevice.notASerialPort(path, SerialDevice.describe(type: type))
        }
        let (major, minor) = SerialDevice.split(UInt64(info.st_rdev))
        if SerialDevice.isPTY(major: major, minor: minor) || resolvedPath.hasPrefix("/dev/pts/") {
            kind = .pty
            return
        }
        switch SerialDevice.sysfsSubsystem(major: major, minor: minor) {
        case "tty"?:
            kind = .port
        case let other?:
            throw SerialDevice.notASerialPort(path, "a character device of class \(other), not a terminal")
        case nil:
            // No sysfs (not Linux, or a container without it): ask the device.
            let fd = Glibc.open(resolvedPath, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else { throw SerialLinkError.errno(cgentcp_errno(), path: path, operation: "open(2)") }
            let terminal = isatty(fd) == 1
            _ = Glibc.close(fd)
            guard terminal else { throw SerialDevice.notASerialPort(path, "a character device that is not a terminal") }
            kind = .port
        }
    }

    /// Opens the device raw, 8N1, with the given speed and flow control: a ``PTYLink`` for a
    /// pty; for a port a ``SerialPortLink``, or a ``PTYLink`` (termios) when libserialport does
    /// not know the terminal as a serial port.
    public func open(configuration: SerialConfiguration = SerialConfiguration()) throws(SerialLinkError) -> any SerialLink {
        switch kind {
        case .pty:
            return try PTYLink(path: resolvedPath, configuration: configuration)
        case .port:
            do throws(SerialLinkError) {
                return try SerialPortLink(path: resolvedPath, configuration: configuration)
            } catch {
                guard error.reason == .noSuchDevice, error.operation == "sp_get_port_by_name" else { throw error }
                return try PTYLink(path: resolvedPath, configuration: configuration)
            }
        }
    }

    /// Classifies `path` and opens it; see ``init(path:)`` and ``open(configuration:)``.
    public static func open(_ path: String, configuration: SerialConfiguration = SerialConfiguration()) throws(SerialLinkError) -> any SerialLink {
        try SerialDevice(path: path).open(configuration: configuration)
    }

    /// A device major number and minor number from a `dev_t` (Linux's encoding, as glibc's
    /// `major(3)`/`minor(3)`).
    static func split(_ device: UInt64) -> (major: UInt32, minor: UInt32) {
        let major = ((device >> 8) & 0xFFF) | ((device >> 32) & 0xFFFF_F000)
        let minor = (device & 0xFF) | ((device >> 12) & 0xFFFF_FF00)
        return (UInt32(truncatingIfNeeded: major), UInt32(truncatingIfNeeded: minor))
    }

    /// Linux's Unix98 pty slaves (majors 136...143) and the multiplexer `/dev/ptmx` (5, 2).
    static func isPTY(major: UInt32, minor: UInt32) -> Bool {
        #if os(Linux)
        return (136...143).contains(major) || (major == 5 && minor == 2)
        #else
        return false
        #endif
    }

    /// The device's class from sysfs (`tty`, `mem`, `misc`...), or nil without sysfs.
    static func sysfsSubsystem(major: UInt32, minor: UInt32) -> String? {
        var target = [CChar](repeating: 0, count: 512)
        let n = readlink("/sys/dev/char/\(major):\(minor)/subsystem", &target, target.count - 1)
        guard n > 0 else { return nil }
        let text = String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: "/").last.map(String.init)
    }

    static func describe(type: mode_t) -> String {
        switch type {
        case S_IFREG: "a regular file"
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        case S_IFBLK: "a block device"
        default: "not a device"
        }
    }

    static func notASerialPort(_ path: String, _ what: String) -> SerialLinkError {
        SerialLinkError(.notATerminal, path: path, operation: "stat(2)", message: "not a serial port: \(what)")
    }
}
