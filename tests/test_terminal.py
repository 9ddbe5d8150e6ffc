"""
The client's terminal boundary: the choice made at import, and the stdin
reader thread of chatd/terminal/windows.py over a real pipe, its calls into
the reactor taken from a queue (``callFromThread``) so the test decides when
they run.
"""

import io
import os
import queue

import pytest

from chatd import terminal
from chatd.console import FdStream
from chatd.terminal import windows as terminal_windows
from chatd.terminal.windows import ThreadedInput
from chatd.userinput import PipedLines

WAIT = 5.0


def test_posix_side_is_chosen_where_termios_exists():
    assert terminal.TerminalMode.__module__ == "chatd.terminal.posix"
    assert terminal.TerminalMode.key_by_key
    assert not terminal_windows.TerminalMode.key_by_key
    assert terminal_windows.enable_escapes(1)  # not Windows: nothing to turn on
    assert terminal.raw_output(1) is None and terminal_windows.raw_output(1) is None


def test_output_through_a_raw_stream_when_given():
    """
    What a Windows console gets: the encoded text through Python's raw
    stream, not the descriptor.
    """
    raw = io.BytesIO()
    out = FdStream(1, "utf-8", raw)
    assert out.write("héllo 日本\n") == len("héllo 日本\n")
    assert raw.getvalue() == "héllo 日本\n".encode()


class QueueReactor:
    """
    What ``ThreadedInput`` uses of a reactor: ``callFromThread`` (queued,
    run by ``run_next``) and the shutdown trigger.
    """

    def __init__(self):
        self.calls = queue.Queue()
        self.triggers = []

    def callFromThread(self, f, *args):
        self.calls.put((f, args))

    def addSystemEventTrigger(self, phase, event, f):
        self.triggers.append((phase, event, f))

    def run_next(self):
        f, args = self.calls.get(timeout=WAIT)
        f(*args)


@pytest.fixture
def piped():
    """
    A ``ThreadedInput`` reading a pipe into ``PipedLines``; yields
    ``(input, reactor, write_end, lines, ends)``.
    """
    read_end, write_end = os.pipe()
    lines, ends = [], []
    reader = PipedLines(lines.append, lambda: ends.append(True))
    reactor = QueueReactor()
    stdin = ThreadedInput(reader, reactor, fd=read_end)
    yield stdin, reactor, write_end, lines, ends
    stdin.stop()
    assert not stdin._thread.is_alive()
    for fd in (read_end, write_end):
        try:
            os.close(fd)
        except OSError:
            pass


def test_lines_reach_the_reader_in_the_reactor_thread(piped):
    stdin, reactor, write_end, lines, ends = piped
    assert reactor.triggers == [("before", "shutdown", stdin.stop)]
    os.write(write_end, "héllo\nsecond ".encode())
    reactor.run_next()
    assert lines == ["héllo"]
    os.write(write_end, b"half\n")
    reactor.run_next()
    assert lines == ["héllo", "second half"]


def test_paused_input_is_held_in_order_then_delivered(piped):
    stdin, reactor, write_end, lines, ends = piped
    stdin.pauseProducing()
    os.write(write_end, b"one\n")
    reactor.run_next()
    os.write(write_end, b"two\n")
    reactor.run_next()
    assert lines == []
    stdin.resumeProducing()
    assert lines == ["one", "two"]


def test_end_of_input_ends_the_reader_once_with_the_last_line(piped):
    stdin, reactor, write_end, lines, ends = piped
    os.write(write_end, b"last, no newline")
    reactor.run_next()
    os.close(write_end)
    reactor.run_next()
    assert lines == ["last, no newline"] and ends == [True]
    stdin._thread.join(WAIT)
    assert not stdin._thread.is_alive()


def test_stop_ends_a_thread_waiting_for_input(piped):
    stdin, reactor, write_end, lines, ends = piped
    stdin.stop()  # nothing was typed: the thread was waiting
    assert not stdin._thread.is_alive()
    os.write(write_end, b"too late\n")
    assert reactor.calls.empty() and lines == []
