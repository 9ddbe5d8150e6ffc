"""
Chat commands: say, act, rename, private messages, who is online.
"""

from chatd import grammar
from chatd.commands.registry import collector, when_answered
from chatd.grammar import ChatError

COMMANDS = []
command = collector(COMMANDS)


@command("", "TEXT                 say TEXT in your current room (//TEXT for a line starting with /)",
         speaks=True)
def say(conn, text):
    conn.hub.say(conn, text)


@command("nick", "/nick NAME           change your name")
def nick(conn, new):
    if conn.account is not None:
        raise ChatError(f"you are logged in as {conn.name}; "
                        f"/login or /register to be someone else")
    old = conn.name
    when_answered(conn, conn.hub.rename(conn, new),
                  lambda _: conn.log.info("{old} is now {new}", old=old, new=new))


@command("msg", "/msg NAME TEXT       private message to NAME only", speaks=True)
def msg(conn, arg):
    target, text = grammar.split_target(arg, "/msg NAME TEXT")
    when_answered(conn, conn.hub.private(conn, target, text),
                  lambda name: conn.send(grammar.private_to(name, text)))


@command("me", "/me ACTION           say what you are doing", speaks=True)
def me(conn, text):
    if not text:
        raise ChatError("usage: /me ACTION")
    conn.hub.act(conn, text)


@command("who", "/who [ROOM]          who is in your current room (or ROOM)")
def who(conn, arg):
    room, names = conn.hub.who(conn, arg.split()[0] if arg.split() else None)
    conn.send(grammar.who(names, room))
