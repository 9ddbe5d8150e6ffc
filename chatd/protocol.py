"""
The server side of a chatd connection: chat commands on top of the shared
line/raw framing of ``TransferReceiver`` (uploads in, downloads out).

Names, rooms and fan-out are the hub's job, and the wording of every line is
the grammar's.
"""

import socket
from datetime import datetime, timezone

from twisted.internet import protocol
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from chatd import grammar
from chatd.grammar import ChatError
from chatd.hub import IChatClient
from chatd.limits import ConnectionCounter, Limits, TokenBucket, address_key
from chatd.transfer import TransferReceiver, WriteCoalescer

FRAGMENT_DELAY = 0.5  # an unterminated fragment idle this long is a line


ACCOUNT_HELP = [
    "/register NAME PASSWORD  make NAME yours (with a password) and log in",
    "/login NAME PASSWORD     log in to your registered name",
    "/password OLD NEW        change your password",
]
BEFORE_LOGIN = frozenset({"login", "register", "help", "quit"})


def account_help_lines(accounts):
    return ["account commands:"] + [
        line for line in ACCOUNT_HELP
        if accounts.allow_register or not line.startswith("/register")]


def help_lines(max_file_size, accounts=None):
    limit = grammar.format_size(max_file_size)
    help_line = "/help                this list"
    if accounts is not None:
        help_line = "/help [accounts]     this list, or the account commands (/login ...)"
    return [
        "commands:",
        "TEXT                 say TEXT to everyone (//TEXT for a line starting with /)",
        "/nick NAME           change your name",
        "/msg NAME TEXT       private message to NAME only",
        "/me ACTION           say what you are doing",
        "/who                 who is online",
        "/files               the shared files, newest first",
        f"/upload NAME SIZE [SHA256]  then SIZE raw bytes: share a file (up to {limit})",
        "/download NAME       get a file: a line 'FILE SIZE SHA256 NAME', then the bytes",
        help_line,
        "/quit [REASON]       leave",
    ]


