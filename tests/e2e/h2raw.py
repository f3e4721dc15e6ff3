"""A raw HTTP/2 client for the end-to-end tests, written here from RFC 9113
and RFC 7541: it sends any frame, well-formed or not, and reads the frames
the server sends back (their types, flags, streams and payloads). Header
blocks it sends are HPACK literals (never Huffman-coded), which every
decoder must take; it never decodes the server's header blocks, only the
frames around them, so tests check DATA payloads, trailers' presence,
RST_STREAM and GOAWAY codes.
"""
import socket
import ssl
import struct
import time

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 7, 8, 9, 0xb
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid & 0x7fffffff) + payload


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_str(s):
    b = s if isinstance(s, bytes) else s.encode()
    return hpack_int(len(b), 7) + b


def literal(name, value, index=False):
    """A field as a literal with a new name: kept in the decoder's dynamic
    table when |index| (RFC 7541 6.2.1), else not indexed (6.2.2)."""
    return (b"\x40" if index else b"\x00") + hpack_str(name) + hpack_str(value)


def indexed(i):
    return hpack_int(i, 7, 0x80)


def grpc_headers(path, authority="localhost", scheme="https", extra=()):
    block = b"".join(literal(n, v) for n, v in (
        (":method", "POST"), (":scheme", scheme), (":path", path), (":authority", authority),
        ("content-type", "application/grpc"), ("te", "trailers")))
    return block + b"".join(literal(n, v) for n, v in extra)


def grpc_message(body):
    return b"\x00" + struct.pack(">I", len(body)) + body


class Conn:
    """One HTTP/2 connection over TLS (ALPN h2) or plaintext (h2c)."""

    def __init__(self, port, host="127.0.0.1", tls=True, alpn=("h2",), settings=(),
                 timeout=10.0, preface=True):
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
            self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
            self.alpn = self.sock.selected_alpn_protocol()
        else:
            self.sock = raw
            self.alpn = None
        self.buf = b""
        self.closed = False
        if preface:
            self.send(PREFACE + frame(SETTINGS, 0, 0, b"".join(
                struct.pack(">HI", k, v) for k, v in settings)))

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, ftype, flags, sid, payload=b""):
        self.send(frame(ftype, flags, sid, payload))

    def request(self, sid, path, body=None, extra=(), end=True):
        """HEADERS (and a DATA message unless |body| is None)."""
        flags = END_HEADERS | (END_STREAM if body is None and end else 0)
        out = frame(HEADERS, flags, sid, grpc_headers(path, extra=extra))
        if body is not None:  # DATA frames of at most 16,384 bytes (the default size)
            msg = grpc_message(body)
            for i in range(0, len(msg), 16384):
                last = i + 16384 >= len(msg)
                out += frame(DATA, END_STREAM if end and last else 0, sid, msg[i:i + 16384])
        self.send(out)

    def read_frame(self, timeout=10.0):
        """The next frame (type, flags, stream, payload), or None once the
        server closed the connection (or |timeout| passed: then 'timeout')."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return "timeout"
            except (ConnectionResetError, ssl.SSLError, OSError):
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self.buf += chunk
        n = int.from_bytes(self.buf[:3], "big")
        f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
             self.buf[9:9 + n])
        self.buf = self.buf[9 + n:]
        return f

    def read_until(self, pred, timeout=10.0, ack_pings=True):
        """Reads frames until pred(frame) is true (returns that frame), the
        connection closes (None) or |timeout| passes ('timeout'). SETTINGS
        are acknowledged on the way."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.read_frame(max(0.01, deadline - time.monotonic()))
            if f is None or f == "timeout":
                return f
            if f[0] == SETTINGS and not f[1] & ACK:
                try:
                    self.send_frame(SETTINGS, ACK, 0)
                except OSError:
                    pass
            if pred(f):
                return f

    def response(self, sid, timeout=10.0):
        """Reads stream |sid|'s answer to its end: (data bytes, number of
        HEADERS frames, RST_STREAM code or None, GOAWAY code or None)."""
        data, nheaders = b"", 0
        deadline = time.monotonic() + timeout
        while True:
            f = self.read_frame(max(0.01, deadline - time.monotonic()))
            if f is None or f == "timeout":
                return data, nheaders, None, f
            t, fl, s, p = f
            if t == SETTINGS and not fl & ACK:
                self.send_frame(SETTINGS, ACK, 0)
            elif t == GOAWAY:
                return data, nheaders, None, struct.unpack(">II", p[:8])[1]
            elif s == sid and t == DATA:
                data += p
                if p:
                    self.send_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(p)))
                    self.send_frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", len(p)))
                if fl & END_STREAM:
                    return data, nheaders, None, None
            elif s == sid and t == HEADERS:
                nheaders += 1
                if fl & END_STREAM:
                    return data, nheaders, None, None
            elif s == sid and t == RST_STREAM:
                return data, nheaders, struct.unpack(">I", p[:4])[0], None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def goaway_code(f):
    return struct.unpack(">II", f[3][:8])[1] if f not in (None, "timeout") and f[0] == GOAWAY \
        else None
