import CGenTCPShims
import GenTCPModem
import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPAT
import GenTCPSim
import Synchronization
#if canImport(Glibc)
import Glibc
#endif


// The two runners of a scripted module (see ScriptedModule.swift).

// MARK: Runner on a pty (real clock, its own thread)

/// Plays a script on the master of a pty from a dedicated thread; the driver opens the slave
/// path with `PTYLink`. Writes can be paced at a baud rate (a pty moves bytes as fast as the
/// kernel copies them; a real UART at 9600 baud does not).
final class PTYModuleRunner: @unchecked Sendable {
    private struct Control {
        var stopRequested = false
        var report: ModuleReport?
        var waiters: [CheckedContinuation<ModuleReport, Never>] = []
    }

    /// The slave's path, for `PTYLink(path:)`.
    let slavePath: String
    private var fd: Int32
    private let paceBaud: Int?
    private var machine: ModuleMachine
    private let control = Mutex(Control())
    /// When the simulated UART is free again (pacing).
    private var lineFreeAt: UInt64 = 0

    /// Opens a pty master (`posix_openpt`, `grantpt`, `unlockpt`) and prepares `script`; call
    /// ``start()`` once the driver's link is open on ``slavePath``.
    init(script: ModuleScript, paceBaud: Int? = nil) throws {
        // posix_openpt(3), grantpt(3), unlockpt(3) and ptsname_r(3) are in libc but not in Swift's
        // Glibc module (they need _XOPEN_SOURCE): look them up.
        typealias OneFD = @convention(c) (Int32) -> Int32
        typealias Name = @convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int32
        guard let libc = dlopen(nil, RTLD_NOW),
              let openpt = dlsym(libc, "posix_openpt").map({ unsafeBitCast($0, to: OneFD.self) }),
              let grant = dlsym(libc, "grantpt").map({ unsafeBitCast($0, to: OneFD.self) }),
              let unlock = dlsym(libc, "unlockpt").map({ unsafeBitCast($0, to: OneFD.self) }),
              let ptsname = dlsym(libc, "ptsname_r").map({ unsafeBitCast($0, to: Name.self) }) else {
            throw ModuleRunnerError("posix_openpt, grantpt, unlockpt or ptsname_r not found in libc")
        }
        let master = openpt(O_RDWR | O_NOCTTY)
        guard master >= 0 else { throw ModuleRunnerError("posix_openpt: errno \(cgentcp_errno())") }
        guard grant(master) == 0, unlock(master) == 0 else {
            let e = cgentcp_errno()
            _ = Glibc.close(master)
            throw ModuleRunnerError("grantpt/unlockpt: errno \(e)")
        }
        var name = [CChar](repeating: 0, count: 128)
        guard ptsname(master, &name, name.count) == 0 else {
            let e = cgentcp_errno()
            _ = Glibc.close(master)
            throw ModuleRunnerError("ptsname_r: errno \(e)")
        }
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
        _ = fcntl(master, F_SETFD, FD_CLOEXEC)
        fd = master
        slavePath = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.paceBaud = paceBaud
        machine = ModuleMachine(script: script, now: cgentcp_monotonic_ns())
    }

    deinit {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// Starts the script's thread.
    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let runner = Unmanaged<PTYModuleRunner>.fromOpaque(arg!).takeRetainedValue()
            runner.run()
            return nil
        }, box)
        precondition(rc == 0, "ScriptedModule: pthread_create \(rc)")
        pthread_detach(thread)
    }

    /// Stops the script wherever it is, closes the master, and returns the report.
    func stop() async -> ModuleReport {
        control.withLock { $0.stopRequested = true }
        return await report()
    }

    /// Waits for the script's thread to end (after ``stop()`` or once the line is gone).
    func report() async -> ModuleReport {
        await withCheckedContinuation { (c: CheckedContinuation<ModuleReport, Never>) in
            let done = control.withLock { s -> ModuleReport? in
                if let r = s.report { return r }
                s.waiters.append(c)
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }

    private var stopRequested: Bool { control.withLock { $0.stopRequested } }

    private func run() {
        loop: while !stopRequested {
            switch machine.next(now: cgentcp_monotonic_ns()) {
            case .write(let bytes):
                writeAll(bytes)
            case .wait(let deadline):
                readSome(until: deadline)
            case .hangUp:
                _ = Glibc.close(fd)
                fd = -1
            case .stop:
                break loop
            }
        }
        drainAvailable()
        let report = machine.finish()
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
        let waiters = control.withLock { s -> [CheckedContinuation<ModuleReport, Never>] in
            s.report = report
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: report) }
    }

    /// Waits up to the deadline (in slices, to notice a stop) for bytes, and feeds what comes.
    private func readSome(until deadline: UInt64?) {
        let now = cgentcp_monotonic_ns()
        var slice: UInt64 = 50_000_000
        if let deadline { slice = deadline > now ? min(slice, deadline - now) : 0 }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let rc = poll(&p, 1, Int32((slice + 999_999) / 1_000_000))
        guard rc > 0 else { return }
        drainAvailable()
    }

    /// Reads whatever the driver has written, without waiting.
    private func drainAvailable() {
        guard fd >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                machine.received(buffer[0..<n], now: cgentcp_monotonic_ns())
                continue
            }
            let e = cgentcp_errno()
            if n < 0 && (e == EAGAIN || e == EINTR) { return }
            // 0 or EIO: every descriptor of the slave is closed.
            machine.peerHungUp()
            return
        }
    }

    /// Writes every byte, paced at `paceBaud` when set (10 bit times per byte).
    private func writeAll(_ bytes: [UInt8]) {
        var sent = 0
        let chunk = paceBaud.map { max(1, $0 / 1000) } ?? bytes.count
        while sent < bytes.count {
            if stopRequested {
                machine.interruptedWrite(written: sent, of: bytes.count)
                return
            }
            let n = min(chunk, bytes.count - sent)
            if paceBaud != nil {
                // Commands the driver sends meanwhile get their real time.
                drainAvailable()
                let now = cgentcp_monotonic_ns()
                if lineFreeAt < now { lineFreeAt = now }
                if lineFreeAt > now {
                    let wait = min(lineFreeAt - now, 50_000_000)
                    var ts = timespec(tv_sec: 0, tv_nsec: Int(wait))
                    _ = nanosleep(&ts, nil)
                    continue
                }
            }
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + sent, n) }
            if written > 0 {
                sent += written
                machine.wrote(written)
                if let baud = paceBaud { lineFreeAt += UInt64(written) * 10 * 1_000_000_000 / UInt64(baud) }
                continue
            }
            let e = cgentcp_errno()
            if written < 0 && (e == EAGAIN || e == EINTR) {
                // The driver is not reading: wait for room, and keep taking what it sends.
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 50)
                continue
            }
            machine.peerHungUp()
            return
        }
    }
}

