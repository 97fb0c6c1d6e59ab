import GenTCP
import GenTCPModem
import GenTCPCore
import GenTCPSerial
import GenTCPAT
import GenTCPSim
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The driver under test and its clock.
struct HostileBench: Sendable {
    let at: ATDriver
    let line: HostileLine

    var now: UInt64 { at.runtime.now }
    func seconds(since start: UInt64) -> Double { Double(now &- start) / 1e9 }
}

/// The far end's address as the driver writes it: 10.0.0.1:7000.
let hostileServer = Host.address(.v4(0x0A00_0001))

/// Runs `body` (as a process) against an ATDriver whose module plays `script` on `line`, then
/// stops both and returns the script's report. With `checkScript`, the script must have run to
/// its end without a failure. The report is printed when it is not clean, or always with
/// `HOSTILE_TRACE=1` in the environment.
@discardableResult
func withScriptedModule(
    _ line: HostileLine, script: ModuleScript, driver: ATConfiguration, baud: Int = 115_200,
    checkScript: Bool = true, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: @escaping @Sendable (HostileBench) async throws -> Void
) async throws -> ModuleReport {
    let report: ModuleReport
    var thrown: (any Error)?
    switch line {
    case .pty:
        // Writes are paced on a slow line; at 115200 the pty runs as fast as the kernel copies.
        let runner = try PTYModuleRunner(script: script, paceBaud: baud < 100_000 ? baud : nil)
        let link = try PTYLink(path: runner.slavePath, configuration: SerialConfiguration(baudRate: baud))
        runner.start()
        let at = ATDriver(link: link, configuration: driver)
        at.start()
        let bench = HostileBench(at: at, line: line)
        do {
            try await Process.run { try await body(bench) }
        } catch {
            thrown = error
        }
        report = await runner.stop()
        at.stop()
    case .memory:
        let net = try SimNetwork(seed: 9)
        let result: (ModuleReport, String?) = try await net.run {
            let (driverEnd, moduleEnd) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: baud),
                                                         runtime: net.runtime, names: ("driver", "module"))
            let runner = MemoryModuleRunner(link: moduleEnd, net: net, script: script)
            let at = ATDriver(link: driverEnd, configuration: driver, runtime: net.runtime)
            at.start()
            var failure: String?
            do {
                try await body(HostileBench(at: at, line: line))
            } catch {
                failure = "\(error)"
            }
            let report = await runner.stop()
            at.stop()
            return (report, failure)
        }
        report = result.0
        if let failure = result.1 { thrown = BodyError(description: failure) }
    }
    let clean = report.failure == nil && report.completed
    if (checkScript && !clean) || thrown != nil || getenv("HOSTILE_TRACE") != nil {
        ModuleReport.printToStderr("[\(line)] \(report)")
    }
    if checkScript {
        let failure = report.failure, completed = report.completed
        #expect(failure == nil, "the module's script failed", sourceLocation: sourceLocation)
        #expect(completed, "the module's script did not run to its end (stopped in: \(report.pendingStep ?? "?"))",
                sourceLocation: sourceLocation)
    }
    if let thrown { throw thrown }
    return report
}

struct BodyError: Error, CustomStringConvertible {
    let description: String
}

/// Reads with `recv(0)` until the first error; returns the bytes and that error. A `timeout`
/// means the driver neither delivered nor ended within `timeout`.
func drainAll(_ s: Socket, timeout: Timeout) async -> (bytes: [UInt8], error: SocketError) {
    var got: [UInt8] = []
    while true {
        do {
            got += try await s.recv(0, timeout: timeout).bytes
        } catch {
            return (got, error)
        }
    }
}

/// Takes active-mode messages until `tcp_closed` (or nothing within `timeout`); returns the
/// data and the end messages as OTP prints them.
func collectActive(timeout: Timeout) async -> (bytes: [UInt8], ends: [String]) {
    var got: [UInt8] = []
    var ends: [String] = []
    while let m = try? await Process.receive(timeout: timeout) {
        switch m {
        case .tcp(_, let p): got += p.bytes
        case .tcpError(_, let r): ends.append("tcp_error \(r.atom)")
        case .tcpClosed:
            ends.append("tcp_closed")
            return (got, ends)
        case .tcpPassive: ends.append("tcp_passive")
        case .udp, .udpPassive, .udpError, .ssl, .sslClosed, .sslError, .sslPassive, .user: break
        }
    }
    ends.append("(nothing within the limit)")
    return (got, ends)
}

func atom(_ e: SocketError) -> String { "\(e.reason.atom)" }

/// A dialect's driver configuration for these tests (SIM800 and BG96 with an APN).
func hostileConfiguration(_ dialect: ATDialect) -> ATConfiguration {
    ATConfiguration(dialect: dialect, apn: dialect == .espAT ? "" : "internet")
}

let passive: [Option] = [.binary, .active(.passive)]
