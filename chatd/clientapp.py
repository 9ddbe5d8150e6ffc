"""
The ``chatd-client`` program: ``App`` runs one ``ChatClient`` connection at
a time on stdin and the terminal (connecting and, with ``--reconnect``,
reconnecting with back-off; Ctrl-C, Ctrl-D and the end of piped input; the
exit status), and ``main`` reads the command line.
"""

import argparse
import os
import random
import signal
import sys

from twisted.internet import threads
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS

from chatd import grammar
from chatd.client import CONNECT_TIMEOUT, DEFAULT_HOST, DEFAULT_PORT, MAX_RETRY_DELAY, ChatClient
from chatd.console import Console, FdStream
from chatd.grammar import ChatError
from chatd.terminal import TerminalMode, enable_escapes, raw_output, read_input
from chatd.userinput import LineEditor, PipedLines, isatty


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
            what = f"--ca {options.ca}: not a usable PEM certificate" if options.ca \
                else f"--tls to {options.host}: cannot set up TLS"
            sys.exit(f"chatd-client: {what} ({e})")
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

