import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPModem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The port's calls on connections, connects and name lookups.
extension ATCore {
    // MARK: Connection calls (under the lock)

    func read(_ c: ATConnection, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if !c.rx.isEmpty {
            let wasFull = c.rx.room == 0
            let n = c.rx.remove(into: buffer)
            if c.wantsModuleRead || wasFull { pump() }
            return .bytes(n)
        }
        if c.ended {
            if let failure = c.failure { return .failed(failure) }
            return .endOfStream
        }
        if c.wantsModuleRead { pump() }
        return .wouldBlock
    }

    func write(_ c: ATConnection, _ chunks: [UnsafeRawBufferPointer]) -> IOResult {
        if c.userClosed { return .failed(.closed) }
        if c.ended || c.peerClosed || c.writeFailure != nil { return .failed(c.writeFailure ?? c.failure ?? .closed) }
        var total = 0
        for chunk in chunks {
            let n = c.tx.append(chunk)
            total += n
            if n < chunk.count { break }
        }
        guard total > 0 else { return .wouldBlock }
        if c.wantsModuleSend { pump() }
        return .bytes(total)
    }

    func armRead(_ c: ATConnection) {
        if !c.rx.isEmpty || c.ended {
            c.wantRead = false
            post(c, read: true)
        } else {
            c.wantRead = true
        }
    }

    func armWrite(_ c: ATConnection) {
        if c.tx.room > 0 || c.ended || c.peerClosed || c.writeFailure != nil {
            c.wantWrite = false
            post(c, read: false)
        } else {
            c.wantWrite = true
        }
    }

    func close(_ c: ATConnection, abortive: Bool) {
        guard !c.userClosed else { return }
        c.userClosed = true
        c.abortive = abortive || c.ended
        c.delegate = nil
        c.wantRead = false
        c.wantWrite = false
        c.rx.removeAll()
        if abortive { c.tx.removeAll() }
        guard case .open(let current) = slots[c.link], current === c else { return }
        if engine.linkState(c.link) == .closed, c.sendInFlight == 0 {
            c.moduleOpen = false
            slots[c.link] = .free
        }
        pump()
    }

    // MARK: Connect and resolve

    func connect(to address: SocketAddress, options: SocketOptions, timeoutNanoseconds: UInt64?,
                 delegate: any ConnectionDelegate) async throws(SocketError) -> any Connection {
        let result: Result<any Connection, SocketError> = await withUnsafeContinuation { continuation in
            locked { core in
                core.startConnect(address, options, timeoutNanoseconds, delegate, continuation)
            }
        }
        return try result.get()
    }

    func startConnect(_ address: SocketAddress, _ options: SocketOptions, _ timeoutNanoseconds: UInt64?,
                              _ delegate: any ConnectionDelegate,
                              _ continuation: UnsafeContinuation<Result<any Connection, SocketError>, Never>) {
        beginIfIdle()
        guard phase != .dead else {
            deferred.append { [stopped] in continuation.resume(returning: .failure(ATCore.deadError(stopped: stopped))) }
            return
        }
        guard (1...65_535).contains(address.port) else {
            // Nothing listens on port 0 (the modules refuse it before trying).
            deferred.append { continuation.resume(returning: .failure(SocketError(.connectionRefused, "port 0"))) }
            return
        }
        // Every link id is either free in the module or waits for its close.
        guard let link = (0..<slots.count).first(where: { l in
            if case .free = slots[l], engine.linkState(l) == .closed, !orphanCloses.contains(l) { return true }
            return false
        }) else {
            deferred.append { continuation.resume(returning: .failure(SocketError(.systemLimit, "every modem link is in use"))) }
            return
        }
        let request = ConnectRequest(address: address, host: address.address.description, port: address.port,
                                     tls: nil, options: options, delegate: delegate,
                                     callerTimeout: timeoutNanoseconds != nil, continuation: continuation)
        slots[link] = .connecting(request)
        connectQueue.append(link)
        // No caller timeout and an infinite connectTimeout: no timer.
        if let limit = timeoutNanoseconds ?? configuration.connectTimeout.nanoseconds {
            request.timer = runtime.schedule(afterNanoseconds: limit) { [weak self, weak request] in
                guard let self, let request else { return }
                self.locked { core in core.connectTimedOut(link, request) }
            }
        }
        pump()
    }

    func connectTimedOut(_ link: Int, _ request: ConnectRequest) {
        guard case .connecting(let current?) = slots[link], current === request else { return }
        let reason: SocketError.Reason = request.callerTimeout ? .timeout : .connectionTimedOut
        if request.submitted {
            // The module is still connecting: forget the caller, close the link when it answers.
            slots[link] = .connecting(nil)
        } else {
            slots[link] = .free
            connectQueue.removeAll { $0 == link }
        }
        finishConnect(request, .failure(SocketError(reason)))
    }

    func finishConnect(_ request: ConnectRequest, _ result: Result<any Connection, SocketError>) {
        if let t = request.timer { runtime.cancel(t) }
        request.timer = nil
        guard let continuation = request.continuation else { return }
        request.continuation = nil
        deferred.append { continuation.resume(returning: result) }
    }

