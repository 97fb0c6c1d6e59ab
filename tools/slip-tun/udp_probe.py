"""A UDP datagram from inside the test's namespace to a port on the far end of the line, through
a connected socket (no tools needed): python3 udp_probe.py ADDRESS PORT.
Prints what came back and exits 0 when the kernel reported ECONNREFUSED (the far end answered
ICMP port unreachable and the kernel accepted it), 1 when a datagram came back, 2 when nothing
came within 5 s."""
import socket, sys

address, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(5)
sock.connect((address, port))
sock.send(b"is anyone there?")
try:
    data = sock.recv(2048)
    print("a datagram came back: %r" % data)
    sys.exit(1)
except ConnectionRefusedError:
    print("refused")
    sys.exit(0)
except socket.timeout:
    print("no answer within 5 s")
    sys.exit(2)
