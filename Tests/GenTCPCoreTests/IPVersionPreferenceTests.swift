import GenTCPCore
import Testing

@Suite("IPVersionPreference.order")
struct IPVersionPreferenceTests {
    let a4 = IPAddress(10, 0, 0, 1), b4 = IPAddress(10, 0, 0, 2)
    let a6 = IPAddress("fd00::1")!, b6 = IPAddress("fd00::2")!

    @Test func filtersAndOrdersKeepingEachFamilysOrder() throws {
        let found = [a6, a4, b6, b4]
        #expect(try IPVersionPreference.ipv4Only.order(found) == [a4, b4])
        #expect(try IPVersionPreference.ipv6Only.order(found) == [a6, b6])
        #expect(try IPVersionPreference.ipv4Preferred.order(found) == [a4, b4, a6, b6])
        #expect(try IPVersionPreference.ipv6Preferred.order(found) == [a6, b6, a4, b4])
    }

    @Test func nothingLeftIsNXDOMAIN() {
        #expect(throws: SocketError(.nonExistentDomain)) { try IPVersionPreference.ipv6Only.order([self.a4]) }
        #expect(throws: SocketError(.nonExistentDomain)) { try IPVersionPreference.ipv4Preferred.order([]) }
    }
}
