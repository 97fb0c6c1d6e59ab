"""ICMP echo from inside the test's namespace (no ping(8) needed): python3 ping.py ADDRESS COUNT.
Exits 0 when every request got its reply within 2 s."""
import os, socket, struct, sys, time

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF

address, count = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.settimeout(2)
ident = os.getpid() & 0xFFFF
for seq in range(1, count + 1):
    payload = bytes(range(56))
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload
    start = time.monotonic()
    sock.sendto(packet, (address, 0))
    while True:
        reply, _ = sock.recvfrom(2048)
        ihl = (reply[0] & 0x0F) * 4
        kind, _, _, rid, rseq = struct.unpack("!BBHHH", reply[ihl:ihl + 8])
        if kind == 0 and rid == ident and rseq == seq and reply[ihl + 8:] == payload:
            print("reply from %s: seq=%d time=%.2f ms" % (address, seq, (time.monotonic() - start) * 1000))
            break
sys.exit(0)
