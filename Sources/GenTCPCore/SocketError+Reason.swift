// Generated from the table of reasons in mug's and toss's error types plus GenTCP's own.
// Keep the order: raw values are stable and used by `allCases` tests.

extension SocketError {
    /// Why an operation failed, named as Erlang/OTP names it (`econnrefused`, `closed`, ...).
    ///
    /// Every reason carries its Erlang atom (``atom``) and a one-line human description
    /// (``summary``). The cases are the union of the error lists of mug and toss (the full POSIX
    /// list that `inet` can return) plus `not_owner`, `badarg`, `system_limit` and `cancelled`.
    public enum Reason: UInt8, Sendable, Hashable, CaseIterable {
        /// `closed`: the socket is closed.
        case closed
        /// `timeout`: the operation timed out.
        case timeout
        /// `not_owner`: the caller is not the socket's controlling process.
        case notOwner
        /// `badarg`: bad argument.
        case badArgument
        /// `nxdomain`: the host name could not be resolved.
        case nonExistentDomain
        /// `system_limit`: a system limit was reached (sockets, ports or descriptors).
        case systemLimit
        /// `eaddrinuse`: address already in use.
        case addressInUse
        /// `eaddrnotavail`: cannot assign requested address.
        case addressNotAvailable
        /// `eafnosupport`: address family not supported.
        case addressFamilyNotSupported
        /// `ealready`: operation already in progress.
        case alreadyInProgress
        /// `econnaborted`: connection aborted.
        case connectionAborted
        /// `econnrefused`: connection refused.
        case connectionRefused
        /// `econnreset`: connection reset by peer.
        case connectionReset
        /// `edestaddrreq`: destination address required.
        case destinationAddressRequired
        /// `ehostdown`: host is down.
        case hostIsDown
        /// `ehostunreach`: no route to host.
        case hostUnreachable
        /// `einprogress`: operation now in progress.
        case nowInProgress
        /// `eisconn`: socket is already connected.
        case alreadyConnected
        /// `emsgsize`: message too long.
        case messageTooLong
        /// `enetdown`: network is down.
        case networkDown
        /// `enetunreach`: network is unreachable.
        case networkUnreachable
        /// `enopkg`: package not installed.
        case packageNotInstalled
        /// `enoprotoopt`: protocol not available.
        case protocolOptionNotAvailable
        /// `enotconn`: socket is not connected.
        case notConnected
        /// `enotty`: inappropriate ioctl for device.
        case notATerminal
        /// `enotsock`: socket operation on non-socket.
        case notASocket
        /// `eproto`: protocol error.
        case protocolError
        /// `eprotonosupport`: protocol not supported.
        case protocolNotSupported
        /// `eprototype`: protocol wrong type for socket.
        case wrongProtocolType
        /// `esocktnosupport`: socket type not supported.
        case socketTypeNotSupported
        /// `etimedout`: connection timed out.
        case connectionTimedOut
        /// `ewouldblock`: operation would block.
        case wouldBlock
        /// `exbadport`: bad port number.
        case badPort
        /// `exbadseq`: bad sequence number.
        case badSequence
        /// `eacces`: permission denied.
        case permissionDenied
        /// `eagain`: resource temporarily unavailable.
        case tryAgain
        /// `ebadf`: bad file descriptor.
        case badFileDescriptor
        /// `ebadmsg`: bad message.
        case badMessage
        /// `ebusy`: device or resource busy.
        case resourceBusy
        /// `edeadlk`: resource deadlock avoided.
        case deadlock
        /// `edeadlock`: resource deadlock avoided (edeadlock).
        case deadlockAvoided
        /// `edquot`: disk quota exceeded.
        case diskQuotaExceeded
        /// `eexist`: file exists.
        case fileExists
        /// `efault`: bad address.
        case badAddress
        /// `efbig`: file too large.
        case fileTooLarge
        /// `eftype`: inappropriate file type or format.
        case inappropriateFileType
        /// `eintr`: interrupted system call.
        case interrupted
        /// `einval`: invalid argument.
        case invalidArgument
        /// `eio`: input/output error.
        case ioError
        /// `eisdir`: is a directory.
        case isADirectory
        /// `eloop`: too many levels of symbolic links.
        case tooManySymbolicLinks
        /// `emfile`: too many open files.
        case tooManyOpenFiles
        /// `emlink`: too many links.
        case tooManyLinks
        /// `emultihop`: multihop attempted.
        case multihopAttempted
        /// `enametoolong`: file name too long.
        case nameTooLong
        /// `enfile`: too many open files in system.
        case tooManyOpenFilesInSystem
        /// `enobufs`: no buffer space available.
        case noBufferSpace
        /// `enodev`: no such device.
        case noSuchDevice
        /// `enolck`: no locks available.
        case noLocks
        /// `enolink`: link has been severed.
        case linkSevered
        /// `enoent`: no such file or directory.
        case noSuchFile
        /// `enomem`: not enough memory.
        case outOfMemory
        /// `enospc`: no space left on device.
        case noSpace
        /// `enosr`: out of streams resources.
        case noStreamResources
        /// `enostr`: device not a stream.
        case notAStream
        /// `enosys`: function not implemented.
        case notImplemented
        /// `enotblk`: block device required.
        case notABlockDevice
        /// `enotdir`: not a directory.
        case notADirectory
        /// `enotsup`: operation not supported.
        case notSupported
        /// `enxio`: no such device or address.
        case noSuchDeviceOrAddress
        /// `eopnotsupp`: operation not supported on socket.
        case operationNotSupportedOnSocket
        /// `eoverflow`: value too large for defined data type.
        case overflow
        /// `eperm`: operation not permitted.
        case notPermitted
        /// `epipe`: broken pipe.
        case brokenPipe
        /// `erange`: result too large.
        case resultOutOfRange
        /// `erofs`: read-only file system.
        case readOnlyFileSystem
        /// `espipe`: illegal seek.
        case illegalSeek
        /// `esrch`: no such process.
        case noSuchProcess
        /// `estale`: stale file handle.
        case staleFileHandle
        /// `etxtbsy`: text file busy.
        case textFileBusy
        /// `exdev`: cross-device link.
        case crossDeviceLink
        /// `cancelled`: the call stopped waiting because its Swift task was cancelled, or because
        /// the process that made it was killed or exited (GenTCP's `Process`). GenTCP's own
        /// reason: Erlang has no task cancellation, and a killed Erlang process returns from nothing.
        case cancelled
        /// `tls_alert`: a TLS handshake or record failed with an alert; the error's
        /// ``SocketError/alert`` names it and the side that raised it (OTP's
        /// `{tls_alert, {unknown_ca, "... generated ..."}}`).
        case tlsAlert
        /// `truncated`: the peer ended the TCP stream of a TLS connection without its
        /// close_notify, so the data may have been cut short. GenTCP's own reason: OTP's ssl
        /// reports this as `closed`.
        case truncated
        /// `protocol_not_negotiated`: no ALPN protocol was agreed (OTP's
        /// `ssl:negotiated_protocol/1`).
        case protocolNotNegotiated
        /// `no_peercert`: the peer sent no certificate (OTP's `ssl:peercert/1`).
        case noPeerCertificate
        /// `not_secure`: a TLS call on a plain TCP socket (`ThousandIsland.Transport`'s atom).
        case notSecure
        /// `unsupported_upgrade`: this socket cannot be upgraded to TLS (a link whose TLS the
        /// module runs; `ThousandIsland.Transport`'s atom).
        case unsupportedUpgrade

