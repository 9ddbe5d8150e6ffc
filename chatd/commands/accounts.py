"""
Account commands: register, log in, change the password.

A password is never logged, echoed or relayed.  The checks run on the
hashing threads; until one answers, the connection reads nothing more, so
lines keep their order.
"""

from chatd import grammar
from chatd.commands.registry import collector, when_answered
from chatd.grammar import ChatError

COMMANDS = []
command = collector(COMMANDS)


def _register_help(conn):
    if conn.accounts is not None and conn.accounts.allow_register:
        return "/register NAME PASSWORD  make NAME yours (with a password) and log in"
    return None


@command("register", _register_help, section="accounts", before_login=True)
def register(conn, arg):
    name, password = _arguments(conn, arg, "/register NAME PASSWORD")
    _await(conn, _made_way(conn, conn.accounts.register(name, password, conn.address_key)),
           _logged_in, "registered and logged in")


@command("login", "/login NAME PASSWORD     log in to your registered name",
         section="accounts", before_login=True)
def login(conn, arg):
    name, password = _arguments(conn, arg, "/login NAME PASSWORD")
    _await(conn, _made_way(conn, conn.accounts.login(name, password, conn.address_key)),
           _logged_in, "logged in")


@command("password", "/password OLD NEW        change your password", section="accounts")
def password(conn, arg):
    old, new = _arguments(conn, arg, "/password OLD NEW")
    if conn.account is None:
        raise ChatError(login_first(conn))
    _await(conn, conn.accounts.change_password(conn.account, old, new, conn.address_key),
           _password_changed)


def login_first(conn):
    """
    What a connection that must log in first is told.
    """
    if conn.accounts.allow_register:
        return "log in first: /login NAME PASSWORD (or /register NAME PASSWORD)"
    return "log in first: /login NAME PASSWORD"


def _arguments(conn, arg, usage):
    if conn.accounts is None:
        raise ChatError("accounts are not enabled on this server")
    parts = arg.split()
    if len(parts) != 2:
        raise ChatError(f"usage: {usage}")
    return parts


def _await(conn, d, done, *args):
    """
    Hold further input until the (threaded) check answers.
    """
    when_answered(conn, d, lambda result: done(conn, result, *args),
                  hold="account", what="account command")


def _made_way(conn, d):
    """
    ``d`` (of an account's name), once the hub made way for the name.
    """
    def make_way(name):
        waiting = conn.hub.make_way(name)
        return name if waiting is None else waiting.addCallback(lambda _: name)
    return d.addCallback(make_way)


def _logged_in(conn, name, what):
    key = grammar.name_key(name)
    if conn.refused_login(key):
        return
    holder = conn.hub.users.get(key)
    if holder is not None and holder is not conn and \
            getattr(holder, "account", None) == key:
        holder.logged_in_elsewhere()
    conn.enter_as(name)
    conn.account = key
    conn.log.info("{name} {what}", name=name, what=what)
    conn.send(grammar.notice(f"{what} as {name}"))


def _password_changed(conn, name):
    conn.log.info("{name} changed their password", name=name)
    conn.send(grammar.notice("password changed"))
