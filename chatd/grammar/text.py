"""
Encoding, cleaning, names, room names, sizes and durations: the pieces
every line of the grammar is made of.
"""


import math
import re

ENCODING = "utf-8"
CRLF = b"\r\n"
MAX_NAME_LENGTH = 32
MAX_FILENAME_BYTES = 255
SHA256_HEX = re.compile(r"[0-9a-f]{64}")

RESERVED_NAMES = frozenset(
    {
        "server", "admin", "administrator", "chatd", "root", "system",
        "operator", "op", "sysop", "moderator", "mod", "host", "everyone",
        "all", "nobody", "anonymous", "private", "file", "files",
    }
)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-.\[\]{}|^]*\Z")
GUEST_PREFIX = "guest"


class ChatError(Exception):
    """
    A known, user-caused error; its message becomes one ``! ...`` line.
    """

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else "error"


# --- text cleaning -------------------------------------------------------

_REPLACEMENT = "\ufffd"
_UNSAFE = {c: _REPLACEMENT for c in range(0x00, 0x20)}
_UNSAFE.update({c: _REPLACEMENT for c in range(0x7F, 0xA0)})  # DEL and C1
_UNSAFE[0x09] = " "  # a tab is harmless whitespace
# Bidi overrides/isolates and line/paragraph separators reorder or break lines.
for _c in (0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F),
           *range(0x2066, 0x206A)):
    _UNSAFE[_c] = _REPLACEMENT
del _c


def clean_text(text: str) -> str:
    """
    Replace control characters (C0, DEL, C1: so no ANSI/OSC escape can
    survive), bidi controls and line separators with U+FFFD.
    """
    return text.translate(_UNSAFE)


def decode(raw: bytes) -> str:
    """
    Decode bytes from the wire as UTF-8, replacing what is invalid, and clean.
    """
    return clean_text(raw.decode(ENCODING, "replace"))


def encode_line(line: str) -> bytes:
    """
    Encode one server line for the wire, with its CRLF.
    """
    return line.encode(ENCODING, "replace") + CRLF



# --- names ---------------------------------------------------------------


def name_key(name: str) -> str:
    """
    The key under which a name is unique: names differ only if their keys do.
    """
    return name.lower()


def check_name(name: str) -> str:
    """
    Return ``name`` if it is a valid nickname, else raise ``ChatError``.
    1-32 ASCII letters, digits and ``_ - . [ ] { } | ^``, starting with a
    letter, digit or underscore; reserved names are refused.
    """
    if not name:
        raise ChatError("usage: /nick NAME")
    if len(name) > MAX_NAME_LENGTH:
        raise ChatError(f"name is longer than {MAX_NAME_LENGTH} characters")
    if not _NAME.match(name):
        raise ChatError(
            "name may only use letters, digits and _ - . [ ] { } | ^ "
            "(and must not start with punctuation)"
        )
    if name_key(name) in RESERVED_NAMES:
        raise ChatError(f"name is reserved: {name}")
    return name


# --- rooms ----------------------------------------------------------------

MAX_ROOM_LENGTH = 32
_ROOM = re.compile(r"[A-Za-z0-9_\-.]{1,%d}\Z" % MAX_ROOM_LENGTH)
LOBBY = "lobby"


def check_room(text: str) -> str:
    """
    A room name as typed (``#dev`` or ``dev``) without its ``#``, or
    ``ChatError``: 1-32 of ``A-Z a-z 0-9 _ - .``.
    """
    name = text[1:] if text.startswith("#") else text
    if not _ROOM.match(name):
        raise ChatError(f"bad room name: {text} (# then 1-{MAX_ROOM_LENGTH} of "
                        f"letters, digits and _ - .)")
    return name


def room_key(name: str) -> str:
    """
    The key under which a room name (without ``#``) is unique.
    """
    return name.lower()


def looks_like_room(word: str) -> bool:
    return word.startswith("#")


def is_guest_name(name: str) -> bool:
    key = name_key(name)
    return key.startswith(GUEST_PREFIX) and key[len(GUEST_PREFIX):].isdigit()



def format_size(size: int) -> str:
    """
    A byte count for people: ``512 bytes``, ``1.5 KiB``, ``50 MiB``.
    """
    if size < 1024:
        return f"{size} byte" + ("" if size == 1 else "s")
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f}".rstrip("0").rstrip(".") + f" {unit}"
    raise AssertionError("unreachable")


def parse_size(text: str) -> int:
    """
    Parse a byte count with an optional K/M/G/T suffix (powers of 1024):
    ``50M`` is 52428800.  Raises ``ValueError``.
    """
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    multiplier = 1
    for power, unit in enumerate("KMGT", start=1):
        if text.endswith(unit):
            multiplier, text = 1024**power, text[:-1]
            break
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"not a size: {text!r}")
    return int(text) * multiplier


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = 100 * 365 * 86400  # longer is "forever"


def parse_duration(text: str) -> float:
    """
    A duration like ``90s``, ``10m``, ``2h``, ``7d`` or ``1w`` (a bare
    number is seconds), in seconds.  Raises ``ValueError``.
    """
    text = text.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    if not number.isdigit() or not number.isascii() or int(number) == 0:
        raise ValueError(f"not a duration: {text!r}")
    return min(int(number) * (unit or 1), MAX_DURATION)


def format_duration(seconds: float) -> str:
    """
    The inverse of ``parse_duration``: in the largest unit it reaches,
    rounded up (``600`` is ``10m``, ``599`` too; ``1`` is ``1s``).
    """
    seconds = max(1, math.ceil(seconds))
    for unit, size in sorted(_DURATION_UNITS.items(), key=lambda u: -u[1]):
        if seconds >= size:
            return f"{-(-seconds // size)}{unit}"
    raise AssertionError("unreachable")