        /// The Erlang atom for this reason, e.g. `econnrefused`.
        public var atom: StaticString {
            switch self {
            case .closed: "closed"
            case .timeout: "timeout"
            case .notOwner: "not_owner"
            case .badArgument: "badarg"
            case .nonExistentDomain: "nxdomain"
            case .systemLimit: "system_limit"
            case .addressInUse: "eaddrinuse"
            case .addressNotAvailable: "eaddrnotavail"
            case .addressFamilyNotSupported: "eafnosupport"
            case .alreadyInProgress: "ealready"
            case .connectionAborted: "econnaborted"
            case .connectionRefused: "econnrefused"
            case .connectionReset: "econnreset"
            case .destinationAddressRequired: "edestaddrreq"
            case .hostIsDown: "ehostdown"
            case .hostUnreachable: "ehostunreach"
            case .nowInProgress: "einprogress"
            case .alreadyConnected: "eisconn"
            case .messageTooLong: "emsgsize"
            case .networkDown: "enetdown"
            case .networkUnreachable: "enetunreach"
            case .packageNotInstalled: "enopkg"
            case .protocolOptionNotAvailable: "enoprotoopt"
            case .notConnected: "enotconn"
            case .notATerminal: "enotty"
            case .notASocket: "enotsock"
            case .protocolError: "eproto"
            case .protocolNotSupported: "eprotonosupport"
            case .wrongProtocolType: "eprototype"
            case .socketTypeNotSupported: "esocktnosupport"
            case .connectionTimedOut: "etimedout"
            case .wouldBlock: "ewouldblock"
            case .badPort: "exbadport"
            case .badSequence: "exbadseq"
            case .permissionDenied: "eacces"
            case .tryAgain: "eagain"
            case .badFileDescriptor: "ebadf"
            case .badMessage: "ebadmsg"
            case .resourceBusy: "ebusy"
            case .deadlock: "edeadlk"
            case .deadlockAvoided: "edeadlock"
            case .diskQuotaExceeded: "edquot"
            case .fileExists: "eexist"
            case .badAddress: "efault"
            case .fileTooLarge: "efbig"
            case .inappropriateFileType: "eftype"
            case .interrupted: "eintr"
            case .invalidArgument: "einval"
            case .ioError: "eio"
            case .isADirectory: "eisdir"
            case .tooManySymbolicLinks: "eloop"
            case .tooManyOpenFiles: "emfile"
            case .tooManyLinks: "emlink"
            case .multihopAttempted: "emultihop"
            case .nameTooLong: "enametoolong"
            case .tooManyOpenFilesInSystem: "enfile"
            case .noBufferSpace: "enobufs"
            case .noSuchDevice: "enodev"
            case .noLocks: "enolck"
            case .linkSevered: "enolink"
            case .noSuchFile: "enoent"
            case .outOfMemory: "enomem"
            case .noSpace: "enospc"
            case .noStreamResources: "enosr"
            case .notAStream: "enostr"
            case .notImplemented: "enosys"
            case .notABlockDevice: "enotblk"
            case .notADirectory: "enotdir"
            case .notSupported: "enotsup"
            case .noSuchDeviceOrAddress: "enxio"
            case .operationNotSupportedOnSocket: "eopnotsupp"
            case .overflow: "eoverflow"
            case .notPermitted: "eperm"
            case .brokenPipe: "epipe"
            case .resultOutOfRange: "erange"
            case .readOnlyFileSystem: "erofs"
            case .illegalSeek: "espipe"
            case .noSuchProcess: "esrch"
            case .staleFileHandle: "estale"
            case .textFileBusy: "etxtbsy"
            case .crossDeviceLink: "exdev"
            case .cancelled: "cancelled"
            case .tlsAlert: "tls_alert"
            case .truncated: "truncated"
            case .protocolNotNegotiated: "protocol_not_negotiated"
            case .noPeerCertificate: "no_peercert"
            case .notSecure: "not_secure"
            case .unsupportedUpgrade: "unsupported_upgrade"
            }
        }

