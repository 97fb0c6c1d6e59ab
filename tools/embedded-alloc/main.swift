// Allocation count of GenTCPStack built in Embedded Swift mode (tools/check-embedded.sh builds
// and runs it, linked with tools/embedded-alloc/counting.c, which counts every posix_memalign,
// malloc and free the Swift code makes).
//
// Two stacks wired back to back in memory (A 10.9.0.1 connects to B 10.9.0.2's listener on port
// 7; datagrams move between them through transmit/receive on a simulated millisecond clock):
//
// 1. Ordinary stacks: once both connections are open, 1 MiB A→B, echoed back by B byte-exact,
//    must allocate nothing.
// 2. Preallocated stacks (StackConfiguration.preallocate): after Stack.init, three cycles of
//    connect, 64 KiB each way (echoed), close and TIME-WAIT must allocate nothing at all.
//
// Prints the counts and exits 1 on a failure.
import GenTCPCore
import GenTCPStack
import GenTCPWire

@_silgen_name("exit")
func cExit(_ status: Int32) -> Never
@_silgen_name("gentcp_allocations")
func allocations() -> Int
@_silgen_name("gentcp_frees")
func frees() -> Int
@_silgen_name("gentcp_allocated_bytes")
func allocatedBytes() -> Int

func fail(_ what: StaticString) -> Never {
    print("embedded alloc: FAILED: \(what)")
    cExit(1)
}

func check(_ condition: Bool, _ what: StaticString) {
    if !condition { fail(what) }
}

let hostAddress = IPv4Address(10, 9, 0, 1)
let boardAddress = IPv4Address(10, 9, 0, 2)
let mtu = 1006

/// Byte `index` of the test stream.
func streamByte(_ index: Int) -> UInt8 {
    UInt8(truncatingIfNeeded: index &* 31 &+ (index >> 9) &+ (index >> 17))
}

/// A FIFO of datagrams in one direction: fixed slots of one MTU, allocated once.
struct Wire {
    let slots: Int
    let storage: UnsafeMutableRawBufferPointer
    let lengths: UnsafeMutablePointer<Int>
    var head = 0
    var count = 0

    init(slots: Int) {
        self.slots = slots
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: slots * mtu, alignment: 8)
        lengths = UnsafeMutablePointer<Int>.allocate(capacity: slots)
    }

    var isFull: Bool { count == slots }

    /// Lets `stack` write datagrams into free slots until it has no more or the wire is full.
    mutating func collect(from stack: inout Stack, now: Int64) {
        while !isFull {
            let slot = (head + count) % slots
            let area = UnsafeMutableRawBufferPointer(rebasing: storage[(slot * mtu)..<((slot + 1) * mtu)])
            guard let n = stack.transmit(into: area, now: MillisecondInstant(milliseconds: now)) else { return }
            lengths[slot] = n
            count += 1
        }
    }

    /// Hands every datagram on the wire to `stack`.
    mutating func deliver(to stack: inout Stack, now: Int64) {
        while count > 0 {
            let area = UnsafeRawBufferPointer(rebasing: storage[(head * mtu)..<(head * mtu + lengths[head])])
            stack.receive(area, now: MillisecondInstant(milliseconds: now))
            head = (head + 1) % slots
            count -= 1
        }
    }
}

