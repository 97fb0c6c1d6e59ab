#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A thread of its own for blocking calls (`read(2)` on stdin, `write(2)` on stdout).
///
/// A terminal or a pipe can block for as long as it likes; doing that on the cooperative pool
/// would stall the socket copy in the other direction (with 2 cores the pool has 2 threads).
/// Jobs run one at a time, in order; ``run(_:)`` suspends the caller until its job is done.
/// The thread lives until the program exits (a read blocked on a terminal is never cancelled).
final class BlockingThread: @unchecked Sendable {
    private typealias Job = () -> Void

    // Guarded by `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [Job] = []

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let worker = Unmanaged<BlockingThread>.fromOpaque(arg!).takeRetainedValue()
            worker.loop()
            return nil
        }, Unmanaged.passRetained(self).toOpaque())
        precondition(rc == 0, "gentcp: cannot start a thread (pthread_create \(rc))")
        pthread_detach(thread)
    }

    /// Runs `body` on this thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<T, Never>) in
            pthread_mutex_lock(mutex)
            jobs.append { continuation.resume(returning: body()) }
            pthread_cond_signal(condition)
            pthread_mutex_unlock(mutex)
        }
    }

    private func loop() {
        while true {
            pthread_mutex_lock(mutex)
            while jobs.isEmpty { pthread_cond_wait(condition, mutex) }
            let job = jobs.removeFirst()
            pthread_mutex_unlock(mutex)
            job()
        }
    }
}

/// The outcome of one blocking read or write on a file descriptor.
enum FileIO: Sendable {
    case bytes([UInt8])
    case wrote
    case endOfFile
    case failed(Int32)
}

/// Reads up to `count` bytes from `fd`, retrying on `EINTR`; `read(2)`.
func readBlocking(_ fd: Int32, count: Int) -> FileIO {
    var result = FileIO.endOfFile
    let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        initialized = 0
        while true {
            let n = read(fd, buffer.baseAddress, count)
            if n > 0 {
                initialized = n
                result = .wrote
                return
            }
            if n == 0 { result = .endOfFile; return }
            if errno == EINTR { continue }
            // A descriptor inherited in non-blocking mode: wait until it is readable.
            if errno == EAGAIN || errno == EWOULDBLOCK { waitFor(fd, Int16(POLLIN)); continue }
            result = .failed(errno)
            return
        }
    }
    if case .wrote = result { return .bytes(bytes) }
    return result
}

/// Writes all of `bytes` to `fd`, retrying on `EINTR` and short writes; `write(2)`.
func writeBlocking(_ fd: Int32, _ bytes: [UInt8]) -> FileIO {
    bytes.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n >= 0 {
                offset += n
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                waitFor(fd, Int16(POLLOUT))
            } else if errno != EINTR {
                return .failed(errno)
            }
        }
        return .wrote
    }
}

/// Blocks until `fd` is ready for `events` (or fails; the caller's retry reports the error).
private func waitFor(_ fd: Int32, _ events: Int16) {
    var p = pollfd(fd: fd, events: events, revents: 0)
    _ = poll(&p, 1, -1)
}
