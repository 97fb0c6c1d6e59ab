import GenTCPCore

/// Why a modem operation failed, named as Erlang/OTP's `gen_tcp` and `inet` name it.
///
/// This is the embedded-safe subset of `GenTCPCore`'s `SocketError.Reason`: the cases have the
/// same Swift names, so one maps onto the other case by case, and each carries its
/// Erlang atom (``atom``), so `econnrefused` in gen_tcp documentation finds `.connectionRefused`.
/// `SocketError.Reason(_:)`, defined in this module, is that mapping.
public enum ModemReason: UInt8, Sendable, Hashable, CaseIterable {
    /// `closed`: the link is closed (remote close, module reset, or a send on a dead link).
    case closed
    /// `timeout`: the module did not answer in time.
    case timeout
    /// `nxdomain`: the host name could not be resolved.
    case nonExistentDomain
    /// `econnrefused`: the module could not connect (ESP-AT gives no finer reason).
    case connectionRefused
    /// `econnreset`: the connection was reset.
    case connectionReset
    /// `etimedout`: connecting took longer than allowed.
    case connectionTimedOut
    /// `einval`: an argument was rejected (bad link, length, port, or a string that could inject AT).
    case invalidArgument
    /// `eisconn`: the link is already connected or its id is still in use.
    case alreadyConnected
    /// `enotconn`: the link is not connected.
    case notConnected
    /// `ealready`: a command is already in flight.
    case alreadyInProgress
    /// `ewouldblock`: output from the previous command has not been written yet.
    case wouldBlock
    /// `eagain`: the module has nothing to give or cannot take more now; try again later.
    case tryAgain
    /// `ebusy`: the module kept answering `busy p...`.
    case resourceBusy
    /// `enetdown`: the bearer (Wi-Fi or PDP context) is down.
    case networkDown
    /// `enetunreach`: the network could not be joined or reached.
    case networkUnreachable
    /// `ehostunreach`: no route to the host.
    case hostUnreachable
    /// `eaddrinuse`: local address or port in use.
    case addressInUse
    /// `emsgsize`: the data is larger than the dialect allows in one command.
    case messageTooLong
    /// `enomem`: the module ran out of memory.
    case outOfMemory
    /// `enotsup`: the dialect has no such command.
    case notSupported
    /// `eacces`: refused by the module (wrong password, operation not allowed).
    case permissionDenied
    /// `eproto`: the module answered something this engine cannot interpret.
    case protocolError
    /// `eio`: the module reported an error with no better mapping.
    case ioError
    /// `system_limit`: the module has no free socket.
    case systemLimit

    /// The Erlang atom, e.g. `econnrefused`.
    public var atom: StaticString {
        switch self {
        case .closed: "closed"
        case .timeout: "timeout"
        case .nonExistentDomain: "nxdomain"
        case .connectionRefused: "econnrefused"
        case .connectionReset: "econnreset"
        case .connectionTimedOut: "etimedout"
        case .invalidArgument: "einval"
        case .alreadyConnected: "eisconn"
        case .notConnected: "enotconn"
        case .alreadyInProgress: "ealready"
        case .wouldBlock: "ewouldblock"
        case .tryAgain: "eagain"
        case .resourceBusy: "ebusy"
        case .networkDown: "enetdown"
        case .networkUnreachable: "enetunreach"
        case .hostUnreachable: "ehostunreach"
        case .addressInUse: "eaddrinuse"
        case .messageTooLong: "emsgsize"
        case .outOfMemory: "enomem"
        case .notSupported: "enotsup"
        case .permissionDenied: "eacces"
        case .protocolError: "eproto"
        case .ioError: "eio"
        case .systemLimit: "system_limit"
        }
    }
}

extension SocketError.Reason {
    /// The gen_tcp reason for a modem reason (the cases share their names): the one mapping the
    /// host's at driver and the board's modem interface both use.
    public init(_ reason: ModemReason) {
        switch reason {
        case .closed: self = .closed
        case .timeout: self = .timeout
        case .nonExistentDomain: self = .nonExistentDomain
        case .connectionRefused: self = .connectionRefused
        case .connectionReset: self = .connectionReset
        case .connectionTimedOut: self = .connectionTimedOut
        case .invalidArgument: self = .invalidArgument
        case .alreadyConnected: self = .alreadyConnected
        case .notConnected: self = .notConnected
        case .alreadyInProgress: self = .alreadyInProgress
        case .wouldBlock: self = .wouldBlock
        case .tryAgain: self = .tryAgain
        case .resourceBusy: self = .resourceBusy
        case .networkDown: self = .networkDown
        case .networkUnreachable: self = .networkUnreachable
        case .hostUnreachable: self = .hostUnreachable
        case .addressInUse: self = .addressInUse
        case .messageTooLong: self = .messageTooLong
        case .outOfMemory: self = .outOfMemory
        case .notSupported: self = .notSupported
        case .permissionDenied: self = .permissionDenied
        case .protocolError: self = .protocolError
        case .ioError: self = .ioError
        case .systemLimit: self = .systemLimit
        }
    }
}
