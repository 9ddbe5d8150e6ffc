"""
The line-plus-raw-mode connection shared by the server and ``chatd-client``.

Both ends speak lines, and both move files inside the same connection: the
server receives uploads and sends downloads, the client sends uploads and
receives downloads.  ``TransferReceiver`` is the ``LineReceiver`` that does
the framing for both: raw mode for exactly the byte count a header line
stated (leftover bytes go back to line mode), and files sent with
``os.sendfile`` (plain TCP) or ``FileSender`` while lines written meanwhile
are held, bounded, until the file is out.  On the server it also bounds what waits for a slow reader
(the send queue, watched through the transport's producer signals) and
coalesces a reactor pass's lines into one write per connection.
"""

import collections

from twisted.protocols.basic import FileSender, LineReceiver
from twisted.python.failure import Failure

from chatd import grammar
from chatd.outflow import Drain, OutputFlow
from chatd.sendfile import SendfileProducer, can_sendfile
from chatd.sendnow import send_now
from chatd.sockopts import UNLIMITED, limit_unsent

HELD_LINES = 1000  # lines held while a file is being sent...
HELD_BYTES = 256 * 1024  # ...and their bytes, unless a send queue limit is set
# While a file moves, the TCP transport reads and sends in bigger steps than
# its defaults (64 KiB reads, 128 KiB sends): a reactor pass per step is what
# holds a transfer back, not the disk or the socket.
RAW_READ_SIZE = 1 << 20
FILE_SEND_LIMIT = 1 << 20


def _widen(transport, attribute, value):
    """
    Override a TCP transport's class-level step size for this connection.
    """
    if hasattr(type(transport), attribute):
        setattr(transport, attribute, value)


def _narrow(transport, attribute):
    vars(transport).pop(attribute, None)


