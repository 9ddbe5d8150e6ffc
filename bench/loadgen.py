"""
The load generator: many connections in one asyncio process.

Each connection logs in (chat: ``/nick bN``; IRC: NICK/USER/JOIN #bench),
then counts the lines it receives (``data.count(b"\\n")``, no parsing) and
the bench messages among them (`` T``, which only a message's timestamp
has: loss is counted per message, not per newline); a
sampled subset also splits lines and reads the send timestamp at the end of
every bench message (``... T<monotonic ns>``) to measure end-to-end latency.
Senders write at a total rate, or flat out with a bounded window of messages
in flight (released when a non-sending probe connection receives them).
"""

import asyncio
import time

NS = 1_000_000_000
MESSAGE_MARK = b" T"  # before each message's send time; in no other line


class Client(asyncio.Protocol):
    """
    One connection: line counting, an optional login marker to wait for,
    optional latency parsing.
    """

    def __init__(self, gen, index, parse=False, probe=False):
        self.gen = gen
        self.index = index
        self.nick = b"b%d" % index
        self.parse = parse
        self.probe = probe
        self.transport = None
        self.lines = 0
        self.messages = 0  # bench messages received (their " T" counted)
        self.last_byte = b""
        self.sent = 0
        self.buf = b""
        self.marker = None
        self.tail = b""
        self.waiter = None
        self.closed = False
        self.first = asyncio.get_running_loop().create_future()  # first bytes in
        self.got_first = False

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        self.gen.lost_connections += 1
        for future in (self.waiter, self.first):
            if future is not None and not future.done():
                future.set_exception(ConnectionError(f"{self.nick.decode()} lost"))
                future.exception()  # awaiters still get it; nobody else must

    def expect(self, marker):
        """
        A future that resolves when ``marker`` has been received.
        """
        self.marker = marker
        self.tail = b""
        self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter

    def data_received(self, data):
        gen = self.gen
        self.lines += data.count(b"\n")
        self.messages += (self.last_byte + data).count(MESSAGE_MARK)
        self.last_byte = data[-1:]
        if not self.got_first:
            self.got_first = True
            if not self.first.done():
                self.first.set_result(None)
        gen.last_rx = time.monotonic()
        if self.marker is not None:
            hay = self.tail + data
            if self.marker in hay:
                self.marker = None
                self.tail = b""
                if not self.waiter.done():
                    self.waiter.set_result(time.monotonic())
            else:
                self.tail = hay[-len(self.marker):]
        if self.parse and gen.recording:
            now = time.monotonic_ns()
            lines = (self.buf + data).split(b"\n")
            self.buf = lines.pop()
            start = gen.measure_from
            samples = gen.latencies
            done = 0
            for line in lines:
                i = line.rfind(b" T")
                if i < 0:
                    continue
                try:
                    sent = int(line[i + 2:].rstrip(b"\r"))
                except ValueError:
                    continue
                done += 1
                if sent >= start:
                    samples.append(now - sent)
            if self.probe and done:
                gen.message_seen(done)

    def send_message(self, seq):
        self.transport.write(b"%sm%d %s T%d\r\n" % (self.gen.prefix, seq, self.gen.pad,
                                                   time.monotonic_ns()))
        self.sent += 1


