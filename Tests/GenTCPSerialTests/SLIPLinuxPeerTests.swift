import Foundation
import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPWire
import Testing

/// The Linux kernel's TCP/IP stack as the board: a network namespace made for the test, a TUN
/// device in it carrying 10.0.0.2 (peer 10.0.0.1), `tools/slip-tun` copying its datagrams to and
/// from a pty in SLIP framing, and our driver on the pty's master. Python services (echo,
/// digest sink, file source) listen inside the namespace.
final class LinuxPeer: @unchecked Sendable {
    let namespace: String
    let directory: String
    var processes: [Foundation.Process] = []
    let pty: PTYLink.PTYPair
    let driver: SLIPDriver
    let sourceData: [UInt8]

    static var packageRoot: String { peerPackageRoot }

    /// Why the Linux peer cannot run here, or nil.
    static func unavailable() -> String? {
        if !FileManager.default.fileExists(atPath: "/dev/net/tun") { return "/dev/net/tun is missing" }
        if getuid() != 0 { return "creating network namespaces needs root" }
        if shell("command -v ip && command -v python3").status != 0 { return "ip(8) or python3 is missing" }
        return nil
    }

    init(size: Int) throws {
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        namespace = "gentcp-slip-\(tag)"
        directory = NSTemporaryDirectory() + "gentcp-slip-\(tag)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        sourceData = pattern(size, seed: 21)
        try Data(sourceData).write(to: URL(fileURLWithPath: directory + "/source.bin"))
        let root = LinuxPeer.packageRoot
        let bridge = directory + "/slip-tun"
        let build = shell("cc -O2 -o \(bridge) \(root)/tools/slip-tun/slip_tun.c 2>&1")
        guard build.status == 0 else { throw TestFailure("cannot build slip-tun: \(build.output)") }
        let ns = namespace
        for command in [
            "ip netns add \(ns)",
            "ip netns exec \(ns) ip link set lo up",
            "ip netns exec \(ns) ip tuntap add dev slt0 mode tun",
            "ip netns exec \(ns) ip link set slt0 mtu 1006",
            "ip netns exec \(ns) ip addr add 10.0.0.2 peer 10.0.0.1 dev slt0",
            "ip netns exec \(ns) ip link set slt0 up",
        ] {
            let r = shell(command + " 2>&1")
            guard r.status == 0 else {
                _ = shell("ip netns del \(ns)")
                throw TestFailure("`\(command)` failed: \(r.output)")
            }
        }
        pty = try PTYLink.openPair(configuration: SerialConfiguration(baudRate: 921_600))
        driver = try SLIPDriver(
            link: pty.master,
            configuration: SLIPConfiguration(local: slipHost, peer: slipBoard, capturePath: directory + "/line.pcap"))
        processes.append(try LinuxPeer.start(["ip", "netns", "exec", ns, bridge, "slt0", pty.slavePath]))
        processes.append(try LinuxPeer.start([
            "ip", "netns", "exec", ns, "python3", root + "/tools/slip-tun/services.py", "10.0.0.2",
            directory + "/source.bin", directory + "/ready",
        ]))
    }

    static func start(_ arguments: [String]) throws -> Foundation.Process {
        try startPeerProcess(arguments)
    }

    /// Waits (real time) until the services listen.
    func waitUntilReady() async throws {
        for _ in 0..<200 {
            if FileManager.default.fileExists(atPath: directory + "/ready") { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("the namespace's services did not start")
    }

    func stop() {
        driver.close()
        // Everything still running in the namespace (the bridge, the services) goes first.
        _ = shell("ip netns pids \(namespace) | xargs -r kill -9")
        for p in processes where p.isRunning {
            p.terminate()
        }
        pty.slave.close()
        _ = shell("ip netns del \(namespace)")
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("slip driver against the Linux kernel through slip-tun", .serialized, .timeLimit(.minutes(3)))
struct SLIPLinuxPeerTests {
    @Test("ping both ways, echo, 1 MiB each way byte-exact; the capture is clean")
    func linux() async throws {
        if let reason = LinuxPeer.unavailable() {
            print("skipping the Linux peer: \(reason)")
            return
        }
        let size = 1 << 20
        let peer = try LinuxPeer(size: size)
        defer { peer.stop() }
        try await peer.waitUntilReady()
        let driver = peer.driver
        let source = peer.sourceData
        try await Process.run {
            // Our ping to the kernel, and the kernel's ping to us.
            _ = try await driver.ping(timeoutNanoseconds: 5_000_000_000)
            let kernelPing = shell(
                "ip netns exec \(peer.namespace) python3 \(LinuxPeer.packageRoot)/tools/slip-tun/ping.py 10.0.0.1 3")
            #expect(kernelPing.status == 0, "ping from the namespace: \(kernelPing.output)")

            let options: [Option] = [.binary, .active(.passive), .buffer(16384)]
            let e = try await Socket.connect("board", port: 7, options: options, timeout: 5000, driver: driver)
            try await e.send("hello, kernel")
            #expect(try await e.recv(13, timeout: 5000).bytes == Array("hello, kernel".utf8))
            e.close()

            let services = PeerServices(driver: driver)
            let upTime = try await services.upload(pattern(size, seed: 22))
            let downTime = try await services.download(source)
            print("slip ↔ Linux over a pty (unpaced): 1 MiB up in \(upTime), down in \(downTime)")
        }
        driver.flushCapture()
        if tsharkAvailable() == nil {
            let bad = shell("tshark -r \(peer.directory)/line.pcap -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE "
                + "-Y \"_ws.malformed || tcp.checksum.status == 2 || ip.checksum.status == 2\"")
            #expect(bad.output.isEmpty, "bad packets:\n\(bad.output)")
        }
        #expect(driver.statistics.stack.echoRequestsAnswered >= 3)
    }
}
