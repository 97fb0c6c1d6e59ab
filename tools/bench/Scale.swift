import CGenTCPShims
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// gentcp-bench --scale: three servers doing the same work for 1, 10, 100, 1000 connections from
// one load generator: GenTCP (one process per connection), OTP's gen_tcp (one Erlang process per
// connection, in the escript BEAM of ``OTPPeer``) and a raw single-threaded epoll server (the
// machine's limit). The load generator is one pthread of this process with its own epoll.

/// Latencies in nanoseconds, log-linear: 16 linear buckets per power of two (6 % wide at most).
struct LatencyHistogram {
    private var counts = [Int](repeating: 0, count: 16 + 60 * 16)
    private(set) var total = 0

    private static func index(_ v: UInt64) -> Int {
        if v < 16 { return Int(v) }
        let e = 63 - v.leadingZeroBitCount
        return 16 + (e - 4) * 16 + Int((v >> UInt64(e - 4)) & 15)
    }

    /// The middle of bucket `i`.
    private static func value(_ i: Int) -> Double {
        if i < 16 { return Double(i) }
        let e = (i - 16) / 16 + 4, sub = (i - 16) % 16
        let low = Double(16 + sub) * Double(UInt64(1) << UInt64(e - 4))
        return low + Double(UInt64(1) << UInt64(e - 4)) / 2
    }

    mutating func record(_ nanoseconds: UInt64) {
        counts[Self.index(nanoseconds)] += 1
        total += 1
    }

    /// The value below which a fraction `p` of the samples lie (bucket middle), in ns.
    func percentile(_ p: Double) -> Double {
        guard total > 0 else { return .nan }
        let rank = max(1, Int((Double(total) * p).rounded(.up)))
        var seen = 0
        for (i, c) in counts.enumerated() {
            seen += c
            if seen >= rank { return Self.value(i) }
        }
        return Self.value(counts.count - 1)
    }
}

enum Scale {
    static let messageSize = 64
    static let chunk = 64 * 1024
    static let backlog = 1024

    enum Workload: Sendable {
        case echo
        case bulk
    }

    enum Server: Int, Sendable, CaseIterable {
        case genTCP, loop, otp, raw
        var name: String {
            switch self {
            case .genTCP: return "GenTCP"
            case .loop: return "loop"
            case .otp: return "OTP"
            case .raw: return "raw"
            }
        }
        /// The two GenTCP servers, and the letter of each in ratio columns.
        static let genTCPs: [(Server, String)] = [(.genTCP, "G"), (.loop, "L")]
    }

    /// One run of one server at one connection count.
    struct RunResult: Sendable {
        /// Round trips/s (echo) or bytes/s (bulk), over the timed span.
        var rate = 0.0
        var p50 = Double.nan, p99 = Double.nan, max = Double.nan
        /// Resident memory (this process, plus the BEAM for OTP): before connecting, connected and
        /// idle, right after the busy phase. Bytes; -1 when not measured.
        var before = -1, idle = -1, busy = -1
        /// CPU seconds of the timed phase (``LoadSpec/cpu``) per round trip or per byte.
        var cpuPerUnit = Double.nan
        /// Echo: Jain's fairness index of the round trips per connection in the timed phase
        /// ((sum x)^2 / (n sum x^2): 1 when every connection got as many, 1/n when one got all).
        var fairness = Double.nan
        var failure: String?

        static func failed(_ why: String) -> RunResult {
            var r = RunResult()
            r.failure = why
            return r
        }
    }

    /// What the load generator does in one run.
    struct LoadSpec: Sendable {
        var port: Int
        var connections: Int
        var workload: Workload
        var nanoseconds: UInt64
        var perConnection: Int
        var memory: @Sendable () -> Int
        /// CPU seconds used so far by this process (the load generator; the server too for
        /// GenTCP and raw), plus the BEAM's for OTP.
        var cpu: @Sendable () -> Double
    }

    // MARK: - Memory and limits

