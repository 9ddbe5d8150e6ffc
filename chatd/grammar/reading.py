"""
What the server sends, read back: classifying each line for ``chatd-client``.
"""

import re
from dataclasses import dataclass, replace
from typing import Optional

from chatd.grammar.lines import NO_ROOM

# --- server -> client: parsing (for chatd-client) -------------------------
from chatd.grammar.text import MAX_ROOM_LENGTH, decode


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