class Generator:
    """
    Shared state of one run: the clients, the recording switch, latency
    samples and the in-flight window for flat-out sending.
    """

    def __init__(self, host, port, mode="chat", pad=32):
        self.host = host
        self.port = port
        self.mode = mode
        self.prefix = b"PRIVMSG #bench :" if mode == "irc" else b""
        self.pad = b"x" * pad
        self.clients = []
        self.recording = False
        self.measure_from = 0
        self.latencies = []
        self.last_rx = 0.0
        self.lost_connections = 0
        self.window = None
        self.in_flight = 0
        self._room = None

    # --- connecting and logging in -----------------------------------------

    def port_for(self, index):
        """
        The port client ``index`` connects to (bench/cluster.py: one per node).
        """
        return self.port

    async def connect(self, count, parse=0, probe=False, concurrency=None, login="full",
                      timeout=120.0, oper=()):
        """
        Open ``count`` connections and log each in; the first ``parse``
        clients parse latency, the first of them is the probe when ``probe``.
        ``login``: ``full`` (chat: /nick; IRC: register and join),
        ``greeting`` (chat: first line; IRC: register only).  At most
        ``concurrency`` connections are between connecting and the server's
        first answer (chat: the greeting; IRC: 001), which bounds the
        server's accept queue; ``None``: all at once.  Returns a dict: how
        many made it and how long it took.
        """
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(concurrency or count)
        start = time.monotonic()
        first = len(self.clients)
        failures = []

        async def one(i):
            client = Client(self, i, parse=(i - first) < parse, probe=probe and i == first)
            self.clients.append(client)
            async with sem:
                await loop.create_connection(lambda: client, self.host, self.port_for(i))
                if self.mode == "chat":
                    await client.first  # the greeting: accepted
                else:
                    await self._register(client)
            if login == "full":
                await self._login(client, oper=i in oper)

        tasks = [asyncio.ensure_future(one(first + i)) for i in range(count)]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                failures.append(repr(task.exception()))
        ok = sum(1 for t in done if t.exception() is None)
        return {
            "requested": count,
            "logged_in": ok,
            "seconds": round(time.monotonic() - start, 3),
            "timed_out": bool(pending),
            "errors": failures[:3],
        }

    async def _register(self, client):
        nick = client.nick
        waiter = client.expect(b" 001 %s " % nick)
        client.transport.write(b"NICK %s\r\nUSER %s 0 * :bench\r\n" % (nick, nick))
        await waiter

    async def _login(self, client, oper=False):
        write = client.transport.write
        nick = client.nick
        if self.mode == "chat":
            waiter = client.expect(b" is now known as %s\r\n" % nick)
            write(b"/nick %s\r\n" % nick)
            await waiter
            return
        waiter = client.expect(b" 366 %s #bench " % nick)
        write(b"JOIN #bench\r\n")
        await waiter
        if oper:
            # Senders only: lift ngircd's per-client flood throttling (+F).
            waiter = client.expect(b" MODE %s :+F" % nick)
            write(b"OPER bench bench\r\nMODE %s +F\r\n" % nick)
            try:
                await asyncio.wait_for(waiter, 5)
            except asyncio.TimeoutError:
                client.marker = None

    async def quiet(self, settle=0.5, timeout=120.0):
        """
        Wait until no client has received anything for ``settle`` seconds,
        then zero every count.  Returns the seconds waited (None on timeout).
        """
        start = time.monotonic()
        last = -1
        since = start
        while True:
            now = time.monotonic()
            total = sum(c.lines for c in self.clients)
            if total != last:
                last, since = total, now
            elif now - since >= settle:
                break
            if now - start > timeout:
                self.reset()
                return None
            await asyncio.sleep(0.1)
        self.reset()
        return round(time.monotonic() - start, 3)

    def reset(self):
        for c in self.clients:
            c.lines = 0
            c.messages = 0
            c.sent = 0
            c.buf = b""

    # --- sending --------------------------------------------------------------

    def message_seen(self, n):
        self.in_flight -= n
        if self._room is not None and self.in_flight < self.window and not self._room.done():
            self._room.set_result(None)

    async def send_at_rate(self, senders, rate, duration):
        """
        Send ``rate`` messages per second in total, round robin over
        ``senders``, for ``duration`` seconds.
        """
        total = int(rate * duration)
        start = time.monotonic()
        n = 0
        while n < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            while n < due:
                sender = senders[n % len(senders)]
                if not sender.closed:
                    sender.send_message(n)
                n += 1
            delay = start + n / rate - time.monotonic()
            await asyncio.sleep(delay if delay > 0 else 0)
        return n

    async def send_flat_out(self, senders, duration, window):
        """
        Send as fast as the probe sees messages come back, at most ``window``
        in flight, for ``duration`` seconds.
        """
        loop = asyncio.get_running_loop()
        self.window = window
        self.in_flight = 0
        end = time.monotonic() + duration
        n = 0
        while time.monotonic() < end:
            while self.in_flight < window:
                sender = senders[n % len(senders)]
                if not sender.closed:
                    sender.send_message(n)
                    self.in_flight += 1
                n += 1
            self._room = loop.create_future()
            try:
                await asyncio.wait_for(self._room, max(0.001, end - time.monotonic()))
            except asyncio.TimeoutError:
                pass
            self._room = None
        return n

    async def drain(self, expected, idle=3.0, timeout=60.0):
        """
        Wait until ``expected`` messages arrived in total, or nothing arrived
        for ``idle`` seconds, or ``timeout``.
        """
        start = time.monotonic()
        last = -1
        since = start
        while True:
            now = time.monotonic()
            total = sum(c.messages for c in self.clients)
            if total >= expected:
                return total
            if total != last:
                last, since = total, now
            elif now - since >= idle:
                return total
            if now - start > timeout:
                return total
            await asyncio.sleep(0.05)

    def close(self):
        for c in self.clients:
            if c.transport is not None and not c.closed:
                c.transport.abort()


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def latency_summary(samples_ns):
    values = sorted(samples_ns)
    ms = 1e6

    def at(f):
        v = percentile(values, f)
        return None if v is None else round(v / ms, 3)

    return {
        "samples": len(values),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "max_ms": None if not values else round(values[-1] / ms, 3),
    }
