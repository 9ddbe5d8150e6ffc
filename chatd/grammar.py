"""
The chatd wire grammar: what clients send, what the server answers.

Pure functions over ``bytes`` and ``str``; no reactor, no transports.  The
server and ``chatd-client`` both parse and format lines through this module,
so there is exactly one definition of the protocol (see docs/PROTOCOL.md).

Server lines start with a marker that user text can never produce, because
user text only ever appears *after* a marker and a validated name:

    <alice> hi                      chat from alice
    * alice waves                   /me action
    [private] <alice> psst          private message to you
    [private to bob] psst           your private message, delivered
    *** bob joined                  server notice (presence, files, greeting)
    [#dev] <alice> hi               a line from one of your other rooms
    = [2026-12-01 14:02] <alice> hi a line of a room's history
    - guest1, alice                 reply to a command (/who, /help, /files)
    ! no such user: zed             error
    FILE <size> <sha256> <name>     download header, followed by raw bytes
    PART <offset> <size> <sha256> <name>  the same from an offset on
"""

import math
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Optional

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


# --- client -> server ----------------------------------------------------


@dataclass(frozen=True)
class Command:
    """
    One parsed client line: ``name`` is the lower-case command word without
    the slash ("" for a plain chat line), ``arg`` the rest of the line.
    """

    name: str
    arg: str


def parse_client_line(raw: bytes) -> Optional[Command]:
    """
    Parse one line (without its LF) from a client.  Returns ``None`` for an
    empty line.  ``//text`` is chat that starts with a slash.
    """
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    text = decode(raw)
    if not text.strip():
        return None
    if text.startswith("//"):
        return Command("", text[1:])
    if text.startswith("/"):
        word, _, arg = text[1:].partition(" ")
        if not word and not arg.strip():
            return None  # a lone "/" says nothing, like an empty line
        return Command(word.lower(), arg.strip())
    return Command("", text)


def split_target(arg: str, usage: str) -> tuple:
    """
    Split ``NAME TEXT`` into its two parts; both must be present.
    """
    name, _, text = arg.strip().partition(" ")
    text = text.strip()
    if not name or not text:
        raise ChatError(f"usage: {usage}")
    return name, text


@dataclass(frozen=True)
class UploadRequest:
    name: str
    size: int
    sha256: Optional[str]


def parse_upload(arg: str) -> UploadRequest:
    """
    Parse the arguments of ``/upload NAME SIZE [SHA256]``.  NAME is all up to
    the last (or, with a checksum, the second-to-last) space, so it may hold
    spaces; it is not checked here (see ``check_filename``), because the
    declared bytes must be consumed even when the name is refused.
    """
    usage = ChatError("usage: /upload NAME SIZE [SHA256]")
    parts = arg.rsplit(" ", 2)
    sha = None
    if len(parts) == 3 and SHA256_HEX.fullmatch(parts[2].lower()):
        sha = parts[2].lower()
        name, size_text = parts[0], parts[1]
    else:
        parts = arg.rsplit(" ", 1)
        if len(parts) != 2:
            raise usage
        name, size_text = parts
    if not size_text.isdigit() or not size_text.isascii():
        raise ChatError(f"upload size must be a whole number of bytes, not {size_text!r}")
    return UploadRequest(name, int(size_text), sha)


def parse_upload_resume(arg: str) -> UploadRequest:
    """
    Parse the arguments of ``/upload-resume NAME SIZE SHA256`` (the same
    rules as ``/upload``, the sha256 required).
    """
    usage = ChatError("usage: /upload-resume NAME SIZE SHA256")
    try:
        request = parse_upload(arg)
    except ChatError as e:
        raise usage if e.message.startswith("usage:") else e
    if request.sha256 is None:
        raise usage
    return request


def parse_download_from(arg: str) -> tuple:
    """
    Parse ``/download-from OFFSET NAME``: ``(offset, name)``.  The offset
    comes first so a NAME with spaces stays whole.
    """
    offset_text, _, name = arg.partition(" ")
    if not offset_text or not name:
        raise ChatError("usage: /download-from OFFSET NAME")
    if not offset_text.isdigit() or not offset_text.isascii():
        raise ChatError(f"download offset must be a whole number of bytes, not {offset_text!r}")
    return int(offset_text), name


def check_filename(name: str) -> str:
    """
    Return a shareable file name or raise ``ChatError`` saying why not: no
    path separators, no ``.``/``..``/empty, no control characters, at most
    255 bytes of UTF-8.
    """
    name = name.strip()
    if not name or name in (".", ".."):
        raise ChatError("file name must not be empty, '.' or '..'")
    if "/" in name or "\\" in name:
        raise ChatError("file name must not contain '/' or '\\'")
    if _REPLACEMENT in name or clean_text(name) != name:
        raise ChatError("file name must not contain control or invalid characters")
    if len(name.encode(ENCODING)) > MAX_FILENAME_BYTES:
        raise ChatError(f"file name is longer than {MAX_FILENAME_BYTES} bytes")
    return name


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