    func resolve(_ host: String) async throws(SocketError) -> [IPAddress] {
        // Strings that could inject AT are refused here, before anything is queued or written.
        // A name longer than the module takes cannot be looked up there: nxdomain, as for a
        // name no server knows (checked after the injection check, which wins).
        do throws(ModemError) {
            try ModemValidation.check(host, maxLength: Int.max)
        } catch {
            throw SocketError(.init(error.reason), error.detail)
        }
        if host.utf8.count > configuration.dialect.makeDialect().limits.maxHostLength {
            throw SocketError(.nonExistentDomain, "name longer than the module takes")
        }
        do throws(ModemError) {
            try ModemValidation.check(host, maxLength: configuration.dialect.makeDialect().limits.maxHostLength)
        } catch {
            throw SocketError(.init(error.reason), error.detail)
        }
        let result: Result<[IPAddress], SocketError> = await withUnsafeContinuation { continuation in
            locked { core in core.startResolve(host, continuation) }
        }
        return try result.get()
    }

    func startResolve(_ host: String, _ continuation: UnsafeContinuation<Result<[IPAddress], SocketError>, Never>) {
        beginIfIdle()
        guard phase != .dead else {
            deferred.append { [stopped] in continuation.resume(returning: .failure(ATCore.deadError(stopped: stopped))) }
            return
        }
        guard resolveQueue.count < slots.count else {
            deferred.append { continuation.resume(returning: .failure(SocketError(.systemLimit, "too many lookups waiting"))) }
            return
        }
        let request = ResolveRequest(host: host, continuation: continuation)
        resolveQueue.append(request)
        // An infinite resolveTimeout: no timer.
        if let limit = configuration.resolveTimeout.nanoseconds {
            request.timer = runtime.schedule(afterNanoseconds: limit) { [weak self, weak request] in
                guard let self, let request else { return }
                self.locked { core in
                    core.resolveQueue.removeAll { $0 === request }
                    core.finishResolve(request, .failure(SocketError.timeout))
                }
            }
        }
        pump()
    }

    func finishResolve(_ request: ResolveRequest, _ result: Result<[IPAddress], SocketError>) {
        if let t = request.timer { runtime.cancel(t) }
        request.timer = nil
        guard let continuation = request.continuation else { return }
        request.continuation = nil
        deferred.append { continuation.resume(returning: result) }
    }
}

/// A closure carried into a `@Sendable` timer action; it only ever runs under the core's lock.
final class UncheckedAction: @unchecked Sendable {
    let action: (ATCore) -> Void
    init(_ action: @escaping (ATCore) -> Void) { self.action = action }
}

// MARK: Offloaded TLS

extension ATCore {
    func connectOffloaded(host: String, port: Int, tls: ModemTLSSettings, options: SocketOptions,
                          timeoutNanoseconds: UInt64?, delegate: any ConnectionDelegate) async throws(SocketError) -> any Connection {
        let result: Result<any Connection, SocketError> = await withUnsafeContinuation { continuation in
            locked { core in
                core.startOffloadedConnect(host, port, tls, options, timeoutNanoseconds, delegate, continuation)
            }
        }
        return try result.get()
    }

    func startOffloadedConnect(_ host: String, _ port: Int, _ tls: ModemTLSSettings, _ options: SocketOptions,
                               _ timeoutNanoseconds: UInt64?, _ delegate: any ConnectionDelegate,
                               _ continuation: UnsafeContinuation<Result<any Connection, SocketError>, Never>) {
        beginIfIdle()
        guard phase != .dead else {
            deferred.append { [stopped] in continuation.resume(returning: .failure(ATCore.deadError(stopped: stopped))) }
            return
        }
        // Strings that could inject AT are refused before anything is queued (the dialect checks
        // them again, with its own limits, when it builds the commands).
        do throws(ModemError) {
            try ModemValidation.check(host, maxLength: engine.dialect.limits.maxHostLength)
            if let name = tls.serverName { try ModemValidation.check(name, maxLength: engine.dialect.limits.maxHostLength) }
            for p in tls.applicationProtocols { try ModemValidation.check(p, maxLength: 255) }
        } catch {
            deferred.append { continuation.resume(returning: .failure(SocketError(.init(error.reason), error.detail))) }
            return
        }
        guard let link = (0..<slots.count).first(where: { l in
            if case .free = slots[l], engine.linkState(l) == .closed, !orphanCloses.contains(l) { return true }
            return false
        }) else {
            deferred.append { continuation.resume(returning: .failure(SocketError(.systemLimit, "every modem link is in use"))) }
            return
        }
        let address = IPAddress(host).map { SocketAddress($0, port: port) }
        let request = ConnectRequest(address: address, host: host, port: port, tls: tls, options: options,
                                     delegate: delegate, callerTimeout: timeoutNanoseconds != nil, continuation: continuation)
        slots[link] = .connecting(request)
        connectQueue.append(link)
        if let limit = timeoutNanoseconds ?? configuration.connectTimeout.nanoseconds {
            request.timer = runtime.schedule(afterNanoseconds: limit) { [weak self, weak request] in
                guard let self, let request else { return }
                self.locked { core in core.connectTimedOut(link, request) }
            }
        }
        pump()
    }
}
