"""
The terminal where termios, tty and fcntl exist (Linux, macOS, the BSDs):
cbreak mode for the key-by-key line editor, stdin read through Twisted's
stdio.  Imported only by chatd/terminal/__init__.py.
"""

import fcntl
import termios
import tty

from twisted.internet import stdio


class TerminalMode:
    """
    Remembers the terminal's mode and the descriptors' flags (Twisted's stdio
    makes them non-blocking), switches stdin to cbreak, and puts everything
    back on ``restore``.
    """

    key_by_key = True  # cbreak works: the line editor can run

    def __init__(self, fd=0, fds=(0, 1, 2)):
        self.fd = fd
        self._saved_mode = None
        self._saved_flags = {}
        for each in fds:
            try:
                self._saved_flags[each] = fcntl.fcntl(each, fcntl.F_GETFL)
            except OSError:
                pass

    def cbreak(self):
        """
        Keys arrive one by one, unechoed; Ctrl-C and Ctrl-Z still signal.
        """
        if self._saved_mode is None:
            self._saved_mode = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd, termios.TCSANOW)

    def restore(self):
        if self._saved_mode is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved_mode)
            except (OSError, termios.error):
                pass
        for each, flags in self._saved_flags.items():
            try:
                fcntl.fcntl(each, fcntl.F_SETFL, flags)
            except OSError:
                pass


def read_input(reader, reactor, fd=0):
    """
    Feed stdin to ``reader`` (a protocol); returns its transport, which
    pauses and resumes reading.
    """
    return stdio.StandardIO(reader, stdin=fd, reactor=reactor)


def enable_escapes(fd):
    """
    Whether ANSI escapes (colours, the footer) work on the terminal ``fd``:
    always, here.
    """
    return True


def raw_output(fd):
    """
    Output goes straight to the descriptor (``None``).
    """
    return None
