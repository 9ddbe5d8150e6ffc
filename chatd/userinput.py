"""
What the ``chatd-client`` user types, as protocols fed from stdin.

``PipedLines`` reads whole lines (a pipe, a file, a terminal in its normal
mode).  ``LineEditor`` reads a terminal in cbreak mode key by key and keeps
the line being typed itself, so the console can redraw it below incoming
lines.  Both hand each line to ``on_line(text)`` and call ``on_eof()`` once
at the end of input.  Nothing here needs a POSIX terminal: cbreak mode and
reading stdin are chatd/terminal/'s.
"""

import codecs
import os

from twisted.internet import protocol
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

MAX_INPUT_LINE = 1024 * 1024
HISTORY = 500


@implementer(IHalfCloseableProtocol)
class _EndOfInput:
    """
    Ends input once, whichever way stdin ends (EOF, Ctrl-D, lost), after
    ``_ended_input`` handled what was left; then ``on_eof``.
    """

    _ended = False

    def readConnectionLost(self):
        self._end()

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason=protocol.connectionDone):
        self._end()

    def _end(self):
        if not self._ended:
            self._ended = True
            self._ended_input()
            self.on_eof()


class PipedLines(_EndOfInput, LineReceiver):
    """
    Lines from stdin; a last line without a newline counts too.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_INPUT_LINE

    def __init__(self, on_line, on_eof, on_error=None):
        self.on_line = on_line
        self.on_eof = on_eof
        self.on_error = on_error
        self._ended = False

    def lineReceived(self, line):
        self.on_line(_decode(line.rstrip(b"\r")))

    def lineLengthExceeded(self, line):
        if self.on_error is not None:
            self.on_error(f"input line longer than {self.MAX_LENGTH} bytes; "
                          f"stopped reading input")
        self.clearLineBuffer()
        self.transport.pauseProducing()
        self._end()

    def _ended_input(self):
        rest = self.clearLineBuffer()
        if rest.strip():
            self.lineReceived(rest)


class LineEditor(_EndOfInput, protocol.Protocol):
    """
    A small line editor for a terminal in cbreak mode: printable keys,
    Backspace, Ctrl-U (clear), Ctrl-W (erase a word), Up/Down (history),
    Ctrl-L (redraw), Enter, Ctrl-D on an empty line (end), Ctrl-C
    (``on_interrupt``; normally the terminal turns it into SIGINT).
    Other keys and escape sequences are ignored.
    """

    def __init__(self, console, on_line, on_eof, on_interrupt=None):
        self.console = console
        self.on_line = on_line
        self.on_eof = on_eof
        self.on_interrupt = on_interrupt or on_eof
        self.buffer = ""
        self.history = []
        self._recall = None  # index into history while browsing it
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._escape = None  # the escape sequence being read, or None
        self._ended = False
        self.secret = False  # a password: not shown, not kept in the history

    def dataReceived(self, data):
        for char in self._decoder.decode(data):
            if self._ended:
                return
            self._key(char)
        self.console.set_input("" if self.secret else self.buffer)

    def _key(self, char):
        if self._escape is not None:
            self._escape_key(char)
        elif char in "\r\n":
            line, self.buffer, self._recall = self.buffer, "", None
            if line.strip() and not self.secret:
                if not self.history or self.history[-1] != line:
                    self.history.append(line)
                    del self.history[:-HISTORY]
            self.console.set_input("")
            self.on_line(line)
        elif char in "\x7f\x08":
            self.buffer = self.buffer[:-1]
        elif char == "\x15":  # Ctrl-U
            self.buffer = ""
        elif char == "\x17":  # Ctrl-W
            self.buffer = self.buffer.rstrip()
            self.buffer = self.buffer[:self.buffer.rfind(" ") + 1]
        elif char == "\x0c":  # Ctrl-L
            self.console.clear_screen()
        elif char == "\x04":  # Ctrl-D
            if not self.buffer:
                self._end()
        elif char == "\x03":  # Ctrl-C, if the terminal passes it through
            self.on_interrupt()
        elif char == "\x1b":
            self._escape = ""
        elif char == "\t":
            self.buffer += " "
        elif char >= " " and not "\x80" <= char < "\xa0":
            self.buffer += char

    def _escape_key(self, char):
        """
        Swallow ``ESC [ ... final`` (CSI) and ``ESC O x`` (SS3) sequences;
        act on Up and Down.
        """
        self._escape += char
        sequence = self._escape
        if sequence in ("[", "O"):
            return
        if sequence[0] in "[O" and not ("\x40" <= char <= "\x7e"):
            return  # a parameter or intermediate byte: more to come
        self._escape = None
        if sequence in ("[A", "OA"):
            self._browse(-1)
        elif sequence in ("[B", "OB"):
            self._browse(+1)

    def _browse(self, step):
        if not self.history:
            return
        index = len(self.history) if self._recall is None else self._recall
        index = min(max(index + step, 0), len(self.history))
        self._recall = index
        self.buffer = self.history[index] if index < len(self.history) else ""

    def _ended_input(self):
        pass


def _decode(raw):
    return raw.decode("utf-8", "replace")


def isatty(fd):
    try:
        return os.isatty(fd)
    except OSError:
        return False
