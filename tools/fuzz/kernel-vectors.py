#!/usr/bin/env python3
"""Capture real IPv4/TCP/UDP/ICMP packets from the Linux kernel, for test vectors and fuzz seeds.

Independent of GenTCPWire: the kernel builds the packets we record, and this script checks their
checksums with its own RFC 1071 implementation. Packets this script sends to the kernel carry
checksums computed here; the kernel answering them shows those are right too.

Run as root, in a throwaway network namespace:

    unshare -n python3 tools/fuzz/kernel-vectors.py [--seeds]

It prints every packet as hex. With --seeds it (re)writes the seed corpora under
tools/fuzz/ipv4-tcp/corpus/ and tools/fuzz/slip/corpus/ (SLIP-framed by this script).
The output changes from run to run (initial sequence numbers, timestamps, IP IDs).
"""
import fcntl, os, select, socket, struct, subprocess, sys, time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
HOST, PEER = "10.9.0.1", "10.9.0.2"  # the kernel's address, and the imaginary peer behind the TUN


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def check(pkt: bytes) -> str:
    """Verifies every checksum of an IPv4 packet; returns a short description."""
    ihl = (pkt[0] & 15) * 4
    assert pkt[0] >> 4 == 4 and csum(pkt[:ihl]) == 0, "bad IPv4 header checksum"
    total, frag, proto = struct.unpack("!H", pkt[2:4])[0], struct.unpack("!H", pkt[6:8])[0], pkt[9]
    body = pkt[ihl:total]
    if frag & 0x3FFF:
        return "fragment"
    if proto == 6:
        assert csum(pseudo(pkt[12:16], pkt[16:20], 6, len(body)) + body) == 0, "bad TCP checksum"
        return "tcp"
    if proto == 17:
        if struct.unpack("!H", body[6:8])[0]:
            assert csum(pseudo(pkt[12:16], pkt[16:20], 17, len(body)) + body) == 0, "bad UDP checksum"
        return "udp"
    if proto == 1:
        assert csum(body) == 0, "bad ICMP checksum"
        return "icmp"
    return "other"


