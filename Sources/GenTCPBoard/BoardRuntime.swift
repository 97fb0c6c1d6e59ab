import GenTCPCore

/// The run loop of a board program: reads the board's line into the interface, fires timers,
/// hands the program its messages, writes the interface's output to the line, and sleeps.
///
/// A firmware calls ``run()``, which returns only when the program calls ``Net/stop(status:)``.
/// A host run (simulation, pty) calls ``step()`` from its own event loop instead and waits for
/// line input or the deadline it returns.
public struct BoardRuntime<B: Board, Interface: NetworkInterface & ~Copyable, Program: BoardProgram & ~Copyable>: ~Copyable {
    /// The board (its UART, clock and sleep).
    public var board: B
    /// The program's sockets over the interface.
    public var net: Net<Interface>
    /// The program.
    public var program: Program
    var started = false
    /// When a stopped program's run ends even if its closes have not finished.
    var stopDeadline: MillisecondInstant?
    /// How long a stopped program's closes and sends may take to reach the line, in ms.
    public var linger: Int64 = 5_000
    let input: UnsafeMutableRawBufferPointer
    let output: UnsafeMutableRawBufferPointer
    var outputStart = 0
    var outputEnd = 0
    /// How many line chunks one turn reads at most before it lets the program and the output run.
    let readsPerTurn = 8

    /// A run loop for `program` on `board`'s line through `interface`. `lineChunk` bytes are
    /// read from and written to the line at a time.
    public init(board: consuming B, interface: consuming Interface, program: consuming Program,
                limits: NetLimits = NetLimits(), lineChunk: Int = 128) {
        let now = board.now()
        self.board = board
        net = Net(interface: interface, limits: limits, now: now)
        self.program = program
        input = UnsafeMutableRawBufferPointer.allocate(byteCount: max(lineChunk, 16), alignment: 8)
        output = UnsafeMutableRawBufferPointer.allocate(byteCount: max(lineChunk, 16), alignment: 8)
    }

    deinit {
        input.deallocate()
        output.deallocate()
    }

    /// The status given to ``Net/stop(status:)``, once the program stopped.
    public var stopStatus: Int32? { net.stopStatus }

    /// The program stopped and what it queued reached the line (closes finished, or
    /// ``linger`` ran out): the run is over.
    public var isFinished: Bool {
        guard net.stopStatus != nil else { return false }
        if !hasPendingOutput && net.interface.isQuiescent { return true }
        return stopDeadline.map { board.now() >= $0 } ?? false
    }

    /// Runs until the program stops; returns its status. Sleeps in ``Board/idle(until:)``
    /// whenever a turn found nothing to do.
    public mutating func run() -> Int32 {
        while true {
            let outcome = step()
            if isFinished, let status = net.stopStatus { return status }
            if !outcome.busy { board.idle(until: outcome.deadline) }
        }
    }

    /// What one turn did: whether anything moved (go round again at once) and the next deadline.
    public struct Turn {
        /// Bytes were read or written, or messages delivered: another turn may find more.
        public var busy: Bool
        /// The earliest timer (nil: none); sleep until it or line input.
        public var deadline: MillisecondInstant?
    }

    /// One turn of the loop.
    public mutating func step() -> Turn {
        var busy = false
        var now = board.now()
        net.now = now
        if !started {
            started = true
            net.interface.start(now: now)
            program.start(&net)
            busy = true
        }
        // 1. The line's input.
        for _ in 0..<readsPerTurn {
            let n = board.readLine(into: input)
            guard n > 0 else { break }
            net.interface.input(UnsafeRawBufferPointer(rebasing: input[0..<n]), now: now)
            busy = true
        }
        // 2. Timers, then the program's messages.
        now = board.now()
        net.now = now
        var deadline = net.interface.poll(now: now)
        var delivered = 0
        while net.stopStatus == nil, let message = net.nextMessage() {
            program.receive(message, &net)
            delivered += 1
            busy = true
            if delivered >= 64 { break }  // let the line move between bursts
        }
        if net.stopStatus != nil {
            // Stopped: no more messages, but the interface still finishes its closes.
            net.absorbInterfaceEvents()
            if stopDeadline == nil { stopDeadline = now.advanced(byMilliseconds: linger) }
            deadline = earliest(deadline, stopDeadline)
        }
        // 3. The interface's output, as far as the line takes it.
        if flush() { busy = true }
        deadline = earliest(deadline, net.interface.poll(now: now))
        deadline = earliest(deadline, net.nextDeadline)
        return Turn(busy: busy, deadline: deadline)
    }

    /// Writes pending output; true when any byte moved.
    mutating func flush() -> Bool {
        var moved = false
        while true {
            if outputStart == outputEnd {
                outputStart = 0
                outputEnd = net.interface.output(into: output, now: net.now)
                if outputEnd == 0 { return moved }
            }
            let written = board.writeLine(UnsafeRawBufferPointer(rebasing: output[outputStart..<outputEnd]))
            if written > 0 { moved = true }
            outputStart += written
            if outputStart < outputEnd { return moved }  // the line is full; next turn
        }
    }

    /// Whether output is waiting for the line.
    public var hasPendingOutput: Bool { outputStart < outputEnd }

    func earliest(_ a: MillisecondInstant?, _ b: MillisecondInstant?) -> MillisecondInstant? {
        guard let a else { return b }
        guard let b else { return a }
        return a < b ? a : b
    }
}