    /// VmRSS of a process in bytes (`/proc/<pid>/status`), or 0.
    static func residentBytes(_ pid: pid_t?) -> Int {
        let path = pid.map { "/proc/\($0)/status" } ?? "/proc/self/status"
        guard let status = ProcessCounters.contents(path) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let words = line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" })
            if let kb = words.first.flatMap({ Int($0) }) { return kb * 1024 }
        }
        return 0
    }

    /// glibc's `malloc_trim(0)` (not in Swift's Glibc module; found with dlsym), when present.
    static func trimHeap() {
        typealias Trim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(nil, "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }

    /// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns a line to print.
    static func raiseDescriptorLimit(needed: Int) -> String {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            return "RLIMIT_NOFILE: getrlimit failed"
        }
        let oldSoft = limit.rlim_cur
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) != 0 { limit.rlim_cur = oldSoft }
        }
        var text = "RLIMIT_NOFILE: soft \(oldSoft) -> \(limit.rlim_cur) (hard \(limit.rlim_max))"
        if limit.rlim_cur < rlim_t(needed) {
            text += "; WARNING: below the \(needed) descriptors the largest count needs (both ends in this process): runs may fail with EMFILE"
        }
        return text
    }

    // MARK: - Load generator (one pthread, epoll)

    /// Runs `spec` on a new pthread, without holding a thread of Swift's pool while it runs.
    static func generate(_ spec: LoadSpec) async -> RunResult {
        var thread: RawThread?
        let result = await withCheckedContinuation { (c: CheckedContinuation<RunResult, Never>) in
            thread = RawThread { c.resume(returning: generateBlocking(spec)) }
        }
        thread?.join()
        return result
    }

    private static func errorText(_ what: String) -> String {
        let e = cgentcp_errno()
        return "\(what): errno \(e) (\(String(cString: strerror(e))))"
    }

    /// A blocking connect to 127.0.0.1:port, then TCP_NODELAY and O_NONBLOCK.
    private static func connectNonblocking(port: Int) -> Swift.Result<Int32, ScaleFailure> {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(ScaleFailure(errorText("socket"))) }
        var address = Raw.loopback(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let text = errorText("connect to 127.0.0.1:\(port)")
            close(fd)
            return .failure(ScaleFailure(text))
        }
        var on: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return .success(fd)
    }

    static func generateBlocking(_ spec: LoadSpec) -> RunResult {
        var result = RunResult()
        result.before = spec.memory()
        var fds: [Int32] = []
        fds.reserveCapacity(spec.connections)
        let ep = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard ep >= 0 else { return .failed(errorText("epoll_create1")) }
        defer {
            for fd in fds { close(fd) }
            close(ep)
        }
        for i in 0..<spec.connections {
            switch connectNonblocking(port: spec.port) {
            case .success(let fd):
                fds.append(fd)
                var event = epoll_event()
                event.events = UInt32(EPOLLIN.rawValue)
                event.data.u64 = UInt64(i)
                guard epoll_ctl(ep, EPOLL_CTL_ADD, fd, &event) == 0 else { return .failed(errorText("epoll_ctl")) }
            case .failure(let f):
                return .failed("connection \(i + 1) of \(spec.connections): \(f.text)")
            }
        }
        switch spec.workload {
        case .echo:
            // One round trip on every connection first: every connection is accepted and served.
            var unused = LatencyHistogram()
            var counts = [Int](repeating: 0, count: fds.count)
            if case .failure(let f) = echo(fds, ep, until: 0, histogram: &unused, counts: &counts) { return .failed("warm-up: \(f.text)") }
            result.idle = spec.memory()
            var histogram = LatencyHistogram()
            let cpu0 = spec.cpu()
            let start = Snapshot.clock()
            counts = [Int](repeating: 0, count: fds.count)
            switch echo(fds, ep, until: start &+ spec.nanoseconds, histogram: &histogram, counts: &counts) {
            case .failure(let f): return .failed(f.text)
            case .success(let end):
                result.cpuPerUnit = (spec.cpu() - cpu0) / Double(max(histogram.total, 1))
                result.busy = spec.memory()
                result.rate = Double(histogram.total) / (Double(end &- start) / 1e9)
                result.p50 = histogram.percentile(0.5)
                result.p99 = histogram.percentile(0.99)
                result.max = histogram.percentile(1)
                let sum = counts.reduce(0.0) { $0 + Double($1) }, squares = counts.reduce(0.0) { $0 + Double($1) * Double($1) }
                result.fairness = squares > 0 ? sum * sum / (Double(counts.count) * squares) : .nan
            }
        case .bulk:
            // Give the server a moment to accept every connection (no round trip proves it here).
            usleep(50_000)
            result.idle = spec.memory()
            let cpu0 = spec.cpu()
            let start = Snapshot.clock()
            switch bulk(fds, ep, perConnection: spec.perConnection) {
            case .failure(let f): return .failed(f.text)
            case .success(let end):
                result.cpuPerUnit = (spec.cpu() - cpu0) / Double(spec.perConnection * spec.connections)
                result.busy = spec.memory()
                result.rate = Double(spec.perConnection * spec.connections) / (Double(end &- start) / 1e9)
            }
        }
        return result
    }

    /// Aborts a phase that makes no progress for this long (a peer that stopped answering).
    static let stallNanoseconds: UInt64 = 10_000_000_000

    /// Request/response of `messageSize` bytes, one outstanding per connection, new requests
    /// until `until` (0: one each). Returns the time of the last response.
    private static func echo(_ fds: [Int32], _ ep: Int32, until: UInt64,
                             histogram: inout LatencyHistogram, counts: inout [Int]) -> Swift.Result<UInt64, ScaleFailure> {
        let message = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
        defer { message.deallocate() }
        memset(message, 0x42, 4096)
        var got = [Int](repeating: 0, count: fds.count)
        var sentAt = [UInt64](repeating: 0, count: fds.count)
        func request(_ i: Int) -> ScaleFailure? {
            sentAt[i] = Snapshot.clock()
            let n = send(fds[i], message, messageSize, Int32(MSG_NOSIGNAL))
            if n == messageSize { return nil }
            return ScaleFailure(n < 0 ? errorText("send") : "short send of \(n) B with one request outstanding")
        }
        for i in fds.indices {
            if let f = request(i) { return .failure(f) }
        }
        var outstanding = fds.count
        var last = Snapshot.clock()
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: eventCapacity)
        defer { events.deallocate() }
        while outstanding > 0 {
            let n: Int
            switch ready(ep, events, since: last, stalled: "no response for 10 s (\(outstanding) requests outstanding)") {
            case .success(let count): n = count
            case .failure(let f): return .failure(f)
            }
            for k in 0..<n {
                let i = Int(events[k].data.u64)
                let r: Int
                switch readReady(fds[i], message, 4096) {
                case .success(let count?): r = count
                case .success(nil): continue
                case .failure(let f): return .failure(f)
                }
                if r == 0 { return .failure(ScaleFailure("the server closed connection \(i + 1)")) }
                got[i] += r
                if got[i] > messageSize { return .failure(ScaleFailure("\(got[i]) B back for one \(messageSize) B request")) }
                guard got[i] == messageSize else { continue }
                got[i] = 0
                let now = Snapshot.clock()
                histogram.record(now &- sentAt[i])
                counts[i] += 1
                last = now
                if now < until {
                    if let f = request(i) { return .failure(f) }
                } else {
                    outstanding -= 1
                }
            }
        }
        return .success(last)
    }

    /// Events one `epoll_wait` takes (the load generator and the raw server).
    static let eventCapacity = 256

    /// The load generator's wait: epoll, 100 ms at a time. The number of ready events (0: none
    /// yet), or a failure saying `stalled` once nothing came for `stallNanoseconds` since `last`.
    private static func ready(_ ep: Int32, _ events: UnsafeMutablePointer<epoll_event>, since last: UInt64,
                              stalled: @autoclosure () -> String) -> Swift.Result<Int, ScaleFailure> {
        let n = epoll_wait(ep, events, Int32(eventCapacity), 100)
        if n < 0 {
            return cgentcp_errno() == EINTR ? .success(0) : .failure(ScaleFailure(errorText("epoll_wait")))
        }
        if n == 0 && Snapshot.clock() &- last > stallNanoseconds { return .failure(ScaleFailure(stalled())) }
        return .success(Int(n))
    }

    /// One read of a connection epoll reported: its byte count (0 at the end), or nil when there
    /// was nothing to read after all.
    private static func readReady(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Swift.Result<Int?, ScaleFailure> {
        let r = read(fd, buffer, count)
        if r >= 0 { return .success(r) }
        let e = cgentcp_errno()
        return e == EAGAIN || e == EINTR ? .success(nil) : .failure(ScaleFailure(errorText("read")))
    }

    /// A one-byte "go" on every connection, then `perConnection` bytes from the server on each.
    /// Returns the time the last byte arrived.
    private static func bulk(_ fds: [Int32], _ ep: Int32, perConnection: Int) -> Swift.Result<UInt64, ScaleFailure> {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var go: UInt8 = 1
        for fd in fds where send(fd, &go, 1, Int32(MSG_NOSIGNAL)) != 1 {
            return .failure(ScaleFailure(errorText("sending go")))
        }
        var got = [Int](repeating: 0, count: fds.count)
        var left = fds.count
        var last = Snapshot.clock()
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: eventCapacity)
        defer { events.deallocate() }
        while left > 0 {
            let n: Int
            switch ready(ep, events, since: last, stalled: "no data for 10 s (\(left) connections unfinished)") {
            case .success(let count): n = count
            case .failure(let f): return .failure(f)
            }
            for k in 0..<n {
                let i = Int(events[k].data.u64)
                let r: Int
                switch readReady(fds[i], buffer, chunk) {
                case .success(let count?): r = count
                case .success(nil): continue
                case .failure(let f): return .failure(f)
                }
                last = Snapshot.clock()
                if r == 0 {
                    if got[i] < perConnection {
                        return .failure(ScaleFailure("connection \(i + 1) ended after \(got[i]) of \(perConnection) B"))
                    }
                    _ = epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], nil)
                    continue
                }
                let before = got[i]
                got[i] += r
                if before < perConnection && got[i] >= perConnection { left -= 1 }
            }
        }
        return .success(last)
    }
}

