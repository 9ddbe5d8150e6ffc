"""
The line-plus-raw-mode connection shared by the server and ``chatd-client``.

Both ends speak lines, and both move files inside the same connection: the
server receives uploads and sends downloads, the client sends uploads and
receives downloads.  ``TransferReceiver`` is the ``LineReceiver`` that does
the framing for both: raw mode for exactly the byte count a header line
stated (leftover bytes go back to line mode), and files sent with
``FileSender`` while lines written meanwhile are held, bounded, until the
file is out.
"""

import collections

from twisted.protocols.basic import FileSender, LineReceiver

from chatd import grammar

HELD_LINES = 1000  # lines held while a file is being sent


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
    _close_when_sent = False

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
            self.setRawMode()

    def rawDataReceived(self, data):
        chunk, rest = data[:self._raw_left], data[self._raw_left:]
        self._raw_left -= len(chunk)
        sink = self._raw_sink
        if sink is not None and chunk:
            sink.write(chunk)
        if self._raw_left == 0:
            self._raw_sink = None
            self.raw_finished(sink, rest)

    def raw_finished(self, sink, rest):
        """
        The raw section is complete; ``rest`` is what followed it.  The
        default goes back to line mode with it.
        """
        self.setLineMode(rest)

    # --- sending ----------------------------------------------------------

    def deliver(self, data):
        """
        Write encoded lines, or hold them (at most ``HELD_LINES``, dropping
        the oldest) while a file is being sent.
        """
        if self._sending_file:
            if self._held is None:
                self._held = collections.deque()
            if self._held_lines >= HELD_LINES:
                self._drop_oldest_line()
            self._held.append(data)
            self._held_lines += 1
        elif self.transport is not None and not self.transport.disconnecting:
            self.transport.write(data)

    def send(self, line):
        """
        Send one line (``str``), encoded by the grammar.
        """
        self.deliver(grammar.encode_line(line))

    def _drop_oldest_line(self):
        for i, item in enumerate(self._held):
            if isinstance(item, bytes):
                del self._held[i]
                self._held_lines -= 1
                self._skipped += 1
                return

    def close_when_sent(self):
        """
        Close the connection once every held line and file has been sent.
        """
        if self._sending_file:
            self._close_when_sent = True
        else:
            self.transport.loseConnection()

    def send_file(self, header, source, transform=None, done=None):
        """
        Send the ``header`` line then every byte of the open file ``source``
        with ``FileSender``; queued behind a file already being sent.
        ``done(result)`` is called when it is out (or failed).
        """
        if self._sending_file:
            self._held.append((header, source, transform, done))
            return
        if self._held is None:
            self._held = collections.deque()
        self.transport.write(grammar.encode_line(header))
        self._sending_file = True
        d = FileSender().beginFileTransfer(source, self.transport, transform)
        d.addBoth(self._file_sent, source, done)

    def _file_sent(self, result, source, done):
        source.close()
        self._sending_file = False
        if done is not None:
            done(result)
        if self._skipped:
            skipped, self._skipped = self._skipped, 0
            self.send(grammar.notice(f"{skipped} lines skipped while a file was sent"))
        while self._held and not self._sending_file:
            item = self._held.popleft()
            if isinstance(item, bytes):
                self._held_lines -= 1
                self.deliver(item)
            else:
                self.send_file(*item)
        if self._close_when_sent and not self._sending_file:
            self.transport.loseConnection()
