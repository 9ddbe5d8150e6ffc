"""
``chatd-admin``: changes made from the host's command line, never from
the chat.  Operators are accounts with a flag in the account store under
``--data-dir``::

    chatd-admin --data-dir D make-operator NAME
    chatd-admin --data-dir D revoke-operator NAME

It works while the daemon runs: the daemon asks the store at each
operator command.  In a cluster the accounts are in its Redis::

    chatd-admin --redis redis://HOST:PORT/DB make-operator NAME
"""

import os
import sys

from twisted.python import usage

from chatd import grammar
from chatd.optionvalues import redis_url


class _Name(usage.Options):
    def parseArgs(self, name):
        self["name"] = name


class Options(usage.Options):
    synopsis = ("(--data-dir DIR | --redis URL) "
                "(make-operator NAME | revoke-operator NAME)")
    optParameters = [
        ["data-dir", "d", "chatd-data", "The daemon's --data-dir."],
        ["redis", None, None, "The cluster's --redis URL (its accounts are in Redis).",
         redis_url],
    ]
    subCommands = [
        ["make-operator", None, _Name, "Make the account NAME an operator."],
        ["revoke-operator", None, _Name, "NAME is no longer an operator."],
    ]

    def postOptions(self):
        if self.subCommand is None:
            raise usage.UsageError("name a command: make-operator or revoke-operator")


def _said(out, name, operator, registered):
    if registered is None:
        out.write(f"chatd-admin: no account called {name}\n")
        return 1
    out.write(f"{registered} is {'now' if operator else 'no longer'} an operator\n")
    return 0


def run_redis(options, out):
    """
    As ``run``, on the accounts in the cluster's Redis: a ``Deferred`` of
    the exit status.
    """
    from chatd.cluster.admin import set_operator

    name = options.subOptions["name"]
    operator = options.subCommand == "make-operator"
    d = set_operator(options["redis"], name, operator)
    d.addCallback(lambda registered: _said(out, name, operator, registered))

    def failed(failure):
        out.write(f"chatd-admin: redis at {options['redis']}: {failure.getErrorMessage()}\n")
        return 1
    return d.addErrback(failed)


def run(options, out):
    """
    Do what ``options`` ask; returns the exit status.
    """
    from chatd.accounts import STORE_FILE, SQLiteAccountStore

    path = os.path.join(options["data-dir"], STORE_FILE)
    if not os.path.exists(path):
        out.write(f"chatd-admin: no accounts in {options['data-dir']} "
                  f"(nobody has registered yet)\n")
        return 1
    store = SQLiteAccountStore(path)
    try:
        name = options.subOptions["name"]
        operator = options.subCommand == "make-operator"
        return _said(out, name, operator, store.set_operator(grammar.name_key(name), operator))
    finally:
        store.close()


def main(argv=None):
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        sys.stderr.write(f"{options}\nchatd-admin: {e}\n")
        sys.exit(2)
    if options["redis"] is not None:
        from twisted.internet import task

        def main(reactor):
            d = run_redis(options, sys.stdout)
            return d.addCallback(lambda status: status and sys.exit(status))
        task.react(main)
    sys.exit(run(options, sys.stdout))