struct ScaleFailure: Error {
    var text: String
    init(_ text: String) { self.text = text }
}

// MARK: - The GenTCP server

/// One GenTCP process per connection, Erlang style: each acceptor process accepts one
/// connection, spawns the next acceptor and serves its connection (passive `recv`/`send`).
final class GenTCPScaleServer: Sendable {
    let listener: ListenSocket
    let port: Int
    /// Connections being served.
    let live = Atomic<Int>(0)
    /// Where the connection processes run (the driver's runtime).
    let runtime: any Runtime

    private init(listener: ListenSocket, port: Int, runtime: any Runtime) {
        self.listener = listener
        self.port = port
        self.runtime = runtime
    }

    static func start(_ workload: Scale.Workload, perConnection: Int, driver: POSIXDriver) -> Swift.Result<GenTCPScaleServer, ScaleFailure> {
        do throws(SocketError) {
            let listener = try ListenSocket.listen(
                port: 0,
                options: [.binary, .active(.passive), .nodelay(true), .backlog(Scale.backlog), .reuseaddr(true),
                          .localAddress(.loopbackV4)],
                driver: driver)
            let server = GenTCPScaleServer(listener: listener, port: try listener.port(), runtime: driver.runtime)
            Process.spawn(runtime: driver.runtime) { await acceptor(server, workload, perConnection) }
            return .success(server)
        } catch {
            return .failure(ScaleFailure("GenTCP listen: \(error)"))
        }
    }

