"""
``chatd-client``: chat and share files from a terminal or a script.

``ChatClient`` is the connection.  It is the server's own framing class,
``TransferReceiver`` (lines plus exact-size raw sections), and classifies
every server line with ``grammar.parse_server_line``.  It takes what the user
typed (``user_line``), handles the client-side commands (``/upload PATH``,
``/download NAME [DEST]``, ``/help``, ``/quit``) and passes everything else to
the server, in the order typed; the transfers themselves are
``chatd.clientfiles.FileTransfers``, a mixin.  ``chatd.clientapp.App`` wires
it to stdin and the terminal (``python -m chatd.client`` runs that program).
"""

import collections

from twisted.internet import defer, error

from chatd import grammar
from chatd.clientfiles import FileTransfers, ResumeUpload
from chatd.transfer import TransferReceiver

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 5002
CONNECT_TIMEOUT = 10
QUIT_TIMEOUT = 15.0  # how long the server may stay silent after /quit
MAX_RETRY_DELAY = 30.0

HELP = [
    "chatd-client commands:",
    "TEXT                   say TEXT in your current room (//TEXT: a line starting with /)",
    "/msg NAME TEXT         private message to NAME only",
    "/me ACTION             say what you are doing",
    "/nick NAME             change your name",
    "/who [ROOM]            who is in your current room (or ROOM)",
    "/join ROOM             enter ROOM (#name) and talk there; the prompt shows it",
    "/part [ROOM] [REASON]  leave ROOM (default: the current one)",
    "/rooms                 the rooms, most members first",
    "/topic [ROOM] [TEXT]   show or set the topic of a room",
    "/history [ROOM] [N]    the last N lines of a room (dimmed, like on /join)",
    "/files                 the shared files, newest first",
    "/upload PATH           share a local file (under its base name, sha256-checked)",
    "/download NAME [DEST]  save a shared file here, or in DEST (a directory or a",
    "                       file name); quote a NAME with spaces: \"my file.txt\"",
    "/login NAME, /register NAME  log in, or make NAME yours; asks for the",
    "                       password without showing it",
    "/help                  this list",
    "/quit [REASON]         leave (so do Ctrl-D on an empty line and Ctrl-C)",
    "other /commands go to the server as typed",
]


class _Quit:
    def __init__(self, reason):
        self.reason = reason


