import GenTCPCore
import Synchronization

/// A driver call the port layer cannot interrupt (a driver's `connect` or `resolve`), run in a
/// task of its own so that its caller can stop waiting for it.
///
/// When the caller's task is cancelled or its process exits, the caller gets `cancelled` at once
/// and the call's task is cancelled too (for drivers that honour it). A result that still comes
/// afterwards is handed to `orphan`, which releases it: a connection nobody will use is closed,
/// so nothing is left open behind a cancelled `connect`. Drivers need not know about any of it.
package final class DetachedCall<T: Sendable>: Sendable {
    private enum State {
        /// The call runs; the caller is not waiting yet.
        case running
        case waiting(UnsafeContinuation<Result<T, SocketError>, Never>)
        /// The call ended before the caller waited for it.
        case finished(Result<T, SocketError>)
        /// The caller stopped waiting: a late result goes to `orphan`.
        case abandoned
    }

    private let state = Mutex(State.running)
    private let orphan: @Sendable (T) -> Void

    private init(orphan: @escaping @Sendable (T) -> Void) { self.orphan = orphan }

    /// Runs `operation` on `executor` (the driver's runtime's) as `caller`, and waits for its
    /// result unless the calling task is cancelled or `caller` exits first.
    ///
    /// - Throws: what `operation` throws; `cancelled` when the caller stopped waiting.
    package static func run(
        as caller: Process, executor: (any TaskExecutor)?,
        orphan: @escaping @Sendable (T) -> Void,
        _ operation: @escaping @Sendable () async throws(SocketError) -> T
    ) async throws(SocketError) -> T {
        let call = DetachedCall(orphan: orphan)
        // An unstructured task inherits the task-local process, so the call acts as the caller.
        let task = Task<Void, Never>(executorPreference: executor) {
            let result: Result<T, SocketError>
            do throws(SocketError) { result = .success(try await operation()) } catch { result = .failure(error) }
            call.finish(result)
        }
        let result = await caller.waiting(interrupt: {
            call.abandon(caller.cancellation)
            task.cancel()
        }) {
            await withUnsafeContinuation { call.wait($0, as: caller) }
        }
        return try result.get()
    }

    private func wait(_ continuation: UnsafeContinuation<Result<T, SocketError>, Never>, as caller: Process) {
        let ready: Result<T, SocketError>? = state.withLock { s in
            switch s {
            case .running:
                if caller.mustNotWait {
                    s = .abandoned
                    return .failure(caller.cancellation)
                }
                s = .waiting(continuation)
                return nil
            case .finished(let result):
                // The result came first: it is returned even if the caller is cancelled now.
                s = .abandoned
                return result
            case .abandoned:
                return .failure(caller.cancellation)
            case .waiting:
                preconditionFailure("GenTCP: a detached call is waited for twice")
            }
        }
        if let ready { continuation.resume(returning: ready) }
    }

    private func abandon(_ error: SocketError) {
        let waiting: UnsafeContinuation<Result<T, SocketError>, Never>? = state.withLock { s in
            switch s {
            case .running:
                s = .abandoned
                return nil
            case .waiting(let c):
                s = .abandoned
                return c
            case .finished, .abandoned:
                // A finished result is still taken by `wait`; an abandoned call stays abandoned.
                return nil
            }
        }
        waiting?.resume(returning: .failure(error))
    }

    private func finish(_ result: Result<T, SocketError>) {
        let (waiting, release): (UnsafeContinuation<Result<T, SocketError>, Never>?, Bool) = state.withLock { s in
            switch s {
            case .running:
                s = .finished(result)
                return (nil, false)
            case .waiting(let c):
                s = .abandoned
                return (c, false)
            case .abandoned:
                return (nil, true)
            case .finished:
                return (nil, false)
            }
        }
        if let waiting {
            waiting.resume(returning: result)
        } else if release, case .success(let value) = result {
            orphan(value)
        }
    }
}
