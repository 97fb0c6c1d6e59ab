#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// gentcp's stderr: every line, trace and progress line goes through here, in order, written by
/// a thread of its own.
///
/// - Callers only format and queue, so a trace taken inside a serial link's `read` or a progress
///   update never waits for a slow terminal. When more than ``backlogLimit`` bytes are queued,
///   ``line(_:)`` waits for room (a trace is never dropped; only a stderr that cannot keep up
///   slows the program).
/// - One *status line* (the progress line) can be shown below the other output: it is
///   redrawn in place with `\r`, blanked with spaces before each other line and drawn again
///   after it, so lines never end up in the middle of it. No escape sequences are used.
/// - ``flush()`` waits until everything queued is written; `gentcp` calls it before exiting
///   and ``printError(_:)`` after every error line.
final class Console: @unchecked Sendable {
    /// gentcp's stderr.
    static let shared = Console(fd: 2)

    /// Queued bytes above which ``line(_:)`` waits for the writer.
    static let backlogLimit = 4 << 20

    private let fd: Int32
    // Guarded by `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// Signalled when there is something to write.
    private let work = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Broadcast when the writer took the queue (room again) or finished writing.
    private let progress = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var pending: [UInt8] = []
    private var writing = false
    private var started = false
    /// The status line's text while shown.
    private var status: String?
    /// Columns the status line occupies on screen (0 when none is shown).
    private var statusWidth = 0

    init(fd: Int32) {
        self.fd = fd
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(work, nil)
        pthread_cond_init(progress, nil)
    }

    /// Queues one line (a newline is added), above the status line if one is shown.
    func line(_ text: String) { lines([text]) }

    /// Queues lines, in order and together, above the status line if one is shown.
    func lines(_ texts: [String]) {
        guard !texts.isEmpty else { return }
        locked(waitForRoom: true) {
            hideStatus()
            for text in texts {
                pending.append(contentsOf: text.utf8)
                pending.append(0x0A)
            }
            if let status { drawStatus(status) }
        }
    }

    /// Shows `text` as the status line, replacing the one shown. Never waits for room (it is
    /// short, and it comes from timer contexts).
    func setStatus(_ text: String) {
        locked(waitForRoom: false) {
            status = text
            drawStatus(text)
        }
    }

    /// Removes the status line: with `keep`, its last text stays on screen as an ordinary line;
    /// without, it is blanked.
    func endStatus(keep: Bool) {
        locked(waitForRoom: false) {
            guard status != nil || statusWidth > 0 else { return }
            if keep, statusWidth > 0 {
                pending.append(0x0A)
            } else {
                hideStatus()
            }
            status = nil
            statusWidth = 0
        }
    }

    /// Waits until everything queued so far has been written.
    func flush() {
        pthread_mutex_lock(mutex)
        while !pending.isEmpty || writing { pthread_cond_wait(progress, mutex) }
        pthread_mutex_unlock(mutex)
    }

    // MARK: - Under the lock

    /// `\r`, the text, spaces over what is left of a longer previous status line.
    private func drawStatus(_ text: String) {
        let width = text.utf8.count
        pending.append(0x0D)
        pending.append(contentsOf: text.utf8)
        if statusWidth > width {
            pending.append(contentsOf: repeatElement(0x20, count: statusWidth - width))
            // Back to the end of the new text, so typed input follows it.
            pending.append(0x0D)
            pending.append(contentsOf: text.utf8)
        }
        statusWidth = width
    }

    /// Blanks the status line and leaves the cursor at the start of the line.
    private func hideStatus() {
        guard statusWidth > 0 else { return }
        pending.append(0x0D)
        pending.append(contentsOf: repeatElement(0x20, count: statusWidth))
        pending.append(0x0D)
        statusWidth = 0
    }

    private func locked(waitForRoom: Bool, _ body: () -> Void) {
        pthread_mutex_lock(mutex)
        if waitForRoom {
            while pending.count > Console.backlogLimit { pthread_cond_wait(progress, mutex) }
        }
        body()
        if !started {
            started = true
            startWriter()
        }
        if !pending.isEmpty { pthread_cond_signal(work) }
        pthread_mutex_unlock(mutex)
    }

    private func startWriter() {
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let console = Unmanaged<Console>.fromOpaque(arg!).takeRetainedValue()
            console.writeLoop()
            return nil
        }, Unmanaged.passRetained(self).toOpaque())
        precondition(rc == 0, "gentcp: cannot start the stderr writer (pthread_create \(rc))")
        pthread_detach(thread)
    }

    /// The writer thread: takes everything queued, writes it outside the lock, repeats.
    private func writeLoop() {
        pthread_mutex_lock(mutex)
        while true {
            while pending.isEmpty {
                writing = false
                pthread_cond_broadcast(progress)
                pthread_cond_wait(work, mutex)
            }
            var chunk: [UInt8] = []
            swap(&chunk, &pending)
            writing = true
            pthread_cond_broadcast(progress)
            pthread_mutex_unlock(mutex)
            // A failed stderr write has nowhere to be reported; the bytes are dropped.
            _ = writeBlocking(fd, chunk)
            pthread_mutex_lock(mutex)
        }
    }
}