class ChatClient(FileTransfers, TransferReceiver):
    """
    One connection to a chatd server.  ``console`` shows everything,
    ``clock`` is the reactor (or a ``task.Clock``), ``blocking(f, *args)``
    runs a blocking function (hashing an upload) and returns a Deferred.
    ``done`` fires when the connection ends: ``True`` after a clean /quit.
    """

    MAX_LENGTH = 1024 * 1024  # a /who reply on a big server is long

    def __init__(self, console, clock, *, name=None, blocking=defer.maybeDeferred,
                 quit_timeout=QUIT_TIMEOUT, keep_partials=False, resume=()):
        self.console = console
        self.clock = clock
        self.wanted_name = name
        self.blocking = blocking
        self.quit_timeout = quit_timeout
        self.name = None  # our name, once the server told us
        self.on_name = None  # called with our name whenever it changes
        self.room = None  # our current room, once the server told us
        self.on_room = None  # called with the current room ("": none) when it changes
        self.interactive = False  # a person is typing: say when lines wait
        self.on_secret = None  # called with True/False: hide what is typed, or not
        self._password_for = None  # ("login"|"register", NAME) awaiting a password
        self.failures = 0  # transfers that failed on our side
        self.quitting = False
        self.lost_reason = None
        self.done = defer.Deferred()
        self._open = False
        self._greeted = False  # typed lines wait for the server's first line
        # Typed lines wait here, in order, while an upload is hashed and sent
        # (never held by TransferReceiver, which drops the oldest past a bound).
        self._outbox = collections.deque()
        self._uploading = None  # the name of the upload under way
        self._said_waiting = False
        self._quit_sent = False
        self._quit_timer = None
        self._timed_out = False
        self._refused_server = False  # it sent a file we did not ask for
        FileTransfers.__init__(self, keep_partials, resume)

    # --- connection -------------------------------------------------------

    def connectionMade(self):
        self._open = True
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass
        if self.wanted_name:
            self.send(grammar.client_command("nick", self.wanted_name))

    @property
    def is_open(self):
        return self._open

    @property
    def busy(self):
        """
        Whether a transfer is under way.
        """
        return bool(self._download or self._uploading)

    def dataReceived(self, data):
        if self._refused_server:
            return
        self._touch()
        TransferReceiver.dataReceived(self, data)

    def connectionLost(self, reason=None):
        self._open = False
        self._cancel_quit_timer()
        self._transfers_lost()
        if reason is None or reason.check(error.ConnectionDone):
            self.lost_reason = "the server closed it"
        else:
            self.lost_reason = reason.getErrorMessage()
        clean = self._quit_sent and not self._timed_out
        done, self.done = self.done, None
        done.callback(clean)

    def lineLengthExceeded(self, line):
        self.console.error(f"the server sent a line over {self.MAX_LENGTH} bytes; closing")
        self.transport.loseConnection()

    # --- what the server sends ------------------------------------------

    def lineReceived(self, line):
        message = grammar.parse_server_line(line)
        if self.transfer_line(message):
            return
        if message.kind == "notice" and not message.room and not message.history:
            self._track_name(message.text)
            self._track_room(message.text)
        self.console.show(message.kind, message.text, message.name,
                          room=message.room, history=message.history)
        if not self._greeted:
            self._greeted = True
            self._resume_transfers()
            self._drain()

    def _track_name(self, text):
        name = grammar.greeted_name(text) if self.name is None else None
        renamed = grammar.renamed_names(text)
        if renamed and self.name and grammar.name_key(renamed[0]) == grammar.name_key(self.name):
            name = renamed[1]
        if name:
            self.name = name
            if self.on_name is not None:
                self.on_name(name)

    def _track_room(self, text):
        room = grammar.current_room(text)
        if room is not None and room != self.room:
            self.room = room
            if self.on_room is not None:
                self.on_room(room)

    # --- what the user types --------------------------------------------

    def user_line(self, text):
        """
        One line the user typed: chat, a client command or a server command.
        Lines wait, in order, behind an upload whose file is being hashed.
        """
        if not text.strip():
            return
        if self.quitting:
            self.console.error(f"leaving; not sent: {text}")
            return
        self._outbox.append(text)
        if self._uploading and self.interactive and not self._said_waiting:
            self._said_waiting = True
            self.console.info(f"what you type now is sent once the upload of "
                              f"{self._uploading} is done")
        self._drain()

    def quit(self, reason=""):
        """
        Leave once what was typed before is out: send /quit, then wait for
        the server to close (``done`` fires).
        """
        if self.quitting:
            return
        self.quitting = True
        self._outbox.append(_Quit(reason))
        self._drain()

    def _drain(self):
        while self._outbox and not self._uploading and self._open and self._greeted:
            item = self._outbox.popleft()
            if isinstance(item, _Quit):
                self._send_quit(item.reason)
            elif isinstance(item, ResumeUpload):
                self._resume_upload(item.path)
            else:
                self._handle(item)

    def _handle(self, text):
        if self._password_for is not None:
            # The password asked for: sent, never shown.
            (word, name), self._password_for = self._password_for, None
            if self.on_secret is not None:
                self.on_secret(False)
            self.send(f"/{word} {name} {text.strip()}")
            return
        command = grammar.parse_client_line(text.encode(grammar.ENCODING, "replace"))
        if command is None:
            return
        if command.name in ("login", "register") and len(command.arg.split()) == 1:
            self._password_for = (command.name, command.arg.strip())
            self.console.info(f"password for {command.arg.strip()} (not shown):")
            if self.on_secret is not None:
                self.on_secret(True)
            return
        if not command.name:
            self.send(text)
            self.console.show("own", command.arg)
            return
        handler = {
            "upload": self.do_upload,
            "download": self.do_download,
            "help": self.do_help,
            "quit": self._typed_quit,
            "me": self.do_me,
        }.get(command.name)
        if handler is None:
            self.send(text)  # the server knows it, or says it does not
        else:
            handler(command.arg)

    def do_help(self, arg):
        for line in HELP:
            self.console.info(line)

    def do_me(self, arg):
        self.send(grammar.client_command("me", arg))
        if arg:
            self.console.show("own-action", arg)

    # --- quitting ---------------------------------------------------------

    def _typed_quit(self, reason):
        # /quit typed: what was typed after it is not sent.
        self.quitting = True
        dropped = [item for item in self._outbox if not isinstance(item, _Quit)]
        self._outbox.clear()
        for text in dropped:
            self.console.error(f"leaving; not sent: {text}")
        self._send_quit(reason)

    def _send_quit(self, reason):
        if self._quit_sent:
            return
        self.send(grammar.client_command("quit", reason))
        self._quit_sent = True
        self._quit_timer = self.clock.callLater(self.quit_timeout, self._quit_timed_out)

    def _touch(self):
        if self._quit_timer is not None and self._quit_timer.active():
            self._quit_timer.reset(self.quit_timeout)

    def _cancel_quit_timer(self):
        if self._quit_timer is not None and self._quit_timer.active():
            self._quit_timer.cancel()
        self._quit_timer = None

    def _quit_timed_out(self):
        self._quit_timer = None
        self._timed_out = True
        self.console.problem(f"the server did not close the connection within "
                             f"{self.quit_timeout:g} s of /quit; closing it")
        self.transport.abortConnection()


if __name__ == "__main__":
    from chatd.clientapp import main

    main()
