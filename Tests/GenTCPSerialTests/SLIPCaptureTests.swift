import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSim
import Foundation
import Testing

/// Runs a command; returns its exit status and standard output (stderr discarded).
func shell(_ command: String) -> (status: Int32, output: String) {
    let p = Foundation.Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return (-1, "") }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// tshark, installed with apt-get when missing; nil (with the reason) when it cannot be.
func tsharkAvailable() -> String? {
    if shell("command -v tshark").status == 0 { return nil }
    let install = shell("DEBIAN_FRONTEND=noninteractive apt-get install -y tshark >/dev/null 2>&1")
    if install.status == 0, shell("command -v tshark").status == 0 { return nil }
    return "tshark is not installed and `apt-get install -y tshark` failed (status \(install.status))"
}

@Suite("slip driver capture", .timeLimit(.minutes(3)))
struct SLIPCaptureTests {
    @Test("the pcap of a transfer and a ping has every packet, no malformed packet, no bad checksum")
    func capture() async throws {
        // tshark (and its installation) runs on a thread of its own, never on the pool.
        if let missing = await offPool({ tsharkAvailable() }) {
            print("skipping the tshark check: \(missing)")
            return
        }
        let path = "/tmp/gentcp-slip-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).pcap"
        defer { unlink(path) }
        let line = try SLIPLine(baud: 921_600, capturePath: path)
        _ = try line.startEcho()
        let data = pattern(64 << 10, seed: 3)
        try await line.run {
            _ = try await line.host.ping()
            let s = try await Socket.connect("board", port: 7, options: [.binary, .active(.passive)], driver: line.host)
            Process.spawn(runtime: line.runtime) { try await sendAll(s, data) }
            var got: [UInt8] = []
            while got.count < data.count { got += try await s.recv(0, timeout: 60_000).bytes }
            #expect(got == data)
            s.close()
            await line.sleep(milliseconds: 100)
        }
        let frames = line.host.statistics.framesSent + line.host.statistics.framesReceived
        let count = await offPool { shell("tshark -r \(path) 2>/dev/null | wc -l") }
        #expect(Int(count.output.trimmingCharacters(in: .whitespacesAndNewlines)) == frames)
        let bad = await offPool {
            shell("tshark -r \(path) -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE "
                + "-Y \"_ws.malformed || tcp.checksum.status == 2 || ip.checksum.status == 2\"")
        }
        #expect(bad.status == 0)
        #expect(bad.output.isEmpty, "bad packets:\n\(bad.output)")
        let icmp = await offPool { shell("tshark -r \(path) -Y icmp 2>/dev/null | wc -l") }
        #expect(icmp.output.trimmingCharacters(in: .whitespacesAndNewlines) == "2")
    }
}
