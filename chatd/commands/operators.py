"""
Operator commands: kick, ban, unban, bans, mute, unmute, wall.

An operator is an account with the operator flag, set from the host's
command line (``chatd-admin``), never from the chat.  Each command first
asks the account store, on the accounts threads, whether the caller is one
(so a revocation takes effect at once); input waits meanwhile, like a
login.  Every action is logged with who did it; never the text of a wall.

What a kick, mute or unmute does to a user is the hub's (``kick``,
``mute``, ``unmute``, ``wall``; ``chatd.moderation`` on one node): a
cluster hub sends it to the user's node.  Bans are the factory's (with
``--redis`` the cluster's, ``chatd.cluster.bans``: a ban made here closes
the connections it covers on every node, but the reply counts this
node's).
"""

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from chatd import grammar
from chatd.commands.accounts import _await
from chatd.commands.registry import collector, when_answered
from chatd.grammar import ChatError
from chatd.moderation import NOT_MUTED, UNMUTED, covers, describe, parse_target
from chatd.moderation import for_how_long as _for

COMMANDS = []
command = collector(COMMANDS)
log = Logger()

OPERATORS_ONLY = "operators only"


def operator_only(run):
    """
    Run the command ``run(conn, arg)`` only for a logged-in operator.
    """
    def check(conn, arg):
        if conn.account is None or conn.accounts is None:
            raise ChatError(OPERATORS_ONLY)
        _await(conn, conn.accounts.store_call(conn.accounts.store.is_operator, conn.account),
               _checked, run, arg)
    check.__doc__ = run.__doc__
    return check


def _checked(conn, is_operator, run, arg):
    if not is_operator:
        raise ChatError(OPERATORS_ONLY)
    run(conn, arg)


def _split(arg, usage):
    words = arg.split(None, 1)
    if not words:
        raise ChatError(f"usage: {usage}")
    return words[0], (words[1] if len(words) > 1 else "")


def _duration(rest):
    """
    An optional leading DURATION in ``rest``: ``(seconds or None, the rest)``.
    """
    first, _, after = rest.partition(" ")
    try:
        return grammar.parse_duration(first), after.strip()
    except ValueError:
        if first[:1].isdigit():  # meant as a duration: never read as "forever"
            raise ChatError(f"bad duration: {first} (like 90s, 10m, 2h, 7d, 1w)")
        return None, rest


def _until(conn, seconds):
    return None if seconds is None else conn.factory.clock.seconds() + seconds


def _online(conn, name):
    target = conn.hub.find(name)
    if target is conn:
        raise ChatError("not on yourself")
    return target


@command("kick", "/kick NAME [REASON]      close NAME's connection, telling everyone why",
         section="operators")
@operator_only
def kick(conn, arg):
    name, reason = _split(arg, "/kick NAME [REASON]")
    target = _online(conn, name)
    kicked = conn.hub.kick(target, conn.name, reason)
    log.info("operator {operator} kicked {target}", operator=conn.account,
             target=kicked, reason=reason, action="kick")
    conn.send(grammar.reply(f"kicked {kicked}"))


@command("ban", "/ban NAME|ADDRESS[/PREFIX] [DURATION] [REASON]  refuse at connect "
         "and login (DURATION like 10m, 2h, 7d; default forever)", section="operators")
@operator_only
def ban(conn, arg):
    target, rest = _split(arg, "/ban NAME|ADDRESS[/PREFIX] [DURATION] [REASON]")
    seconds, reason = _duration(rest)
    if _covers(conn, target):
        raise ChatError(f"{target} covers you; not banned")
    name = conn.name
    added = conn.factory.bans.add(target, _until(conn, seconds), reason, conn.account, name)
    if isinstance(added, Deferred):  # the cluster's: once Redis has it
        added.addCallback(_banned, conn, name, target, seconds, reason)
    else:
        added = _banned(added, conn, name, target, seconds, reason)
    when_answered(conn, added, conn.send, hold="bans", what="/ban")


def _banned(entry, conn, name, target, seconds, reason):
    """
    ``entry`` is stored: log it, close the connections here it covers (in
    a cluster every other node closes its own, even if ``conn`` is gone by
    now); the reply.
    """
    log.info("operator {operator} banned {target} ({kind}) {length}",
             operator=conn.account, target=entry.target, kind=entry.kind,
             length=_for(seconds), reason=reason, action="ban")
    gone = conn.factory.close_banned(entry, name, spare=conn)
    note = ""
    if entry.kind == "account" and conn.accounts is not None and \
            not conn.accounts.registered(entry.target):
        note = f"; no account is called {target}: only an address ban keeps a guest out"
    return grammar.reply(f"banned {entry.target} {_for(seconds)}"
                         + (f"; {len(gone)} disconnected" if gone else "") + note)


