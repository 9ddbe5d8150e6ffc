"""
This node's link to Redis: two connections (commands, and a subscriber),
each kept up by a ``ClientService`` with back-off, both logged with named
fields.  The link is *up* while both are connected and subscribed.

What goes out is bounded: while the link is down nothing is queued (a
publish is dropped and counted), and while Redis is slow at most
``max_pending`` commands wait for their replies; past that, publishes are
dropped and counted too, like a chat client's ``--sendq``.  Nothing here
ever blocks the reactor.
"""

from twisted.application.internet import ClientService
from twisted.internet import defer, protocol
from twisted.internet.endpoints import HostnameEndpoint
from twisted.logger import Logger

import txredisapi

from chatd.grammar import ChatError
from chatd.sendnow import send_now
from chatd.sockopts import tune_socket

MAX_PENDING = 10000  # commands awaiting a reply before publishes are dropped
REPLY_TIMEOUT = 5.0  # seconds; a Redis this slow is treated as gone
CONNECT_TIMEOUT = 5.0
BACKOFF = (0.2, 5.0, 2.0)  # first retry, longest wait, growth: seconds


class LinkDown(Exception):
    """
    The command could not be sent: the link is down or its queue is full.
    """


class _SendingNow:
    """
    A Redis connection's transport whose ``write`` sends at once when
    Twisted holds nothing for it (``send_now``): a line said here is
    published before this node's own fan-out of it is written, so the other
    nodes fan it out meanwhile, not one reactor pass later.
    """

    def __init__(self, transport):
        self._transport = transport

    def write(self, data):
        send_now(self._transport, data)

    def writeSequence(self, data):
        send_now(self._transport, b"".join(data))

    def __getattr__(self, name):
        return getattr(self._transport, name)


class _Tuned:
    """
    TCP_NODELAY (a line crossing nodes is two small writes that must not
    wait for an ACK), keepalive (a Redis on a vanished host is noticed),
    and writes sent at once.
    """

    def connectionMade(self):
        tune_socket(self.transport)
        self.transport = _SendingNow(self.transport)
        return super().connectionMade()


class _Commands(_Tuned, txredisapi.RedisProtocol):
    link = None

    def connectionLost(self, why):
        txredisapi.RedisProtocol.connectionLost(self, why)
        self.link._lost(self, why)


class _Subscriber(_Tuned, txredisapi.SubscriberProtocol):
    link = None

    def messageReceived(self, pattern, channel, message):
        self.link.on_message(channel, message)

    def connectionLost(self, why):
        txredisapi.SubscriberProtocol.connectionLost(self, why)
        self.link._lost(self, why)


class _Factory(protocol.Factory):
    """
    Builds one kind of connection for the link (txredisapi's own factory
    pools and queues without bound, so the link does its own).
    """

    noisy = False

    def __init__(self, link, kind, dbid):
        self.link, self.kind, self.dbid = link, kind, dbid

    def buildProtocol(self, addr):
        p = self.kind(charset="utf-8", replyTimeout=REPLY_TIMEOUT,
                      password=self.link.address.password, dbid=self.dbid,
                      convertNumbers=False)
        p.factory, p.link = self, self.link
        p.callLater = self.link.clock.callLater
        return p

    # txredisapi calls these when AUTH or SELECT is refused.
    def stopTrying(self):
        self.link.log.error("redis at {address} refused AUTH or SELECT; retrying",
                            address=str(self.link.address))

    def connectionError(self, why):
        pass


