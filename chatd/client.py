"""
``chatd-client``: chat and share files from a terminal or a script.

``ChatClient`` is the connection.  It is the server's own framing class,
``TransferReceiver`` (lines plus exact-size raw sections), and classifies
every server line with ``grammar.parse_server_line``.  It takes what the user
typed (``user_line``), handles the client-side commands (``/upload PATH``,
``/download NAME [DEST]``, ``/help``, ``/quit``) and passes everything else to
the server, in the order typed; the transfers themselves are
``chatd.clientfiles.FileTransfers``, a mixin.  ``App`` wires it to stdin and the terminal:
connecting (and, with ``--reconnect``, reconnecting), Ctrl-C, Ctrl-D and the
end of piped input, and the exit status.
"""

import argparse
import collections
import os
import random
import signal
import sys

from twisted.internet import defer, error, threads
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS

from chatd import grammar
from chatd.clientfiles import FileTransfers, ResumeUpload
from chatd.console import Console, FdStream
from chatd.grammar import ChatError
from chatd.transfer import TransferReceiver
from chatd.terminal import TerminalMode, enable_escapes, raw_output, read_input
from chatd.userinput import LineEditor, PipedLines, isatty

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



# --- the program -----------------------------------------------------------


class App:
    """
    The running client: one connection at a time, stdin, exit status.
    """

    def __init__(self, reactor, console, host, port, *, name=None, reconnect=False,
                 interactive=False, terminal=None, stdin_fd=0, tls=None):
        self.tls = tls  # client TLS options (optionsForClientTLS), or None
        self.reactor = reactor
        self.console = console
        self.host = host
        self.port = port
        self.name = name
        self.reconnect = reconnect
        self.interactive = interactive
        self.terminal = terminal
        # The key-by-key line editor and its prompt, where cbreak works; else
        # (Windows) a person types whole lines in the console's own editing.
        self.editing = interactive and terminal is not None and terminal.key_by_key
        self.stdin_fd = stdin_fd
        self.client = None
        self.exit_code = None
        self.failures = 0
        self._input = None
        self._input_reader = None
        self._leaving = False
        self._interrupts = 0
        self._delay = 0.0
        self._retry = None
        self._unfinished = []  # transfers the last connection cut off

    def start(self):
        if self.interactive:
            self._start_input()  # keys typed while connecting are ours, not echoed
        self._connect()

    def _blocking(self, f, *args):
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), f, *args)

    def _connect(self):
        self._retry = None
        endpoint = HostnameEndpoint(self.reactor, self.host, self.port,
                                    timeout=CONNECT_TIMEOUT)
        if self.tls is not None:
            endpoint = wrapClientTLS(self.tls, endpoint)
        client = ChatClient(self.console, self.reactor, name=self.name,
                            blocking=self._blocking, keep_partials=self.reconnect,
                            resume=self._unfinished)
        client.on_name = self._named
        client.on_room = self._room_changed
        client.interactive = self.interactive
        client.on_secret = self._secret
        d = connectProtocol(endpoint, client)
        d.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, client):
        self._delay = 0.0
        self._unfinished = []  # the new client resumes them
        self.client = client
        client.done.addCallback(self._closed, client)
        if self._input is None:
            self._start_input()
        else:
            self._input.resumeProducing()

    def _start_input(self):
        if self.editing:
            self.terminal.cbreak()
            reader = LineEditor(self.console, self.line, self.leave, self.interrupt)
            self.console.set_prompt("> ")
        else:
            reader = PipedLines(self.line, self.leave, self.console.error)
        self._input_reader = reader
        self._input = read_input(reader, self.reactor, self.stdin_fd)

    def _secret(self, on):
        """
        Hide what is typed (a password), or show it again.
        """
        if self.editing and isinstance(self._input_reader, LineEditor):
            self._input_reader.secret = on
            if on:
                self.console.set_prompt("password: ")
            elif self.client is not None and self.client.name:
                self.console.set_prompt(self._prompt())

    def _prompt(self):
        """
        ``#dev alice> ``: the current room (once one is known), our name.
        """
        room = self.client.room if self.client is not None else None
        return (f"#{room} " if room else "") + f"{self.client.name}> "

    def _named(self, name):
        if not grammar.is_guest_name(name):
            self.name = name  # taken again after a reconnect
        if self.editing:
            self.console.set_prompt(self._prompt())

    def _room_changed(self, room):
        if self.editing and self.client is not None and self.client.name:
            self.console.set_prompt(self._prompt())

    def line(self, text):
        if self.client is not None and self.client.is_open:
            self.client.user_line(text)
        elif text.strip():
            self.console.error(f"not connected; not sent: {text}")

    def leave(self, reason=""):
        """
        End of input, /quit-like: finish what is under way, then exit.
        """
        self._leaving = True
        if self.client is not None and self.client.is_open:
            self.client.quit(reason)
        else:
            if self._retry is not None and self._retry.active():
                self._retry.cancel()
            self.finish(1)

    def interrupt(self):
        """
        Ctrl-C (or SIGTERM): leave cleanly; a second time, at once.
        """
        self._interrupts += 1
        if self._interrupts > 1 or self.client is None:
            if self.client is not None and self.client.transport is not None:
                self.client.transport.abortConnection()
            self.finish(130)
            return
        if self.client.busy:
            self.console.info("leaving once the transfers under way are done "
                              "(Ctrl-C again to leave now)")
        self.leave()

    def resumed(self):
        """
        Back in the foreground after Ctrl-Z: cbreak again, redraw.
        """
        if self.editing and self._input is not None:
            self.terminal.cbreak()
        self.console.redraw()

    def _closed(self, clean, client):
        self.client = None
        self.failures += client.failures
        self._unfinished.extend(client.unfinished)
        if clean:
            self.finish(1 if self.failures and not self.interactive else 0)
            return
        where = f"{self.host}:{self.port}"
        self.console.problem(f"connection to {where} lost: {client.lost_reason}")
        if self.reconnect and not self._leaving:
            if self._input is not None and not self.interactive:
                self._input.pauseProducing()  # piped lines wait for the connection
            if self.editing:
                self.console.set_prompt("(offline)> ")
            self._schedule_retry()
        else:
            self.finish(1)

    def _connect_failed(self, failure):
        self.console.problem(f"could not connect to {self.host}:{self.port}: "
                             f"{failure.getErrorMessage()}")
        if self.reconnect and not self._leaving:
            self._schedule_retry()
        else:
            self.finish(1)

    def _schedule_retry(self):
        self._delay = min(max(1.0, self._delay * 2), MAX_RETRY_DELAY)
        delay = self._delay * random.uniform(0.8, 1.2)
        self.console.info(f"reconnecting in {delay:.0f} s (Ctrl-C to give up)")
        self._retry = self.reactor.callLater(delay, self._connect)

    def finish(self, code):
        if self.exit_code is None:
            self.exit_code = code
            if self.reactor.running:
                self.reactor.stop()


