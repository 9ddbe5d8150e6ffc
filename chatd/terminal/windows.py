"""
The terminal where termios, tty and fcntl do not exist (Windows, or any
Python built without them): stdin is read line by line as the console (or
pipe) gives it, by a thread that hands what it reads to the reactor with
``callFromThread``, and ANSI escapes are turned on in Windows 10+ consoles.
Imported only by chatd/terminal/__init__.py; it needs neither pywin32 nor Twisted's
Windows stdio.
"""

import os
import select
import sys
import threading

from twisted.internet import error
from twisted.python.failure import Failure

READ_SIZE = 65536
POLL = 0.2  # where stdin can be polled, the reader looks at its stop flag this often
STOP_WAIT = 1.0  # how long the exit waits for the reader thread
ENABLE_VIRTUAL_TERMINAL_PROCESSING = 0x0004


class TerminalMode:
    """
    Nothing to switch or restore: the console keeps its own line editing.
    """

    key_by_key = False  # no cbreak: lines, not keys

    def __init__(self, fd=0, fds=(0, 1, 2)):
        self.fd = fd

    def cbreak(self):
        raise NotImplementedError("no cbreak mode without termios")

    def restore(self):
        pass


def read_input(reader, reactor, fd=0):
    """
    Feed stdin to ``reader`` (a protocol) from a thread; returns its
    transport, which pauses and resumes reading.
    """
    return ThreadedInput(reader, reactor, fd)


class ThreadedInput:
    """
    The transport of the stdin reader: a daemon thread reads, the reactor
    thread delivers (``dataReceived``; at the end ``readConnectionLost`` and
    ``connectionLost``).  What is read while paused is held, in order.  The
    thread is stopped before the reactor shuts down.
    """

    def __init__(self, protocol, reactor, fd=0):
        self.protocol = protocol
        self.reactor = reactor
        self.disconnecting = False
        self._stream = _binary_stdin(fd)
        self._paused = False
        self._held = []
        self._ended = False
        self._stop = threading.Event()
        protocol.makeConnection(self)
        self._thread = threading.Thread(target=self._read, name="chatd-client stdin",
                                        daemon=True)
        self._thread.start()
        reactor.addSystemEventTrigger("before", "shutdown", self.stop)

    # --- the reader thread ----------------------------------------------------

    def _read(self):
        while not self._stop.is_set():
            if not _readable(self._stream, POLL):
                continue
            try:
                data = self._stream.read(READ_SIZE)
            except OSError:
                data = b""  # cancelled by stop(), or stdin is gone
            if data is None:
                continue  # nothing after all (a non-blocking descriptor)
            if self._stop.is_set():
                return
            self.reactor.callFromThread(self._deliver, data)
            if not data:
                return

    # --- the reactor thread ---------------------------------------------------

    def _deliver(self, data):
        if self._paused or self._held:
            self._held.append(data)
        else:
            self._feed(data)

    def _feed(self, data):
        if self._ended:
            return
        if data:
            self.protocol.dataReceived(data)
            return
        self._ended = True
        self.protocol.readConnectionLost()
        self.protocol.connectionLost(Failure(error.ConnectionDone("end of input")))

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        while self._held and not self._paused:
            self._feed(self._held.pop(0))

    def stopProducing(self):
        self.stop()

    def loseConnection(self):
        self.stop()

    def write(self, data):
        pass  # nothing is written back to stdin

    def stop(self):
        """
        End the reader thread: it sees the flag at its next poll; a blocking
        Windows read is cancelled.
        """
        if self._stop.is_set():
            return
        self._stop.set()
        self.disconnecting = True
        if self._thread is not threading.current_thread():
            _cancel_read(self._thread)
            self._thread.join(STOP_WAIT)


def _binary_stdin(fd):
    """
    The raw binary stream of ``fd``: for stdin, Python's own (on a Windows
    console it reads UTF-8, whatever the code page).
    """
    stdin = sys.stdin
    if fd == 0 and stdin is not None and hasattr(stdin, "buffer"):
        return getattr(stdin.buffer, "raw", stdin.buffer)
    return open(fd, "rb", buffering=0, closefd=False)


def raw_output(fd):
    """
    Python's raw stream for stdout or stderr on a Windows console: it turns
    UTF-8 into the console's text, which ``os.write`` would show in the
    console's code page.  ``None`` elsewhere (the descriptor itself).
    """
    stream = {1: sys.stdout, 2: sys.stderr}.get(fd)
    if os.name != "nt" or stream is None or not hasattr(stream, "buffer"):
        return None
    raw = getattr(stream.buffer, "raw", None)
    return raw if type(raw).__name__ == "_WindowsConsoleIO" else None


def _readable(stream, timeout):
    """
    Wait up to ``timeout`` for input where descriptors can be polled (not
    on Windows, where the read itself blocks until ``stop`` cancels it).
    """
    if os.name == "nt":
        return True
    try:
        return bool(select.select([stream], [], [], timeout)[0])
    except (OSError, ValueError):
        return True  # let the read say what is wrong


def _cancel_read(thread):
    """
    Cancel a Windows thread's blocking console or pipe read, if any.
    """
    if os.name != "nt" or thread.native_id is None:
        return
    try:
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenThread(0x0001, False, thread.native_id)  # THREAD_TERMINATE
        if handle:
            kernel32.CancelSynchronousIo(handle)
            kernel32.CloseHandle(handle)
    except (OSError, AttributeError):
        pass


def enable_escapes(fd):
    """
    Turn on ANSI escape handling (colours, the footer) for the console
    ``fd`` on Windows 10+; False where it cannot be (plain text then).
    """
    if os.name != "nt":
        return True
    try:
        import ctypes
        import msvcrt
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = msvcrt.get_osfhandle(fd)
        mode = wintypes.DWORD()
        if not kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
            return False
        if mode.value & ENABLE_VIRTUAL_TERMINAL_PROCESSING:
            return True
        return bool(kernel32.SetConsoleMode(
            handle, mode.value | ENABLE_VIRTUAL_TERMINAL_PROCESSING))
    except (OSError, ImportError, AttributeError, ValueError):
        return False
