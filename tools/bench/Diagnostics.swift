import CGenTCPShims
import GenTCP
import GenTCPPOSIX
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// System-call counters wrapped around the posix driver's syscall funnel (`--diagnose` only:
/// timed runs use the plain driver).
final class SyscallCounters: Sendable {
    let reads = Atomic<Int>(0)
    let readsWouldBlock = Atomic<Int>(0)
    let writes = Atomic<Int>(0)
    let writesWouldBlock = Atomic<Int>(0)

    func reset() {
        reads.store(0, ordering: .relaxed)
        readsWouldBlock.store(0, ordering: .relaxed)
        writes.store(0, ordering: .relaxed)
        writesWouldBlock.store(0, ordering: .relaxed)
    }

    /// A posix driver whose reads and writes are counted.
    func driver() -> POSIXDriver {
        var calls = Syscalls.system
        let read = calls.read
        let writev = calls.writev
        calls.read = { [self] fd, buffer, count in
            let n = read(fd, buffer, count)
            let e = cgentcp_errno()
            reads.add(1, ordering: .relaxed)
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { readsWouldBlock.add(1, ordering: .relaxed) }
            cgentcp_set_errno(e)
            return n
        }
        calls.writev = { [self] fd, iov, count in
            let n = writev(fd, iov, count)
            let e = cgentcp_errno()
            writes.add(1, ordering: .relaxed)
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { writesWouldBlock.add(1, ordering: .relaxed) }
            cgentcp_set_errno(e)
            return n
        }
        return POSIXDriver(runtime: RealRuntime.shared, syscalls: calls)
    }
}

/// Cost of the receive buffer a passive `recv` allocates: zero-filled (what `attemptRecv` does
/// today) versus uninitialised (what the active path does). Nanoseconds per buffer.
func bufferCost(size: Int, iterations: Int) -> (zeroed: Double, uninitialized: Double) {
    var sink = 0
    let t0 = Snapshot.clock()
    for i in 0..<iterations {
        let a = [UInt8](repeating: 0, count: size)
        sink &+= Int(a[i % size])
    }
    let t1 = Snapshot.clock()
    for i in 0..<iterations {
        let a = [UInt8](unsafeUninitializedCapacity: size) { b, n in
            b[i % size] = UInt8(truncatingIfNeeded: i)
            n = size
        }
        sink &+= Int(a[i % size])
    }
    let t2 = Snapshot.clock()
    if sink == 42 { say("") }  // keep the loops
    return (Double(t1 - t0) / Double(iterations), Double(t2 - t1) / Double(iterations))
}