# --- command line ------------------------------------------------------------


def _port(text):
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to 65535, not {text!r}")
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 1 to 65535, not {port}")
    return port


def _name(text):
    try:
        return grammar.check_name(text)
    except ChatError as e:
        raise argparse.ArgumentTypeError(e.message)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="chatd-client",
        description="Chat and share files on a chatd server. Lines typed (or piped "
                    "in) are sent; /help lists the commands. With stdin from a pipe "
                    "or file it sends each line, waits for transfers and exits.")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"server host name or address (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"server port (default {DEFAULT_PORT})")
    parser.add_argument("--name", type=_name, default=None,
                        help="your name (default: the guest name the server gives)")
    parser.add_argument("--tls", action="store_true",
                        help="connect over TLS (the server's --tls-port)")
    parser.add_argument("--ca", metavar="FILE", default=None,
                        help="with --tls: trust this PEM certificate (say, the "
                             "server's self-signed one) instead of the system's CAs")
    parser.add_argument("--reconnect", action="store_true",
                        help="when the connection is lost, reconnect with back-off "
                             "instead of exiting")
    options = parser.parse_args(argv)
    if options.ca and not options.tls:
        parser.error("--ca needs --tls")
    return options


def tls_options(host, ca=None):
    """
    Client TLS options checking the server's certificate for ``host``,
    against ``ca`` (a PEM file) if given, else the system's trust roots.
    """
    from twisted.internet import ssl

    trust = None
    if ca:
        with open(ca, "rb") as f:
            trust = ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(f.read())])
    return ssl.optionsForClientTLS(host, trustRoot=trust)


def _same_terminal(fd1, fd2):
    try:
        return isatty(fd1) and isatty(fd2) and os.path.samestat(os.fstat(fd1), os.fstat(fd2))
    except OSError:
        return False


def _columns():
    return os.get_terminal_size(1).columns


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    tls = None
    if options.tls:
        try:
            tls = tls_options(options.host, options.ca)
        except Exception as e:
            sys.exit(f"chatd-client: --ca {options.ca}: not a usable PEM certificate ({e})")
    from twisted.internet import reactor

    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    live = isatty(1) and enable_escapes(1)  # the footer is drawn with escapes
    interactive = isatty(1) and isatty(0)
    color = live and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    console = Console(FdStream(1, encoding, raw_output(1)),
                      FdStream(2, encoding, raw_output(2)), reactor.seconds,
                      color=color, live=live, bars_live=_same_terminal(1, 2),
                      columns=_columns)
    terminal = TerminalMode(0)
    app = App(reactor, console, options.host, options.port, name=options.name,
              reconnect=options.reconnect, interactive=interactive, terminal=terminal,
              tls=tls)

    def handle_signals():
        def later(f):
            return lambda signum, frame: reactor.callFromThread(f)

        signal.signal(signal.SIGINT, later(app.interrupt))
        signal.signal(signal.SIGTERM, later(app.interrupt))
        if app.editing and hasattr(signal, "SIGWINCH"):  # not on Windows
            signal.signal(signal.SIGWINCH, later(console.redraw))
            signal.signal(signal.SIGCONT, later(app.resumed))

    reactor.callWhenRunning(handle_signals)
    reactor.callWhenRunning(app.start)
    try:
        reactor.run()
    finally:
        console.close()
        terminal.restore()
    sys.exit(1 if app.exit_code is None else app.exit_code)


if __name__ == "__main__":
    main()
