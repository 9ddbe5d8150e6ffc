"""
``--log-format json``: one JSON object per line for every log event
(Twisted's ``jsonFileLogObserver``), to stdout or to twistd's ``--logfile``.

twistd chooses its log observer from its own options before the chatd
service exists, so ``chatd``'s option sets twistd's ``--logger`` to
``json_observer`` (the two cannot be combined); twistd imports it by name
and calls it without arguments, so where to write is kept here meanwhile.  The events carry named fields (``name``, ``peer``,
``why``, ``operator``, ``target``, ...); no event carries message text or
a password.
"""

import sys

from twisted.logger import jsonFileLogObserver
from twisted.python.logfile import LogFile
from twisted.python import usage

FORMATS = ("text", "json")


_destination = {}  # twistd's logfile and nodaemon options


def use_json_logs(twistd_options):
    """
    Have twistd log JSON lines where it would have logged text.
    """
    if twistd_options.get("logger"):
        raise usage.UsageError("--log-format json and twistd's --logger both choose "
                               "the log observer; use one of them")
    _destination.update(logfile=twistd_options.get("logfile"),
                        nodaemon=twistd_options.get("nodaemon"))
    twistd_options["logger"] = f"{__name__}.json_observer"


def json_observer():
    """
    The observer twistd installs (its ``--logger``): JSON lines, no
    record separator, so each line is one object.
    """
    return jsonFileLogObserver(_log_file(_destination), recordSeparator="")


def _log_file(twistd_options):
    """
    Where twistd would log: ``--logfile`` (``-``: stdout), else stdout in
    the foreground (``-n``), else ``twistd.log``.
    """
    path = twistd_options.get("logfile")
    if path == "-" or (not path and twistd_options.get("nodaemon")):
        return sys.stdout
    return LogFile.fromFullPath(path or "twistd.log")
