"""
What the server sends: every line formatted, in chat and pair mode.
"""

from datetime import datetime, timezone
from chatd.grammar.text import LOBBY, ChatError, clean_text, format_size, room_key


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


def file_shared(name: str, filename: str, size: int) -> str:
    """
    The notice text of an upload, for the uploader's room.
    """
    return f"{name} shared {filename} ({format_size(size)})"


def file_removed(filename: str, keep: int) -> str:
    """
    The notice text of a file evicted by a newer one.
    """
    return f"{filename} was removed (only the {keep} newest files are kept)"


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
