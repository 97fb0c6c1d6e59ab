import GenTCP
import Testing

/// The port's stash of undelivered bytes: taken from the front, given back in front, and
/// the count of bytes read ahead (which an upgrade hands to TLS without asking).
@Suite("Stash")
struct StashTests {
    @Test("taking from the front in pieces gives every byte once, in order, and then holds none")
    func takePieces() {
        var stash = Stash()
        let data = (0..<200).map { UInt8($0) }
        stash.keepReadAhead(data, 50..<200)
        #expect(stash.count == 150 && stash.readAhead == 150 && stash.isAllReadAhead)
        var out = [UInt8](repeating: 0, count: 10)
        #expect(stash.take(upTo: 7, into: &out, at: 3) == 7)
        #expect(Array(out[3..<10]) == Array(data[50..<57]))
        #expect(stash.take(upTo: 40) == Array(data[57..<97]))
        #expect(stash.readAhead == 103)
        #expect(stash.takeAll() == Array(data[97..<200]))
        #expect(stash.isEmpty && stash.readAhead == 0)
        #expect(stash.take(upTo: 5).isEmpty)
        #expect(stash.take(upTo: 5, into: &out, at: 0) == 0)
    }

    @Test("bytes given back go in front, and are not read-ahead")
    func putBackInFront() {
        var stash = Stash()
        let data = (0..<100).map { UInt8($0) }
        stash.keepReadAhead(data, 60..<100)
        _ = stash.take(upTo: 40)
        stash.putBack(data, 0..<60)
        #expect(stash.readAhead == 0 && !stash.isAllReadAhead)
        #expect(stash.takeAll() == Array(data[0..<60]))
        // Given back in front of bytes still held (read-ahead keeps its count, at the tail).
        stash.keepReadAhead(data, 90..<100)
        stash.putBack(data, 80..<90)
        #expect(stash.count == 20 && stash.readAhead == 10)
        #expect(stash.take(upTo: 15) == Array(data[80..<95]))
        #expect(stash.readAhead == 5 && stash.isAllReadAhead)
        #expect(stash.takeAll() == Array(data[95..<100]))
    }

    @Test("adopting a read's array keeps its tail as read-ahead")
    func adopt() {
        var stash = Stash()
        let bytes = (0..<64).map { UInt8($0) }
        var whole = bytes
        stash.adopt(&whole, from: 4, to: 50)
        #expect(whole.isEmpty)
        #expect(stash.count == 46 && stash.isAllReadAhead)
        #expect(stash.takeAll() == Array(bytes[4..<50]))
        whole = bytes
        stash.adopt(&whole, from: 10, to: 10)
        #expect(stash.isEmpty)
        stash.keepReadAhead(bytes, 0..<3)
        stash.removeAll()
        #expect(stash.isEmpty && stash.readAhead == 0)
    }
}