struct ModuleRunnerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: Runner on a MemoryLink (virtual clock, a process of the simulation)

/// Plays a script on one end of a `MemoryLink` pair, as a process of a simulated network; the
/// line itself paces the bytes at its baud rate.
final class MemoryModuleRunner: SerialLinkDelegate, @unchecked Sendable {
    private struct Control {
        var stopRequested = false
        var waiter: CheckedContinuation<Void, Never>?
        var wakePending = false
        var report: ModuleReport?
        var reportWaiters: [CheckedContinuation<ModuleReport, Never>] = []
    }

    private let link: MemoryLink
    private let runtime: any Runtime
    private var machine: ModuleMachine
    private let control = Mutex(Control())

    /// Starts `script` on `link` (the module's end) as a process of `net`.
    init(link: MemoryLink, net: SimNetwork, script: ModuleScript) {
        self.link = link
        runtime = net.runtime
        machine = ModuleMachine(script: script, now: net.runtime.now)
        link.setDelegate(self)
        net.spawn { [self] in await run() }
    }

    func linkIsReadable(_ link: any SerialLink) { wake() }
    func linkIsWritable(_ link: any SerialLink) { wake() }

    /// Stops the script wherever it is, closes the module's end, and returns the report.
    func stop() async -> ModuleReport {
        control.withLock { $0.stopRequested = true }
        wake()
        return await withCheckedContinuation { (c: CheckedContinuation<ModuleReport, Never>) in
            let done = control.withLock { s -> ModuleReport? in
                if let r = s.report { return r }
                s.reportWaiters.append(c)
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }

    private func wake() {
        let waiter = control.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else {
                s.wakePending = true
                return nil
            }
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    /// Suspends until readiness, a stop, or the deadline.
    private func sleep(until deadline: UInt64?) async {
        var timer: TimerID?
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = control.withLock { s -> Bool in
                if s.wakePending || s.stopRequested {
                    s.wakePending = false
                    return true
                }
                s.waiter = c
                return false
            }
            if now {
                c.resume()
                return
            }
            if let deadline {
                let current = runtime.now
                timer = runtime.schedule(afterNanoseconds: deadline > current ? deadline - current : 0) { [weak self] in
                    self?.wake()
                }
            }
        }
        if let timer { runtime.cancel(timer) }
    }

    private var stopRequested: Bool { control.withLock { $0.stopRequested } }

    private func run() async {
        var open = true
        loop: while !stopRequested {
            switch machine.next(now: runtime.now) {
            case .write(let bytes):
                var sent = 0
                while sent < bytes.count {
                    if stopRequested {
                        machine.interruptedWrite(written: sent, of: bytes.count)
                        break
                    }
                    let result = link.write(Array(bytes[sent...]))
                    switch result {
                    case .bytes(let n):
                        sent += n
                        machine.wrote(n)
                    case .wouldBlock:
                        link.armWrite()
                        await sleep(until: nil)
                    case .hangUp, .failed:
                        machine.peerHungUp()
                        sent = bytes.count
                    }
                }
            case .wait(let deadline):
                var buffer = [UInt8](repeating: 0, count: 4096)
                reading: while true {
                    let result = buffer.withUnsafeMutableBytes { link.read(into: $0) }
                    switch result {
                    case .bytes(let n):
                        machine.received(buffer[0..<n], now: runtime.now)
                        // Let the machine act on these before reading more.
                        break reading
                    case .wouldBlock:
                        if let deadline, runtime.now >= deadline { break reading }
                        link.armRead()
                        await sleep(until: deadline)
                        if stopRequested { break reading }
                        if let deadline, runtime.now >= deadline {
                            continue reading  // one last look, then the machine sees the time
                        }
                    case .hangUp, .failed:
                        machine.peerHungUp()
                        break reading
                    }
                }
            case .hangUp:
                link.close()
                open = false
            case .stop:
                break loop
            }
        }
        // What the driver wrote last is part of the record.
        if open {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while case .bytes(let n) = buffer.withUnsafeMutableBytes({ link.read(into: $0) }) {
                machine.received(buffer[0..<n], now: runtime.now)
            }
        }
        let report = machine.finish()
        if open { link.close() }
        let waiters = control.withLock { s -> [CheckedContinuation<ModuleReport, Never>] in
            s.report = report
            defer { s.reportWaiters = [] }
            return s.reportWaiters
        }
        for w in waiters { w.resume(returning: report) }
    }
}
