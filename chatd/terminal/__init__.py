"""
The one place ``chatd-client`` meets the operating system's terminal, chosen
at import time: ``chatd.terminal.posix`` where termios, tty and fcntl
exist, else ``chatd.terminal.windows`` (Windows, or any Python without them).

Both give ``TerminalMode`` (``key_by_key``: whether the key-by-key line
editor can run; ``cbreak()``, ``restore()``), ``read_input(reader, reactor,
fd)`` (stdin into a protocol; returns a transport that pauses and resumes)
and ``enable_escapes(fd)`` (whether colours and the redrawn footer work).
"""

try:
    from chatd.terminal.posix import TerminalMode, enable_escapes, read_input
except ImportError:
    from chatd.terminal.windows import TerminalMode, enable_escapes, read_input

__all__ = ["TerminalMode", "enable_escapes", "read_input"]