def ipv4(src, dst, proto, payload, ident=0x1234, ttl=64, df=True):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000 if df else 0, ttl, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def tcp(src, dst, sport, dport, seq, ack, flags, window, options=b"", payload=b""):
    assert len(options) % 4 == 0
    off = (20 + len(options)) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, window, 0, 0) + options + payload
    c = csum(pseudo(socket.inet_aton(src), socket.inet_aton(dst), 6, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def slip(frame: bytes) -> bytes:
    out = bytearray([0xC0])
    for b in frame:
        out += {0xC0: b"\xdb\xdc", 0xDB: b"\xdb\xdd"}.get(b, bytes([b]))
    out.append(0xC0)
    return bytes(out)


def main():
    seeds = "--seeds" in sys.argv
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", b"wt0", IFF_TUN | IFF_NO_PI))
    subprocess.run(["ip", "addr", "add", HOST + "/24", "dev", "wt0"], check=True)
    subprocess.run(["ip", "link", "set", "wt0", "mtu", "576", "up"], check=True)
    for knob, value in [("ipv6/conf/all/disable_ipv6", "1"), ("ipv4/tcp_timestamps", "1"), ("ipv4/tcp_sack", "1"),
                        ("ipv4/tcp_window_scaling", "1")]:
        with open("/proc/sys/net/" + knob, "w") as f:
            f.write(value)

    def read(pred, timeout=2.0):
        end = time.time() + timeout
        while time.time() < end:
            r, _, _ = select.select([tun], [], [], end - time.time())
            if not r:
                break
            pkt = os.read(tun, 65536)
            if pkt and pkt[0] >> 4 == 4 and pred(pkt):
                return pkt
        raise SystemExit("timed out waiting for a packet")

    out = {}

    def keep(name, pkt):
        kind = check(pkt)
        out[name] = pkt
        print(f"{name} ({kind}, {len(pkt)} bytes):\n  {pkt.hex()}")

    is_tcp = lambda p: p[9] == 6
    # 1. Active open from the kernel: SYN with MSS, SACK-permitted, timestamps, window scale.
    s = socket.socket(); s.setblocking(False)
    s.connect_ex((PEER, 7777))
    syn = read(is_tcp)
    keep("tcp-syn", syn)
    ihl = (syn[0] & 15) * 4
    sport, = struct.unpack("!H", syn[ihl:ihl + 2])
    kseq, = struct.unpack("!I", syn[ihl + 4:ihl + 8])
    tsval, = struct.unpack("!I", syn[ihl + 28:ihl + 32])  # MSS(4) SACKOK(2) TS kind/len(2) -> TSval at 28
    # 2. Our SYN-ACK (checksums from this script): MSS 1400, SACK-permitted, timestamps, window scale 7.
    pseq = 1_000_000
    opts = struct.pack("!BBH", 2, 4, 1400) + b"\x04\x02" + struct.pack("!BBII", 8, 10, 4242, tsval) + b"\x01\x03\x03\x07"
    synack = ipv4(PEER, HOST, 6, tcp(PEER, HOST, 7777, sport, pseq, kseq + 1, 0x12, 65535, opts))
    keep("tcp-synack-python", synack)
    os.write(tun, synack)
    ack = read(is_tcp)
    keep("tcp-ack", ack)
    # 3. Data from the kernel: PSH|ACK with timestamps; bytes that SLIP must escape included.
    time.sleep(0.05)
    s.send(b"hello \xc0\xdb slip")
    data = read(lambda p: is_tcp(p) and len(p) > 52 + 12)
    keep("tcp-data", data)
    # 4. Out-of-order data to the kernel: it answers with a duplicate ACK carrying a SACK block.
    ts_opt = b"\x01\x01" + struct.pack("!BBII", 8, 10, 4343, tsval)
    ooo = ipv4(PEER, HOST, 6, tcp(PEER, HOST, 7777, sport, pseq + 1 + 100, kseq + 1, 0x18, 512, ts_opt, b"x" * 50))
    os.write(tun, ooo)
    sack = read(lambda p: is_tcp(p) and p[20 + 12] >> 4 > 8)
    keep("tcp-sack", sack)
    # 5. A SYN to a closed port: the kernel answers RST|ACK.
    probe = ipv4(PEER, HOST, 6, tcp(PEER, HOST, 5555, 9, 777, 0, 0x02, 1024))
    os.write(tun, probe)
    keep("tcp-rst", read(lambda p: is_tcp(p) and p[20 + 13] & 0x04))
    # 6. A SYN without timestamps: the other option layout (MSS, NOP NOP SACKOK, NOP WS).
    with open("/proc/sys/net/ipv4/tcp_timestamps", "w") as f:
        f.write("0")
    s2 = socket.socket(); s2.setblocking(False)
    s2.connect_ex((PEER, 7778))
    keep("tcp-syn-nots", read(lambda p: is_tcp(p) and p[20 + 13] == 0x02 and p[22:24] == b"\x1e\x62"))
    # 7. ICMP echo request (from this script) and the kernel's reply.
    data_bytes = bytes(range(56))
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + data_bytes
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    req = ipv4(PEER, HOST, 1, icmp, df=False)
    keep("icmp-echo-request-python", req)
    os.write(tun, req)
    keep("icmp-echo-reply", read(lambda p: p[9] == 1))
    # 8. UDP from the kernel.
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"udp over slip", (PEER, 9))
    keep("udp", read(lambda p: p[9] == 17))
    # 9. IPv4 options: NOP NOP NOP EOL makes IHL 6.
    u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u2.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"\x01\x01\x01\x00")
    u2.sendto(b"with options", (PEER, 10))
    keep("udp-ip-options", read(lambda p: p[9] == 17 and p[0] == 0x46))
    # 10. Fragments: 1000 bytes of UDP over a 576-byte MTU.
    u3 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u3.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT: let it fragment
    u3.sendto(bytes(i & 0xFF for i in range(1000)), (PEER, 11))
    keep("udp-fragment-1", read(lambda p: p[9] == 17 and p[6] & 0x20))
    keep("udp-fragment-2", read(lambda p: p[9] == 17 and struct.unpack("!H", p[6:8])[0] & 0x1FFF))

    if seeds:
        here = os.path.dirname(os.path.abspath(__file__))
        for harness in ("ipv4-tcp", "slip"):
            os.makedirs(os.path.join(here, harness, "corpus"), exist_ok=True)
        for name, pkt in out.items():
            with open(os.path.join(here, "ipv4-tcp", "corpus", name), "wb") as f:
                f.write(pkt)
            with open(os.path.join(here, "slip", "corpus", name), "wb") as f:
                f.write(slip(pkt))
        write_malformed(here, out)


