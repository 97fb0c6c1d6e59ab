import Foundation
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Testing

/// `HostLookup.hostsFile`: OTP's `inet_db:set_lookup([file])`, names from a hosts file only.
@Suite("posix: host lookup from a hosts file")
struct HostLookupTests {
    /// A hosts file in a temporary directory, removed after `body`.
    func withHostsFile(_ text: String, _ body: (String) async throws -> Void) async throws {
        let path = NSTemporaryDirectory() + "gentcp-hosts-\(UInt64.random(in: 0 ... .max))"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await body(path)
    }

    static let hosts = """
        # a comment line
        127.0.0.1\tlocalhost
        10.9.8.7   Board.Local board   # canonical name, alias, trailing comment
        10.9.8.7   board-again
        fd00::7    board
        not-an-address  broken
        10.1.1.1
        10.2.2.2 #board

        """

    @Test("names and aliases match without regard to case, in file order, each address once")
    func namesAndAliases() async throws {
        try await withHostsFile(Self.hosts) { path in
            let driver = POSIXDriver(lookup: .hostsFile(path: path))
            let local = try await driver.resolve("board.local", preference: .ipv4Preferred)
            #expect(local == [IPAddress("10.9.8.7")!])
            let board = try await driver.resolve("BOARD", preference: .ipv4Preferred)
            #expect(board == [IPAddress("10.9.8.7")!, IPAddress("fd00::7")!])
            let board6 = try await driver.resolve("board", preference: .ipv6Only)
            #expect(board6 == [IPAddress("fd00::7")!])
            let again = try await driver.resolve("board-again", preference: .ipv4Only)
            #expect(again == [IPAddress("10.9.8.7")!])
        }
    }

    @Test("a name the file does not list, a commented-out name, a line without an address: nxdomain")
    func unknownNames() async throws {
        try await withHostsFile(Self.hosts) { path in
            let driver = POSIXDriver(lookup: .hostsFile(path: path))
            for name in ["example.com", "broken", "localhost.localdomain", ""] {
                await #expect(throws: SocketError(.nonExistentDomain), "\(name)") {
                    _ = try await driver.resolve(name, preference: .ipv4Preferred)
                }
            }
            // An IPv4-only name asked for IPv6 only.
            await #expect(throws: SocketError(.nonExistentDomain)) {
                _ = try await driver.resolve("board-again", preference: .ipv6Only)
            }
        }
    }

    @Test("a missing hosts file is no names, not a crash")
    func missingFile() async throws {
        let driver = POSIXDriver(lookup: .hostsFile(path: "/nonexistent/gentcp/hosts"))
        await #expect(throws: SocketError(.nonExistentDomain)) {
            _ = try await driver.resolve("localhost", preference: .ipv4Preferred)
        }
    }

    @Test("a connect by name goes to the file's address")
    func connectByName() async throws {
        try await withHostsFile("127.0.0.1 gentcp-test-peer\n") { path in
            let driver = POSIXDriver(lookup: .hostsFile(path: path))
            try await Process.run {
                let listener = try ListenSocket.listen(
                    port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)], driver: driver)
                let port = try listener.port()
                let client = try await Socket.connect("gentcp-test-peer", port: port, timeout: 60_000, driver: driver)
                let server = try await listener.accept(timeout: 60_000)
                try await client.send("hi")
                let got = try await server.recv(2, timeout: 60_000)
                #expect(got.bytes == Array("hi".utf8))
                client.close()
                server.close()
                listener.close()
            }
        }
    }
}