    private static func acceptor(_ server: GenTCPScaleServer, _ workload: Scale.Workload, _ perConnection: Int) async {
        let socket: Socket
        do throws(SocketError) {
            socket = try await server.listener.accept()
        } catch {
            return  // closed: the run is over
        }
        Process.spawn(runtime: server.runtime) { await acceptor(server, workload, perConnection) }
        server.live.add(1, ordering: .relaxed)
        defer { server.live.subtract(1, ordering: .relaxed) }
        do throws(SocketError) {
            switch workload {
            case .echo:
                while true {
                    let request = try await socket.recv(Scale.messageSize)
                    try await socket.send(request.bytes)
                }
            case .bulk:
                try await Bulk.sendAfterGo(total: perConnection, on: socket)
                socket.close()
            }
        } catch {
            // The load generator closed the connection: the process ends, closing the socket.
        }
    }

    /// Closes the listener and waits (up to 5 s) for every connection's process to end.
    /// Returns false when some did not.
    func stop() async -> Bool {
        listener.close()
        for _ in 0..<500 {
            if live.load(ordering: .relaxed) == 0 { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return live.load(ordering: .relaxed) == 0
    }
}

// MARK: - The raw epoll server

/// The C-style reference: one thread, nonblocking sockets, level-triggered epoll, an eventfd to
/// stop it.
final class RawScaleServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let wake: Int32
    private var thread: RawThread?

    private struct Connection {
        var open = false
        /// Echo: bytes a short write left behind. Bulk: unused.
        var pending: [UInt8] = []
        /// Bulk: sending (after "go") and bytes sent.
        var sending = false
        var sent = 0
    }

    init?(_ workload: Scale.Workload, perConnection: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = Raw.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, length) == 0 && Glibc.listen(fd, Int32(Scale.backlog)) == 0 && getsockname(fd, p, &length) == 0
            }
        }
        let wake = eventfd(0, Int32(EFD_CLOEXEC))
        guard ok, wake >= 0 else {
            close(fd)
            if wake >= 0 { close(wake) }
            return nil
        }
        listener = fd
        self.wake = wake
        port = Int(UInt16(bigEndian: address.sin_port))
        let listener = fd
        thread = RawThread { RawScaleServer.serve(listener: listener, wake: wake, workload, perConnection) }
    }

    func stop() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
        thread?.join()
        close(listener)
        close(wake)
    }

    private static func serve(listener: Int32, wake: Int32, _ workload: Scale.Workload, _ perConnection: Int) {
        let ep = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard ep >= 0 else { return }
        let listenerTag = UInt64.max, wakeTag = UInt64.max - 1
        var event = epoll_event()
        event.events = UInt32(EPOLLIN.rawValue)
        event.data.u64 = listenerTag
        _ = epoll_ctl(ep, EPOLL_CTL_ADD, listener, &event)
        event.data.u64 = wakeTag
        _ = epoll_ctl(ep, EPOLL_CTL_ADD, wake, &event)
        var connections: [Connection] = []
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Scale.chunk, alignment: 64)
        memset(buffer, 0x5A, Scale.chunk)
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Scale.eventCapacity)
        defer {
            for (fd, c) in connections.enumerated() where c.open { close(Int32(fd)) }
            close(ep)
            buffer.deallocate()
            events.deallocate()
        }
        func watch(_ fd: Int32, write: Bool) {
            var e = epoll_event()
            e.events = UInt32(write ? EPOLLOUT.rawValue : EPOLLIN.rawValue)
            e.data.u64 = UInt64(fd)
            _ = epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e)
        }
        /// Out of descriptors: the listener is left alone until a connection closes.
        var listenerPaused = false
        func listen(_ on: Bool) {
            var e = epoll_event()
            e.events = on ? UInt32(EPOLLIN.rawValue) : 0
            e.data.u64 = listenerTag
            _ = epoll_ctl(ep, EPOLL_CTL_MOD, listener, &e)
            listenerPaused = !on
        }
        func drop(_ fd: Int32) {
            connections[Int(fd)] = Connection()
            close(fd)
            if listenerPaused { listen(true) }
        }
        /// Bulk: writes chunks until the socket is full or the connection's share is sent.
        func pump(_ fd: Int32) {
            while connections[Int(fd)].sent < perConnection {
                let n = send(fd, buffer, min(Scale.chunk, perConnection - connections[Int(fd)].sent), Int32(MSG_NOSIGNAL))
                if n < 0 {
                    let e = cgentcp_errno()
                    if e == EINTR { continue }
                    if e == EAGAIN { watch(fd, write: true); return }
                    drop(fd)
                    return
                }
                connections[Int(fd)].sent += n
            }
            drop(fd)  // all sent: close, as the other servers do
        }
        while true {
            let n = epoll_wait(ep, events, Int32(Scale.eventCapacity), -1)
            if n < 0 {
                if cgentcp_errno() == EINTR { continue }
                return
            }
            for k in 0..<Int(n) {
                let tag = events[k].data.u64, mask = events[k].events
                if tag == wakeTag { return }
                if tag == listenerTag {
                    while true {
                        let fd = cgentcp_accept4(listener, nil, nil, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
                        if fd < 0 {
                            let e = cgentcp_errno()
                            if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM { listen(false) }
                            break
                        }
                        var on: Int32 = 1
                        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
                        while connections.count <= Int(fd) { connections.append(Connection()) }
                        connections[Int(fd)] = Connection(open: true)
                        var e = epoll_event()
                        e.events = UInt32(EPOLLIN.rawValue)
                        e.data.u64 = UInt64(fd)
                        _ = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e)
                    }
                    continue
                }
                let fd = Int32(tag)
                guard connections[Int(fd)].open else { continue }
                switch workload {
                case .echo:
                    if mask & UInt32(EPOLLOUT.rawValue) != 0 {
                        var c = connections[Int(fd)]
                        let w = c.pending.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        if w > 0 { c.pending.removeFirst(w) }
                        connections[Int(fd)] = c
                        if c.pending.isEmpty { watch(fd, write: false) }
                        continue
                    }
                    let r = read(fd, buffer, 4096)
                    if r == 0 || (r < 0 && cgentcp_errno() != EAGAIN && cgentcp_errno() != EINTR) {
                        drop(fd)
                        continue
                    }
                    if r < 0 { continue }
                    if !connections[Int(fd)].pending.isEmpty {
                        connections[Int(fd)].pending += UnsafeRawBufferPointer(start: buffer, count: r)
                        continue
                    }
                    let w = send(fd, buffer, r, Int32(MSG_NOSIGNAL))
                    if w < r {
                        let done = max(w, 0)
                        connections[Int(fd)].pending = Array(UnsafeRawBufferPointer(start: buffer + done, count: r - done))
                        watch(fd, write: true)
                    }
                case .bulk:
                    if connections[Int(fd)].sending {
                        pump(fd)
                        continue
                    }
                    let r = read(fd, buffer, 1)
                    if r == 0 || (r < 0 && cgentcp_errno() != EAGAIN && cgentcp_errno() != EINTR) {
                        drop(fd)
                        continue
                    }
                    if r < 0 { continue }
                    memset(buffer, 0x5A, 1)
                    connections[Int(fd)].sending = true
                    pump(fd)
                }
            }
        }
    }
}