def write_malformed(here, out):
    """Broken variants of the captured packets, and broken SLIP streams, as extra seeds."""
    syn, data = out["tcp-syn"], out["tcp-data"]

    def fix_ip(p):  # recompute the IPv4 header checksum so only the intended fault remains
        ihl = (p[0] & 15) * 4
        p = bytearray(p); p[10:12] = b"\0\0"; p[10:12] = struct.pack("!H", csum(bytes(p[:ihl])))
        return bytes(p)

    def fix_tcp(p):
        p = bytearray(p); p[36:38] = b"\0\0"
        p[36:38] = struct.pack("!H", csum(pseudo(bytes(p[12:16]), bytes(p[16:20]), 6, len(p) - 20) + bytes(p[20:])))
        return bytes(p)

    def patch(p, at, value):
        p = bytearray(p); p[at:at + len(value)] = value
        return bytes(p)

    bad = {
        "bad-truncated-header": syn[:19],
        "bad-version-6": fix_ip(patch(syn, 0, b"\x65")),
        "bad-ihl-4": fix_ip(patch(syn, 0, b"\x44")),
        "bad-total-length-long": fix_ip(patch(syn, 2, struct.pack("!H", len(syn) + 1))),
        "bad-total-length-short": fix_ip(patch(syn, 2, struct.pack("!H", 19))),
        "bad-ip-checksum": patch(syn, 10, b"\xde\xad"),
        "bad-tcp-checksum": patch(data, 36, b"\xde\xad"),
        "bad-tcp-offset-4": fix_tcp(patch(syn, 32, b"\x40")),
        "bad-tcp-offset-past-end": fix_tcp(patch(syn, 32, b"\xf0")),
        "bad-option-length-0": fix_tcp(patch(syn, 40, b"\x02\x00")),
        "bad-option-past-end": fix_tcp(patch(syn, 54, b"\x01\x03\x09\x0a")),
        "bad-mss-length-5": fix_tcp(patch(syn, 40, b"\x02\x05")),
        "bad-sack-length-11": fix_tcp(patch(out["tcp-sack"], 54, b"\x01\x05\x0b")),
        "bad-icmp-checksum": patch(out["icmp-echo-reply"], 22, b"\x00\x00"),
        "bad-udp-length": fix_ip(patch(out["udp"], 24, b"\x00\x07")),
    }
    for name, pkt in bad.items():
        with open(os.path.join(here, "ipv4-tcp", "corpus", name), "wb") as f:
            f.write(pkt)
    streams = {
        "stream-two-frames-noise": b"noise" + slip(syn) + slip(data) + b"\xc0\xc0",
        "stream-escape-error": b"\xc0ab\xdb\x41cd\xc0" + slip(b"ok"),
        "stream-esc-end": b"\xc0ab\xdb\xc0" + slip(b"after"),
        "stream-oversize": slip(bytes(3000)) + slip(b"small"),
        "stream-escape-at-chunk-edges": bytes([0, 0, 0, 3]) + slip(b"\xc0\xdb\xc0\xdb" * 8),
    }
    for name, stream in streams.items():
        with open(os.path.join(here, "slip", "corpus", name), "wb") as f:
            f.write(stream)


if __name__ == "__main__":
    main()
