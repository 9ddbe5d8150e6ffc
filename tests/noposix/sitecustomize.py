"""
Put this directory on ``PYTHONPATH`` to run chatd as if on Windows: chatd's
own code cannot import ``termios``, ``tty`` or ``fcntl`` (nor Twisted's
stdio, which on Windows needs pywin32).

Only imports made by ``chatd`` modules are refused, whether or not the
module is loaded already: Twisted's POSIX reactor itself needs ``fcntl`` on
Linux (on Windows it has other code paths), and it is chatd's code that has
to run on both.  Each refusal is appended to the file named by
``CHATD_BLOCK_LOG``, if set, as ``IMPORTER MODULE``, so a test can see that
the fallback was really taken.
"""

import builtins
import os

BLOCKED = frozenset({"termios", "tty", "fcntl", "twisted.internet.stdio"})

_import = builtins.__import__


def _importer(globals):
    if not globals:
        return ""
    name = globals.get("__name__") or ""
    spec = globals.get("__spec__")
    return spec.name if name == "__main__" and spec is not None else name


def _refused(name, fromlist):
    wanted = {name} | {f"{name}.{each}" for each in fromlist or ()}
    return sorted(wanted & BLOCKED)


def _blocking_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = _importer(globals)
    if level == 0 and (importer == "chatd" or importer.startswith("chatd.")):
        refused = _refused(name, fromlist)
        if refused:
            log = os.environ.get("CHATD_BLOCK_LOG")
            if log:
                with open(log, "a") as f:
                    f.write(f"{importer} {refused[0]}\n")
            raise ImportError(f"{refused[0]} is blocked (tests/noposix: as on Windows)",
                              name=refused[0])
    return _import(name, globals, locals, fromlist, level)


builtins.__import__ = _blocking_import