// MARK: - The runs and the report

extension Scale {
    struct Settings: Sendable {
        var counts: [Int]
        var nanoseconds: UInt64
        var bulkTotal: Int
        var rounds: Int
        var otpWanted: Bool
        var driver: POSIXDriver = .posix
        /// A line naming a brief wait that is not the default, to print.
        var driverNote: String? = nil
        /// Extra emulator flags for the BEAM (--otp-flags).
        var otpFlags = ""
        /// Only this server (--side gentcp, loop, raw or otp), warm-up included: for `perf stat`.
        var side: String? = nil
    }

    /// Every run of one workload at one connection count: per server, one result per round.
    struct Row {
        var count: Int
        var runs: [Server: [RunResult]] = [:]
        /// A GenTCP server's rate / OTP's or raw's, per round where both worked; keyed by the two
        /// servers (GenTCP or loop first).
        var versus: [[Server]: [Double]] = [:]
        func ratio(_ g: Server, _ other: Server) -> Double? {
            guard let v = versus[[g, other]], !v.isEmpty else { return nil }
            return median(v)
        }

        func good(_ s: Server) -> [RunResult] { (runs[s] ?? []).filter { $0.failure == nil } }
        func rate(_ s: Server) -> Double? {
            let g = good(s)
            return g.isEmpty ? nil : median(g.map(\.rate))
        }
        func latency(_ s: Server, _ p: KeyPath<RunResult, Double>) -> Double? {
            let g = good(s).map { $0[keyPath: p] }.filter { $0.isFinite }
            return g.isEmpty ? nil : median(g)
        }
        /// Median (idle - before)/C and (busy - before)/C in bytes.
        func memory(_ s: Server) -> (idle: Double?, busy: Double?) {
            let g = good(s)
            let idle = g.filter { $0.idle >= 0 && $0.before >= 0 }.map { Double($0.idle - $0.before) / Double(count) }
            let busy = g.filter { $0.busy >= 0 && $0.before >= 0 }.map { Double($0.busy - $0.before) / Double(count) }
            return (idle.isEmpty ? nil : median(idle), busy.isEmpty ? nil : median(busy))
        }
    }

