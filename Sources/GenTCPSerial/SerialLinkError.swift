import GenTCPCore
#if canImport(Glibc)
import Glibc
#endif

/// Why opening or configuring a serial link failed: a GenTCP reason plus what the system said.
///
/// The ``reason`` is what a driver passes on (`enoent` for a missing device, `eacces` without
/// permission, `ebusy` when another program holds the port, `enotsup` for DTR/DSR flow control
/// on Linux, `einval` for a bad setting); ``description`` is for people and names the path, the
/// call that failed and libserialport's or the C library's message.
public struct SerialLinkError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The GenTCP reason (its Erlang atom is `reason.atom`).
    public var reason: SocketError.Reason
    /// The device path the link was opening.
    public var path: String
    /// The call that failed, e.g. `sp_open` or `open(2)`.
    public var operation: String
    /// The message from libserialport (`sp_last_error_message`) or `strerror`, or a note.
    public var message: String

    /// An error with every field as named (links make them; tests and other links may too).
    public init(_ reason: SocketError.Reason, path: String, operation: String, message: String) {
        self.reason = reason
        self.path = path
        self.operation = operation
        self.message = message
    }

    /// E.g. `/dev/ttyUSB9: open(2) failed: enoent (No such file or directory)`.
    public var description: String {
        "\(path): \(operation) failed: \(reason.atom) (\(message))"
    }

    /// The error for a failed C call that set `errno`.
    static func errno(_ code: Int32, path: String, operation: String) -> SerialLinkError {
        SerialLinkError(SocketError.Reason(serialErrno: code), path: path, operation: operation,
                        message: String(cString: strerror(code)))
    }
}

extension SocketError.Reason {
    /// Maps an errno from a tty or serial call to its reason; unknown values map to `eio`.
    init(serialErrno code: Int32) {
        switch code {
        case ENOENT: self = .noSuchFile
        case EACCES: self = .permissionDenied
        case EPERM: self = .notPermitted
        case EBUSY: self = .resourceBusy
        case EIO: self = .ioError
        case ENXIO: self = .noSuchDeviceOrAddress
        case ENODEV: self = .noSuchDevice
        case ENOTTY: self = .notATerminal
        case EINVAL: self = .invalidArgument
        case EAGAIN: self = .wouldBlock
        case ENOTSUP: self = .notSupported
        case EINTR: self = .interrupted
        case EBADF: self = .badFileDescriptor
        case EMFILE, ENFILE: self = .systemLimit
        case ENOMEM: self = .outOfMemory
        case ENAMETOOLONG: self = .nameTooLong
        case ENOTDIR: self = .notADirectory
        case EISDIR: self = .isADirectory
        case ELOOP: self = .tooManySymbolicLinks
        case EROFS: self = .readOnlyFileSystem
        case EPIPE: self = .brokenPipe
        case ETIMEDOUT: self = .connectionTimedOut
        default: self = .ioError
        }
    }
}
