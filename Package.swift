// swift-tools-version: 6.2
import PackageDescription

/// Warnings are errors everywhere: the project promises a warning-free build.
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "GenTCP",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "GenTCP", targets: ["GenTCPCore", "GenTCP", "GenTCPPOSIX", "GenTCPSim"]),
        // The serial drivers and what they run on: serial links and board profiles
        // (`GenTCPSerial`), the slip driver (`GenTCPSLIP`) and the at driver (`GenTCPAT`). A product
        // of its own because it links libserialport (Debian's libserialport-dev).
        .library(name: "GenTCPSerial", targets: ["GenTCPSerial", "GenTCPSLIP", "GenTCPAT"]),
        // The modem simulator, for tests and simulation runs against the at driver.
        .library(name: "ModemSimulator", targets: ["ModemSimulator"]),
        // TLS over any byte stream (OpenSSL 3, Debian's libssl-dev). Host only.
        .library(name: "GenTCPTLS", targets: ["GenTCPTLSEngine", "GenTCPTLS"]),
        // The embedded-safe cores alone (standard library only), for firmware.
        .library(
            name: "GenTCPEmbedded",
            targets: ["GenTCPCore", "GenTCPWire", "GenTCPStack", "GenTCPModem", "GenTCPBoard", "GenTCPBoardPrograms"]),
        .executable(name: "gentcp", targets: ["gentcp"]),
        .executable(name: "gentcp-bench", targets: ["gentcp-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Embedded-safe vocabulary: reasons, options, active-mode arithmetic, addresses.
        .target(name: "GenTCPCore", swiftSettings: strict),
        // Embedded-safe wire formats: SLIP, IPv4/TCP/ICMP header views and checksums, pcap records.
        .target(name: "GenTCPWire", swiftSettings: strict),
        // Embedded-safe AT-modem engine: lexer, command engine, dialects. Its clock type
        // (`MillisecondInstant`) is GenTCPCore's, shared with GenTCPStack.
        .target(name: "GenTCPModem", dependencies: ["GenTCPCore"], swiftSettings: strict),
        // Embedded-safe TCP/IP stack: IPv4 interface, ICMP echo, TCP connections (RFC 9293, 6298).
        .target(name: "GenTCPStack", dependencies: ["GenTCPWire", "GenTCPCore"], swiftSettings: strict),
        // Embedded-safe board API: gen_tcp for firmware (a run loop over a board's UART and clock,
        // sockets and messages on the SLIP stack or an AT modem).
        .target(
            name: "GenTCPBoard", dependencies: ["GenTCPCore", "GenTCPWire", "GenTCPStack", "GenTCPModem"],
            swiftSettings: strict),
        // Embedded-safe example board programs (SLIP echo server, telemetry client), the same
        // source for simulation, pty and firmware runs.
        .target(
            name: "GenTCPBoardPrograms", dependencies: ["GenTCPBoard", "GenTCPCore", "GenTCPWire", "GenTCPModem"],
            swiftSettings: strict),
        // libserialport, from Debian's libserialport-dev (tools/bootstrap.sh installs it).
        .systemLibrary(
            name: "CSerialPort", pkgConfig: "libserialport",
            providers: [.apt(["libserialport-dev"]), .brew(["libserialport"])]),
        // OpenSSL 3, from Debian's libssl-dev (tools/bootstrap.sh installs it), with inline
        // wrappers for the macros Swift cannot call.
        .systemLibrary(
            name: "COpenSSL", pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]),
        // C shims for what Glibc's Swift module leaves out (epoll, eventfd).
        .target(name: "CGenTCPShims"),
        // Host runtime: processes, mailboxes, timers, the port layer and the driver contract.
        .target(
            name: "GenTCP",
            dependencies: [
                "GenTCPCore", "CGenTCPShims",
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict),
        .target(name: "GenTCPPOSIX", dependencies: ["GenTCP", "CGenTCPShims"], swiftSettings: strict),
        // Serial links (libserialport ports, ptys through termios, paced in-memory links, traces)
        // and board profiles: what both serial drivers run on.
        .target(
            name: "GenTCPSerial",
            dependencies: ["GenTCP", "GenTCPPOSIX", "GenTCPModem", "CGenTCPShims", "CSerialPort"],
            swiftSettings: strict),
        // Board programs on the host: their line on a serial link (a MemoryLink in a simulation
        // run, a pty for `gentcp simulate`), their clock the runtime's.
        .target(
            name: "GenTCPBoardHost", dependencies: ["GenTCPBoard", "GenTCPSerial", "GenTCP", "GenTCPCore"],
            swiftSettings: strict),
        // The slip driver: IPv4 over SLIP on a serial link, through GenTCPStack.
        .target(
            name: "GenTCPSLIP",
            dependencies: ["GenTCP", "GenTCPSerial", "GenTCPWire", "GenTCPStack"],
            swiftSettings: strict),
        // The at driver: sockets through an AT-command modem on a serial link, through GenTCPModem.
        .target(
            name: "GenTCPAT",
            dependencies: ["GenTCP", "GenTCPSerial", "GenTCPModem"],
            swiftSettings: strict),
        .target(
            name: "GenTCPSim",
            dependencies: ["GenTCP", .product(name: "DequeModule", package: "swift-collections")],
            swiftSettings: strict),
        // A modem that speaks ESP-AT / SIM800 / BG96 over a byte stream and bridges its sockets to
        // GenTCP sockets (loopback or the simulated network): the at driver's test peer.
        .target(
            name: "ModemSimulator",
            // GenTCPTLS (and its engine, GenTCPTLSEngine): the module's TLS links run a real
            // client engine over a loopback socket.
            dependencies: ["GenTCP", "GenTCPCore", "GenTCPModem", "GenTCPSerial", "GenTCPTLS", "GenTCPTLSEngine"],
            swiftSettings: strict),
        // The TLS engine: a sans-I/O byte-stream transformer over OpenSSL's memory BIOs. Host only,
        // never a dependency of the embedded-safe cores; GenTCPCore only for the alert vocabulary.
        .target(name: "GenTCPTLSEngine", dependencies: ["GenTCPCore", "COpenSSL"], swiftSettings: strict),
        // TLS sockets: the engine between the port layer and any driver's connection
        // (`Socket.connect(tls:)`, `upgrade`, `ListenSocket.accept(tls:)`, `.ssl` messages).
        .target(name: "GenTCPTLS", dependencies: ["GenTCPTLSEngine", "GenTCP", "GenTCPCore"], swiftSettings: strict),
        .executableTarget(
            name: "gentcp",
            dependencies: [
                "GenTCP", "GenTCPPOSIX", "GenTCPSim", "GenTCPWire", "GenTCPModem", "GenTCPSerial", "GenTCPSLIP", "GenTCPAT", "ModemSimulator",
                "GenTCPTLS", "GenTCPBoard", "GenTCPBoardHost", "GenTCPBoardPrograms",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/gentcp", swiftSettings: strict),
        .executableTarget(
            name: "gentcp-bench",
            dependencies: [
                "GenTCP", "GenTCPPOSIX", "CGenTCPShims", "GenTCPSim", "GenTCPSerial", "GenTCPSLIP", "GenTCPAT", "GenTCPWire", "ModemSimulator",
                "GenTCPTLS", "GenTCPTLSEngine", "COpenSSL",
            ],
            path: "tools/bench", swiftSettings: strict),
        .testTarget(name: "GenTCPCoreTests", dependencies: ["GenTCPCore"], swiftSettings: strict),
        .testTarget(name: "GenTCPWireTests", dependencies: ["GenTCPWire"], swiftSettings: strict),
        .testTarget(name: "GenTCPModemTests", dependencies: ["GenTCPModem", "GenTCPCore"], swiftSettings: strict),
        .testTarget(name: "GenTCPSimTests", dependencies: ["GenTCP", "GenTCPSim"], swiftSettings: strict),
        .testTarget(
            name: "ModemSimulatorTests",
            dependencies: ["ModemSimulator", "GenTCP", "GenTCPPOSIX", "GenTCPSim", "GenTCPModem", "GenTCPWire", "GenTCPSerial", "GenTCPAT",
                           "GenTCPTLS", "TLSTestSupport"],
            path: "Tests/ModemSimulatorTests", swiftSettings: strict),
        // A throw-away test PKI made with the openssl CLI, shared by the TLS tests.
        // Also the peers the TLS tests run (openssl s_server, OTP's ssl through
        // tools/otp-tls-peer) and the helpers to drive them, shared by every test target.
        .target(name: "TLSTestSupport", dependencies: ["GenTCPTLS"], path: "Tests/TLSTestSupport", swiftSettings: strict),
        .testTarget(
            name: "GenTCPTLSTests", dependencies: ["GenTCPTLS", "GenTCP", "GenTCPPOSIX", "GenTCPSim", "GenTCPWire", "TLSTestSupport"],
            swiftSettings: strict),
        .target(
            name: "BoardTestSupport", dependencies: ["GenTCP", "GenTCPCore", "GenTCPSLIP", "GenTCPWire"],
            path: "Tests/BoardTestSupport", swiftSettings: strict),
        .testTarget(
            name: "GenTCPBoardTests",
            dependencies: ["GenTCPBoard", "GenTCPBoardHost", "GenTCPBoardPrograms", "BoardTestSupport", "GenTCP",
                           "GenTCPCore", "GenTCPSerial", "GenTCPSim", "GenTCPSLIP", "GenTCPWire", "GenTCPStack",
                           "GenTCPModem", "GenTCPPOSIX", "ModemSimulator"],
            swiftSettings: strict),
        .testTarget(name: "GenTCPStackTests", dependencies: ["GenTCPStack", "GenTCPWire", "GenTCPCore"], swiftSettings: strict),
        .testTarget(
            name: "GenTCPSerialTests",
            dependencies: [
                "GenTCPSerial", "GenTCPSLIP", "GenTCPAT", "GenTCP", "GenTCPSim", "GenTCPStack", "GenTCPWire", "GenTCPModem", "CGenTCPShims",
                "ModemSimulator", "GenTCPTLS", "GenTCPPOSIX", "TLSTestSupport",
            ],
            swiftSettings: strict),
        .testTarget(
            name: "GenTCPTests",
            // `gentcp` for the tool's pure formatters (`@testable import gentcp`); BoardTestSupport for
            // the board programs' checks, run against the firmware under QEMU (Firmware/).
            dependencies: ["GenTCP", "GenTCPPOSIX", "GenTCPSim", "CGenTCPShims", "GenTCPSerial", "GenTCPSLIP", "GenTCPAT", "ModemSimulator", "gentcp",
                "GenTCPTLS", "TLSTestSupport", "BoardTestSupport",
            ],
            swiftSettings: strict),
    ]
)
