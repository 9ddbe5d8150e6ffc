"""
What the ``chatd-client`` user sees.

Every line (received or the client's own) gets a ``[HH:MM]`` timestamp and a
marker for its kind, coloured when the output is a terminal.  On a terminal
the lines scroll above a footer that the console redraws after each one: the
progress bars (tqdm, drawn on stderr) and the input prompt with what the user
is typing, so an incoming line never mangles the input.  Elsewhere (pipes,
files, tests) lines are plain text and tqdm writes to stderr as usual.
"""

import os
import select
import time
import unicodedata

from tqdm import tqdm

from chatd import grammar

# Bars are only ever touched from the reactor thread: no monitor thread.
tqdm.monitor_interval = 0

ERASE_LINE = "\r\x1b[K"

_PLAIN = {
    "chat": "<{name}> {text}",
    "own": "<you> {text}",
    "action": "* {name} {text}",
    "own-action": "* you {text}",
    "private": "[private] <{name}> {text}",
    "private-sent": "[private to {name}] {text}",
    "notice": "*** {text}",
    "reply": "- {text}",
    "error": "! {text}",
    "info": "-- {text}",
    "unknown": "{text}",
}

# SGR codes per kind: (whole line, name) -- "1" bold, "2" dim, "3x" colours.
_STYLE = {
    "chat": (None, "1"),
    "own": ("32", "1"),
    "action": (None, "1"),
    "own-action": ("32", None),
    "private": ("35", "1"),
    "private-sent": ("35", None),
    "notice": ("36", None),
    "error": ("31", None),
    "info": ("33", None),
}


def _sgr(code, text):
    return f"\x1b[{code}m{text}\x1b[0m" if code else text


def format_line(kind, text, name=None, when=None, color=False, room=None, history=None):
    """
    One display line: timestamp, marker and text (cleaned of any control
    character), with ANSI colours if ``color``.  ``room``: the line is from
    that room, not the current one (``[#dev] ``); ``history``: a replayed
    line, shown with its own time stamp and dimmed.
    """
    text = grammar.clean_text(text or "")
    name = grammar.clean_text(name or "")
    form = _PLAIN.get(kind, _PLAIN["unknown"])
    if room:
        form = f"[#{grammar.clean_text(room)}] " + form
    stamp = time.strftime("[%H:%M]", time.localtime(when))
    if history:
        stamp = f"[{grammar.clean_text(history)}]"
    if kind == "reply" and not text:
        form = "-"
    if not color:
        return f"{stamp} " + form.format(name=name, text=text)
    if history:
        return _sgr("2", f"{stamp} " + form.format(name=name, text=text))
    line_style, name_style = _STYLE.get(kind, (None, None))
    if name_style:
        name = _sgr(name_style, name)
    if kind == "own":
        form = form.replace("<you>", _sgr("1", "<you>"))
    body = form.format(name=name, text=text)
    if line_style:
        # Re-apply the line's colour after each nested reset.
        body = _sgr(line_style, body.replace("\x1b[0m", f"\x1b[0m\x1b[{line_style}m"))
    return _sgr("2", stamp) + " " + body


# --- display widths ------------------------------------------------------


def char_width(c):
    if unicodedata.combining(c):
        return 0
    return 2 if unicodedata.east_asian_width(c) in "WF" else 1


def text_width(text):
    return sum(char_width(c) for c in text)


def fit_head(text, columns):
    """
    The longest start of ``text`` at most ``columns`` wide.
    """
    used = 0
    for i, c in enumerate(text):
        used += char_width(c)
        if used > columns:
            return text[:i]
    return text


def fit_tail(text, columns):
    """
    The longest end of ``text`` at most ``columns`` wide.
    """
    used = 0
    for i in range(len(text) - 1, -1, -1):
        used += char_width(text[i])
        if used > columns:
            return text[i + 1:]
    return text


# --- streams -------------------------------------------------------------


class FdStream:
    """
    A text stream straight onto a file descriptor, unbuffered so lines and
    cursor movements on stdout and stderr reach a shared terminal in order.
    Twisted's stdio makes the terminal non-blocking; a write waits for it
    rather than losing output.
    """

    def __init__(self, fd, encoding="utf-8", raw=None):
        self.fd = fd
        self.encoding = encoding
        # Python's own raw stream for ``fd``, if it must be used (a Windows
        # console takes UTF-8 only through it); else the descriptor itself.
        self._write = os.write if raw is None else (lambda fd, data: raw.write(data))

    def write(self, text):
        data = text.encode(self.encoding, "replace")
        while data:
            try:
                written = self._write(self.fd, data)
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)
                continue
            data = data[written or 0:]
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return os.isatty(self.fd)

    def fileno(self):
        return self.fd


class _BarStream:
    """
    The file a footer tqdm bar writes to: keeps the bar's latest text for
    the console to draw.
    """

    encoding = "utf-8"

    def __init__(self, console, key):
        self.console = console
        self.key = key

    def write(self, data):
        text = data.rsplit("\r", 1)[-1].split("\n", 1)[0].rstrip()
        if text:
            self.console._set_bar(self.key, text)

    def flush(self):
        pass


