"""
WebSocket users for the load generator: the same ``loadgen.Client`` (line
counting, markers, latency parsing), speaking chatd's WebSocket framing
(one line per text frame, docs/PROTOCOL.md) with a minimal RFC 6455 codec,
so a WebSocket user costs the generator about what a TCP one does.
"""

import asyncio
import time

from bench import loadgen

HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n")
MASK = b"\0\0\0\0"  # a client must mask; an all-zero key is a valid one


def text_frame(payload):
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + MASK + payload


class FrameWriter:
    """
    What ``loadgen`` writes to: CRLF-ended lines become text frames.
    """

    __slots__ = ("raw",)

    def __init__(self, raw):
        self.raw = raw

    def write(self, data):
        self.raw.write(b"".join(text_frame(line) for line in data.split(b"\r\n") if line))

    def abort(self):
        self.raw.abort()

    def close(self):
        self.raw.close()


class WebSocketClient(loadgen.Client):
    """
    A ``loadgen.Client`` over ``/ws``: frames in are handed on as CRLF lines.
    """

    def __init__(self, gen, index, parse=False, probe=False, port=0):
        loadgen.Client.__init__(self, gen, index, parse, probe)
        self.port = port
        self.handshaken = False
        self.frames = b""

    def connection_made(self, transport):
        self.transport = FrameWriter(transport)
        transport.write(HANDSHAKE % self.port)

    def data_received(self, data):
        buf = self.frames + data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.frames = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.transport.abort()
                return
            self.handshaken = True
            buf = buf[end + 4:]
        lines = []
        i, n = 0, len(buf)
        while n - i >= 2:
            size, head = buf[i + 1] & 0x7F, 2
            if size == 126:
                if n - i < 4:
                    break
                size, head = int.from_bytes(buf[i + 2:i + 4], "big"), 4
            elif size == 127:
                if n - i < 10:
                    break
                size, head = int.from_bytes(buf[i + 2:i + 10], "big"), 10
            if n - i < head + size:
                break
            if buf[i] & 0x0F in (1, 2):
                lines.append(buf[i + head:i + head + size])
            i += head + size
        self.frames = buf[i:]
        if lines:
            lines.append(b"")
            loadgen.Client.data_received(self, b"\r\n".join(lines))


class MixedGenerator(loadgen.Generator):
    """
    A ``Generator`` whose clients alternate between TCP and WebSocket when
    ``web_port`` is set (``web_share`` of them on the WebSocket, spread
    evenly, latency samplers and senders included).
    """

    def __init__(self, host, port, mode="chat", pad=32, web_port=None, web_share=0.5):
        loadgen.Generator.__init__(self, host, port, mode, pad)
        self.web_port = web_port
        self.web_share = web_share if web_port else 0.0

    def is_web(self, index):
        return int((index + 1) * self.web_share) > int(index * self.web_share)

    async def connect(self, count, parse=0, probe=False, concurrency=None, login="full",
                      timeout=120.0, oper=()):
        """
        As ``Generator.connect``; each client on TCP or WebSocket by index.
        """
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(concurrency or count)
        start = time.monotonic()
        first = len(self.clients)

        async def one(i):
            web = self.is_web(i)
            cls = WebSocketClient if web else loadgen.Client
            kw = {"port": self.web_port} if web else {}
            client = cls(self, i, parse=(i - first) < parse, probe=probe and i == first, **kw)
            self.clients.append(client)
            async with sem:
                await loop.create_connection(lambda: client, self.host,
                                             self.web_port if web else self.port)
                await client.first
            if login == "full":
                await self._login(client)

        tasks = [asyncio.ensure_future(one(first + i)) for i in range(count)]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        errors = [repr(t.exception()) for t in done if t.exception() is not None]
        return {"requested": count, "logged_in": len(done) - len(errors),
                "seconds": round(time.monotonic() - start, 3), "timed_out": bool(pending),
                "errors": errors[:3],
                "websocket": sum(1 for c in self.clients[first:] if isinstance(c, WebSocketClient))}
