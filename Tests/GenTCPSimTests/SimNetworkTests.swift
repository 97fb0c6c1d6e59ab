import GenTCP
import GenTCPCore
import GenTCPSim
import Testing

/// Two hosts, `server` (10.0.0.1, fd00::1) and `client` (10.0.0.2, fd00::2).
func makeNetwork(seed: UInt64 = 1, _ configure: (inout SimNetwork.Configuration) -> Void = { _ in })
    -> (SimNetwork, server: SimHost, client: SimHost)
{
    var config = SimNetwork.Configuration()
    configure(&config)
    let net = SimNetwork(seed: seed, configuration: config)
    let server = net.addHost("server")
    let client = net.addHost("client")
    return (net, server, client)
}

let passive: [Option] = [.binary, .active(.passive)]

@Suite struct EchoTests {
    @Test func echoBetweenTwoHosts() async throws {
        let (net, server, client) = makeNetwork()
        let elapsed = try await net.run {
            let listener = try ListenSocket.listen(port: 7, options: passive, driver: .sim(net, host: server))
            net.spawn {
                let s = try await listener.accept()
                while true {
                    guard let data = try? await s.recv(0) else { break }
                    try await s.send(data.bytes)
                }
                s.close()
            }
            let start = net.now
            let c = try await Socket.connect("server", port: 7, options: passive, driver: .sim(net, host: client))
            try await c.send("hello")
            let back = try await c.recv(5)
            #expect(back.bytes == Array("hello".utf8))
            c.close()
            return net.now - start
        }
        // Handshake (one round trip) plus request and reply (another): 4 ms at 1 ms per hop.
        #expect(elapsed == 4_000_000)
    }
}
