"""
What nodes publish to each other: one JSON object per message, and the
check every message read back from Redis passes before it is used.

A node publishes only what the grammar already cleaned (names validated,
text through ``grammar.clean_text``), so a message that is not exactly that
shape did not come from a chatd node: ``decode`` refuses it with
``Malformed`` and the node logs and skips it.  No reactor here.
"""

import json
import math
import re
from typing import NamedTuple

from chatd import grammar
from chatd.grammar import ChatError
from chatd.moderation import parse_target

VERSION = 2  # 2: lines carry their room (scripts.py writes it too)
MAX_MESSAGE = 64 * 1024  # bytes; longer than any line a node publishes
NODE_ID = re.compile(r"[0-9a-f]{8,32}\Z")

# kind -> its fields (besides v, node and kind), each a name or a text.
KINDS = {
    "say": ("room", "name", "text"),  # a chat line in a room
    "act": ("room", "name", "text"),  # a /me action
    "enter": ("room", "name"),  # /join of a room
    "part": ("room", "name", "reason"),
    "topic": ("room", "name", "text"),
    "join": ("name",),  # connected: online, in the lobby
    "left": ("name", "reason"),  # disconnected
    "rename": ("old", "new"),
    "private": ("to", "name", "text"),  # to: the recipient's name key
    "sync": (),  # the sender (re-)registered its users: reload the directory
    "taken": ("to",),  # your user with this name key lost it to another node's
    "account": ("name",),  # an account was registered (cluster/accounts.py)
    # An operator's action (cluster/moderation.py): to your user with this
    # name key, by the operator's name; a wall to every node.
    "kick": ("to", "by", "reason"),
    "mute": ("to", "by", "seconds"),  # a whole number, or "forever"
    "unmute": ("to", "by"),
    "wall": ("by", "text"),
    # A ban made or lifted (cluster/bans.py), published with the change to
    # the bans hash: its target in normal form (a name key, an address or
    # a network), until when (clock seconds as Python's repr of the float,
    # or "forever"), by the operator's name.
    "ban": ("target", "until", "reason", "by"),
    "unban": ("target", "by"),
    # Published by the file index's commit script (cluster/files.py):
    "shared": ("room", "name", "file", "size"),  # an upload, told in its room
    "removed": ("file", "keep"),  # a file evicted by it, told to everyone
}
NAME_FIELDS = frozenset({"name", "old", "new", "to", "by"})
NUMBER_FIELDS = frozenset({"size", "keep"})  # decimal strings


class Malformed(ValueError):
    """
    A bus message no chatd node would publish; its text says why.
    """


class BusMessage(NamedTuple):
    node: str  # the node the message is about (its sender, or a dead node)
    kind: str
    fields: dict


def encode(node, kind, **fields):
    """
    The message ``kind`` from ``node``: the fields must be clean already.
    """
    assert set(fields) == set(KINDS[kind]), (kind, fields)
    return json.dumps({"v": VERSION, "node": node, "kind": kind, **fields},
                      ensure_ascii=False, separators=(",", ":"))


def decode(raw):
    """
    The ``BusMessage`` in ``raw`` (``str`` or ``bytes`` from Redis), or
    ``Malformed``.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("not UTF-8")
    if not isinstance(raw, str):
        raise Malformed(f"not text but {type(raw).__name__}")
    if len(raw) > MAX_MESSAGE:
        raise Malformed(f"longer than {MAX_MESSAGE} characters")
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):  # nested deeper than Python recurses
        raise Malformed("not JSON")
    if not isinstance(message, dict):
        raise Malformed("not a JSON object")
    if type(message.get("v")) is not int or message["v"] != VERSION:  # true == 1
        raise Malformed(f"version {message.get('v')!r}, not {VERSION}")
    node, kind = message.get("node"), message.get("kind")
    if not isinstance(node, str) or not NODE_ID.match(node):
        raise Malformed("no valid node id")
    if kind not in KINDS:
        raise Malformed(f"unknown kind {kind!r}"[:80])
    expected = KINDS[kind]
    fields = {k: v for k, v in message.items() if k not in ("v", "node", "kind")}
    if set(fields) != set(expected):
        raise Malformed(f"{kind} needs exactly the fields {', '.join(expected) or 'none'}")
    check_fields(kind, **fields)
    return BusMessage(node, kind, fields)


def check_fields(kind, **fields):
    """
    ``Malformed`` unless each field is what a node would publish in a
    ``kind`` message (for what is read back from Redis besides the bus).
    """
    for field, value in fields.items():
        _check_field(kind, field, value)


def valid(check, value):
    """
    Whether the grammar's ``check`` takes ``value`` exactly as it is.
    """
    try:
        return check(value) == value
    except ChatError:
        return False


def _check_field(kind, field, value):
    if not isinstance(value, str):
        raise Malformed(f"{kind}.{field} is not a string")
    if field == "room":
        if not valid(grammar.check_room, value):
            raise Malformed(f"{kind}.room is not a room name")
        return
    if field in NUMBER_FIELDS:
        if not (value.isascii() and value.isdigit() and len(value) <= 20):
            raise Malformed(f"{kind}.{field} is not a number")
        return
    if field == "seconds":
        if value != "forever" and not (value.isascii() and value.isdigit()
                                       and value[0] != "0" and len(value) <= 10
                                       and int(value) <= grammar.MAX_DURATION):
            raise Malformed(f"{kind}.seconds is not a duration")
        return
    if field == "file":
        if not valid(grammar.check_filename, value):
            raise Malformed(f"{kind}.file is not a file name")
        return
    if field == "target":
        if not _is_target(value):
            raise Malformed(f"{kind}.target is not a ban target in normal form")
        return
    if field == "until":
        if value != "forever" and not _is_time(value):
            raise Malformed(f"{kind}.until is not a time")
        return
    if kind == "topic" and field == "text" and len(value) > grammar.MAX_TOPIC_LENGTH:
        raise Malformed("topic.text is longer than a topic")
    if field in NAME_FIELDS:
        try:
            grammar.check_name(value)
        except ChatError as e:
            raise Malformed(f"{kind}.{field} is not a valid name: {e.message}")
        if field == "to" and value != grammar.name_key(value):
            raise Malformed(f"{kind}.to is not a name key")
        return
    if grammar.clean_text(value) != value:
        raise Malformed(f"{kind}.{field} has control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Malformed(f"{kind}.{field} has lone surrogates")


def _is_target(value):
    try:
        return parse_target(value)[1] == value
    except ChatError:
        return False


def _is_time(value):
    """
    Whether ``value`` is a positive finite float exactly as ``repr`` writes it.
    """
    if not (value.isascii() and 0 < len(value) <= 32):
        return False
    try:
        seconds = float(value)
    except ValueError:
        return False
    return math.isfinite(seconds) and seconds > 0 and repr(seconds) == value
