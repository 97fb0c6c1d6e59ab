import GenTCPCore

/// The controlling-process rules, shared by every kind of port (gen_tcp sockets, gen_udp
/// sockets): OTP's `controlling_process/2`, implemented once.
enum Ownership {
    /// The outcome of a hand-over decided under the port's lock.
    enum Transfer {
        /// Nothing to do: `process` already owns the port.
        case unchanged
        /// The port now belongs to this process, which must still adopt it (outside the lock).
        case moved(Process)
    }

    /// Decides and performs a hand-over under the port's lock: checks the caller, moves the
    /// pending messages `moves` selects from the old owner's mailbox to the new owner's (in
    /// order), and releases the port from the old owner.
    ///
    /// - Parameters:
    ///   - owner: the port's owner, replaced on success.
    ///   - process: the new owner.
    ///   - caller: the calling process.
    ///   - active: the port's active state, made passive when `process` has exited (as OTP
    ///     leaves it).
    ///   - moves: which of the old owner's messages belong to this port and travel with it.
    /// - Throws: `notOwner` when the caller is not the owner (unless `process` already is: ok,
    ///   OTP's quirk); `badarg` when `process` has exited.
    static func handOver(
        _ port: any OwnedByProcess, owner: inout Process, to process: Process, caller: Process,
        active: inout ActiveMode, moves: (Message) -> Bool
    ) throws(SocketError) -> Transfer {
        if owner === process { return .unchanged }
        guard owner === caller else { throw SocketError.notOwner }
        guard process.isAlive else {
            active = .passive
            throw SocketError(.badArgument, "the new controlling process has exited")
        }
        let old = owner
        process.mailbox.deliver(contentsOf: old.mailbox.take(where: moves))
        owner = process
        old.release(port)
        return .moved(process)
    }

    /// Completes a hand-over outside the port's lock: the new owner adopts the port, or, when it
    /// died meanwhile, `close` runs (a port dies with its owner).
    static func finish(_ transfer: Transfer, _ port: any OwnedByProcess, close: () -> Void) {
        if case .moved(let newOwner) = transfer, !newOwner.adopt(port) { close() }
    }
}
