"""
Every chat command, by area: ``chat`` (say, /nick, /msg, /me, /who),
``rooms`` (/join, /part, /rooms, /topic, /history), ``files`` (/files,
/upload, /download), ``accounts`` (/register, /login, /password),
``operators`` (/kick, /ban, /mute, /wall ...), and here the two that
concern the session itself (/help,
/quit).  ``COMMANDS`` is the table ``ChatProtocol`` dispatches through;
its order is the order of ``/help``.
"""

from chatd import grammar
from chatd.commands import accounts, chat, files, operators, rooms
from chatd.commands.registry import CommandTable, collector

SESSION = []
command = collector(SESSION)


def _help_help(conn):
    if conn.accounts is not None:
        return ("/help [accounts|operators]  this list, or the account (/login ...) "
                "or operator (/kick ...) commands")
    return "/help                this list"


TOPICS = {"accounts": "account commands:", "operators": "operator commands:"}


@command("help", _help_help, before_login=True)
def help(conn, topic):
    topic = topic.lower()
    if conn.accounts is not None and topic in TOPICS:
        lines = [TOPICS[topic]] + COMMANDS.help_lines(conn, topic)
    else:
        lines = ["commands:"] + COMMANDS.help_lines(conn)
    for line in lines:
        conn.send(grammar.reply(line))


@command("quit", "/quit [REASON]       leave", before_login=True)
def quit(conn, reason):
    conn.send(grammar.notice("bye"))
    conn.leave(operators.unless_muted(conn, reason))
    conn.log.info("{name} quit", name=conn.name)
    conn.close_when_sent()


COMMANDS = CommandTable(chat.COMMANDS, rooms.COMMANDS, files.COMMANDS, SESSION,
                        accounts.COMMANDS, operators.COMMANDS)
