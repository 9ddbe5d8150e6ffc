"""
Volume: a reader that stops reading among 200 talkers, and one client
pasting 1000 lines at once.
"""

import hashlib
import random
import re
import time

from helpers import (FAST, MiB, AdvClient, Swarm, cpu_seconds, kernel_send_queue, rtt,
                     stalled_send_queue)


class Ledger:
    """
    What each peer sent, and whether every other peer got exactly that, in
    order; with arrival times of chosen probe lines.
    """

    def __init__(self):
        self.sent = {}  # name -> [text bytes]
        self.pos = {}  # (receiver, sender) -> lines received in order
        self.received = 0
        self.wrong = []
        self.arrivals = {}  # (receiver, text) -> monotonic time
        self.watch = set()  # texts whose arrival times are kept

    def send(self, swarm, peer, text, watch=False):
        self.sent.setdefault(peer.name, []).append(text)
        if watch:
            self.watch.add(text)
        swarm.send(peer, b"%s\n" % text)

    def on_chat(self, peer, name, text, when):
        expected = self.sent.get(name, ())
        key = (peer.name, name)
        i = self.pos.get(key, 0)
        if i < len(expected) and expected[i] == text:
            self.pos[key] = i + 1
            self.received += 1
            if text in self.watch:
                self.arrivals[peer.name, text] = when
        elif len(self.wrong) < 20:
            self.wrong.append((peer.name, name, i, text[:60]))

    def expected(self, receivers):
        """
        Lines ``receivers`` must get in all: everything sent by the others.
        """
        total = sum(len(lines) for lines in self.sent.values())
        return sum(total - len(self.sent.get(r.name, ())) for r in receivers)


def test_stalled_reader_dropped_while_200_talk(make_daemon, figure):
    d = make_daemon("--rate", "0", "--presence-limit", "0")
    # A 4 KiB receive window, and it never reads past the greeting.
    stalled = AdvClient(d.port, rcvbuf=4096, source="127.0.0.2")
    left = re.compile(rf"\*\*\* {stalled.name} left \(.*send queue.*\)\Z")
    ledger = Ledger()
    swarm = Swarm(d.port, ledger.on_chat)
    try:
        filler = swarm.connect(1, source="127.0.0.3")[0]
        filler.count_only = b"[private to "
        talkers = [swarm.connect(1, source=f"127.0.1.{i + 1}")[0] for i in range(200)]
        # Six readers check every line; the rest count lines (cheaper).
        full = talkers[:3] + talkers[-3:]
        for p in talkers[3:-3]:
            p.count_only = f"*** {stalled.name} left (".encode()
        joins = lambda: all(len(p.notices) + p.lines >= 199 - i for i, p in enumerate(talkers))
        assert swarm.pump(10, joins), "joins not seen"
        rss_before = peak = d.rss()
        cpu_before, own_before = cpu_seconds(d.proc.pid), time.process_time()

        # The kernel alone takes ~2 MiB for a peer that does not read (send
        # buffer autotuning), before the transport's 64 KiB and the 256 KiB
        # queue.  Fill it with private messages only the stalled reader gets
        # until the kernel's queue stops growing, so that what the 200 then
        # say is what overflows the send queue.
        private = b"/msg %s %s\n" % (stalled.name.encode(), b"f" * 4000)
        absorbed, still, fill_started = 0, 0, time.monotonic()
        while still < 2:
            assert time.monotonic() - fill_started < 10, "the kernel queue kept growing"
            for _ in range(16):
                swarm.send(filler, private)
            swarm.pump(0.05)
            queued = kernel_send_queue(d.port, stalled)
            still = still + 1 if queued < absorbed + 4096 else 0
            absorbed = max(absorbed, queued)
        figure("kernel send queue of the stalled reader, full", absorbed, "bytes")
        assert not [n for p in full for n in p.notices if left.match(n)], "dropped early"

        lines_each, pad, spread = 3, 1000, 2.0
        schedule = [(k, p) for k in range(lines_each) for p in talkers]
        x, y = talkers[0], talkers[1]  # bystanders: x pings, y times it
        pings = []
        start = time.monotonic()
        next_ping = start
        sent_lines = 0
        while sent_lines < len(schedule) or time.monotonic() < start + spread:
            now = time.monotonic()
            due = min(len(schedule), int((now - start) / spread * len(schedule)) + 1)
            for k, p in schedule[sent_lines:due]:
                text = b"%s#%d:" % (p.name.encode(), k) + b"." * pad
                ledger.send(swarm, p, text)
            sent_lines = max(sent_lines, due)
            if now >= next_ping:
                token = b"ping-%d" % len(pings)
                pings.append((token, time.monotonic()))
                ledger.send(swarm, x, token, watch=True)
                next_ping = now + 0.2
            swarm.pump(0.005)
            peak = max(peak, d.rss())
        total = sum(len(lines) for lines in ledger.sent.values())
        expected = ledger.expected(full)

        def expected_lines(i, p):
            # joins of later talkers, everything the others said, one departure
            return (199 - i) + total - len(ledger.sent.get(p.name, ())) + 1

        def everything():
            return ledger.wrong or (
                ledger.received >= expected
                and all(any(left.match(n) for n in p.notices) for p in full)
                and all(p.lines + len(p.notices) >= expected_lines(i, p)
                        for i, p in enumerate(talkers) if p.count_only))

        swarm.pump(15, everything)
        peak = max(peak, d.rss())
        duration = time.monotonic() - start
        rss_after = d.rss()

        figure("daemon CPU", cpu_seconds(d.proc.pid) - cpu_before, "s")
        figure("test harness CPU", time.process_time() - own_before, "s")
        figure("lines sent", total)
        figure("bytes of chat sent to each reader",
               sum(map(len, (t for ts in ledger.sent.values() for t in ts))), "bytes")
        figure("duration", duration, "s")
        figure("RSS before", rss_before / MiB, "MiB")
        figure("peak RSS growth", (peak - rss_before) / MiB, "MiB")
        figure("RSS growth at the end", (rss_after - rss_before) / MiB, "MiB")
        latencies = [ledger.arrivals[y.name, token] - t for token, t in pings
                     if (y.name, token) in ledger.arrivals]
        figure("bystander latency max", max(latencies), "s")
        figure("bystander latency mean", sum(latencies) / len(latencies), "s")

        dropped = [p.name for p in talkers if p.closed]
        assert dropped == [], (len(dropped), dropped[:5], d.log()[-1500:])
        assert ledger.wrong == [], ledger.wrong[:5]
        assert ledger.received == expected, (ledger.received, expected)
        for i, p in enumerate(talkers):
            if p.count_only:
                assert (p.lines + len(p.notices), p.hits) == (expected_lines(i, p), 1), p.name
            else:
                assert [n for n in p.notices if " left" in n and left.match(n)], p.name
                assert [n for n in p.notices if " left" in n and not left.match(n)] == []
        assert len(latencies) == len(pings)
        assert max(latencies) < FAST
        assert peak - rss_before < 40 * MiB
        # The stalled reader's connection is really gone.
        assert stalled.closed(timeout=5)
    finally:
        swarm.close()
        stalled.close()


