"""
The Redis side of names: claims, releases, re-registration, private
messages by name, guest numbers, and node liveness (the heartbeat key and
the release of dead nodes' names).  Each change is one Lua script from
``scripts``, so it is atomic however many nodes race.
"""

from twisted.internet import task
from twisted.logger import Logger

from chatd import grammar
from chatd.cluster import scripts

HEARTBEAT_TTL = 5  # seconds a node's heartbeat key lives unless renewed
HEARTBEAT_EVERY = 1.0  # seconds between renewals, and between checks for dead nodes
GUEST_BLOCK = 128  # guest numbers reserved per INCRBY, doubled when used up (a class
# connecting at once stays inside the first block: past it numbers can clash)
MAX_GUEST_BLOCK = 1024
LOGGED_IN = -1  # the claim time of a logged-in name: it wins every clash...
LOGIN_NOW = -2  # ...but a login now takes it even from a logged-in holder


class ClusterNames:
    """
    Names and liveness for the node ``node``, through ``link``.
    """

    log = Logger()

    def __init__(self, link, keys, node):
        self.link, self.keys, self.node = link, keys, node

    def _eval(self, script, keys, *args):
        return self.link.call("eval", script, keys, [str(a) for a in args])

    def claim(self, name, since):
        """
        Take ``name`` unless another node holds it: a ``Deferred`` of whether
        it is ours.
        """
        key = grammar.name_key(name)
        d = self._eval(scripts.CLAIM, [self.keys.names, self.keys.node_names(self.node)],
                       self.node, key, scripts.holder(self.node, since, name))
        return d.addCallback(lambda taken: int(taken) == 1)

    def release(self, keys):
        return self._eval(scripts.RELEASE, [self.keys.names, self.keys.node_names(self.node)],
                          self.node, *keys)

    def register(self, entries, guest_floor):
        """
        Hold ``entries`` (``(name, since)`` pairs: ``since`` ``LOGGED_IN``
        wins over every earlier claim, ``LOGIN_NOW`` over every claim, and is
        then held as ``LOGGED_IN``) against other nodes' claims; a
        ``Deferred`` of the name keys lost.
        """
        args = [self.node, self.keys.prefix, guest_floor]
        for name, since in entries:
            held = max(since, LOGGED_IN)
            args += [grammar.name_key(name), repr(since), scripts.holder(self.node, held, name)]
        d = self._eval(scripts.REGISTER, [self.keys.names, self.keys.node_names(self.node),
                                          self.keys.guests], *args)
        return d.addCallback(lambda lost: list(lost or []))

    def private(self, key, message):
        """
        Publish ``message`` to the node holding ``key``: a ``Deferred`` of
        the recipient's name, or ``None`` if nobody has it.
        """
        return self._eval(scripts.PRIVATE, [self.keys.names], self.node, key,
                          self.keys.prefix, message)

    def heartbeat(self):
        d = self.link.call("set", self.keys.heartbeat(self.node), "1", HEARTBEAT_TTL)
        return d.addCallback(lambda _: self.link.call("sadd", self.keys.nodes, self.node))

    def release_nodes(self, reason, node=""):
        """
        Release every name of each node whose heartbeat expired (or of
        ``node``), announcing each departure once with ``reason``; a
        ``Deferred`` of the nodes released.
        """
        return self._eval(scripts.REAP, [self.keys.nodes, self.keys.names],
                          self.keys.prefix, self.keys.lobby, reason, node)

    def reserve_guests(self, count):
        return self.link.call("incrby", self.keys.guests, count)


class GuestNumbers:
    """
    Guest numbers, unique across the cluster: blocks reserved from one
    counter with INCRBY and handed out here without waiting.  Used up
    before the next block arrives (or while the link is down), numbers go
    on past the last block; a clash is then caught by the name's claim.
    """

    log = Logger()

    def __init__(self, names):
        self.names = names
        self.blocks = []  # [next, end] ranges reserved, oldest first
        self.last = 0  # the last number handed out
        self.block = GUEST_BLOCK
        self._asking = False

    def take(self):
        while self.blocks and self.blocks[0][0] > self.blocks[0][1]:
            self.blocks.pop(0)
        if self.blocks:
            self.last = self.blocks[0][0]
            self.blocks[0][0] += 1
        else:
            self.last += 1
            self.block = min(self.block * 2, MAX_GUEST_BLOCK)
        self.top_up()
        return self.last

    @property
    def highest(self):
        """
        The highest number reserved or handed out (the counter's floor).
        """
        return max([self.last] + [end for _, end in self.blocks])

    def top_up(self):
        left = sum(end - start + 1 for start, end in self.blocks)
        if left >= self.block // 2 or self._asking or not self.names.link.up:
            return
        self._asking = True
        size = self.block
        d = self.names.reserve_guests(size)
        d.addCallback(lambda end: self.blocks.append([int(end) - size + 1, int(end)]))
        d.addErrback(lambda f: self.log.info("no guest numbers reserved: {why}",
                                             why=f.getErrorMessage()))
        d.addBoth(self._answered)

    def _answered(self, _):
        self._asking = False


class Heartbeat:
    """
    While the link is up, renew this node's heartbeat key and release the
    names of nodes whose key expired; ``released(nodes)`` hears of them.
    """

    log = Logger()

    def __init__(self, names, clock, released):
        self.names = names
        self.clock = clock
        self.released = released
        self.loop = task.LoopingCall(self.beat)
        self.loop.clock = clock
        self._busy = False

    def start(self):
        self.loop.start(HEARTBEAT_EVERY, now=False)

    def stop(self):
        if self.loop.running:
            self.loop.stop()

    def beat(self):
        if self._busy or not self.names.link.up:
            return
        self._busy = True
        started = self.clock.seconds()
        d = self.names.heartbeat()
        d.addCallback(lambda _: self.names.release_nodes("server lost"))
        d.addCallback(lambda nodes: nodes and self.released(list(nodes)))
        d.addErrback(lambda f: self.log.info("heartbeat not renewed: {why}",
                                             why=f.getErrorMessage()))
        d.addBoth(lambda _: self._done(started))

    def _done(self, started):
        self._busy = False
        took = self.clock.seconds() - started
        if took > HEARTBEAT_TTL / 2:
            self.log.warn("heartbeat took {seconds:.1f} s (expires after {ttl} s)",
                          seconds=took, ttl=HEARTBEAT_TTL)