@implementer(IChatClient, IHalfCloseableProtocol)
class ChatProtocol(TransferReceiver):
    """
    One user's connection.
    """

    log = Logger()
    name = None
    address_key = None  # set by the factory, for the connection limits
    account = None  # the name key of the account logged in to
    # Rarely changed state: class defaults, an instance attribute only once
    # it changes (see __init__ for why).
    _upload = None  # the Upload being received
    _upload_timer = None
    _connected = True
    _input_ended = False
    _discarding = False  # inside an over-long line, up to its newline
    _after_long_line = None  # what followed an over-long line
    _rate_timer = None
    _departure = "connection lost"

    def __init__(self):
        """
        Every attribute an idle logged-in connection has, set here first and
        in this order, and nothing else: CPython keeps instance attributes in
        a compact table shared by the class only for the names the first
        instances set (about 20 of them); an instance needing another name
        gets its own dict, about 1.5 KB per connection (issue 13).  Rare
        state stays a class default above until it changes.
        """
        self.factory = self.transport = None
        self.connected = 0
        self.address_key = None
        self.name = None
        self._joined = False
        self.MAX_LENGTH = LineReceiver.MAX_LENGTH
        self._bucket = None
        self.sendq_limit = 0
        self._coalescer = self._flow = self._pending_out = None
        self._direct = False
        self._buffer = b""
        self._busyReceiving = False
        self._fragment_timer = None

    # --- connection -------------------------------------------------------

    @property
    def hub(self):
        return self.factory.hub

    @property
    def store(self):
        return self.factory.store

    @property
    def limits(self):
        return self.factory.limits

    @property
    def kernel_sendq(self):
        return self.factory.limits.kernel_sendq

    @property
    def accounts(self):
        return getattr(self.factory, "accounts", None)

    def connectionMade(self):
        self.start_connection()
        if self.accounts is not None and self.accounts.require_login:
            self.log.info("connection from {peer}, not logged in yet",
                          peer=_peer_address(self.transport))
            self.send(grammar.notice(
                f"Welcome to {self.factory.server_name}: {len(self.hub)} online; "
                f"{self._login_first()}; type /help for commands"))
            return
        name = self.hub.connect(self)
        self._joined = True
        self.log.info("{name} connected from {peer}", name=name,
                      peer=_peer_address(self.transport))
        self.send(grammar.notice(
            f"Welcome to {self.factory.server_name}: {len(self.hub)} online, "
            f"you are {name}; files up to {grammar.format_size(self.store.max_size)}; "
            f"type /help for commands"))

    def start_connection(self):
        """
        Socket options and this connection's limits (shared with pair mode).
        """
        tune_socket(self.transport)
        limits = self.limits
        self.MAX_LENGTH = limits.max_line + 1  # + the CR of a CRLF
        if limits.rate:
            self._bucket = TokenBucket(limits.rate, limits.burst, self.factory.clock)
        self.start_output_flow(limits.sendq, self.factory.coalescer)

    def connectionLost(self, reason=protocol.connectionDone):
        self._cancel_fragment_timer()
        self._cancel_upload_timer()
        if self._rate_timer is not None and self._rate_timer.active():
            self._rate_timer.cancel()  # lines still waiting left with their sender
        self._connected = False
        self.factory.connection_closed(self)
        if self._upload is not None:
            self._upload.abort()
        self._upload = None
        if self._joined:
            self._joined = False
            self.hub.disconnect(self, self._departure)
            self.log.info("{name} disconnected ({why})", name=self.name,
                          why=self._departure)

    def send_queue_full(self):
        """
        This client stopped reading: drop it, and say why to the others.
        """
        self._departure = (f"not reading: send queue over "
                           f"{grammar.format_size(self.limits.sendq)}")
        self.log.warn("dropping {name}: {why}", name=self.name, why=self._departure)
        TransferReceiver.send_queue_full(self)

    def error(self, message):
        self.send(grammar.error(message))

    # --- input ------------------------------------------------------------

    def dataReceived(self, data):
        while True:
            if self._discarding and self.line_mode:
                end = data.find(b"\n")
                if end < 0:
                    return  # still inside an over-long line: never buffered
                self._discarding = False
                data = data[end + 1:]
            TransferReceiver.dataReceived(self, data)
            if self._after_long_line is None:
                break
            data, self._after_long_line = self._after_long_line, None
        if self.line_mode and self._buffer and not self.paused:
            self._arm_fragment_timer()
        else:
            self._cancel_fragment_timer()
        if not self.line_mode:
            self._arm_upload_timer()

    def _arm_fragment_timer(self):
        if self._fragment_timer is not None and self._fragment_timer.active():
            self._fragment_timer.reset(FRAGMENT_DELAY)
        else:
            self._fragment_timer = self.factory.clock.callLater(
                FRAGMENT_DELAY, self._fragment_idle)

    def _cancel_fragment_timer(self):
        if self._fragment_timer is not None and self._fragment_timer.active():
            self._fragment_timer.cancel()
        self._fragment_timer = None

    def _fragment_idle(self):
        """
        A client that never sends a newline: take what waits as a line.
        """
        self._fragment_timer = None
        if self.line_mode and self._buffer and not self.paused:
            self.dataReceived(b"\n")

    def readConnectionLost(self):
        """
        The client sent EOF (``cmd | nc host 5002``): finish what it sent,
        let every answer out, then close.
        """
        self._input_ended = True
        self._cancel_fragment_timer()
        self._finish_input()

    def writeConnectionLost(self):
        self.transport.loseConnection()

    def _finish_input(self):
        if not self._input_ended or self.paused or not self._connected:
            return
        if not self.line_mode:
            if self._upload is not None:
                self.error(f"upload of {self._upload.name} cut off: "
                           f"{self._raw_left} bytes missing; not stored")
                self._upload.abort()
                self._upload = None
        elif self._buffer:
            self.dataReceived(b"\n")
            if self.paused:
                return
        self.close_when_sent()

    def lineLengthExceeded(self, line):
        """
        Refuse an over-long line with one error and skip it up to its newline,
        without buffering it; the connection stays.
        """
        self._refuse_long_line()
        end = line.find(b"\n")
        if end < 0:
            self._discarding = True
        else:
            self._after_long_line = line[end + 1:]

    def _refuse_long_line(self):
        self.error(f"line too long (over {self.limits.max_line} bytes); discarded")

    def line_too_long(self, line):
        """
        Refuse a complete line over the limit.  ``MAX_LENGTH`` leaves a byte
        for the CR of a CRLF, so a line ended by LF alone can be one over.
        """
        if len(line) - line.endswith(b"\r") > self.limits.max_line:
            self._refuse_long_line()
            return True
        return False

    # --- timers ----------------------------------------------------------

    def _arm_upload_timer(self):
        if self._upload_timer is not None and self._upload_timer.active():
            self._upload_timer.reset(self.limits.upload_timeout)
        else:
            self._upload_timer = self.factory.clock.callLater(
                self.limits.upload_timeout, self._upload_idle)

    def _cancel_upload_timer(self):
        if self._upload_timer is not None and self._upload_timer.active():
            self._upload_timer.cancel()
        self._upload_timer = None

    def _upload_idle(self):
        """
        An upload stalled: the byte stream is out of step, so cancel and close.
        """
        self._upload_timer = None
        if self.line_mode:
            return
        what = (f"upload of {self._upload.name}" if self._upload is not None
                else "refused upload")  # its bytes were being skipped
        self.error(f"{what} timed out after "
                   f"{self.limits.upload_timeout:g} s idle; not stored")
        if self._upload is not None:
            self._upload.abort()
            self._upload = None
        self._departure = "upload timed out"
        self.close_when_sent()

    def pace_input(self):
        """
        Flood pacing, once per line: past the burst, stop reading for a
        while; the rest waits, in order.
        """
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait:
                self.pause_input("rate")
                self._rate_timer = self.factory.clock.callLater(
                    wait, self.resume_input, "rate")

    def lineReceived(self, line):
        """
        Every line, in chat and pair mode: the length limit, flood pacing,
        then ``handle_line``; a known error becomes one ``!`` line, anything
        else is logged and answered, never felt by other clients.
        """
        if self.line_too_long(line):
            return
        self.pace_input()
        try:
            self.handle_line(line)
        except ChatError as e:
            self.error(e.message)
        except Exception:
            self.log.failure("error handling a line from {name}", name=self.name)
            self.error("internal error; your line was not handled")

    def handle_line(self, line):
        """
        A chat line or a command.
        """
        command = grammar.parse_client_line(line)
        if command is None:
            return
        if self.account is None and command.name not in BEFORE_LOGIN and \
                self.accounts is not None and self.accounts.require_login:
            raise ChatError(self._login_first())
        handler = getattr(self, "do_" + command.name, None)
        if handler is None:
            raise ChatError(f"unknown command: /{command.name} (try /help)")
        handler(command.arg)

    # --- chat commands ------------------------------------------------------

    def do_(self, text):
        self.hub.say(self, text)

    def do_me(self, text):
        if not text:
            raise ChatError("usage: /me ACTION")
        self.hub.act(self, text)

    def do_nick(self, new):
        if self.account is not None:
            raise ChatError(f"you are logged in as {self.name}; "
                            f"/login or /register to be someone else")
        old = self.name
        self.hub.rename(self, new)
        self.log.info("{old} is now {new}", old=old, new=new)

    def do_msg(self, arg):
        target, text = grammar.split_target(arg, "/msg NAME TEXT")
        name = self.hub.private(self, target, text)
        self.send(grammar.private_to(name, text))

    def do_who(self, arg):
        names = self.hub.names()
        self.send(grammar.reply(f"online ({len(names)}): {', '.join(names)}"))

    def do_help(self, arg):
        lines = help_lines(self.store.max_size, self.accounts)
        if self.accounts is not None and arg.lower() == "accounts":
            lines = account_help_lines(self.accounts)
        for line in lines:
            self.send(grammar.reply(line))

    def do_quit(self, reason):
        self.send(grammar.notice("bye"))
        if self._joined:
            self.hub.disconnect(self, reason)
        self._joined = False
        self._departure = reason
        self.log.info("{name} quit", name=self.name)
        self.close_when_sent()

    # --- accounts (never log, echo or relay a password) -----------------------

    def _login_first(self):
        if self.accounts.allow_register:
            return "log in first: /login NAME PASSWORD (or /register NAME PASSWORD)"
        return "log in first: /login NAME PASSWORD"

    def _account_command(self, arg, usage):
        if self.accounts is None:
            raise ChatError("accounts are not enabled on this server")
        parts = arg.split()
        if len(parts) != 2:
            raise ChatError(f"usage: {usage}")
        return parts

    def do_register(self, arg):
        name, password = self._account_command(arg, "/register NAME PASSWORD")
        self._await_account(self.accounts.register(name, password),
                            self._logged_in, "registered and logged in")

    def do_login(self, arg):
        name, password = self._account_command(arg, "/login NAME PASSWORD")
        self._await_account(self.accounts.login(name, password, self.address_key),
                            self._logged_in, "logged in")

    def do_password(self, arg):
        old, new = self._account_command(arg, "/password OLD NEW")
        if self.account is None:
            raise ChatError(self._login_first())
        self._await_account(
            self.accounts.change_password(self.account, old, new, self.address_key),
            self._password_changed)

    def _await_account(self, d, done, *args):
        """
        Hold further input until the (threaded) check answers, so lines
        keep their order.
        """
        self.pause_input("account")
        d.addCallback(lambda result: self._connected and done(result, *args))
        d.addErrback(self._account_failed)
        d.addBoth(self._account_checked)

    def _account_checked(self, _):
        if self._connected:
            self.resume_input("account")
            self._finish_input()

    def _account_failed(self, failure):
        if not self._connected:
            return
        if failure.check(ChatError):
            self.error(failure.value.message)
        else:
            self.log.failure("account command from {name} failed", failure,
                             name=self.name)
            self.error("internal error; please try again")

    def _logged_in(self, name, what):
        key = grammar.name_key(name)
        holder = self.hub.users.get(key)
        if holder is not None and holder is not self and \
                getattr(holder, "account", None) == key:
            holder.logged_in_elsewhere()
        if not self._joined:
            self.hub.connect(self, name)
            self._joined = True
        elif self.name != name:
            self.hub.rename(self, name, claim=True)
        self.account = key
        self.log.info("{name} {what}", name=name, what=what)
        self.send(grammar.notice(f"{what} as {name}"))

    def _password_changed(self, name):
        self.log.info("{name} changed their password", name=name)
        self.send(grammar.notice("password changed"))

    def logged_in_elsewhere(self):
        """
        Our account logged in on another connection: this one goes.
        """
        self.send(grammar.notice(f"{self.name} logged in from another connection; "
                                 f"closing this one"))
        self.account = None
        self._departure = "logged in elsewhere"
        if self._joined:
            self._joined = False
            self.hub.disconnect(self, self._departure)
        self.close_when_sent()

    # --- files: upload ------------------------------------------------------

    def do_upload(self, arg):
        request = grammar.parse_upload(arg)
        try:
            name = grammar.check_filename(request.name)
            upload = self.store.begin(name, request.size, self.name, request.sha256)
        except ChatError as e:
            # The declared bytes follow anyway: swallow them, never as chat.
            self.receive_raw(request.size, None)
            raise e
        upload.throttle = (lambda: self.pause_input("disk"),
                           lambda: self.resume_input("disk"))
        self._upload = upload
        self.receive_raw(request.size, upload)

    def raw_finished(self, upload, rest):
        self._cancel_upload_timer()
        if upload is None:
            self.setLineMode(rest)
            return
        self._upload = None
        # Hold further input until the file is committed, so replies stay in
        # order ("/upload ..." then "/files" lists the new file).
        self.pause_input("upload")
        self.setLineMode(rest)
        d = upload.finish()
        d.addCallbacks(self._upload_stored, self._upload_failed)
        d.addBoth(self._upload_committed)

    def _upload_committed(self, _):
        if self._connected:
            self.resume_input("upload")
            self._finish_input()

    def _upload_stored(self, result):
        entry, removed = result
        self.log.info("{name} stored {file} ({size} bytes)", name=self.name,
                      file=entry.name, size=entry.size)
        self.send(grammar.notice(
            f"stored {entry.name}: {entry.size} bytes, sha256 {entry.sha256}"))
        self.hub.notify(
            f"{self.name} shared {entry.name} ({grammar.format_size(entry.size)})",
            exclude=self)
        for old in removed:
            self.hub.notify(
                f"{old.name} was removed (only the {self.store.keep} newest files are kept)")

    def _upload_failed(self, failure):
        if failure.check(ChatError):
            self.error(failure.value.message)
        else:
            self.log.failure("storing an upload from {name} failed", failure,
                             name=self.name)
            self.error("could not store the file (internal error)")

    # --- files: list and download ---------------------------------------

    def do_files(self, arg):
        entries = self.store.entries
        if not entries:
            self.send(grammar.reply("no files shared yet"))
        for entry in entries:
            when = datetime.fromtimestamp(entry.time, timezone.utc)
            self.send(grammar.reply(
                f"{entry.name}: {entry.size} bytes, shared by {entry.uploader} "
                f"at {when:%Y-%m-%d %H:%M:%S} UTC, sha256 {entry.sha256}"))

    def do_download(self, name):
        if not name:
            raise ChatError("usage: /download NAME")
        entry = self.store.find(name)
        try:
            source = open(self.store.path(entry).path, "rb")
        except OSError:
            raise ChatError(f"no such file: {name}")
        self.send_file(grammar.file_header(entry.size, entry.sha256, entry.name), source)