    static func perConnection(_ settings: Settings, _ count: Int) -> Int {
        max(settings.bulkTotal / count, 64 * 1024)
    }

    /// One run of `server`.
    static func runOne(_ server: Server, _ workload: Workload, count: Int, settings: Settings,
                       otp: OTPPeer?, nanoseconds: UInt64? = nil) async -> RunResult {
        let per = perConnection(settings, count)
        func spec(_ port: Int, _ memory: @escaping @Sendable () -> Int, beam: pid_t? = nil) -> LoadSpec {
            LoadSpec(port: port, connections: count, workload: workload, nanoseconds: nanoseconds ?? settings.nanoseconds,
                     perConnection: per, memory: memory,
                     cpu: { Snapshot.now().cpu + (beam.map { ProcessCounters.read($0).cpu } ?? 0) })
        }
        // Free heap pages from earlier runs would be reused by this one and hide its cost.
        trimHeap()
        let ownMemory: @Sendable () -> Int = { residentBytes(nil) }
        switch server {
        case .genTCP, .loop:
            // loop: the same server with its processes, and its sockets' readiness, on the event loop.
            let driver = server == .loop
                ? POSIXDriver(runtime: EventLoopRuntime.shared, briefWait: settings.driver.briefWait,
                              briefSpin: settings.driver.briefSpin)
                : settings.driver
            switch GenTCPScaleServer.start(workload, perConnection: per, driver: driver) {
            case .failure(let f): return .failed(f.text)
            case .success(let s):
                var r = await generate(spec(s.port, ownMemory))
                if !(await s.stop()) && r.failure == nil {
                    r.failure = "GenTCP: \(s.live.load(ordering: .relaxed)) connection processes still alive 5 s after the run"
                }
                return r
            }
        case .raw:
            guard let s = RawScaleServer(workload, perConnection: per) else { return .failed(errorText("raw server listen")) }
            let r = await generate(spec(s.port, ownMemory))
            s.stop()
            return r
        case .otp:
            guard let otp else { return .failed("OTP not running") }
            let command = workload == .echo ? "serve-echo" : "serve-bulk \(per)"
            guard let reply = otp.request(command) else { return .failed("the BEAM exited or hung") }
            let words = reply.split(separator: " ")
            guard words.count == 2, words[0] == "port", let port = Int(words[1]) else {
                return .failed("OTP '\(command)': \(reply)")
            }
            let r = await generate(spec(port, { residentBytes(nil) + otp.residentBytes() }, beam: otp.pid))
            guard let stopped = otp.request("stop-serve") else { return .failed("the BEAM exited or hung") }
            if !stopped.hasPrefix("ok"), r.failure == nil { return .failed("OTP 'stop-serve': \(stopped)") }
            return r
        }
    }

