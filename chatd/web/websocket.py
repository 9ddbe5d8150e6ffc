"""
The WebSocket way in: each text frame is one protocol line, both ways, and
an upload's bytes travel as binary frames.  Every frame goes to a
``ChatProtocol`` built by the daemon's own ``ChatFactory`` (so names,
accounts, pacing and the connection limits are the same as over TCP); this
module only turns frames into the bytes that protocol reads and its writes
back into frames.
"""

import collections

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import error
from twisted.internet.interfaces import IConsumer, ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chatd.admission import release
from chatd.web.origins import origin_allowed

CRLF = b"\r\n"
# Largest frame read: a text frame is one line (over --max-line the protocol
# refuses it with one "!" line); binary frames are upload chunks.
MAX_FRAME = 1 << 20
TEXT, BINARY = 0x81, 0x82  # first header byte: FIN and the opcode
_SHORT_HEADERS = {kind: [bytes((kind, n)) for n in range(126)] for kind in (TEXT, BINARY)}
CLOSE_NORMAL = 1000
CLOSE_REFUSED = 4000  # private-use close code: the chat refused or dropped us


def frame(kind, payload):
    """
    One unmasked server frame.  Written here rather than with autobahn's
    ``sendMessage``, whose per-frame bookkeeping is most of the cost of a
    WebSocket user in a big room; autobahn still reads every frame and does
    the handshake and closing.
    """
    n = len(payload)
    if n < 126:
        return _SHORT_HEADERS[kind][n] + payload
    if n < 65536:
        return bytes((kind, 126)) + n.to_bytes(2, "big") + payload
    return bytes((kind, 127)) + n.to_bytes(8, "big") + payload


@implementer(ITransport, IConsumer)
class FrameTransport:
    """
    What the ``ChatProtocol`` writes to: its CRLF-ended lines become text
    frames, and while a pull producer (a file being sent) is registered,
    its bytes become binary frames.  Flow control is the TCP connection's.
    """

    def __init__(self, socket):
        self.socket = socket  # the ChatWebSocket
        self.tcp = socket.transport
        self.disconnecting = False
        self._file = False  # a file is being sent: write binary frames
        self.last_error = None  # the last line written, if an error: the close reason

    @property
    def connected(self):
        return self.tcp.connected and not self.disconnecting

    def write(self, data):
        if self.disconnecting or self.socket.state != WebSocketProtocol.STATE_OPEN:
            return
        if self._file:
            self.tcp.write(frame(BINARY, data))
            return
        framed, self.last_error = self.socket.factory.frames(data)
        self.tcp.write(framed)

    def writeSequence(self, data):
        self.write(b"".join(data))

    def registerProducer(self, producer, streaming):
        self._file = not streaming
        self.tcp.registerProducer(producer, streaming)

    def unregisterProducer(self):
        self._file = False
        self.tcp.unregisterProducer()

    def pauseProducing(self):
        self.socket.pause_reading()

    def resumeProducing(self):
        self.socket.resume_reading()

    def stopProducing(self):
        self.loseConnection()

    def loseConnection(self):
        if not self.disconnecting:
            self.disconnecting = True
            reason = None
            if self.last_error is not None:
                reason = self.last_error.decode("utf-8", "replace")
            self.socket.close(reason)

    def abortConnection(self):
        self.disconnecting = True
        self.tcp.abortConnection()

    def getPeer(self):
        return self.tcp.getPeer()

    def getHost(self):
        return self.tcp.getHost()

    def getHandle(self):
        """
        The socket (under the TLS layer, with https/wss).
        """
        return getattr(self.tcp, "transport", self.tcp).getHandle()

    def setTcpNoDelay(self, enabled):
        self.tcp.setTcpNoDelay(enabled)

    def setTcpKeepAlive(self, enabled):
        self.tcp.setTcpKeepAlive(enabled)


