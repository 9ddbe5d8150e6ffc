"""
Room commands: join, part, list rooms, topics, history on demand.
"""

from chatd import grammar
from chatd.commands.operators import check_voice, unless_muted
from chatd.commands.registry import collector
from chatd.grammar import ChatError

COMMANDS = []
command = collector(COMMANDS)

MAX_HISTORY = 500  # lines one /history shows at most
DEFAULT_HISTORY = 50


def _room_first(conn, arg):
    """
    Split ``[ROOM] REST``: the first word is a room if it starts with ``#``
    or names a room you are in (the ``#`` may be omitted).
    """
    word, _, rest = arg.partition(" ")
    if word and (grammar.looks_like_room(word) or conn.hub.is_member(conn, word)):
        return word, rest.strip()
    return None, arg


@command("join", "/join ROOM           enter ROOM (#name, made if new) and talk there")
def join(conn, arg):
    if not arg or " " in arg:
        raise ChatError("usage: /join ROOM")
    room = conn.hub.join(conn, arg)
    conn.log.info("{name} is in #{room}", name=conn.name, room=room)


@command("part", "/part [ROOM] [REASON]  leave ROOM (default: the current one)")
def part(conn, arg):
    room, reason = _room_first(conn, arg)
    conn.hub.part(conn, room, unless_muted(conn, reason))


@command("rooms", "/rooms               the rooms, most members first")
def rooms(conn, arg):
    conn.send(grammar.rooms_list(conn.hub.list_rooms()))


@command("topic", "/topic [ROOM] [TEXT]  show or set the topic of a room")
def topic(conn, arg):
    room, text = _room_first(conn, arg)
    if text:
        check_voice(conn)  # setting a topic speaks to the room; reading it does not
    conn.hub.topic(conn, room, text or None)


@command("history", f"/history [ROOM] [N]  the last N lines of a room (up to {MAX_HISTORY})")
def history(conn, arg):
    words = arg.split()
    count = DEFAULT_HISTORY
    if words and words[-1].isdigit() and words[-1].isascii() and \
            not (len(words) == 1 and grammar.looks_like_room(words[0])):
        count = int(words.pop())
        if not 1 <= count <= MAX_HISTORY:
            raise ChatError(f"/history shows 1 to {MAX_HISTORY} lines, not {count}")
    if len(words) > 1:
        raise ChatError("usage: /history [ROOM] [N]")
    room, d = conn.hub.history(conn, words[0] if words else None, count)
    conn.pause_input("history")  # lines that follow wait for the answer
    d.addCallback(lambda lines: conn.connected_now and _show(conn, room, lines))
    d.addErrback(lambda failure: _failed(conn, failure))
    d.addBoth(lambda _: conn.resume_after("history"))


def _show(conn, room, lines):
    for when, line in lines:
        conn.send(grammar.history_line(when, line))
    conn.send(grammar.end_of_history(room))


def _failed(conn, failure):
    conn.log.failure("reading the history of a room failed", failure)
    if conn.connected_now:
        conn.error("history is unavailable just now")