    static func run(_ settings: Settings) async {
        signal(SIGPIPE, SIG_IGN)
        let largest = settings.counts.max() ?? 1
        let limitLine = raiseDescriptorLimit(needed: 2 * largest + 64)
        say("gentcp-bench --scale: GenTCP (a process per connection, on the default runtime; \"loop\": the same")
        say("on EventLoopRuntime), OTP's gen_tcp (an Erlang process per connection) and a raw single-threaded")
        say("epoll server, each serving the same load generator (one pthread of this process, epoll,")
        say("nonblocking sockets, TCP_NODELAY) on 127.0.0.1.")
        say("echo: 64 B request/response, one outstanding per connection, \(format(Double(settings.nanoseconds) / 1e9, 1)) s per run;")
        say("bulk: \(formatSize(settings.bulkTotal)) split across the connections (at least 64 KiB each) in 64 KiB sends after a one-byte go.")
        say("\(settings.rounds) round(s) per connection count, servers rotating (G L O R, L O R G, ...); medians.")
        say(limitLine)
        if let note = settings.driverNote { say(note) }
        var otp: OTPPeer?
        if !settings.otpWanted {
            say("OTP: left out (--no-otp).")
        } else {
            otp = OTPPeer.startAndReport(emulatorFlags: settings.otpFlags) { peer in
                "BEAM pid \(peer.pid), RSS \(formatSize(((peer.residentBytes() + 1023) / 1024) * 1024)) at start."
            }
        }
        say("\(sysconf(Int32(_SC_NPROCESSORS_ONLN))) CPUs, load average \(loadAverage()) at start.")
        say()
        var servers: [Server] = [.genTCP, .loop, .otp, .raw]
        if otp == nil { servers.removeAll { $0 == .otp } }
        if let side = settings.side {
            servers.removeAll { $0.name.lowercased() != side }
            say("Only \(side) runs (--side): no ratios.")
        }

        // Warm-up, untimed: threads, code, the allocator, the BEAM.
        for s in servers {
            _ = await runOne(s, .echo, count: 10, settings: settings, otp: otp, nanoseconds: 100_000_000)
            var small = settings
            small.bulkTotal = 4 << 20
            _ = await runOne(s, .bulk, count: 1, settings: small, otp: otp)
        }

        var failures: [String] = []
        var tables: [(Workload, [Row])] = []
        for workload in [Workload.echo, .bulk] {
            var rows: [Row] = []
            for count in settings.counts {
                var row = Row(count: count)
                for round in 0..<settings.rounds {
                    var rates: [Server: Double] = [:]
                    for k in 0..<servers.count {
                        let s = servers[(round + k) % servers.count]
                        progress("\r\u{1B}[K  \(workload == .echo ? "echo" : "bulk") \(count) connections, round \(round + 1)/\(settings.rounds): \(s.name)")
                        let r = await runOne(s, workload, count: count, settings: settings, otp: otp)
                        row.runs[s, default: []].append(r)
                        if let f = r.failure {
                            failures.append("\(workload == .echo ? "echo" : "bulk") \(count) conns, round \(round + 1), \(s.name): \(f)")
                        } else {
                            rates[s] = r.rate
                        }
                    }
                    for (g, _) in Server.genTCPs {
                        guard let rg = rates[g] else { continue }
                        for other in [Server.otp, .raw] {
                            if let ro = rates[other] { row.versus[[g, other], default: []].append(rg / ro) }
                        }
                    }
                }
                rows.append(row)
            }
            tables.append((workload, rows))
        }
        progress("\r\u{1B}[K")
        otp?.stop()
        for (workload, rows) in tables {
            report(workload, rows, servers: servers)
            say()
        }
        if !failures.isEmpty {
            say("Failed runs (left out of the medians):")
            for f in failures { say("  \(f)") }
            say()
        }
        say("load average \(loadAverage()) at the end.")
    }

    private static func micro(_ ns: Double?) -> String {
        guard let ns else { return "-" }
        return ns >= 10_000_000 ? format(ns / 1e6, 1) + "ms" : format(ns / 1e3, ns < 100_000 ? 1 : 0) + "µs"
    }

    private static func kib(_ bytes: Double?) -> String {
        guard let bytes else { return "-" }
        return format(bytes / 1024, 1)
    }

