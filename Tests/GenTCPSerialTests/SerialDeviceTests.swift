import Foundation
import GenTCPCore
import GenTCPSerial
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `SerialDevice`: pty or port decided from the device, symbolic links resolved, and a clear
/// "not a serial port" for what is not one.
@Suite("SerialDevice", .timeLimit(.minutes(1)))
struct SerialDeviceTests {
    /// A fresh directory for links and files, removed by the caller.
    static func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gentcp-serialdevice-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("a pty's own path is a pty")
    func ptyPath() throws {
        let pair = try PTYLink.openPair()
        defer { pair.master.close(); pair.slave.close() }
        let device = try SerialDevice(path: pair.slavePath)
        #expect(device.kind == .pty)
        #expect(device.resolvedPath == pair.slavePath)
    }

    @Test("a symbolic link to a pty, even one named like a USB adapter, is a pty and opens; bytes cross it",
          arguments: ["modem", "ttyUSB0", "usb-FTDI_FT232R-if00-port0"])
    func linkToPTY(name: String) async throws {
        let pair = try PTYLink.openPair()
        defer { pair.master.close(); pair.slave.close() }
        let dir = try SerialDeviceTests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Two levels, as /dev/serial/by-id/... -> ../../ttyUSB0 would be.
        let inner = dir + "/inner-" + name
        let outer = dir + "/" + name
        #expect(symlink(pair.slavePath, inner) == 0)
        #expect(symlink(inner, outer) == 0)
        let device = try SerialDevice(path: outer)
        #expect(device.kind == .pty)
        #expect(device.path == outer)
        #expect(device.resolvedPath == pair.slavePath)

        let link = try SerialDevice.open(outer)
        defer { link.close() }
        let bytes = Array("through the link".utf8)
        let written = bytes.withUnsafeBytes { pair.master.write($0) }
        #expect(written == .bytes(bytes.count))
        // Waits for the link's readiness (an event), not in sleeps; the suite's limit bounds it.
        let probe = ReadinessProbe()
        link.setDelegate(probe.delegate())
        defer { link.setDelegate(nil) }
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        while got.count < bytes.count {
            switch buffer.withUnsafeMutableBytes({ link.read(into: $0) }) {
            case .bytes(let n): got += buffer[0..<n]
            case .wouldBlock:
                let seen = probe.count
                link.armRead()
                await probe.wait(for: seen + 1)
            case .hangUp, .failed: Issue.record("the link failed"); return
            }
        }
        #expect(got == bytes)
    }

    @Test("a regular file, a directory and /dev/null are not serial ports (enotty, saying what they are)")
    func notSerialPorts() throws {
        let dir = try SerialDeviceTests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/capture.bin"
        #expect(FileManager.default.createFile(atPath: file, contents: Data([1, 2, 3])))
        for (path, what) in [(file, "regular file"), (dir, "directory"), ("/dev/null", "not a terminal")] {
            #expect {
                _ = try SerialDevice(path: path)
            } throws: { error in
                guard let e = error as? SerialLinkError else { return false }
                return e.reason == .notATerminal && e.path == path && e.message.contains("not a serial port")
                    && e.message.contains(what)
            }
            // Opening says the same, before any open(2) of the path.
            #expect(throws: SerialLinkError.self) { _ = try SerialDevice.open(path) }
        }
        // A link to a regular file is still a regular file.
        #expect(symlink(file, dir + "/tty0") == 0)
        #expect { _ = try SerialDevice(path: dir + "/tty0") } throws: { ($0 as? SerialLinkError)?.reason == .notATerminal }
    }

    @Test("a missing path and a link to nothing are enoent, no such device")
    func missing() throws {
        let dir = try SerialDeviceTests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(symlink(dir + "/gone", dir + "/by-id-link") == 0)
        for (path, note) in [("/dev/ttyUSB-gentcp-missing", "no such device"), (dir + "/by-id-link", "symbolic link to nothing"),
                             ("", "an empty path")] {
            #expect {
                _ = try SerialDevice(path: path)
            } throws: { error in
                guard let e = error as? SerialLinkError else { return false }
                return e.reason == .noSuchFile && e.message.contains(note)
            }
        }
    }

    @Test("a terminal that is not a pty (the console /dev/tty, class tty in sysfs) is a port")
    func terminalIsAPort() throws {
        var info = stat()
        guard stat("/dev/tty", &info) == 0, FileManager.default.fileExists(atPath: "/sys/dev/char/5:0/subsystem") else {
            print("SerialDeviceTests: skipped: no /dev/tty or no sysfs entry for it")
            return
        }
        #expect(try SerialDevice(path: "/dev/tty").kind == .port)
    }
}