class Progress:
    """
    One transfer's progress bar: ``update(nbytes)``, then ``close()``.
    """

    def __init__(self, console, bar, key=None):
        self._console = console
        self._bar = bar
        self._key = key

    def update(self, n):
        self._bar.update(n)

    def close(self):
        if self._bar is None:
            return
        self._bar.close()
        self._bar = None
        if self._key is not None:
            self._console._remove_bar(self._key)


# --- the console -----------------------------------------------------------


class Console:
    """
    Where the client's output goes: lines to ``out``, problems and progress
    to ``err``.  ``live``: ``out`` is a terminal with a footer below the
    lines (the prompt, when ``prompt`` is set, and, if ``bars_live``, the
    progress bars, written to ``err`` on the same terminal).
    """

    def __init__(self, out, err, now=time.time, *, color=False, live=False,
                 bars_live=False, columns=lambda: 80):
        self.out = out
        self.err = err
        self.now = now
        self.color = color
        self.live = live
        self.bars_live = live and bars_live
        self.columns = columns
        self.prompt = None  # None: no prompt line
        self.input = ""
        self.broken = False  # stdout went away (a closed pipe)
        self._bars = {}  # key -> latest text, oldest first
        self._drawn = False
        self._footer_up = 0  # line breaks in the drawn footer

    # --- lines ------------------------------------------------------------

    def show(self, kind, text, name=None, room=None, history=None):
        """
        Show one line of a kind (see ``format_line``).
        """
        self._emit(self.out, format_line(kind, text, name, self.now(), self.color,
                                         room, history))

    def info(self, text):
        self.show("info", text)

    def error(self, text):
        self.show("error", text)

    def problem(self, text):
        """
        Report on stderr (connection trouble, the reason for the exit code).
        """
        color = self.color and _isatty(self.err)
        self._emit(self.err, format_line("error", text, None, self.now(), color))

    def _emit(self, stream, line):
        self._erase()
        if not self.live and stream is self.err and self._bars_direct() and _isatty(stream):
            line = ERASE_LINE + line  # over a tqdm bar on the same terminal
        self._write(stream, line + "\n")
        self._draw()

    def _bars_direct(self):
        return not self.bars_live

    def _write(self, stream, text):
        if stream is self.out and self.broken:
            return
        try:
            stream.write(text)
            stream.flush()
        except BrokenPipeError:
            if stream is self.out:
                self.broken = True
        except (OSError, ValueError):
            pass

    # --- the footer -------------------------------------------------------

    def _width(self):
        try:
            return max(self.columns() - 1, 10)
        except (OSError, ValueError):
            return 79

    def _erase(self):
        if not self._drawn:
            return
        up = f"\x1b[{self._footer_up}A" if self._footer_up else ""
        self._write(self.out, "\r" + up + "\x1b[J")
        self._drawn = False

    def _draw(self):
        if not self.live or self._drawn:
            return
        width = self._width()
        up = 0
        for text in self._bars.values():
            self._write(self.err, fit_head(text, width) + "\n")
            up += 1
        if self.prompt is not None:
            self._write(self.out, self._prompt_line(width))
        self._footer_up = up
        self._drawn = bool(up) or self.prompt is not None

    def _prompt_line(self, width):
        prompt = fit_head(self.prompt, width // 2)
        shown = fit_tail(self.input, width - text_width(prompt))
        if self.color:
            prompt = _sgr("1", prompt)
        return prompt + shown

    def redraw(self):
        self._erase()
        self._draw()

    def clear_screen(self):
        if self.live:
            self._write(self.out, "\x1b[H\x1b[2J")
            self._drawn = False
            self._draw()

    def set_prompt(self, prompt):
        """
        Show (or with ``None`` remove) the input prompt; live consoles only.
        """
        if not self.live or prompt == self.prompt:
            return
        self._erase()
        self.prompt = prompt
        self._draw()

    def set_input(self, text):
        """
        What the user is typing changed: rewrite the prompt line.
        """
        self.input = text
        if self.live and self.prompt is not None:
            if self._drawn:
                self._write(self.out, ERASE_LINE + self._prompt_line(self._width()))
            else:
                self._draw()

    def close(self):
        """
        Remove the footer, leaving the cursor at the start of a free line.
        """
        for key in list(self._bars):
            self._bars.pop(key)
        self._erase()
        self.prompt = None

    # --- progress ---------------------------------------------------------

    def progress(self, total, label):
        """
        A progress bar for ``total`` bytes.
        """
        options = dict(total=total, desc=label, unit="B", unit_scale=True,
                       unit_divisor=1024, miniters=1)
        if self.bars_live:
            key = object()
            self._bars[key] = label
            bar = tqdm(file=_BarStream(self, key), position=0, leave=False,
                       ncols=self._width(), mininterval=0.1, **options)
            return Progress(self, bar, key)
        tty = _isatty(self.err)
        bar = tqdm(file=self.err, leave=True, mininterval=0.1 if tty else 1.0,
                   dynamic_ncols=tty, **options)
        return Progress(self, bar)

    def _set_bar(self, key, text):
        if key in self._bars and self._bars[key] != text:
            self._bars[key] = text
            self.redraw()

    def _remove_bar(self, key):
        if self._bars.pop(key, None) is not None:
            self.redraw()


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