class TransferReceiver(LineReceiver):
    """
    A ``LineReceiver`` (LF-delimited, CR stripped by the grammar) that can
    receive an exact-size raw section and send files without interleaving.
    """

    delimiter = b"\n"

    _raw_sink = None
    _raw_left = 0
    _sending_file = False
    _skipped = 0
    _held = None  # lines (bytes) and files (tuples) waiting behind a file
    _held_lines = 0
    _held_files = 0
    _held_bytes = 0
    _close_when_sent = False
    _pauses = None  # reasons input is paused (pacing, an upload committing)
    _flow = None  # the OutputFlow watching the transport, once started
    _congested = False
    _queue = None  # lines waiting while the transport is congested
    _queued = 0
    sendq_limit = 0  # 0: unbounded
    kernel_sendq = UNLIMITED  # unsent bytes the kernel may hold, outside files
    _direct = False  # deliver may write straight to the transport (the hot path)
    _coalescer = None  # a WriteCoalescer: write once per reactor pass
    _pending_out = None  # lines waiting for the coalescer's end of pass
    # Bytes of lines sent to this connection alone (``send``) and of files,
    # for the metrics; broadcast lines are counted by the hub, once per pass.
    bytes_sent = 0

    # --- receiving a raw section -------------------------------------------

    def receive_raw(self, size, sink):
        """
        Feed the next ``size`` bytes to ``sink.write(bytes)``, then call
        ``self.raw_finished(sink, rest)``.  ``sink`` may be ``None`` to
        discard them.
        """
        self._raw_sink = sink
        self._raw_left = size
        if size == 0:
            self.raw_finished(sink, b"")
        else:
            _widen(self.transport, "bufferSize", RAW_READ_SIZE)
            self.setRawMode()

    def rawDataReceived(self, data):
        chunk, rest = data[:self._raw_left], data[self._raw_left:]
        self._raw_left -= len(chunk)
        sink = self._raw_sink
        if sink is not None and chunk:
            sink.write(chunk)
        if self._raw_left == 0:
            self._raw_sink = None
            _narrow(self.transport, "bufferSize")
            self.raw_finished(sink, rest)

    def raw_finished(self, sink, rest):
        """
        The raw section is complete; ``rest`` is what followed it.  The
        default goes back to line mode with it.
        """
        self.setLineMode(rest)

    # --- pausing input ------------------------------------------------------

    def pause_input(self, reason):
        """
        Stop reading (lines wait, in order, in our buffer and the kernel's)
        until every ``reason`` given has been resumed.
        """
        if self._pauses is None:
            self._pauses = set()
        self._pauses.add(reason)
        if not self.paused:
            self.pauseProducing()

    def resume_input(self, reason):
        if self._pauses:
            self._pauses.discard(reason)
            if not self._pauses:
                self._pauses = None  # most connections are rarely paused
        if not self._pauses and self.paused and self.transport is not None:
            self.resumeProducing()

    # --- sending ----------------------------------------------------------

    def start_output_flow(self, sendq_limit, coalescer=None):
        """
        Watch the transport's congestion (as its streaming producer): while it
        is congested, lines queue here, at most ``sendq_limit`` bytes; past
        that ``send_queue_full`` is called.  With a ``coalescer``, the lines
        delivered during one reactor pass go out in one transport write.
        """
        self.sendq_limit = sendq_limit
        self._coalescer = coalescer
        if self.kernel_sendq != UNLIMITED:
            limit_unsent(self.transport, self.kernel_sendq)
        self._flow = OutputFlow(self)
        self.transport.registerProducer(self._flow, True)
        self._check_direct()

    def _check_direct(self):
        """
        Recompute ``_direct``: nothing held, queued or congested, and the
        transport open.  Called on every change of those, so ``deliver``
        (run once per recipient of every broadcast) tests one flag.
        """
        self._direct = (self._flow is not None and not self._sending_file
                        and not self._congested and not self._queue
                        and self.transport is not None
                        and not self.transport.disconnecting)

    def deliver(self, data):
        """
        Write encoded lines; queue them while the transport is congested;
        hold them while a file is being sent (bounded: the oldest go first).
        """
        if self._direct:
            pending = self._pending_out
            if pending:
                pending.append(data)
            elif self._coalescer is None:
                self.transport.write(data)
            else:
                self._pending_out = [data]
                self._coalescer.mark(self)
        elif self._sending_file:
            self._hold(data)
        elif self.transport is None or self.transport.disconnecting:
            return
        elif self._congested or self._queue:
            if self._queue is None:
                self._queue = collections.deque()
            self._queue.append(data)
            self._queued += len(data)
            self._direct = False
            if self.sendq_limit and self._queued > self.sendq_limit:
                self.send_queue_full()
        else:
            self.transport.write(data)

    @property
    def send_queue_bytes(self):
        """
        Bytes of lines waiting for this slow reader.
        """
        return self._queued

    def send(self, line):
        """
        Send one line (``str``), encoded by the grammar.
        """
        data = grammar.encode_line(line)
        self.bytes_sent += len(data)
        self.deliver(data)

    def send_queue_full(self):
        """
        The peer stopped reading and its queue passed the limit.
        """
        self._drop_queue()
        self._pending_out = None
        self.transport.abortConnection()
        self._direct = False

    def _drop_queue(self):
        self._queue = None
        self._queued = 0

    def _output_paused(self):
        self._congested = True
        self._direct = False

    def _output_resumed(self):
        self._congested = False
        self._flush_queue()
        self._check_direct()

    def flush_pending(self):
        """
        Write what this pass delivered (the coalescer calls this at the end
        of the pass; anything else writing to the transport calls it first),
        straight to the socket when nothing is ahead of it (``send_now``).
        """
        pending = self._pending_out
        if pending:
            self._pending_out = None
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            if self._sending_file:  # a raw section is going out: behind it
                self.transport.write(data)
            else:
                send_now(self.transport, data, self._flow)

    def _flush_queue(self):
        self.flush_pending()
        if self._queue:
            data = b"".join(self._queue)
            self._drop_queue()
            self.transport.write(data)

    def _hold(self, data):
        if self._held is None:
            self._held = collections.deque()
        limit = self.sendq_limit or HELD_BYTES
        while self._held_lines and (self._held_lines >= HELD_LINES
                                    or self._held_bytes + len(data) > limit):
            self._drop_oldest_line()
        self._held.append(data)
        self._held_lines += 1
        self._held_bytes += len(data)

    def _drop_oldest_line(self):
        for i, item in enumerate(self._held):
            if isinstance(item, bytes):
                del self._held[i]
                self._held_lines -= 1
                self._held_bytes -= len(item)
                self._skipped += 1
                return

    def close_when_sent(self):
        """
        Close the connection once every held line and file has been sent.
        """
        if self._sending_file:
            self._close_when_sent = True
        else:
            self._flush_queue()  # bounded by the send queue limit
            if self._flow is not None:
                # Our producer only listens for congestion; a registered
                # producer would keep a TLS transport from ever closing.
                self._flow = None
                self.transport.unregisterProducer()
            self.transport.loseConnection()
            self._direct = False

    def when_drained(self, callback):
        """
        Call ``callback()`` once the bytes written so far have left the
        transport's buffer for the kernel (on its next write pass if none
        are left).  It ends the congestion watch: for a connection's last
        words, not while a file is being sent.
        """
        self._flush_queue()
        if self._flow is not None:
            self._flow = None
            self.transport.unregisterProducer()
        self._congested = False  # no longer watched: deliver writes through
        self._check_direct()
        drain = Drain(self.transport, callback)
        self.transport.registerProducer(drain, False)
        drain.armed = True
        # A TCP transport asks a pull producer for more only from a write
        # pass: have one even if nothing is buffered (it sends 0 bytes).
        start_writing = getattr(self.transport, "startWriting", None)
        if start_writing is not None:
            start_writing()

    @property
    def files_queued(self):
        """
        Files waiting behind the one being sent.
        """
        return self._held_files

    def send_file(self, header, source, transform=None, done=None):
        """
        Send the ``header`` line then every byte of ``source`` from its
        position on: with ``os.sendfile`` on plain TCP, else (TLS, or a
        ``transform``) with ``FileSender``; both are pull producers, so a
        slow reader slows them and nothing piles up.  Queued behind a file
        already being sent.  ``source`` is
        an open file or a function that opens one, called only when the
        transfer starts (so queued files hold no descriptor); a
        ``ChatError`` it raises is sent as one ``!`` line instead.
        ``done(result)`` is called when it is out (or failed).
        """
        if self._sending_file:
            self._held.append((header, source, transform, done))
            self._held_files += 1
            return
        if self._held is None:
            self._held = collections.deque()
        if callable(source):
            try:
                source = source()
            except grammar.ChatError as e:
                self.send(grammar.error(e.message))
                return
        self._flush_queue()
        if self._flow is not None:
            self.transport.unregisterProducer()
        if header is not None:  # None: the peer asked for these bytes already
            data = grammar.encode_line(header)
            self.bytes_sent += len(data)
            self.transport.write(data)
        self._sending_file = True
        self._direct = False
        # Where a stored file's send starts and ends, for the metrics (the
        # client's upload sources have no position: nothing is counted).
        position = getattr(source, "tell", None)
        start = position() if position is not None else 0
        if self.kernel_sendq != UNLIMITED:
            limit_unsent(self.transport, UNLIMITED)  # sendfile obeys the cap too
        if transform is None and can_sendfile(self.transport, source):
            producer = SendfileProducer(self.transport, source)
            d = producer.start()
            position = lambda: producer.offset  # noqa: E731 (sendfile leaves tell() alone)
        else:
            _widen(self.transport, "SEND_LIMIT", FILE_SEND_LIMIT)
            d = _ChunkedFileSender().beginFileTransfer(source, self.transport, transform)
        if position is not None:
            d.addBoth(self._count_file_bytes, position, start)
        d.addBoth(self._file_sent, source, done)

    def _count_file_bytes(self, result, position, start):
        """
        Count what a file send moved (for the metrics), once, at its end.
        """
        self.bytes_sent += position() - start
        return result

    def _file_sent(self, result, source, done):
        source.close()
        self._sending_file = False
        _narrow(self.transport, "SEND_LIMIT")
        if self.kernel_sendq != UNLIMITED:
            limit_unsent(self.transport, self.kernel_sendq)
        if self._flow is not None and self.transport.connected:
            self._congested = False
            self.transport.registerProducer(self._flow, True)
            self._check_direct()
        if done is not None:
            done(result)
        transport = self.transport
        if transport is None or not transport.connected or transport.disconnecting:
            self._drop_held()  # gone: open no more files for it
            return
        if isinstance(result, Failure):
            # Cut short: the peer would read what follows as file bytes.
            self._drop_held()
            transport.abortConnection()
            return
        if self._skipped:
            skipped, self._skipped = self._skipped, 0
            self.send(grammar.notice(f"{skipped} lines skipped while a file was sent"))
        while self._held and not self._sending_file:
            item = self._held.popleft()
            if isinstance(item, bytes):
                self._held_lines -= 1
                self._held_bytes -= len(item)
                self.deliver(item)
            else:
                self._held_files -= 1
                self.send_file(*item)
        if self._close_when_sent and not self._sending_file:
            self.close_when_sent()


    def _drop_held(self):
        held, self._held = self._held, None
        self._held_lines = self._held_bytes = self._held_files = 0
        for item in held or ():
            if not isinstance(item, bytes) and not callable(item[1]):
                item[1].close()


class _ChunkedFileSender(FileSender):
    """
    ``FileSender`` with 1 MiB reads: its 16 KiB default costs a reactor
    round trip per 16 KiB, far from what the socket can take.
    """

    CHUNK_SIZE = 2**20
