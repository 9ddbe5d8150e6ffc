"""
The server side of a chatd connection: connection policy (greeting, limits,
timers, pacing, half-close, departure) and dispatch of each line to its
command in ``chatd.commands``, on top of the shared line/raw framing of
``TransferReceiver`` (uploads in, downloads out).

Names, rooms and fan-out are the hub's job, the commands live in
``chatd/commands/`` by area, and the wording of every line is the grammar's.
"""

from twisted.internet import protocol
from twisted.internet.interfaces import IHalfCloseableProtocol, ISSLTransport
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from chatd import grammar
from chatd.commands import COMMANDS, files, operators
from chatd.commands.accounts import login_first
from chatd.grammar import ChatError
from chatd.hub import IChatClient
from chatd.limits import TokenBucket
from chatd.sockopts import peer_address, tune_socket
from chatd.transfer import TransferReceiver

FRAGMENT_DELAY = 0.5  # an unterminated fragment idle this long is a line


@implementer(IChatClient, IHalfCloseableProtocol)
class ChatProtocol(TransferReceiver, TimeoutMixin):
    """
    One user's connection.  ``TimeoutMixin``'s one timeout is the upload
    idle timeout: it runs only while a raw section is being received.
    """

    log = Logger()
    name = None
    address_key = None  # set by the factory, for the connection limits
    account = None  # the name key of the account logged in to
    kind = "tcp"  # tcp or tls (or web, for an adapter), for the metrics
    # Rarely changed state: class defaults, an instance attribute only once
    # it changes (see __init__ for why).
    _upload = None  # the Upload being received
    _connected = True
    _input_ended = False
    _discarding = False  # inside an over-long line, up to its newline
    _after_long_line = None  # what followed an over-long line
    _rate_timer = None
    _departure = "connection lost"
    _closing = False  # the server is shutting down
    _dropped = False  # for its send queue

    def __init__(self):
        """
        Every attribute an idle logged-in connection has, set here first and
        in this order, and nothing else: CPython keeps instance attributes in
        a compact table shared by the class only for the names the first
        instances set (at most 30 of them); an instance needing another name
        gets its own dict, about 1.5 KB per connection (issue 13).  Rare
        state stays a class default above until it changes.
        """
        self.factory = self.transport = None
        self.connected = 0
        self.address_key = None
        self.name = None
        self.rooms = ()  # set by the hub: the rooms joined, the current one last
        self._joined = False
        self.MAX_LENGTH = LineReceiver.MAX_LENGTH
        self._bucket = None
        self.sendq_limit = 0
        self._coalescer = self._flow = self._pending_out = None
        self._direct = False
        self._buffer = b""
        self._busyReceiving = False
        self._fragment_timer = None
        self.callLater = None  # TimeoutMixin's clock, from the factory
        self.bytes_sent = 0
        # Input paused (pacing, an upload committing, a cluster /nick waiting
        # for Redis): set later on some connections only, in any order, each
        # would cost every such connection a dict of its own.
        self.paused = False
        self._pauses = None

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
                          peer=peer_address(self.transport))
            self.send(grammar.notice(
                f"Welcome to {self.factory.server_name}: {len(self.hub)} online; "
                f"{login_first(self)}; type /help for commands"))
            return
        name = self.hub.connect(self)
        self._joined = True
        self.log.info("{name} connected from {peer}", name=name,
                      peer=peer_address(self.transport))
        self.send(grammar.notice(
            f"Welcome to {self.factory.server_name}: {len(self.hub)} online, "
            f"you are {name}; files up to {grammar.format_size(self.store.max_size)}; "
            f"type /help for commands"))
        self.hub.replay(self)

    def start_connection(self):
        """
        Socket options and this connection's limits (shared with pair mode).
        """
        self.callLater = self.factory.clock.callLater  # TimeoutMixin's clock
        if ISSLTransport.providedBy(self.transport):
            self.kind = "tls"
        tune_socket(self.transport)
        limits = self.limits
        self.MAX_LENGTH = limits.max_line + 1  # + the CR of a CRLF
        if limits.rate:
            self._bucket = TokenBucket(limits.rate, limits.burst, self.factory.clock)
        self.start_output_flow(limits.sendq, self.factory.coalescer)

    def connectionLost(self, reason=protocol.connectionDone):
        self._cancel_fragment_timer()
        self.setTimeout(None)
        if self._rate_timer is not None and self._rate_timer.active():
            self._rate_timer.cancel()  # lines still waiting left with their sender
        self._connected = False
        self.factory.connection_closed(self)
        if self._upload is not None:
            self._upload.cut_off()  # kept for /upload-resume if it can be
            self.factory.metrics.upload_refused("incomplete")
        self._upload = None
        if self._joined:
            self.leave(self._departure)
            self.log.info("{name} disconnected ({why})", name=self.name,
                          why=self._departure)

    @property
    def connected_now(self):
        """
        Whether the connection is still open (an answer that arrives later,
        from a thread, is dropped otherwise).
        """
        return self._connected

    def enter_as(self, name):
        """
        Join the chat as ``name`` (an account's name: whoever holds it is
        moved aside), or take it if already in.
        """
        if not self._joined:
            self.hub.connect(self, name)
            self._joined = True
            self.hub.replay(self)
        elif self.name != name:
            self.hub.rename(self, name, claim=True)

    def leave(self, reason, announce=False):
        """
        Leave the chat (once), with ``reason`` as the departure told to
        others (``announce``: even past the presence limit).
        """
        self._departure = reason
        if self._joined:
            self._joined = False
            self.hub.disconnect(self, reason, announce)

    def refused_login(self, key):
        """
        Whether logging in to the account ``key`` was refused (a ban: the
        connection was told and is closing).
        """
        return operators.refuse_banned_account(self, key)

    @property
    def receiving(self):
        """
        Whether an upload is arriving or being stored.
        """
        return self._upload is not None or bool(self._pauses and "upload" in self._pauses)

    @property
    def transferring(self):
        """
        Whether an upload is arriving or being stored, or a file being sent.
        """
        return self.receiving or self._sending_file

    def shut_down(self, line):
        """
        The server is stopping: send ``line``, then close once a transfer
        in progress is done (the shutdown service aborts what is left when
        the grace period ends).
        """
        self._closing = True
        self.send(line)
        if not self.receiving:  # else once the upload is stored (resume_after)
            self.close_when_sent()  # after a download being sent, if any

    def send_queue_full(self):
        """
        This client stopped reading: drop it, and say why to the others
        (once: an aborted TCP transport is not ``disconnecting``, so lines
        of the same pass queue up and overflow again).
        """
        if self._dropped:
            TransferReceiver.send_queue_full(self)
            return
        self._dropped = True
        self._departure = (f"not reading: send queue over "
                           f"{grammar.format_size(self.limits.sendq)}")
        self.log.warn("dropping {name}: {why}", name=self.name, why=self._departure)
        self.factory.metrics.client_dropped("sendq")
        TransferReceiver.send_queue_full(self)

    def error(self, message):
        self.send(grammar.error(message))

    # --- input ------------------------------------------------------------

    def dataReceived(self, data):
        self.factory.metrics.received(len(data))
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
            if self.timeOut is None:
                self.setTimeout(self.limits.upload_timeout)
            else:
                self.resetTimeout()

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
                self.factory.metrics.upload_refused("incomplete")
                self._upload.cut_off()
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

    # --- uploads --------------------------------------------------------

    def receive_upload(self, incoming, size):
        """
        Take the next ``size`` raw bytes into ``incoming`` (an upload).
        """
        self._upload = incoming
        self.receive_raw(size, incoming)

    def raw_finished(self, incoming, rest):
        self.setTimeout(None)
        self.setLineMode(rest)
        if incoming is not None:
            self._upload = None
            files.upload_received(self, incoming)

    def resume_after(self, reason):
        """
        A command that held input (``pause_input(reason)``) is done.
        """
        if self._connected and self._closing:
            self.close_when_sent()
        elif self._connected:
            self.resume_input(reason)
            self._finish_input()

    def timeoutConnection(self):
        """
        An upload stalled: the byte stream is out of step, so cancel and close.
        """
        if self.line_mode:
            return
        what = (f"upload of {self._upload.name}" if self._upload is not None
                else "refused upload")  # its bytes were being skipped
        self.error(f"{what} timed out after "
                   f"{self.limits.upload_timeout:g} s idle; not stored")
        if self._upload is not None:
            self._upload.cut_off()
            self._upload = None
            self.factory.metrics.upload_refused("timeout")
        self.factory.metrics.client_dropped("timeout")
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
        metrics = self.factory.metrics
        mark = metrics.line_arrived()
        try:
            self.handle_line(line)
        except ChatError as e:
            self.error(e.message)
        except Exception:
            self.log.failure("error handling a line from {name}", name=self.name)
            self.error("internal error; your line was not handled")
        metrics.line_handled(mark)

    def handle_line(self, line):
        """
        A chat line or a command.
        """
        parsed = grammar.parse_client_line(line)
        if parsed is None:
            return
        command = COMMANDS.find(parsed.name)
        if self.account is None and not (command and command.before_login) and \
                self.accounts is not None and self.accounts.require_login:
            raise ChatError(login_first(self))
        if command is None:
            raise ChatError(f"unknown command: /{parsed.name} (try /help)")
        if command.speaks:
            operators.check_voice(self)
        command.run(self, parsed.arg)

    def logged_in_elsewhere(self):
        """
        Our account logged in on another connection: this one goes.
        """
        self.send(grammar.notice(f"{self.name} logged in from another connection; "
                                 f"closing this one"))
        self.account = None
        self.leave("logged in elsewhere")
        self.close_when_sent()
