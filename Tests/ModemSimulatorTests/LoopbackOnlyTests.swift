@testable import ModemSimulator
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import GenTCPSim
import Testing

@Suite("Loopback only")
struct LoopbackOnlyTests {
    @Test("on a real driver the simulated module may reach loopback addresses only; on sim, anything")
    func reachableAddresses() throws {
        let mixed = [IPAddress(10, 0, 0, 1), .loopbackV4, IPAddress(127, 1, 2, 3), .loopbackV6,
                     try #require(IPAddress("fd00::1")), IPAddress(192, 0, 2, 1)]
        #expect(ModemSimulator.reachable(mixed, driver: POSIXDriver.shared)
                == [.loopbackV4, IPAddress(127, 1, 2, 3), .loopbackV6])
        let net = try SimNetwork(seed: 1)
        let host = try net.addHost("h")
        #expect(ModemSimulator.reachable(mixed, driver: try SimDriver.sim(net, host: host)) == mixed)
    }
}
