"""
The one place ``chatd-client`` meets the operating system's terminal, chosen
at import time: ``chatd.terminal.posix`` where termios, tty and fcntl
exist, else ``chatd.terminal.windows`` (Windows, or any Python without them).

Both give ``TerminalMode`` (``key_by_key``: whether the key-by-key line
editor can run; ``cbreak()``, ``restore()``), ``read_input(reader, reactor,
fd)`` (stdin into a protocol; returns a transport that pauses and resumes)
``enable_escapes(fd)`` (whether colours and the redrawn footer work) and
``raw_output(fd)`` (the stream output must go through, or ``None`` for the
descriptor itself).
"""

try:
    from chatd.terminal.posix import TerminalMode, enable_escapes, raw_output, read_input
except ImportError:
    from chatd.terminal.windows import TerminalMode, enable_escapes, raw_output, read_input

__all__ = ["TerminalMode", "enable_escapes", "raw_output", "read_input"]