    static func report(_ workload: Workload, _ rows: [Row], servers: [Server]) {
        let echo = workload == .echo
        func rateText(_ r: Double?) -> String {
            guard let r else { return "fail" }
            return echo ? formatRoundTrips(perSecond: r) : formatRate(bytesPerSecond: r)
        }
        func line(_ cells: [(String, Int)]) {
            var text = ""
            for (i, (cell, width)) in cells.enumerated() { text += (i == 0 ? pad(cell, width) : pad(cell, width, right: true)) + " " }
            say(text)
        }
        let hasOTP = servers.contains(.otp)
        say(echo ? "Echo, 64 B request/response (rate = aggregate round trips/s; p50/p99 = round-trip latency):"
                 : "Bulk, server to client in 64 KiB sends (rate = aggregate bytes/s, go to the last byte of all):")
        var header: [(String, Int)] = [("conns", 6)]
        for s in servers {
            header.append((s.name, 12))
            if echo { header += [("p50", 8), ("p99", 8), ("max", 8), ("fair", 5)] }
        }
        let gens = Server.genTCPs.filter { servers.contains($0.0) }
        let others = [Server.otp, .raw].filter { servers.contains($0) }
        for (_, letter) in gens {
            for o in others { header.append(("\(letter)/\(o == .otp ? "OTP" : "raw")", 6)) }
        }
        header.append(("  goals", 0))
        line(header)
        for row in rows {
            var cells: [(String, Int)] = [("\(row.count)", 6)]
            for s in servers {
                cells.append((rateText(row.rate(s)), 12))
                if echo {
                    cells += [(micro(row.latency(s, \.p50)), 8), (micro(row.latency(s, \.p99)), 8),
                              (micro(row.latency(s, \.max)), 8), (row.latency(s, \.fairness).map { format($0, 2) } ?? "-", 5)]
                }
            }
            var goals: [String] = []
            for (g, letter) in gens {
                var mine: [String] = []
                for o in others {
                    let v = row.ratio(g, o)
                    cells.append((v.map { format($0, 2) } ?? "-", 6))
                    if o == .otp, let v { mine.append(">OTP " + (v >= 1 ? "PASS" : "MISS")) }
                }
                if echo, let p = row.latency(g, \.p99), let w = row.latency(.raw, \.p99) {
                    mine.append("p99<=2x raw " + (p <= 2 * w ? "PASS" : "MISS") + " (\(format(p / w, 2))x)")
                    // A p99 over round trips hides connections that got (almost) none.
                    if let f = row.latency(g, \.fairness), f < 0.5 { mine.append("starved connections (fair \(format(f, 2)))") }
                }
                if !mine.isEmpty { goals.append(letter + ": " + mine.joined(separator: ", ")) }
            }
            cells.append(("  " + goals.joined(separator: "; "), 0))
            line(cells)
        }
        if echo {
            say("(p50, p99, max: medians over rounds of each run's percentiles over all round trips; histogram buckets")
            say(" 6 % wide. fair: Jain's index of the round trips per connection, 1 = every connection served alike,")
            say(" 1/C = one connection got them all.)")
        }
        say("(GenTCP: processes on the default runtime (the global concurrent pool, readiness from the reactor")
        say(" thread); loop: the same server on EventLoopRuntime (one thread polls and runs the processes).")
        say(" G/x, L/x: GenTCP's or loop's rate / x's in the same round, median over rounds. Goals (issue): ahead")
        say(" of OTP; echo p99 within 2x raw's. Report only.)")

        say("Memory per connection, KiB (RSS of this process\(hasOTP ? ", plus the BEAM's for OTP" : ""); (idle - before)/C and (busy - before)/C):")
        var memoryHeader: [(String, Int)] = [("conns", 6)]
        for s in servers { memoryHeader += [(s.name + " idle", 13), ("busy", 8)] }
        line(memoryHeader)
        for row in rows {
            var cells: [(String, Int)] = [("\(row.count)", 6)]
            for s in servers {
                let m = row.memory(s)
                cells += [(kib(m.idle), 13), (kib(m.busy), 8)]
            }
            line(cells)
        }
        if echo {
            say("(idle: after one round trip on every connection; busy: right after the timed phase.)")
        } else {
            say("(idle: 50 ms after connecting, before the go; busy: right after the last byte arrived, connections")
            say(" still open.)")
        }
        say(echo ? "CPU per round trip, µs (all threads of this process: load generator and, for GenTCP and raw, the server;"
                 : "CPU per MiB, ms (all threads of this process: load generator and, for GenTCP and raw, the server;")
        say(hasOTP ? " for OTP plus the BEAM's, from /proc):" : " the same for both):")
        say(pad("conns", 6) + " " + servers.map { pad($0.name, 10, right: true) }.joined(separator: " "))
        for row in rows {
            let cells = servers.map { s -> String in
                let g = row.good(s).map(\.cpuPerUnit).filter { $0.isFinite }
                guard !g.isEmpty else { return pad("-", 10, right: true) }
                let v = median(g)
                return pad(echo ? format(v * 1e6, 1) : format(v * 1048576 * 1e3, 2), 10, right: true)
            }
            say(pad("\(row.count)", 6) + " " + cells.joined(separator: " "))
        }

        // How cost grows with the connection count.
        guard let first = rows.first, rows.count > 1 else { return }
        say("Growth from \(first.count) connection\(first.count == 1 ? "" : "s") (aggregate rate relative to the \(first.count)-connection row\(echo ? "; p50 relative" : "")):")
        for s in servers {
            guard let base = first.rate(s) else { continue }
            var parts: [String] = []
            for row in rows.dropFirst() {
                guard let r = row.rate(s) else { parts.append("\(row.count): fail"); continue }
                var text = "\(row.count): rate \(format(r / base, 2))x"
                if echo, let p = row.latency(s, \.p50), let p0 = first.latency(s, \.p50) {
                    text += ", p50 \(format(p / p0, 1))x"
                }
                parts.append(text)
            }
            say("  \(pad(s.name, 7)) " + parts.joined(separator: "; "))
        }
    }
}