/// Two stacks, the wires between them, the clock and the application buffers (allocated once).
struct Bench: ~Copyable {
    var a: Stack
    var b: Stack
    var ab = Wire(slots: 64)
    var ba = Wire(slots: 64)
    var now: Int64 = 0
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
    let echo = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
    let outgoing = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)

    init(preallocate: ConnectionOptions?) {
        a = Stack(configuration: StackConfiguration(
            localAddress: hostAddress, peerAddress: boardAddress, mtu: mtu, maximumConnections: 2,
            maximumListeners: 1, controlQueueCapacity: 2, eventQueueCapacity: 8, seed: 0xA11C,
            dedicatedLink: true, maximumDatagramSockets: 0, preallocate: preallocate))
        b = Stack(configuration: StackConfiguration(
            localAddress: boardAddress, peerAddress: hostAddress, mtu: mtu, maximumConnections: 2,
            maximumListeners: 1, controlQueueCapacity: 2, eventQueueCapacity: 8, seed: 0xB0A4D,
            dedicatedLink: true, maximumDatagramSockets: 0, preallocate: preallocate))
    }

    /// One millisecond: datagrams both ways, timers, events.
    mutating func step() {
        ab.collect(from: &a, now: now)
        ba.collect(from: &b, now: now)
        ab.deliver(to: &b, now: now)
        ba.deliver(to: &a, now: now)
        _ = a.poll(now: MillisecondInstant(milliseconds: now))
        _ = b.poll(now: MillisecondInstant(milliseconds: now))
        while a.nextEvent() != nil {}
        while b.nextEvent() != nil {}
        now += 1
    }

    /// Opens A → B:7 and waits until B accepted and A is established.
    mutating func open(_ listener: ListenerHandle, options: ConnectionOptions) -> (ConnectionHandle, ConnectionHandle) {
        let client: ConnectionHandle
        do throws(TCPError) {
            client = try a.connect(to: boardAddress, port: 7, options: options, now: MillisecondInstant(milliseconds: now))
        } catch {
            fail("connect threw")
        }
        for _ in 0..<10_000 {
            step()
            let accepted: ConnectionHandle?
            do throws(TCPError) { accepted = try b.accept(listener) } catch { fail("accept threw") }
            if let server = accepted {
                while (try? a.state(client)) != .established { step() }
                return (client, server)
            }
        }
        fail("the connection did not open")
    }

    /// `size` bytes A → B, echoed by B, each byte checked on both sides; both ends close after.
    mutating func transfer(_ size: Int, client: ConnectionHandle, server: ConnectionHandle) {
        var sent = 0, received = 0, echoed = 0, pendingStart = 0, pendingEnd = 0
        var steps = 0
        while echoed < size {
            steps += 1
            check(steps < 10_000_000, "the transfer did not finish")
            // A: queue the next stream bytes.
            if sent < size {
                let n = min(outgoing.count, size - sent)
                for i in 0..<n { outgoing[i] = streamByte(sent + i) }
                let accepted: Int
                do throws(TCPError) {
                    accepted = try a.send(client, UnsafeRawBufferPointer(rebasing: outgoing[0..<n]))
                } catch {
                    fail("send on A threw")
                }
                sent += accepted
            }
            // B: read, check, echo (what B's send buffer does not take waits in `echo`).
            if pendingStart == pendingEnd {
                let result: ReceiveResult
                do throws(TCPError) { result = try b.recv(server, into: echo) } catch { fail("recv on B threw") }
                if case .data(let n) = result {
                    for i in 0..<n { check(echo[i] == streamByte(received + i), "B received a wrong byte") }
                    received += n
                    pendingStart = 0
                    pendingEnd = n
                }
            }
            if pendingStart < pendingEnd {
                do throws(TCPError) {
                    pendingStart += try b.send(server, UnsafeRawBufferPointer(rebasing: echo[pendingStart..<pendingEnd]))
                } catch {
                    fail("send on B threw")
                }
            }
            // A: the echo.
            let result: ReceiveResult
            do throws(TCPError) { result = try a.recv(client, into: scratch) } catch { fail("recv on A threw") }
            if case .data(let n) = result {
                for i in 0..<n { check(scratch[i] == streamByte(echoed + i), "A received a wrong echo byte") }
                echoed += n
            }
            step()
        }
        check(received == size, "B received everything")
    }

    /// Closes both ends and runs until both slots are free (TIME-WAIT included).
    mutating func close(client: ConnectionHandle, server: ConnectionHandle) {
        a.close(client)
        b.close(server)
        var steps = 0
        while a.connectionsInUse + b.connectionsInUse > 0 {
            steps += 1
            check(steps < 100_000, "the slots were not freed")
            step()
        }
    }
}

@main
struct EmbeddedAlloc {
    static func main() {
        var failed = false

        // 1. Ordinary stacks: the connections allocate when they open, then nothing.
        let options = ConnectionOptions(sendBufferSize: 4096, receiveBufferSize: 4096, ackDelay: 10, minimumRTO: 50)
        var bench = Bench(preallocate: nil)
        let listener: ListenerHandle
        do throws(TCPError) { listener = try bench.b.listen(port: 7, backlog: 1, options: options) } catch {
            fail("listen threw")
        }
        let beforeOpen = allocations()
        let (client, server) = bench.open(listener, options: options)
        let opened = allocations()
        let freesOpened = frees()
        let size = 1 << 20
        bench.transfer(size, client: client, server: server)
        let transferAllocations = allocations() - opened
        let transferFrees = frees() - freesOpened
        let simulated = bench.now
        bench.close(client: client, server: server)
        print("embedded alloc: opening two connections: \(opened - beforeOpen) allocations")
        print("embedded alloc: 1 MiB A->B echoed back (\(simulated) ms simulated): \(transferAllocations) allocations, \(transferFrees) frees")
        if transferAllocations != 0 || transferFrees != 0 {
            print("embedded alloc: FAILED: the transfer allocated or freed")
            failed = true
        }

        // 2. Preallocated stacks: nothing after init, over close and reopen.
        let beforeInit = allocations()
        let beforeInitBytes = allocatedBytes()
        var fixed = Bench(preallocate: options)
        let fixedListener: ListenerHandle
        do throws(TCPError) { fixedListener = try fixed.b.listen(port: 7, backlog: 1, options: options) } catch {
            fail("listen threw")
        }
        let initialised = allocations()
        let initialisedBytes = allocatedBytes()
        let initialisedFrees = frees()
        for _ in 0..<3 {
            let (c, s) = fixed.open(fixedListener, options: options)
            fixed.transfer(64 << 10, client: c, server: s)
            fixed.close(client: c, server: s)
        }
        let cycleAllocations = allocations() - initialised
        let cycleFrees = frees() - initialisedFrees
        print("embedded alloc: two preallocated stacks (2 slots of 4096/4096 each, wires and buffers of the bench included): \(initialised - beforeInit) allocations, \(initialisedBytes - beforeInitBytes) bytes")
        print("embedded alloc: 3 x (open, 64 KiB echoed, close, TIME-WAIT) on them: \(cycleAllocations) allocations, \(cycleFrees) frees")
        if cycleAllocations != 0 || cycleFrees != 0 {
            print("embedded alloc: FAILED: a preallocated stack allocated or freed after init")
            failed = true
        }
        if failed { cExit(1) }
        print("embedded alloc: ok")
    }
}
