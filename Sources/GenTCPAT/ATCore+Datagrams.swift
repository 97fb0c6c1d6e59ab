import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPModem

/// gen_udp on the module: UDP links, their setup commands, datagrams in and out.
///
/// How each dialect carries a socket (the items are in `docs/modem-behaviour.md`):
/// - ESP-AT: one link per socket, `AT+CIPSTART=<id>,"UDP","0.0.0.0",0,<port>,2`, switched to
///   pushed receive (`AT+CIPRECVTYPE=<id>,0`, v3.3 and later) with `AT+CIPDINFO=1`, so each
///   datagram is one `+IPD,<id>,<len>,"<ip>",<port>:` (ESP-U4; passive reads merge datagrams on
///   released firmware, ESP-U5). Every send names its destination (ESP-U3). The module filters
///   nothing (ESP-U2): a connected socket's filter is here.
/// - BG96: one `"UDP SERVICE"` socket per gen_udp socket (BG-U1), a destination on every send
///   (BG-U3), reads `AT+QIRD=<id>` that return one datagram with its sender (BG-U4) until
///   `+QIRD: 0`. The connect filter is here too.
/// - SIM800: UDP links are connected (SIM-U1): a socket has no link until `connect`, which
///   sets the local port (`AT+CLPORT`) and opens one; sends go to that peer only, and sending
///   elsewhere is `enotsup` (the extended mode, SIM-U4, is unverified). Reads as BG96, with the
///   sender from `AT+CIPSRIP=1` (SIM-U6).
extension ATCore {
    // MARK: Open

    func openDatagram(on address: SocketAddress, options: DatagramOptions,
                      delegate: any DatagramDelegate) async throws(SocketError) -> ATDatagram {
        guard !address.address.isIPv6 else {
            throw SocketError(.addressFamilyNotSupported, "the at driver carries IPv4 UDP")
        }
        let result: Result<ATDatagram, SocketError> = await withUnsafeContinuation { continuation in
            locked { core in core.startOpenDatagram(options, delegate, continuation) }
        }
        return try result.get()
    }