def _peer_address(transport):
    try:
        peer = transport.getPeer()
        return f"{peer.host}:{peer.port}"
    except Exception:
        return "?"


KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 6}


def tune_socket(transport):
    """
    TCP_NODELAY (chat is latency-bound) and keepalive probes, so a peer that
    vanished without a FIN is found within about two minutes.
    """
    try:
        transport.setTcpNoDelay(True)
        transport.setTcpKeepAlive(True)
        handle = transport.getHandle()
    except (AttributeError, OSError):
        return
    for option, value in KEEPALIVE.items():
        if hasattr(socket, option):
            try:
                handle.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
            except OSError:
                pass


class Refusal(protocol.Protocol):
    """
    Says why in one error line, then closes: for connections over a limit.
    """

    def __init__(self, reason):
        self.reason = reason

    def connectionMade(self):
        self.transport.write(grammar.encode_line(grammar.error(self.reason)))
        self.transport.loseConnection()


class ChatFactory(protocol.Factory):
    """
    Makes ``ChatProtocol``s sharing one hub and file store, within the
    connection limits.
    """

    protocol = ChatProtocol
    log = Logger()

    def __init__(self, hub, store, clock, server_name=None, limits=None,
                 accounts=None, coalesce_writes=False):
        self.accounts = accounts
        # One transport write per connection per reactor pass (the daemon);
        # off, every line is written at once (unit tests read it at once).
        self.coalescer = WriteCoalescer(clock) if coalesce_writes else None
        self.hub = hub
        self.store = store
        self.clock = clock
        self.server_name = grammar.clean_text(server_name or f"chatd on {socket.gethostname()}")
        self.limits = limits or Limits()
        self.connections = ConnectionCounter(self.limits.max_conns_per_ip,
                                             self.limits.max_conns)

    def buildProtocol(self, addr):
        key = address_key(getattr(addr, "host", "") or "")
        refusal = self.connections.refusal(key)
        if refusal is not None:
            self.log.info("refused {peer}: {why}", peer=key, why=refusal)
            return Refusal(refusal)
        p = protocol.Factory.buildProtocol(self, addr)
        p.address_key = key
        self.connections.opened(key)
        return p

    def connection_closed(self, p):
        if p.address_key is not None:
            self.connections.closed(p.address_key)
            p.address_key = None