# --- server -> client: formatting --------------------------------------


def chat(name: str, text: str) -> str:
    return f"<{name}> {text}"


def action(name: str, text: str) -> str:
    return f"* {name} {text}"


def private_from(name: str, text: str) -> str:
    return f"[private] <{name}> {text}"


def private_to(name: str, text: str) -> str:
    return f"[private to {name}] {text}"


def notice(text: str) -> str:
    return f"*** {text}"


def reply(text: str) -> str:
    return f"- {text}"


def error(text: str) -> str:
    return f"! {text}"


def file_header(size: int, sha256: str, name: str) -> str:
    return f"FILE {size} {sha256} {name}"


def part_header(offset: int, size: int, sha256: str, name: str) -> str:
    """
    The header of a download from ``offset`` on: SIZE and SHA256 are the
    whole file's; SIZE - OFFSET raw bytes follow.
    """
    return f"PART {offset} {size} {sha256} {name}"


def resume_notice(name: str, offset: int) -> str:
    return notice(f"resume {name} from {offset}")


def joined(name: str) -> str:
    return notice(f"{name} joined")


def left(name: str, reason: str = "") -> str:
    return notice(f"{name} left ({reason})" if reason else f"{name} left")


def renamed(old: str, new: str) -> str:
    return notice(f"{old} is now known as {new}")


def in_room(room: str, line: str) -> str:
    """
    A chat, action or notice line from a room that is not your current one.
    """
    return f"[#{room}] {line}"


def room_joined(name: str, room: str) -> str:
    return notice(f"{name} joined #{room}")


def room_left(name: str, room: str, reason: str = "") -> str:
    return notice(f"{name} left #{room} ({reason})" if reason else f"{name} left #{room}")


def topic_set(name: str, room: str, text: str) -> str:
    return notice(f"{name} set the topic of #{room}: {text}")


def topic(room: str, text: str) -> str:
    return reply(f"topic of #{room}: {text}" if text else f"no topic for #{room}")


def you_are_in(room: str, members: int) -> str:
    return notice(f"you are in #{room} ({members} online)")


def you_left(room: str) -> str:
    return notice(f"you left #{room}")


NO_ROOM = "you are in no room (/join ROOM)"


def history_line(when: float, line: str) -> str:
    """
    One kept line as replayed: ``= [YYYY-MM-DD HH:MM] `` (UTC) then the line
    as it was shown, cleaned again (a stored line is untrusted input too).
    """
    stamp = datetime.fromtimestamp(when, timezone.utc)
    return f"= [{stamp:%Y-%m-%d %H:%M}] {clean_text(line)}"


def end_of_history(room: str) -> str:
    return reply(f"end of history of #{room}")


MAX_TOPIC_LENGTH = 300
LISTED_TOPIC_LENGTH = 60  # a topic in /rooms is cut to this, with "..."


def check_topic(text: str) -> str:
    if len(text) > MAX_TOPIC_LENGTH:
        raise ChatError(f"topic is longer than {MAX_TOPIC_LENGTH} characters")
    return text


def _short(text: str) -> str:
    if len(text) <= LISTED_TOPIC_LENGTH:
        return text
    return text[:LISTED_TOPIC_LENGTH - 3] + "..."


def rooms_list(rooms) -> str:
    """
    ``rooms``: ``(name, members, topic)`` triples, listed most members first,
    long topics cut short.
    """
    rooms = sorted(rooms, key=lambda r: -r[1])
    listed = ", ".join(f"#{name} ({members}: {_short(text)})" if text
                       else f"#{name} ({members})" for name, members, text in rooms)
    return reply(f"rooms ({len(rooms)}): {listed}")


def who(names, room: str = LOBBY) -> str:
    """
    The members of a room: the lobby as today (``- online (N): ...``),
    another room named (``- online in #dev (N): ...``).
    """
    where = "" if room_key(room) == LOBBY else f" in #{room}"
    return reply(f"online{where} ({len(names)}): {', '.join(names)}")


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


# --- pair mode (``--mode pair``, see chatd/pair.py) ------------------------
# The two-client assignment's lines, plain as its clients expect; user text
# still only ever follows a label, and server remarks are ``***``/``!`` lines.


def is_bye(text: str) -> bool:
    """
    Whether a pair-mode message ends the session: ``Bye``, any case,
    surrounding whitespace ignored.
    """
    return text.strip().lower() == "bye"


# The last bytes of a session, alone in their write and without a line end:
# the assignment's extra-credit client stops on a recv() that is exactly this.
PAIR_FAREWELL = b"Bye"


def pair_connected(label: str) -> str:
    return f"Client {label} has connected."


def pair_said(label: str, text: str) -> str:
    return f"{label}: {text}"


def pair_order(first: str, first_text: str, second: str, second_text: str) -> str:
    return f"{first}: {first_text} received before {second}: {second_text}"


# --- server -> client: parsing (for chatd-client) -------------------------