    func startOpenDatagram(_ options: DatagramOptions, _ delegate: any DatagramDelegate,
                           _ continuation: UnsafeContinuation<Result<ATDatagram, SocketError>, Never>) {
        beginIfIdle()
        guard phase != .dead else {
            deferred.append { [stopped] in continuation.resume(returning: .failure(ATCore.deadError(stopped: stopped))) }
            return
        }
        let requested = options.localPort
        if requested != 0, datagramEndpoints.contains(where: { $0.localPort == requested && !$0.userClosed }) {
            deferred.append { continuation.resume(returning: .failure(SocketError(.addressInUse))) }
            return
        }
        let e = ATDatagram(core: self, localPort: requested == 0 ? chooseLocalPort() : requested,
                           portWasChosen: requested == 0, options: options,
                           maxReceive: configuration.maxReceiveBuffer)
        e.delegate = delegate
        datagramEndpoints.append(e)
        if configuration.dialect == .sim800 {
            // No link before connect (SIM-U1); the open waits for the module's bring-up (so
            // `sockname` has its address) and has it name senders from now on (SIM-U6).
            e.steps = [.enableRemoteInfo]
        } else {
            guard let link = freeLink() else {
                forget(e)
                deferred.append { continuation.resume(returning: .failure(SocketError(.systemLimit, "every modem link is in use"))) }
                return
            }
            e.link = link
            slots[link] = .datagram(e)
            e.steps = openSteps(e, link: link)
        }
        waitForSteps(e) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success: self.deferred.append { continuation.resume(returning: .success(e)) }
            case .failure(let error):
                self.forget(e)
                self.deferred.append { continuation.resume(returning: .failure(error)) }
            }
        }
        pump()
    }

    /// The commands that open `e`'s link on the module.
    func openSteps(_ e: ATDatagram, link: Int) -> [ModemCommand] {
        switch configuration.dialect {
        case .espAT:
            // `AT+CIPDINFO=1` is skipped when already on (it is asked again after a restart).
            var steps: [ModemCommand] = [.enableRemoteInfo]
            steps.append(.openDatagram(link: link, host: "0.0.0.0", port: 0, localPort: e.localPort))
            steps.append(.setReceiveMode(link: link, passive: false))
            return steps
        case .bg96:
            return [.openDatagram(link: link, host: "127.0.0.1", port: 0, localPort: e.localPort)]
        case .sim800:
            return []
        }
    }

    /// A link id free in the module and in the driver.
    func freeLink() -> Int? {
        (0..<slots.count).first { l in
            if case .free = slots[l], engine.linkState(l) == .closed, !orphanCloses.contains(l) { return true }
            return false
        }
    }

    /// An unused port from the dynamic range (RFC 6335), different for each socket of this driver.
    /// The first is drawn from the clock (a run on the virtual clock repeats it), so a new run
    /// does not pick the port a previous run left bound in the module.
    func chooseLocalPort() -> Int {
        if !ephemeralSeeded {
            ephemeralSeeded = true
            nextEphemeralPort = 49_152 + Int((runtime.now / 1_000) % 16_383)
        }
        for _ in 0..<16_384 {
            nextEphemeralPort = nextEphemeralPort >= 65_535 ? 49_152 : nextEphemeralPort + 1
            let candidate = nextEphemeralPort
            if !datagramEndpoints.contains(where: { $0.localPort == candidate && !$0.userClosed }) { return candidate }
        }
        return nextEphemeralPort
    }

    func forget(_ e: ATDatagram) {
        datagramEndpoints.removeAll { $0 === e }
        if let link = e.link, case .datagram(let current) = slots[link], current === e {
            if e.linkOpen || engine.linkState(link) != .closed {
                orphanCloses.insert(link)
            }
            slots[link] = .free
        }
        e.link = nil
        e.linkOpen = false
    }

    // MARK: Setup steps

    /// Runs `e.steps` (from ``nextWork()``), then calls `done` under the lock.
    func waitForSteps(_ e: ATDatagram, _ done: @escaping (Result<Void, SocketError>) -> Void) {
        e.stepDone = done
        if e.steps.isEmpty {
            e.stepDone = nil
            done(.success(()))
        }
    }

    /// The next setup command of any socket, as a closure that submits it.
    func nextDatagramStep() -> (() -> Void)? {
        guard datagramStepOwner == nil else { return nil }
        for e in datagramEndpoints where !e.steps.isEmpty {
            let step = e.steps[0]
            return { [self] in
                datagramStepOwner = e
                e.stepsStarted = true
                if case .enableRemoteInfo = step, remoteInfoOn {
                    datagramStepOwner = nil
                    datagramStepSucceeded(e)
                    return
                }
                submit(step)
            }
        }
        return nil
    }

    func datagramStepSucceeded(_ e: ATDatagram) {
        guard !e.steps.isEmpty else { return }
        let step = e.steps.removeFirst()
        if e.userClosed {
            // Closed while its setup ran: the rest is void, the link goes.
            if let link = e.link, e.linkOpen { closeDatagramLink(e, link) }
            datagramStepFailed(e, SocketError.closed)
            return
        }
        switch step {
        case .enableRemoteInfo: remoteInfoOn = true
        case .close(let link):
            // A reconnect (SIM800) opens the same link again next: it stays the socket's.
            e.linkOpen = false
            if e.steps.isEmpty {
                if case .datagram(let current) = slots[link], current === e { slots[link] = .free }
                e.link = nil
            }
        default: break
        }
        if e.steps.isEmpty {
            e.stepsStarted = false
            if let done = e.stepDone {
                e.stepDone = nil
                done(.success(()))
            }
        }
    }

    func datagramStepFailed(_ e: ATDatagram, _ error: SocketError) {
        e.steps.removeAll()
        e.stepsStarted = false
        if let done = e.stepDone {
            e.stepDone = nil
            done(.failure(error))
        }
    }

    /// A completion that belongs to a UDP socket; false when it is not one.
    func datagramCompleted(_ completion: ModemCompletion, _ failure: (ModemFailure, ModemReason)?) -> Bool {
        if let e = datagramStepOwner, let step = e.steps.first, step.kind == completion.command,
           step.link == completion.link {
            if step.kind == .openDatagram {
                // Success: the link is reported (`connected`) next; failure: `connectFailed`.
                if failure == nil, !engine.dialect.connectsAsynchronously, e.linkOpen { datagramStepOwner = nil }
                return true
            }
            datagramStepOwner = nil
            if let failure {
                let link = e.link
                datagramStepFailed(e, SocketError(.init(failure.1), ATCore.staticDetail(.init(failure.1))))
                if step.kind == .setReceiveMode, let link { closeDatagramLink(e, link) }
                if failure.0 == .timeout { return false }  // the silence check still runs
            } else {
                datagramStepSucceeded(e)
            }
            return true
        }
        guard let link = completion.link, case .datagram(let e) = slots[link] else { return false }
        switch completion.command {
        case .send:
            datagramSendCompleted(e, failure)
        case .read:
            datagramReadCompleted(e, failure)
        case .close:
            orphanCloses.remove(link)
            e.linkOpen = false
            if e.userClosed {
                slots[link] = .free
                e.link = nil
            }
        default:
            return false
        }
        return failure?.0 != .timeout
    }

    /// The module reported `link` open.
    func datagramLinkOpened(_ e: ATDatagram, link: Int) {
        e.linkOpen = true
        if let owner = datagramStepOwner, owner === e, case .openDatagram? = e.steps.first {
            datagramStepOwner = nil
            datagramStepSucceeded(e)
        }
        if e.userClosed { closeDatagramLink(e, link) }
        pump()
    }

    /// Opening `link` failed (`ERROR`, `+QIOPEN: <id>,<err>`, `CONNECT FAIL`).
    func datagramLinkFailed(_ e: ATDatagram, link: Int, reason: ModemReason) {
        if let owner = datagramStepOwner, owner === e { datagramStepOwner = nil }
        e.linkOpen = false
        if reason == .addressInUse, e.portWasChosen, e.portAttempts < 8, !e.userClosed,
           case .openDatagram(let l, let host, let port, _)? = e.steps.first {
            // Someone else holds the port we picked: try another.
            e.portAttempts += 1
            e.localPort = chooseLocalPort()
            e.steps[0] = .openDatagram(link: l, host: host, port: port, localPort: e.localPort)
            if configuration.dialect == .sim800 {
                e.steps.insert(.bindLocalPort(link: l, port: e.localPort), at: 0)
            }
            return
        }
        datagramStepFailed(e, SocketError(.init(reason), ATCore.staticDetail(.init(reason))))
    }

    /// Closes `e`'s module link now (no one waits on it).
    func closeDatagramLink(_ e: ATDatagram, _ link: Int) {
        e.linkOpen = false
        orphanCloses.insert(link)
        if case .datagram(let current) = slots[link], current === e { slots[link] = .free }
        e.link = nil
    }

    /// The module closed a UDP link on its own (bearer loss): the socket is dead.
    func datagramLinkClosed(_ e: ATDatagram, link: Int) {
        // Our own close (of a closed socket, or before a reconnect) took the link down already.
        let expected = !e.linkOpen || e.userClosed || e.steps.contains { if case .close = $0 { true } else { false } }
        e.linkOpen = false
        if expected { return }
        failDatagram(e, .connectionAborted)
    }

    func failDatagram(_ e: ATDatagram, _ reason: SocketError.Reason) {
        guard e.failure == nil else { return }
        e.failure = reason
        e.tx.removeAll()
        e.txBytes = 0
        e.assembling = false
        datagramStepFailed(e, SocketError(reason, ATCore.staticDetail(reason)))
        wakeDatagram(e, read: true)
        wakeDatagram(e, read: false)
    }

    // MARK: Connect (gen_udp connect/2)

    func connectDatagram(_ e: ATDatagram, to peer: SocketAddress?) async throws(SocketError) {
        if let peer {
            guard !peer.address.isIPv6 else { throw SocketError(.addressFamilyNotSupported, "the at driver carries IPv4 UDP") }
            guard (1...65_535).contains(peer.port) else { throw SocketError(.invalidArgument, "port 0") }
        }
        let result: Result<Void, SocketError> = await withUnsafeContinuation { continuation in
            locked { core in core.startConnectDatagram(e, peer, continuation) }
        }
        try result.get()
    }

    func startConnectDatagram(_ e: ATDatagram, _ peer: SocketAddress?,
                              _ continuation: UnsafeContinuation<Result<Void, SocketError>, Never>) {
        if e.userClosed || e.failure != nil {
            let reason = e.failure ?? .closed
            deferred.append { continuation.resume(returning: .failure(SocketError(reason))) }
            return
        }
        guard configuration.dialect == .sim800 else {
            // ESP-AT and BG96 links take anyone's datagrams: the filter is ours (ESP-U2, BG-U1).
            e.peer = peer
            deferred.append { continuation.resume(returning: .success(())) }
            return
        }
        guard e.steps.isEmpty else {
            deferred.append { continuation.resume(returning: .failure(SocketError(.alreadyInProgress))) }
            return
        }
        // SIM800: the module's link is the connection (SIM-U1); close the old one, open the new.
        var steps: [ModemCommand] = []
        if let link = e.link, e.linkOpen { steps.append(.close(link: link)) }
        var link = e.link
        if peer != nil, link == nil {
            guard let free = freeLink() else {
                deferred.append { continuation.resume(returning: .failure(SocketError(.systemLimit, "every modem link is in use"))) }
                return
            }
            link = free
            e.link = free
            slots[free] = .datagram(e)
        }
        if let peer, let link {
            steps.append(.enableRemoteInfo)
            steps.append(.bindLocalPort(link: link, port: e.localPort))
            steps.append(.openDatagram(link: link, host: peer.address.description, port: peer.port, localPort: e.localPort))
        }
        e.steps = steps
        waitForSteps(e) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success:
                e.peer = peer
                if peer == nil, let link = e.link, !e.linkOpen {
                    if case .datagram(let current) = self.slots[link], current === e { self.slots[link] = .free }
                    e.link = nil
                }
            case .failure:
                if let link = e.link, !e.linkOpen {
                    if case .datagram(let current) = self.slots[link], current === e { self.slots[link] = .free }
                    e.link = nil
                }
                e.peer = nil
            }
            self.deferred.append { continuation.resume(returning: result) }
        }
        pump()
    }

    // MARK: Receive

    func receiveDatagram(_ e: ATDatagram, into buffer: UnsafeMutableRawBufferPointer) -> DatagramReceiveResult {
        if e.userClosed { return .failed(.closed) }
        if let popped = e.rx.pop(into: buffer) {
            if e.wantsModuleRead { pump() }
            return .datagram(copied: popped.copied, length: popped.length, source: popped.source)
        }
        if let failure = e.failure { return .failed(failure) }
        if e.wantsModuleRead { pump() }
        return .wouldBlock
    }

    func armDatagram(_ e: ATDatagram, read: Bool) {
        if read {
            if !e.rx.isEmpty || e.failure != nil {
                e.wantRead = false
                postDatagram(e, read: true)
            } else {
                e.wantRead = true
            }
        } else {
            if e.txHasRoom || e.failure != nil {
                e.wantWrite = false
                postDatagram(e, read: false)
            } else {
                e.wantWrite = true
            }
        }
    }

    func wakeDatagram(_ e: ATDatagram, read: Bool) {
        if read {
            guard e.wantRead, !e.rx.isEmpty || e.failure != nil else { return }
            e.wantRead = false
        } else {
            guard e.wantWrite, e.txHasRoom || e.failure != nil else { return }
            e.wantWrite = false
        }
        postDatagram(e, read: read)
    }

    /// Tells the port from the runtime's context, never from inside one of its calls.
    func postDatagram(_ e: ATDatagram, read: Bool) {
        later(e) { e in
            let delegate: (any DatagramDelegate)? = e.core.locked { _ in e.userClosed ? nil : e.delegate }
            if read { delegate?.datagramReadable() } else { delegate?.datagramWritable() }
        }
    }

    /// The module holds data for a UDP link (a pull dialect's notice, or a read's `<left>`).
    func datagramAvailable(_ e: ATDatagram, length: Int?) {
        if e.readInFlight {
            // A read's own `<left>` comes with a total; a notice without one (`+CIPRXGET: 1`,
            // `+QIURC: "recv"`) means more came during the read, and the module will not say it
            // again: read on afterwards, whatever the read's answer said.
            if let length { e.pendingTotal = length } else { e.noticeDuringRead = true }
        } else {
            e.moduleHasData = (length ?? 1) > 0
        }
    }

    /// A datagram begins: pushed (`+IPD`) or in a read's answer.
    func datagramBegins(_ e: ATDatagram, length: Int, remote: ModemEndpoint?) {
        if e.readInFlight, let total = e.pendingTotal {
            e.leftAfterRead = max(0, total - length)
        }
        e.pendingTotal = nil
        e.assembly.removeAll(keepingCapacity: true)
        e.assemblyLength = length
        e.assemblyRemote = remote
        e.assembling = true
        if length == 0 { datagramPieceArrived(e, UnsafeRawBufferPointer(start: nil, count: 0)) }
    }

    func datagramPieceArrived(_ e: ATDatagram, _ bytes: UnsafeRawBufferPointer) {
        guard e.assembling else {
            stats.overflowBytes += bytes.count
            return
        }
        let room = e.assemblyLength - e.assembly.count
        let taken = min(room, bytes.count)
        if taken > 0 { e.assembly.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<taken])) }
        stats.payloadIn += taken
        if taken < bytes.count { stats.overflowBytes += bytes.count - taken }
        guard e.assembly.count == e.assemblyLength else { return }
        if engine.isReceivingPushedPayload || !e.readInFlight {
            // Pushed: whole now. (A read's datagram waits for the read's OK.)
            e.assembling = false
            deliverDatagram(e)
        }
    }

    /// Queues the assembled datagram, or drops it: no sender (counted), another sender than
    /// the connected peer (not counted, as a kernel does), or a full queue (counted by the queue).
    func deliverDatagram(_ e: ATDatagram) {
        guard !e.userClosed, e.failure == nil else { return }
        guard let remote = e.assemblyRemote else {
            e.malformed &+= 1
            stats.malformedDatagrams += 1
            return
        }
        let source = SocketAddress(IPAddress(remote.address), port: remote.port)
        if let peer = e.peer, peer != source { return }
        _ = e.assembly.withUnsafeBytes { e.rx.push($0, from: source) }
        stats.datagramsIn += 1
        wakeDatagram(e, read: true)
    }

    func startDatagramRead(_ e: ATDatagram) {
        guard let link = e.link else { return }
        e.readInFlight = true
        e.noticeDuringRead = false
        e.readDelivered = false
        e.leftAfterRead = nil
        e.pendingTotal = nil
        e.assembling = false
        stats.reads += 1
        submit(.read(link: link, maximum: min(engine.dialect.limits.maxReadLength, ATDatagram.largestReceive)))
        if engine.isIdle { e.readInFlight = false }
    }

    func datagramReadCompleted(_ e: ATDatagram, _ failure: (ModemFailure, ModemReason)?) {
        e.readInFlight = false
        let noticed = e.noticeDuringRead
        e.noticeDuringRead = false
        defer { if noticed { e.moduleHasData = true } }
        let complete = e.assembling && e.assembly.count == e.assemblyLength
        e.assembling = false
        guard failure == nil else {
            // An answer that did not end in OK is not trusted; ask again on the next notice.
            if complete { stats.unconfirmedBytes += e.assembly.count }
            e.moduleHasData = false
            return
        }
        // `+QIRD: 0` (BG96) and `+CIPRXGET: 2,<n>,0,0` (SIM800) say the module holds nothing.
        let empty = !complete || (e.assemblyLength == 0 && e.assemblyRemote == nil)
            || (configuration.dialect == .sim800 && e.assemblyLength == 0)
        if empty {
            e.moduleHasData = false
            return
        }
        deliverDatagram(e)
        if let left = e.leftAfterRead { e.moduleHasData = left > 0 }
    }

    // MARK: Send

    func sendDatagram(_ e: ATDatagram, _ chunks: [UnsafeRawBufferPointer], to destination: SocketAddress?) -> DatagramSendResult {
        if e.userClosed { return .failed(.closed) }
        if let failure = e.failure { return .failed(failure) }
        var total = 0
        for c in chunks { total += c.count }
        guard total <= ATDatagram.largest else { return .failed(.messageTooLong) }
        guard let target = destination ?? e.peer else { return .failed(.destinationAddressRequired) }
        guard case .v4(let v4) = target.address else { return .failed(.addressFamilyNotSupported) }
        guard (1...65_535).contains(target.port) else { return .failed(.invalidArgument) }
        // None of the modules' send commands carries an empty datagram (`<len>` 0 is a query or
        // an error): refused rather than silently lost.
        guard total > 0 else { return .failed(.notSupported) }
        let to: ModemEndpoint?
        if configuration.dialect == .sim800 {
            // SIM-U1: a link sends only to its own remote.
            guard let peer = e.peer, peer == target else { return .failed(.notSupported) }
            to = nil
        } else {
            to = ModemEndpoint(address: .ipv4(v4), port: target.port)
        }
        guard e.linkOpen || !e.steps.isEmpty else { return .failed(.notConnected) }
        guard e.txHasRoom else { return .wouldBlock }
        var bytes = [UInt8]()
        bytes.reserveCapacity(total)
        for c in chunks { bytes.append(contentsOf: c) }
        e.tx.append((bytes, to))
        e.txBytes += total
        pump()
        return .sent
    }

    func startDatagramSend(_ e: ATDatagram) {
        guard let link = e.link, let first = e.tx.first else { return }
        var failed: ModemError?
        first.bytes.withUnsafeBytes { raw in
            do throws(ModemError) {
                try engine.sendDatagram(raw, link: link, to: first.to, now: now)
            } catch {
                failed = error
            }
        }
        if let failed {
            // Refused before anything was written: this datagram cannot go (counted, dropped).
            stats.datagramSendFailures += 1
            incident = "the modem could not take a datagram on link \(link) (\(failed.detail))"
            popDatagram(e)
            return
        }
        e.sendInFlight = true
    }

    func popDatagram(_ e: ATDatagram) {
        guard !e.tx.isEmpty else { return }
        e.txBytes -= e.tx[0].bytes.count
        e.tx.removeFirst()
        wakeDatagram(e, read: false)
    }

    func datagramSendCompleted(_ e: ATDatagram, _ failure: (ModemFailure, ModemReason)?) {
        e.sendInFlight = false
        guard let failure else {
            stats.payloadOut += e.tx.first?.bytes.count ?? 0
            stats.datagramsOut += 1
            e.sendRetries = 0
            popDatagram(e)
            return
        }
        if failure.1 == .tryAgain, retrySendLater(e) {
            return  // Quectel's SEND FAIL: the datagram goes again after a pause.
        }
        // The module refused it or never confirmed it: UDP may lose a datagram; count it.
        stats.datagramSendFailures += 1
        e.sendRetries = 0
        if failure.0 == .timeout { silence = "the modem did not confirm \(lastCommandText) in time" }
        popDatagram(e)
    }

    // MARK: Close

    func closeDatagram(_ e: ATDatagram) {
        guard !e.userClosed else { return }
        e.userClosed = true
        e.delegate = nil
        e.wantRead = false
        e.wantWrite = false
        e.rx.removeAll()
        if !e.steps.isEmpty, datagramStepOwner !== e {
            // Setup not started yet: nothing to wait for.
            datagramStepFailed(e, SocketError.closed)
        }
        datagramEndpoints.removeAll { $0 === e }
        if let link = e.link, !e.linkOpen, datagramStepOwner !== e {
            if case .datagram(let current) = slots[link], current === e { slots[link] = .free }
            e.link = nil
        }
        pump()
    }
}
