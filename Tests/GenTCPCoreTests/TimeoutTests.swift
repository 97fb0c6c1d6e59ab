import GenTCPCore
import Testing

/// `Timeout` speaks integer milliseconds (as `gen_tcp`) and Swift's `Duration`.
@Suite("Timeout")
struct TimeoutTests {
    @Test("integer literals are milliseconds; .seconds and Duration give the same value")
    func spellings() {
        let literal: Timeout = 2000
        #expect(literal == .milliseconds(2000))
        #expect(Timeout.seconds(2) == literal)
        #expect(Timeout(.seconds(2)) == literal)
        #expect(Timeout(.milliseconds(250)) == .milliseconds(250))
        #expect(Timeout(.zero) == 0)
        #expect(literal.duration == .seconds(2))
        #expect(Timeout.infinity.duration == nil)
        #expect(Timeout.seconds(2).nanoseconds == 2_000_000_000)
    }

    @Test("a Duration rounds up to whole milliseconds: a timeout never ends early")
    func roundsUp() {
        #expect(Timeout(.microseconds(1)) == 1)
        #expect(Timeout(.microseconds(1500)) == 2)
        #expect(Timeout(.nanoseconds(2_000_000)) == 2)
        #expect(Timeout(.seconds(1) + .nanoseconds(1)) == 1001)
    }

    @Test("negative durations stay negative (badarg on use); huge ones saturate")
    func edges() throws {
        #expect(throws: SocketError(.badArgument)) { try Timeout(.milliseconds(-5)).validated() }
        #expect(throws: SocketError(.badArgument)) { try Timeout.seconds(-1).validated() }
        #expect(Timeout(.seconds(Int64.max)) == .milliseconds(Int.max))
        #expect(Timeout.seconds(Int.max) == .milliseconds(Int.max))
        #expect(try Timeout(.seconds(3)).validated() == 3000)
    }
}