        #if !hasFeature(Embedded)
        /// A one-line human description of this reason (host builds only: the table is 3 KB of flash,
        /// and a firmware reports the ``atom``, as OTP does without `inet:format_error`).
        public var summary: StaticString {
            switch self {
            case .closed: "the socket is closed"
            case .timeout: "the operation timed out"
            case .notOwner: "the caller is not the socket's controlling process"
            case .badArgument: "bad argument"
            case .nonExistentDomain: "the host name could not be resolved"
            case .systemLimit: "a system limit was reached (sockets, ports or descriptors)"
            case .addressInUse: "address already in use"
            case .addressNotAvailable: "cannot assign requested address"
            case .addressFamilyNotSupported: "address family not supported"
            case .alreadyInProgress: "operation already in progress"
            case .connectionAborted: "connection aborted"
            case .connectionRefused: "connection refused"
            case .connectionReset: "connection reset by peer"
            case .destinationAddressRequired: "destination address required"
            case .hostIsDown: "host is down"
            case .hostUnreachable: "no route to host"
            case .nowInProgress: "operation now in progress"
            case .alreadyConnected: "socket is already connected"
            case .messageTooLong: "message too long"
            case .networkDown: "network is down"
            case .networkUnreachable: "network is unreachable"
            case .packageNotInstalled: "package not installed"
            case .protocolOptionNotAvailable: "protocol not available"
            case .notConnected: "socket is not connected"
            case .notATerminal: "inappropriate ioctl for device"
            case .notASocket: "socket operation on non-socket"
            case .protocolError: "protocol error"
            case .protocolNotSupported: "protocol not supported"
            case .wrongProtocolType: "protocol wrong type for socket"
            case .socketTypeNotSupported: "socket type not supported"
            case .connectionTimedOut: "connection timed out"
            case .wouldBlock: "operation would block"
            case .badPort: "bad port number"
            case .badSequence: "bad sequence number"
            case .permissionDenied: "permission denied"
            case .tryAgain: "resource temporarily unavailable"
            case .badFileDescriptor: "bad file descriptor"
            case .badMessage: "bad message"
            case .resourceBusy: "device or resource busy"
            case .deadlock: "resource deadlock avoided"
            case .deadlockAvoided: "resource deadlock avoided (edeadlock)"
            case .diskQuotaExceeded: "disk quota exceeded"
            case .fileExists: "file exists"
            case .badAddress: "bad address"
            case .fileTooLarge: "file too large"
            case .inappropriateFileType: "inappropriate file type or format"
            case .interrupted: "interrupted system call"
            case .invalidArgument: "invalid argument"
            case .ioError: "input/output error"
            case .isADirectory: "is a directory"
            case .tooManySymbolicLinks: "too many levels of symbolic links"
            case .tooManyOpenFiles: "too many open files"
            case .tooManyLinks: "too many links"
            case .multihopAttempted: "multihop attempted"
            case .nameTooLong: "file name too long"
            case .tooManyOpenFilesInSystem: "too many open files in system"
            case .noBufferSpace: "no buffer space available"
            case .noSuchDevice: "no such device"
            case .noLocks: "no locks available"
            case .linkSevered: "link has been severed"
            case .noSuchFile: "no such file or directory"
            case .outOfMemory: "not enough memory"
            case .noSpace: "no space left on device"
            case .noStreamResources: "out of streams resources"
            case .notAStream: "device not a stream"
            case .notImplemented: "function not implemented"
            case .notABlockDevice: "block device required"
            case .notADirectory: "not a directory"
            case .notSupported: "operation not supported"
            case .noSuchDeviceOrAddress: "no such device or address"
            case .operationNotSupportedOnSocket: "operation not supported on socket"
            case .overflow: "value too large for defined data type"
            case .notPermitted: "operation not permitted"
            case .brokenPipe: "broken pipe"
            case .resultOutOfRange: "result too large"
            case .readOnlyFileSystem: "read-only file system"
            case .illegalSeek: "illegal seek"
            case .noSuchProcess: "no such process"
            case .staleFileHandle: "stale file handle"
            case .textFileBusy: "text file busy"
            case .crossDeviceLink: "cross-device link"
            case .cancelled: "the waiting task was cancelled, or its process exited"
            case .tlsAlert: "TLS alert"
            case .truncated: "the peer ended the TLS stream without close_notify"
            case .protocolNotNegotiated: "no ALPN protocol was negotiated"
            case .noPeerCertificate: "the peer sent no certificate"
            case .notSecure: "not a TLS socket"
            case .unsupportedUpgrade: "this socket cannot be upgraded to TLS"
            }
        }
        #endif
    }
}
