import GenTCPCore
#if canImport(Glibc)
import Glibc
#endif

extension SocketError.Reason {
    /// Maps a POSIX errno to its `inet` reason. Unknown values map to `eio`, never trap.
    public init(errno code: Int32) {
        switch code {
        case EADDRINUSE: self = .addressInUse
        case EADDRNOTAVAIL: self = .addressNotAvailable
        case EAFNOSUPPORT: self = .addressFamilyNotSupported
        case EALREADY: self = .alreadyInProgress
        case ECONNABORTED: self = .connectionAborted
        case ECONNREFUSED: self = .connectionRefused
        case ECONNRESET: self = .connectionReset
        case EDESTADDRREQ: self = .destinationAddressRequired
        case EHOSTDOWN: self = .hostIsDown
        case EHOSTUNREACH: self = .hostUnreachable
        case EINPROGRESS: self = .nowInProgress
        case EISCONN: self = .alreadyConnected
        case EMSGSIZE: self = .messageTooLong
        case ENETDOWN: self = .networkDown
        case ENETUNREACH: self = .networkUnreachable
        case ENOPROTOOPT: self = .protocolOptionNotAvailable
        case ENOTCONN: self = .notConnected
        case ENOTTY: self = .notATerminal
        case ENOTSOCK: self = .notASocket
        case EPROTO: self = .protocolError
        case EPROTONOSUPPORT: self = .protocolNotSupported
        case EPROTOTYPE: self = .wrongProtocolType
        case ESOCKTNOSUPPORT: self = .socketTypeNotSupported
        case ETIMEDOUT: self = .connectionTimedOut
        case EAGAIN: self = .wouldBlock
        case EACCES: self = .permissionDenied
        case EBADF: self = .badFileDescriptor
        case EBADMSG: self = .badMessage
        case EBUSY: self = .resourceBusy
        case EDEADLK: self = .deadlock
        case EDQUOT: self = .diskQuotaExceeded
        case EEXIST: self = .fileExists
        case EFAULT: self = .badAddress
        case EFBIG: self = .fileTooLarge
        case EINTR: self = .interrupted
        case EINVAL: self = .invalidArgument
        case EIO: self = .ioError
        case EISDIR: self = .isADirectory
        case ELOOP: self = .tooManySymbolicLinks
        case EMFILE: self = .systemLimit
        case EMLINK: self = .tooManyLinks
        case EMULTIHOP: self = .multihopAttempted
        case ENAMETOOLONG: self = .nameTooLong
        case ENFILE: self = .systemLimit
        case ENOBUFS: self = .noBufferSpace
        case ENODEV: self = .noSuchDevice
        case ENOLCK: self = .noLocks
        case ENOLINK: self = .linkSevered
        case ENOENT: self = .noSuchFile
        case ENOMEM: self = .outOfMemory
        case ENOSPC: self = .noSpace
        case ENOSR: self = .noStreamResources
        case ENOSTR: self = .notAStream
        case ENOSYS: self = .notImplemented
        case ENOTBLK: self = .notABlockDevice
        case ENOTDIR: self = .notADirectory
        case ENOTSUP: self = .notSupported
        case ENXIO: self = .noSuchDeviceOrAddress
        case EOVERFLOW: self = .overflow
        case EPERM: self = .notPermitted
        case EPIPE: self = .brokenPipe
        case ERANGE: self = .resultOutOfRange
        case EROFS: self = .readOnlyFileSystem
        case ESPIPE: self = .illegalSeek
        case ESRCH: self = .noSuchProcess
        case ESTALE: self = .staleFileHandle
        case ETXTBSY: self = .textFileBusy
        case EXDEV: self = .crossDeviceLink
        default: self = .ioError
        }
    }
}