class RedisLink:
    """
    ``on_message(channel, message)`` for every message on ``channels``;
    ``on_up()`` when the link comes (back) up, ``on_down()`` when it goes.
    """

    log = Logger()

    def __init__(self, address, reactor, channels, on_message, on_up, on_down,
                 max_pending=MAX_PENDING):
        self.address = address
        self.clock = reactor
        self.channels = list(channels)
        self.on_message, self.on_up, self.on_down = on_message, on_up, on_down
        self.max_pending = max_pending
        self.dropped = 0  # publishes dropped since the start
        self.up = False
        self._commands = None
        self._subscriber = None
        self._services = []
        self._stopping = False
        for name, kind, dbid in (("commands", _Commands, address.db or None),
                                 ("subscriber", _Subscriber, None)):
            endpoint = HostnameEndpoint(reactor, address.host, address.port,
                                        timeout=CONNECT_TIMEOUT)
            self._services.append(ClientService(
                endpoint, _Factory(self, kind, dbid), clock=reactor,
                retryPolicy=self._retry_policy(name),
                prepareConnection=self._prepare(name)))

    def start(self):
        self._stopping = False
        for s in self._services:
            s.startService()

    def stop(self):
        """
        Close both connections and stop retrying; fires when they are closed.
        """
        self._stopping = True
        return defer.gatherResults([s.stopService() for s in self._services],
                                   consumeErrors=True)

    # --- connection state -------------------------------------------------

    def _retry_policy(self, name):
        first, longest, factor = BACKOFF

        def delay(attempt):
            wait = min(first * factor ** min(attempt - 1, 30), longest)
            self.log.info("redis {connection} connection to {address}: attempt "
                          "{attempt} failed, next in {delay:.1f} s",
                          connection=name, address=str(self.address),
                          attempt=attempt, delay=wait)
            return wait
        return delay

    def _prepare(self, name):
        def ready(proxy):
            # ClientService hands over a proxy; whenConnected fires with
            # the protocol itself, the one whose connectionLost we hear.
            d = proxy.whenConnected()
            if name == "subscriber":
                d.addCallback(lambda p: p.subscribe(self.channels).addCallback(lambda _: p))
            d.addCallback(lambda p: self._ready(name, p))
            return d
        return ready

    def _ready(self, name, p):
        if not p.connected:
            return
        if name == "commands":
            self._commands = p
        else:
            self._subscriber = p
        self.log.info("redis {connection} connection to {address} is up",
                      connection=name, address=str(self.address))
        if not self.up and self._commands is not None and self._subscriber is not None:
            self.up = True
            self.on_up()

    def _lost(self, p, why):
        if p is self._commands:
            self._commands, name = None, "commands"
        elif p is self._subscriber:
            self._subscriber, name = None, "subscriber"
        else:
            return  # lost before it was ready: the retry policy logs it
        if not self._stopping:
            self.log.warn("redis {connection} connection to {address} lost "
                          "({why}); reconnecting with back-off",
                          connection=name, address=str(self.address),
                          why=why.getErrorMessage())
        if self.up:
            self.up = False
            self.on_down()

    # --- sending ------------------------------------------------------------

    @property
    def pending(self):
        """
        Commands sent and not yet answered.
        """
        p = self._commands
        return len(p.replyQueue.waiting) if p is not None else 0

    def _connection(self):
        p = self._commands
        if not self.up or p is None or not p.connected:
            raise LinkDown("the redis link is down")
        if self.pending >= self.max_pending:
            raise LinkDown(f"over {self.max_pending} redis commands waiting")
        return p

    def call(self, method, *args):
        """
        Run the txredisapi command ``method``; a ``Deferred`` of its reply,
        failed with ``LinkDown`` at once when it cannot be sent.
        """
        try:
            return getattr(self._connection(), method)(*args)
        except LinkDown:
            return defer.fail()

    def publish(self, channel, message):
        """
        Send ``message`` to ``channel``, or drop and count it; never waits.
        """
        try:
            p = self._connection()
        except LinkDown:
            self.dropped += 1
            return False
        p.publish(channel, message).addErrback(self._publish_failed)
        return True

    def _publish_failed(self, failure):
        self.dropped += 1  # the connection went while the reply was awaited


def refused(failure, log, what, answer):
    """
    An errback for a store's Redis command: a ``ChatError`` (the link is
    down) passes; Redis refusing the command, or a reply no node would
    make, is logged as ``what``'s and answered with ``ChatError(answer)``.
    """
    if failure.check(ChatError):
        return failure
    if failure.check(txredisapi.ResponseError):
        log.warn("redis refused {what} command: {why}", what=what,
                 why=failure.getErrorMessage())
    else:
        log.failure("{what} command's reply was not understood", failure, what=what)
    raise ChatError(answer)
