"""Echo (7), digest sink (9) and file source (19) services for the slip-tun tests.

Run inside the test's network namespace: python3 services.py ADDRESS SOURCE-FILE READY-FILE
- 7: echoes every byte back until the client closes.
- 9: reads until the client half-closes, answers with the SHA-256 (32 bytes) of what it got.
- 19: sends SOURCE-FILE, then closes.
- UDP 7: sends each datagram back to its sender, unchanged (one recvfrom, one sendto: the
  boundaries stay). Any other UDP port is closed, and the kernel answers ICMP port unreachable.
Writes READY-FILE once all four listen.
"""
import hashlib, socket, sys, threading

address, source, ready = sys.argv[1], sys.argv[2], sys.argv[3]

def serve(port, handler):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port))
    s.listen(8)
    def loop():
        while True:
            c, _ = s.accept()
            threading.Thread(target=handler, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()

def echo(c):
    with c:
        while True:
            data = c.recv(65536)
            if not data:
                return
            c.sendall(data)

def sink(c):
    with c:
        h = hashlib.sha256()
        while True:
            data = c.recv(65536)
            if not data:
                break
            h.update(data)
        c.sendall(h.digest())

def source_(c):
    with c, open(source, "rb") as f:
        c.sendall(f.read())

def serve_udp_echo(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Room for bursts while this thread waits for the GIL (the kernel drops what does not fit).
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((address, port))
    def loop():
        while True:
            try:
                data, sender = s.recvfrom(65535)
                s.sendto(data, sender)
            except OSError:
                pass  # a pending ICMP error or a full send buffer: drop this one, keep serving
    threading.Thread(target=loop, daemon=True).start()

serve(7, echo)
serve(9, sink)
serve(19, source_)
serve_udp_echo(7)
open(ready, "w").close()
threading.Event().wait()