@dataclass(frozen=True)
class ServerLine:
    """
    One server line, classified.  ``kind`` is one of ``chat``, ``action``,
    ``private``, ``private-sent``, ``notice``, ``reply``, ``error``, ``file``
    or ``unknown``; ``name`` the user it is from (or to), ``text`` the rest.
    For ``file`` and ``part``: ``size``, ``sha256`` and ``text`` (the file
    name), and for ``part`` the ``offset`` its bytes start at (0 for ``file``).
    ``room``: the room of a line from one of your other rooms (``[#dev] ...``);
    ``history``: the time stamp of a replayed line (``= [...] ...``).
    """

    kind: str
    text: str
    name: Optional[str] = None
    size: Optional[int] = None
    sha256: Optional[str] = None
    offset: int = 0
    room: Optional[str] = None
    history: Optional[str] = None


_FILE = re.compile(r"FILE (\d+) ([0-9a-f]{64}) (.+)\Z")
_PART = re.compile(r"PART (\d+) (\d+) ([0-9a-f]{64}) (.+)\Z")
_IN_ROOM = re.compile(r"\[#([A-Za-z0-9_\-.]{1,%d})\] " % MAX_ROOM_LENGTH)
_HISTORY = re.compile(r"= \[(\d{4}-\d\d-\d\d \d\d:\d\d)\] ")


def parse_server_line(raw: bytes) -> ServerLine:
    """
    Classify one line (without CRLF) sent by a chatd server.
    """
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    line = decode(raw)
    found = {}
    for pattern, field in ((_HISTORY, "history"), (_IN_ROOM, "room")):
        match = pattern.match(line)
        if match:  # each prefix at most once, in this order
            found[field] = match.group(1)
            line = line[match.end():]
    parsed = _classify(line)
    return replace(parsed, **found) if found else parsed


def _classify(line: str) -> ServerLine:
    if line.startswith("<"):
        name, sep, text = line[1:].partition("> ")
        if sep:
            return ServerLine("chat", text, name)
    elif line.startswith("*** "):
        return ServerLine("notice", line[4:])
    elif line.startswith("* "):
        name, _, text = line[2:].partition(" ")
        return ServerLine("action", text, name)
    elif line.startswith("[private] <"):
        name, sep, text = line[11:].partition("> ")
        if sep:
            return ServerLine("private", text, name)
    elif line.startswith("[private to "):
        name, sep, text = line[12:].partition("] ")
        if sep:
            return ServerLine("private-sent", text, name)
    elif line.startswith("- ") or line == "-":
        return ServerLine("reply", line[2:])
    elif line.startswith("! "):
        return ServerLine("error", line[2:])
    else:
        match = _FILE.match(line)
        if match:
            return ServerLine("file", match.group(3), size=int(match.group(1)),
                              sha256=match.group(2))
        match = _PART.match(line)
        if match and int(match.group(1)) <= int(match.group(2)):
            return ServerLine("part", match.group(4), size=int(match.group(2)),
                              sha256=match.group(3), offset=int(match.group(1)))
    return ServerLine("unknown", line)


_RESUME = re.compile(r"resume (.+) from (\d+)\Z")


def resumed_from(text: str) -> Optional[tuple]:
    """
    ``(name, offset)`` from the text of a ``*** resume NAME from K`` notice.
    """
    match = _RESUME.match(text)
    return (match.group(1), int(match.group(2))) if match else None


_CURRENT = re.compile(r"you are in #([A-Za-z0-9_\-.]+) \(\d+ online\)\Z")


def current_room(text: str) -> Optional[str]:
    """
    The room a notice's text makes current (``you are in #dev (3 online)``),
    ``""`` for ``you are in no room ...``, else ``None``.
    """
    match = _CURRENT.match(text)
    if match:
        return match.group(1)
    return "" if text == NO_ROOM else None


_GREETED = re.compile(r"Welcome to .*\byou are (\S+?);")
_RENAMED = re.compile(r"(\S+) is now known as (\S+)\Z")


def greeted_name(text: str) -> Optional[str]:
    """
    The name a greeting notice's text gives you (``Welcome to ...: N online,
    you are guest3; ...``), else ``None``.
    """
    match = _GREETED.match(text)
    return match.group(1) if match else None


def renamed_names(text: str) -> Optional[tuple]:
    """
    ``(old, new)`` from a rename notice's text, else ``None``.
    """
    match = _RENAMED.match(text)
    return match.groups() if match else None


# --- client -> server: formatting (for chatd-client) -----------------------


def client_command(word: str, *args) -> str:
    """
    A command line as a client sends it: ``/word arg ...``, empty arguments
    left out.
    """
    return " ".join(["/" + word] + [str(a) for a in args if a not in (None, "")])


def upload_command(name: str, size: int, sha256: str) -> str:
    return client_command("upload", name, size, sha256)


def upload_resume_command(name: str, size: int, sha256: str) -> str:
    return client_command("upload-resume", name, size, sha256)


def download_from_command(offset: int, name: str) -> str:
    return client_command("download-from", offset, name)
