"""
The shape of a chat command, and the table that finds one by name.

Each area module (chat, files, accounts, ...) lists its commands with
``command``; ``chatd.commands`` puts the areas together in ``/help`` order.
A handler is a plain function ``run(conn, arg)``: the connection holds the
state, so a command costs no per-connection object.
"""

from dataclasses import dataclass
from typing import Callable, Optional, Union

from twisted.internet.defer import Deferred

from chatd.grammar import ChatError


@dataclass(frozen=True)
class Command:
    name: str  # what follows the "/" ("" for a chat line)
    run: Callable  # run(conn, arg)
    # The /help line, or a function (conn) -> line or None (not offered).
    help: Union[str, Callable, None] = None
    section: str = ""  # "" for the main /help list, or the /help TOPIC
    before_login: bool = False  # allowed before /login under --require-login
    speaks: bool = False  # says something to others: refused while muted

    def help_line(self, conn):
        return self.help(conn) if callable(self.help) else self.help


def collector(commands):
    """
    A decorator that appends ``Command(name, function, ...)`` to
    ``commands``, the area's list.
    """
    def command(name, help=None, **options):
        def register(run):
            commands.append(Command(name, run, help, **options))
            return run
        return register
    return command


class CommandTable:
    """
    The commands of several areas, by name, in the order given.
    """

    def __init__(self, *areas):
        self.ordered = [command for area in areas for command in area]
        self._by_name = {command.name: command for command in self.ordered}
        assert len(self._by_name) == len(self.ordered), "a command is listed twice"

    def find(self, name) -> Optional[Command]:
        return self._by_name.get(name)

    def help_lines(self, conn, section=""):
        return [line for command in self.ordered if command.section == section
                for line in [command.help_line(conn)] if line]


def when_answered(conn, result, done, hold="hub", what="a command"):
    """
    ``done(result)`` now, or, when the answer comes later (a ``Deferred``:
    a cluster hub asking Redis, a password check on a thread), once it
    comes; until then the connection reads nothing more (paused for
    ``hold``), so its lines keep their order.  A ``ChatError`` becomes the
    usual ``!`` line; anything else is logged as ``what`` that failed.
    """
    if not isinstance(result, Deferred):
        done(result)
        return
    conn.pause_input(hold)

    def failed(failure):
        if not conn.connected_now:
            return
        if failure.check(ChatError):
            conn.error(failure.value.message)
        else:
            conn.log.failure("{what} from {name} failed", failure, what=what, name=conn.name)
            conn.error("internal error; please try again")

    # An error raised by ``done`` itself (a refusal after the answer) is
    # answered too, so the errback comes after the callback, not beside it.
    result.addCallback(lambda value: conn.connected_now and done(value))
    result.addErrback(failed)
    result.addBoth(lambda _: conn.resume_after(hold))