def test_1000_lines_in_one_write_paced_in_order(make_daemon, figure):
    rate, burst, count = 200, 10, 1000
    d = make_daemon("--rate", str(rate), "--burst", str(burst))
    ledger = Ledger()
    swarm = Swarm(d.port, ledger.on_chat)
    try:
        paster, reader, x, y = swarm.connect(4)
        assert swarm.pump(2, lambda: len(paster.notices) >= 3)  # 3 joins
        rss_before = d.rss()
        texts = [b"paste line %04d of a long paste" % i for i in range(count)]
        ledger.sent[paster.name] = list(texts)
        ledger.watch.add(texts[-1])
        start = time.monotonic()
        swarm.send(paster, b"".join(t + b"\n" for t in texts))
        assert not paster.outbuf, "the paste did not fit in one write"

        pings = []
        while (reader.name, texts[-1]) not in ledger.arrivals:
            assert time.monotonic() - start < 20, "paste not delivered"
            token = b"ping-%d" % len(pings)
            pings.append((token, time.monotonic()))
            ledger.send(swarm, x, token, watch=True)
            swarm.pump(0.5, lambda: (reader.name, texts[-1]) in ledger.arrivals)
        duration = ledger.arrivals[reader.name, texts[-1]] - start
        swarm.send(paster, b"/who\n")
        swarm.pump(3, lambda: ledger.received >= ledger.expected(swarm.peers)
                   and any(n.startswith("- online (4)") for n in paster.notices))
        latencies = [ledger.arrivals[y.name, token] - t for token, t in pings
                     if (y.name, token) in ledger.arrivals]

        minimum = (count - burst) / rate
        figure("paste delivered in", duration, "s")
        figure("paced minimum (count-burst)/rate", minimum, "s")
        figure("bystander pings", len(pings))
        figure("bystander latency max", max(latencies), "s")
        figure("RSS growth", (d.rss() - rss_before) / MiB, "MiB")

        assert ledger.wrong == [], ledger.wrong[:5]
        assert ledger.received == ledger.expected(swarm.peers)
        assert ledger.pos[reader.name, paster.name] == count
        assert ledger.pos[y.name, paster.name] == count
        assert minimum * 0.8 <= duration <= minimum * 1.5 + 1, duration
        assert len(latencies) == len(pings) >= 5
        assert max(latencies) < FAST
        assert paster.closed is None  # slowed, never dropped
        assert not [n for p in swarm.peers for n in p.notices if n.startswith("!")]
    finally:
        swarm.close()


def test_stalled_download_is_paced_not_dropped(make_daemon, figure):
    d = make_daemon("--rate", "0", "--max-file-size", "16M")
    uploader, talker = AdvClient(d.port), AdvClient(d.port)
    data = random.Random(3).randbytes(12 * MiB)
    uploader.send(b"/upload big.bin %d\n" % len(data) + data)
    assert uploader.expect("*** stored big.bin").endswith(hashlib.sha256(data).hexdigest())
    reader = AdvClient(d.port, rcvbuf=4096)
    reader.expect("- end of history of #lobby")  # the upload's notice, replayed
    talker.sync()
    rss_before = d.rss()
    reader.say("/download big.bin")
    # The reader does not read: once the kernel's queue to it is full, the
    # rest of the file must wait on disk.
    stalled_send_queue(d.port, reader)
    for i in range(50):
        talker.say(f"while downloading {i}")
    latency = rtt(talker, uploader)
    talker.sync()  # a round trip: the daemon has done all it was asked
    growth = d.rss() - rss_before
    figure("RSS growth with a 12 MiB download stalled", growth / MiB, "MiB")
    figure("bystander latency", latency, "s")
    assert growth < 4 * MiB, "the file was read into memory instead of paced"
    assert latency < FAST

    header = reader.line()
    assert header == f"FILE {len(data)} {hashlib.sha256(data).hexdigest()} big.bin"
    start = time.monotonic()
    assert reader.read_exact(len(data), timeout=20) == data
    figure("download read in", time.monotonic() - start, "s")
    after = reader.sync()
    chat = [line for line in after if line.startswith(f"<{talker.name}> while")]
    assert chat == [f"<{talker.name}> while downloading {i}" for i in range(50)], after
