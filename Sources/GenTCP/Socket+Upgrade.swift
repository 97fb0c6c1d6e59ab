import GenTCPCore

/// What an upgraded plain socket hands to the TLS layer: its connection, the options and owner
/// the TLS socket inherits, and any cleartext it had read but not delivered.
package struct UpgradeHandOff: @unchecked Sendable {
    package var connection: any Connection
    package var options: SocketOptions
    package var owner: Process
    /// Bytes the plain socket had read from the connection and not delivered: what an exact
    /// `recv` read ahead, and a timed-out exact `recv`'s partial data only when the caller allowed
    /// it.
    package var buffered: [UInt8]
}

extension Socket {
    /// Takes this plain socket's connection for an upgrade to TLS (`ssl:connect(TcpSocket, ...)`,
    /// `ssl:handshake(TcpSocket, ...)`). Afterwards this socket is closed for its users (every call
    /// gives `closed`) but the connection stays open; the driver's readiness goes to `delegate`.
    ///
    /// - Throws: `closed` on a closed socket or one whose stream ended; `not_owner` when the caller
    ///   does not control it; `unsupported_upgrade` on a secure socket; `einval` while it is
    ///   active (OTP asks for `{active, false}`), while a `recv` or `send` waits, or while
    ///   cleartext a `recv` gave back is still undelivered and `keepBuffered` is false.
    package func handOverForUpgrade(
        to delegate: any ConnectionDelegate, caller: Process, keepBuffered: Bool
    ) throws(SocketError) -> UpgradeHandOff {
        let handOff = try state.withLock { s throws(SocketError) -> UpgradeHandOff in
            guard !s.closed, let connection = s.connection else { throw SocketError.closed }
            guard security == .plain else {
                throw SocketError(.unsupportedUpgrade, "the socket is already secure")
            }
            guard s.owner === caller else { throw SocketError.notOwner }
            guard s.readEnd == .open, s.writeEnd == .open else { throw SocketError.closed }
            guard s.options.active == .passive else {
                throw SocketError(.invalidArgument, "an upgrade needs a passive socket ({active,false})")
            }
            guard !s.recvInProgress, s.senders.isEmpty else {
                throw SocketError(.invalidArgument, "a recv or send is still waiting on the socket")
            }
            // Bytes an exact `recv` read ahead are bytes the kernel would still hold had it read
            // only what it was asked for (as OTP's port does): they go to the TLS layer, as they
            // would have. Only bytes a `recv` was given and gave back need the caller's leave.
            guard s.stash.isAllReadAhead || keepBuffered else {
                throw SocketError(
                    .invalidArgument, "unread cleartext is buffered; read it first or let the upgrade take it")
            }
            let handOff = UpgradeHandOff(connection: connection, options: s.options, owner: s.owner, buffered: s.stash.takeAll())
            s.connection = nil
            s.closed = true
            s.readEnd = .dead
            s.writeEnd = .dead
            s.forward = delegate
            return handOff
        }
        handOff.owner.release(self)
        return handOff
    }
}

extension Socket {
    /// Runs `body` on the socket's connection under its lock: what the TLS layer reads its
    /// information from.
    /// - Throws: `closed` on a closed socket.
    package func withConnection<T>(_ body: (any Connection) -> T) throws(SocketError) -> T {
        try state.withLock { s throws(SocketError) -> T in
            guard !s.closed, let connection = s.connection else { throw SocketError.closed }
            return body(connection)
        }
    }

    /// The runtime that times this socket.
    package var socketRuntime: any Runtime { runtime }
}
