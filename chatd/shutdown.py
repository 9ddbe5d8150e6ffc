"""
Graceful shutdown: on SIGTERM or SIGINT (``twistd`` stopping the service
tree), every connection is told ``*** server shutting down`` and closed;
transfers in progress get until the grace period's end to finish; what is
left then is aborted (an unfinished upload's temporary file is removed, so
nothing half-written is ever listed), and the process exits 0 in time even
with thousands of clients and readers that stopped reading.
"""

import signal

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger

from chatd import grammar

DRAIN = 2.0  # seconds an idle connection has to take its last lines


class LiveConnections(set):
    """
    A factory's open connections: ``closed(p)`` as each goes, and
    ``all_closed()`` fires once none is left.  ``bytes_sent_closed`` keeps
    what the closed ones were sent (for the metrics).
    """

    def __init__(self):
        set.__init__(self)
        self.bytes_sent_closed = 0
        self._waiting = []

    def closed(self, p):
        if p not in self:
            return
        self.discard(p)
        self.bytes_sent_closed += p.bytes_sent
        if not self:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def all_closed(self):
        if not self:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiting.append(d)
        return d


class GracefulShutdown(Service):
    """
    Stops ``factory``'s connections when the service tree stops (listening
    ports stop alongside: they are its siblings).  The returned Deferred
    fires when every connection is gone, by ``grace`` seconds at most.
    """

    log = Logger()

    def __init__(self, factory, clock, grace=10.0, message=None):
        self.factory = factory
        self.clock = clock
        self.grace = grace
        self.message = message

    def notice(self):
        return grammar.notice("server shutting down"
                              + (f": {self.message}" if self.message else ""))

    def stopService(self):
        Service.stopService(self)
        factory = self.factory
        factory.closing = True
        live = list(factory.live)
        self.log.info("shutting down: {count} connections, {transfers} transferring",
                      count=len(live), transfers=sum(p.transferring for p in live))
        line = self.notice()
        for p in live:
            p.shut_down(line)
        # Aborting takes a reactor pass or two: leave a margin in the grace.
        deadline = max(0.0, self.grace - min(1.0, self.grace / 5))
        timers = [self.clock.callLater(min(DRAIN, deadline), self._abort, False),
                  self.clock.callLater(deadline, self._abort, True)]
        d = factory.live.all_closed()

        def done(result):
            for timer in timers:
                if timer.active():
                    timer.cancel()
            self.log.info("all connections closed")
            return result

        return d.addBoth(done)

    def _abort(self, transfers):
        """
        Abort the connections still open (with ``transfers``, also those
        still moving a file).
        """
        left = [p for p in self.factory.live if transfers or not p.transferring]
        if left:
            self.log.info("aborting {count} connections", count=len(left),
                          transfers=transfers)
        for p in left:
            p.transport.abortConnection()


def exit_zero_on_signals(reactor):
    """
    Make SIGTERM and SIGINT stop the reactor (so the service tree stops
    gracefully) without twistd then re-raising the signal: a clean
    shutdown exits 0.  Call once the reactor runs (it installs its own
    handlers at startup).
    """
    def stop():
        try:
            reactor.stop()
        except ReactorNotRunning:
            pass  # a second signal while stopping

    def handler(number, frame):
        reactor.callFromThread(stop)

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, handler)
