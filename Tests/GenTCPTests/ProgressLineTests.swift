import Testing
@testable import gentcp

#if canImport(Glibc)
import Glibc
#endif

/// gentcp's progress line and stderr console, without a terminal: exact text for given numbers.
@Suite("gentcp progress line")
struct ProgressLineTests {
    @Test("byte counts: decimal units, three significant digits, rounding that moves to the next unit", arguments: [
        (0.0, "0 B"), (999, "999 B"), (999.4, "999 B"), (999.5, "1.00 kB"), (1000, "1.00 kB"), (1049, "1.05 kB"),
        (52_400, "52.4 kB"), (524_288, "524 kB"), (999_499, "999 kB"), (999_600, "1.00 MB"),
        (1_048_576, "1.05 MB"), (91_022_222, "91.0 MB"), (5_000_000_000, "5.00 GB"), (1.5e12, "1.50 TB"),
        (2e15, "2000 TB"), (-5, "0 B"), (.nan, "0 B"), (11_518.3, "11.5 kB"),
    ])
    func byteCount(value: Double, expected: String) {
        #expect(ProgressLine.byteCount(value) == expected)
    }

    @Test("decimals, durations and percentages")
    func pieces() {
        #expect(ProgressLine.decimal(105, places: 2) == "1.05")
        #expect(ProgressLine.decimal(5, places: 2) == "0.05")
        #expect(ProgressLine.decimal(100, places: 1) == "10.0")
        #expect(ProgressLine.decimal(524, places: 0) == "524")
        #expect(ProgressLine.duration(0) == "0:00")
        #expect(ProgressLine.duration(7.9) == "0:07")
        #expect(ProgressLine.duration(91.02) == "1:31")
        #expect(ProgressLine.duration(3723) == "1:02:03")
        #expect(ProgressLine.duration(36000) == "10:00:00")
        #expect(ProgressLine.duration(-1) == "0:00")
        #expect(ProgressLine.duration(.infinity) == "0:00")
        #expect(ProgressLine.percent(0, of: 100) == 0)
        #expect(ProgressLine.percent(524_288, of: 1_048_576) == 50)
        #expect(ProgressLine.percent(1_048_575, of: 1_048_576) == 99)
        #expect(ProgressLine.percent(1_048_576, of: 1_048_576) == 100)
        #expect(ProgressLine.percent(5, of: 0) == 100)
        #expect(ProgressLine.percent(200, of: 100) == 100)
    }

    @Test("a connect line: both directions, percentage and time left where the total is known")
    func connectLine() {
        let line = ProgressLine(label: nil,
                                sent: .init(bytes: 524_288, total: 1_048_576, rate: 11_518.3),
                                received: .init(bytes: 1_048_576, total: nil, rate: 11_518.3),
                                elapsed: 47.9, clock: nil)
        // 524288 bytes left at 11518.3 B/s: 45.5 s.
        #expect(line.render() == "sent 524 kB of 1.05 MB 50% 11.5 kB/s eta 0:45, received 1.05 MB 11.5 kB/s, 0:47")
        #expect(line.render(width: 20) == "sent 524 kB of 1.05 ")
        #expect(line.render(width: 200) == line.render())
    }

    @Test("a demo row on the virtual clock; no rate yet; a rate of zero gives no time left")
    func otherLines() {
        let row = ProgressLine(label: "sim", sent: nil, received: .init(bytes: 262_144, total: 1_048_576, rate: 11_520),
                               elapsed: 22.75, clock: "virtual")
        // 786432 bytes left at 11520 B/s: 68.3 s.
        #expect(row.render() == "sim: received 262 kB of 1.05 MB 25% 11.5 kB/s eta 1:08, 0:22 virtual")
        let done = ProgressLine(sent: nil, received: .init(bytes: 300_000, total: 300_000, rate: nil), elapsed: 0)
        #expect(done.render() == "received 300 kB of 300 kB 100%, 0:00")
        let stalled = ProgressLine(sent: .init(bytes: 10, total: 100, rate: 0), received: nil, elapsed: 1.5)
        #expect(stalled.render() == "sent 10 B of 100 B 10% 0 B/s, 0:01")
    }

    @Test("the rate window: no rate under 0.2 s, then bytes per second over the last span")
    func rateWindow() {
        var w = RateWindow()
        #expect(w.rate == nil)
        w.add(bytes: 0, at: 0)
        w.add(bytes: 1000, at: 100_000_000)
        #expect(w.rate == nil)
        w.add(bytes: 3000, at: 300_000_000)
        #expect(w.rate == 10_000)

        var s = RateWindow(span: 1_000_000_000)
        s.add(bytes: 0, at: 0)
        s.add(bytes: 1000, at: 500_000_000)
        s.add(bytes: 2000, at: 1_000_000_000)
        s.add(bytes: 5000, at: 1_500_000_000)
        // The sample at 0 s left the window; 4000 bytes from 0.5 s to 1.5 s.
        #expect(s.samples.count == 3)
        #expect(s.rate == 4000)
        s.add(bytes: 5000, at: 3_000_000_000)
        // Nothing moved in the last 1.5 s.
        #expect(s.samples.count == 2)
        #expect(s.rate == 0)
    }

    @Test("the console: lines go above the status line, which is blanked with spaces and redrawn, never escape codes")
    func console() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let console = Console(fd: fds[1])
        console.setStatus("abc")
        console.line("x")
        console.setStatus("a")
        console.endStatus(keep: true)
        console.line("y")
        console.setStatus("zz")
        console.endStatus(keep: false)
        console.lines([])
        console.flush()
        close(fds[1])
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        #expect(String(decoding: out, as: UTF8.self) == "\rabc\r   \rx\n\rabc\ra  \ra\ny\n\rzz\r  \r")
    }
}