def _covers(conn, target):
    """
    Whether a ban of ``target`` would cover the operator's own connection.
    """
    kind, key = parse_target(target)
    return key == conn.account if kind == "account" else covers(target, _peer_host(conn))


def _peer_host(client):
    try:
        return client.transport.getPeer().host
    except Exception:
        return ""


@command("unban", "/unban NAME|ADDRESS[/PREFIX]  lift a ban", section="operators")
@operator_only
def unban(conn, arg):
    target, _ = _split(arg, "/unban NAME|ADDRESS[/PREFIX]")
    when_answered(conn, conn.factory.bans.remove(target, conn.name),
                  lambda lifted: _unbanned(conn, target, lifted), hold="bans", what="/unban")


def _unbanned(conn, target, lifted):
    if lifted is None:
        raise ChatError(f"no ban on {target}")
    log.info("operator {operator} unbanned {target}", operator=conn.account,
             target=lifted.target, action="unban")
    conn.send(grammar.reply(f"unbanned {lifted.target}"))


@command("bans", "/bans                    the bans in force", section="operators")
@operator_only
def bans(conn, arg):
    entries = list(conn.factory.bans)
    log.info("operator {operator} listed the bans", operator=conn.account, action="bans")
    conn.send(grammar.reply(f"bans ({len(entries)})" + (":" if entries else "")))
    now = conn.factory.clock.seconds()
    for entry in entries:
        length = "forever" if entry.until is None else \
            f"{grammar.format_duration(entry.until - now)} left"
        conn.send(grammar.reply(
            f"{entry.target} ({entry.kind}) by {entry.by}, {length}"
            + (f": {entry.reason}" if entry.reason else "")))


@command("mute", "/mute NAME [DURATION]    refuse NAME's lines (they still read)",
         section="operators")
@operator_only
def mute(conn, arg):
    name, rest = _split(arg, "/mute NAME [DURATION]")
    seconds, extra = _duration(rest)
    if extra:
        raise ChatError("usage: /mute NAME [DURATION] (DURATION like 10m, 2h, 7d)")
    target = _online(conn, name)
    conn.hub.mute(target, conn.name, seconds)
    log.info("operator {operator} muted {target} {length}", operator=conn.account,
             target=target.name, length=_for(seconds), action="mute")
    conn.send(grammar.reply(f"muted {target.name} {_for(seconds)}"))


@command("unmute", "/unmute NAME             let NAME speak again", section="operators")
@operator_only
def unmute(conn, arg):
    name, _ = _split(arg, "/unmute NAME")
    target = _online(conn, name)
    done = conn.hub.unmute(target, conn.name)
    if done == NOT_MUTED:
        raise ChatError(f"{target.name} is not muted")
    log.info("operator {operator} unmuted {target}", operator=conn.account,
             target=target.name, action="unmute", asked=done != UNMUTED)
    # ASKED: the user is on another node, which unmutes them if they are muted
    conn.send(grammar.reply(f"unmuted {target.name}" if done == UNMUTED else
                            f"asked {target.name}'s server to unmute {target.name}"))


@command("wall", "/wall TEXT               a notice to every user", section="operators")
@operator_only
def wall(conn, text):
    if not text:
        raise ChatError("usage: /wall TEXT")
    log.info("operator {operator} sent a wall notice", operator=conn.account,
             action="wall")
    conn.hub.wall(conn.name, text)


def unless_muted(conn, text):
    """
    ``text`` (a /part or /quit reason others will read), or "" from a muted
    connection: leaving always works, speaking while leaving does not.
    """
    return "" if conn.factory.mutes.muted(conn) is not None else text


def check_voice(conn):
    """
    Refuse a line that speaks from a muted connection.
    """
    until = conn.factory.mutes.muted(conn)
    if until is not None:
        left = "" if until == float("inf") else \
            f" for {grammar.format_duration(until - conn.factory.clock.seconds())} more"
        raise ChatError(f"you are muted{left}; you can still read")


def refuse_banned_account(conn, key):
    """
    At login: if the account ``key`` is banned, say so in one line, close
    the connection and return True.
    """
    entry = conn.factory.bans.for_account(key)
    if entry is None:
        return False
    log.info("refused login to banned account {account}", account=key,
             action="refused")
    conn.error(f"{describe(entry, conn.factory.clock)}")
    conn.factory.metrics.client_dropped("banned")
    conn.leave("banned")
    conn.close_when_sent()
    return True
