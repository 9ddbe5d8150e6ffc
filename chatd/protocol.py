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
from zope.interface import implementer

from chatd import grammar
from chatd.grammar import ChatError
from chatd.hub import IChatClient
from chatd.transfer import TransferReceiver

FRAGMENT_DELAY = 0.5  # an unterminated fragment idle this long is a line


def help_lines(max_file_size):
    limit = grammar.format_size(max_file_size)
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
        "/help                this list",
        "/quit [REASON]       leave",
    ]


@implementer(IChatClient, IHalfCloseableProtocol)
class ChatProtocol(TransferReceiver):
    """
    One user's connection.
    """

    log = Logger()
    name = None

    def __init__(self):
        self._upload = None  # the Upload being received
        self._fragment_timer = None
        self._joined = False
        self._connected = True
        self._input_ended = False

    # --- connection -------------------------------------------------------

    @property
    def hub(self):
        return self.factory.hub

    @property
    def store(self):
        return self.factory.store

    def connectionMade(self):
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass
        self.peer = _peer_address(self.transport)
        name = self.hub.connect(self)
        self._joined = True
        self.log.info("{name} connected from {peer}", name=name, peer=self.peer)
        self.send(grammar.notice(
            f"Welcome to {self.factory.server_name}: {len(self.hub)} online, "
            f"you are {name}; files up to {grammar.format_size(self.store.max_size)}; "
            f"type /help for commands"))

    def connectionLost(self, reason=protocol.connectionDone):
        self._cancel_fragment_timer()
        self._connected = False
        if self._upload is not None:
            self._upload.abort()
        self._upload = None
        if self._joined:
            self._joined = False
            self.hub.disconnect(self, "connection lost")
            self.log.info("{name} disconnected ({peer})", name=self.name, peer=self.peer)

    def error(self, message):
        self.send(grammar.error(message))

    # --- input ------------------------------------------------------------

    def dataReceived(self, data):
        TransferReceiver.dataReceived(self, data)
        if self.line_mode and self._buffer and not self.paused:
            self._arm_fragment_timer()
        else:
            self._cancel_fragment_timer()

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
        self.error(f"line too long (over {self.MAX_LENGTH} bytes); closing")
        self.transport.loseConnection()

    def lineReceived(self, line):
        command = grammar.parse_client_line(line)
        if command is None:
            return
        try:
            handler = getattr(self, "do_" + command.name, None)
            if handler is None:
                raise ChatError(f"unknown command: /{command.name} (try /help)")
            handler(command.arg)
        except ChatError as e:
            self.error(e.message)
        except Exception:
            self.log.failure("error handling a line from {name}", name=self.name)
            self.error("internal error; your line was not handled")

    # --- chat commands ------------------------------------------------------

    def do_(self, text):
        self.hub.say(self, text)

    def do_me(self, text):
        if not text:
            raise ChatError("usage: /me ACTION")
        self.hub.act(self, text)

    def do_nick(self, new):
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
        for line in help_lines(self.store.max_size):
            self.send(grammar.reply(line))

    def do_quit(self, reason):
        self.send(grammar.notice("bye"))
        self._joined = False
        self.hub.disconnect(self, reason)
        self.log.info("{name} quit", name=self.name)
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
        self._upload = upload
        self.receive_raw(request.size, upload)

    def raw_finished(self, upload, rest):
        if upload is None:
            self.setLineMode(rest)
            return
        self._upload = None
        # Hold further input until the file is committed, so replies stay in
        # order ("/upload ..." then "/files" lists the new file).
        self.pauseProducing()
        self.setLineMode(rest)
        d = upload.finish()
        d.addCallbacks(self._upload_stored, self._upload_failed)
        d.addBoth(self._upload_committed)

    def _upload_committed(self, _):
        if self._connected:
            self.resumeProducing()
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


class ChatFactory(protocol.Factory):
    """
    Makes ``ChatProtocol``s sharing one hub and file store.
    """

    protocol = ChatProtocol

    def __init__(self, hub, store, clock, server_name=None):
        self.hub = hub
        self.store = store
        self.clock = clock
        self.server_name = server_name or f"chatd on {socket.gethostname()}"
