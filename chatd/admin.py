"""
``chatd-admin``: changes made from the host's command line, never from
the chat.  Operators are accounts with a flag in the account store under
``--data-dir``::

    chatd-admin --data-dir D make-operator NAME
    chatd-admin --data-dir D revoke-operator NAME

It works while the daemon runs: the daemon asks the store at each
operator command.
"""

import os
import sys

from twisted.python import usage

from chatd import grammar


class _Name(usage.Options):
    def parseArgs(self, name):
        self["name"] = name


class Options(usage.Options):
    synopsis = "--data-dir DIR (make-operator NAME | revoke-operator NAME)"
    optParameters = [
        ["data-dir", "d", "chatd-data", "The daemon's --data-dir."],
    ]
    subCommands = [
        ["make-operator", None, _Name, "Make the account NAME an operator."],
        ["revoke-operator", None, _Name, "NAME is no longer an operator."],
    ]

    def postOptions(self):
        if self.subCommand is None:
            raise usage.UsageError("name a command: make-operator or revoke-operator")


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
        registered = store.set_operator(grammar.name_key(name), operator)
        if registered is None:
            out.write(f"chatd-admin: no account called {name}\n")
            return 1
        out.write(f"{registered} is {'now' if operator else 'no longer'} an operator\n")
        return 0
    finally:
        store.close()


def main(argv=None):
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        sys.stderr.write(f"{options}\nchatd-admin: {e}\n")
        sys.exit(2)
    sys.exit(run(options, sys.stdout))