class ChatWebSocket(WebSocketServerProtocol):
    """
    One browser (or other WebSocket) user: frames in, frames out, the chat
    itself in ``self.chat``.

    Frames wait here, in order, while the chat protocol has paused its
    input (pacing, an upload being stored, a password being checked), and
    the socket is not read meanwhile; so whether a frame is a line or an
    upload's bytes is decided when the protocol is ready for it.
    """

    _log = Logger()  # autobahn's own ``log`` stays: it filters its debug lines
    chat = None
    chat_transport = None
    frames = ()
    _drain_call = None
    _reading = True

    def onConnect(self, request):
        host = request.headers.get("host", "")
        if not origin_allowed(request.headers.get("origin"), host, self.factory.origins):
            self._log.info("refused a WebSocket from origin {origin}",
                          origin=request.headers.get("origin"))
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN,
                                 "this page's origin may not use this chat server")
        return None

    def onOpen(self):
        # The handshake's text is not needed again: an idle user costs less.
        self.http_headers, self.http_request_data, self.http_response_data = {}, b"", b""
        try:
            # The HTTP channel that handed us the connection was its producer.
            self.transport.unregisterProducer()
        except Exception:
            pass
        self.chat_transport = FrameTransport(self)
        # Counted since it was accepted (CountedAtAccept): from now on as
        # the chat connection the chat factory builds, once.
        release(self.transport, self.factory.chat.connections)
        try:
            self.chat = self.factory.chat.buildProtocol(self.transport.getPeer())
            self.chat.kind = "web"  # for the metrics' connections by kind
            self.chat.makeConnection(self.chat_transport)
        except Exception:
            self._log.failure("starting a WebSocket chat connection failed")
            self.chat_transport.abortConnection()

    # --- frames in ----------------------------------------------------------

    def onMessage(self, payload, isBinary):
        if self.chat is None or self.chat_transport.disconnecting:
            return
        if not self.frames and not self.chat.paused:
            self._feed(payload, isBinary)
            return
        if not self.frames:
            self.frames = collections.deque()
        self.frames.append((payload, isBinary))
        self._drain()

    def _drain(self):
        chat = self.chat
        while self.frames and not chat.paused and not self.chat_transport.disconnecting:
            payload, binary = self.frames.popleft()
            self._feed(payload, binary)
        if not self.frames:
            self.frames = ()  # most users never wait: no deque each

    def _feed(self, payload, binary):
        """
        One frame to the chat protocol: a text frame as one line, a binary
        frame as the next bytes of the upload in progress.
        """
        chat = self.chat
        if not hasattr(chat, "line_mode"):  # a Refusal: its line is out
            return
        uploading = not chat.line_mode
        if binary:
            if not uploading:
                chat.error("binary frame outside an upload; discarded "
                           "(send /upload NAME SIZE [SHA256] first)")
                return
            left = chat._raw_left  # the bytes the upload still expects
            if len(payload) > left:
                chat.error(f"binary frame {len(payload) - left} bytes longer than "
                           f"the upload; the extra bytes were discarded")
                payload = payload[:left]
            chat.dataReceived(payload)
        elif uploading:
            chat.error("text frame during an upload; discarded (send the rest "
                       "of the file as binary frames)")
        elif b"\n" in payload or b"\r" in payload:
            chat.error("a text frame is one line: no line breaks in it; discarded")
        else:
            chat.dataReceived(payload + b"\n")

    def pause_reading(self):
        if self._reading:
            self._reading = False
            self.transport.pauseProducing()

    def resume_reading(self):
        if not self._reading:
            self._reading = True
            self.transport.resumeProducing()
        # The protocol resumes from inside its own bookkeeping: feed the
        # waiting frames on the next reactor pass.
        if self.frames and self._drain_call is None:
            self._drain_call = self.factory.clock.callLater(0, self._drain_later)

    def _drain_later(self):
        self._drain_call = None
        if self.chat is not None:
            self._drain()

    # --- closing ------------------------------------------------------------

    def close(self, reason=None):
        """
        The chat protocol is done with this connection: a clean close,
        with the error it said last, if its last line was one, as the reason.
        """
        if reason is None:
            self.sendClose(CLOSE_NORMAL)
        else:
            self.sendClose(CLOSE_REFUSED, reason)

    def onClose(self, wasClean, code, reason):
        # Closed before it opened: the count it came with goes now.
        release(self.transport, self.factory.chat.connections)
        chat, self.chat = self.chat, None
        self.frames = ()
        if self._drain_call is not None and self._drain_call.active():
            self._drain_call.cancel()
        if chat is not None:
            self.chat_transport.disconnecting = True
            chat.connectionLost(Failure(error.ConnectionDone(
                "WebSocket closed" if wasClean else "WebSocket lost")))


class ChatWebSocketFactory(WebSocketServerFactory):
    """
    Makes ``ChatWebSocket``s onto the daemon's ``ChatFactory`` ``chat``.
    """

    protocol = ChatWebSocket

    def __init__(self, chat, clock, origins=()):
        WebSocketServerFactory.__init__(self, reactor=clock)
        self.chat = chat
        self.clock = clock
        self.origins = frozenset(origins)
        self._last_lines = None  # the last lines framed, and their frames
        self._last_frames = (b"", None)
        # failByDrop off: a protocol error gets a close frame with its code
        # (1007 bad UTF-8, 1009 too big) before the connection goes.
        self.setProtocolOptions(webStatus=False, failByDrop=False,
                                maxFramePayloadSize=MAX_FRAME,
                                maxMessagePayloadSize=MAX_FRAME)

    def frames(self, data):
        """
        CRLF-ended lines as text frames, and the text of the last line if
        it is an error (``! ...``), else ``None``.  A line to a room reaches
        every member in the same reactor pass: the frames made for one are
        kept for the next.
        """
        if data == self._last_lines:
            return self._last_frames
        lines = data.split(CRLF)
        lines.pop()  # what follows the last CRLF: nothing
        error = lines[-1][2:] if lines and lines[-1][:2] == b"! " else None
        result = (b"".join([frame(TEXT, line) for line in lines]), error)
        self._last_lines, self._last_frames = data, result
        return result
