"""
History the same on every node: ``HistoryRings`` is the half of
``ClusterHub`` that keeps each room's ring (the lines replayed on /join
and on connect) in step with the cluster's history in Redis
(``chatd.cluster.history``).

Why rings and not a Redis read per replay: the replay on /join and on
connect must come before the room's live lines and in order, so it stays
synchronous, from memory, as on one node.  For that every node keeps the
ring of every room with history anywhere: a line heard from the bus for a
room nobody here is in still makes the room here (within ``max_rooms``,
forgetting the idlest empty room as /join does) and goes into its ring.
Only the node where a line was said writes it to Redis; heard lines are
kept here only.  Whenever the link comes (back) up, before the node
registers, the rings are loaded from Redis: a node started late, or cut
off for a while, replays what the others do.  Lines said or heard while
that read is on its way are added after the snapshot unless its last
lines already are those (the same text in the same order); a room this
node has lines for and Redis has none (Redis restarted empty) is written
back from this node's ring, if no other node did it first.  Lines said
while the link was down never reached the other nodes and were not
written (counted); the reload replaces them with the cluster's lines.

/history N reads Redis (up to 500 lines, the whole cluster's); while the
link is down it reads this node's ring.

Known limit: lines said on two nodes within one Redis round trip of each
other may sit in a different order in the rings of different nodes (each
node keeps its own line before it hears the other's) until the next
reload; Redis's order is the one /history shows and late nodes replay.
A heard line is stamped with the time this node heard it.
"""

from collections import deque

from twisted.internet import defer
from txredisapi import ConnectionError as RedisGone, TimeoutError as RedisTimeout

from chatd import grammar
from chatd.cluster.link import LinkDown
from chatd.rooms import Room


class HistoryRings:
    """
    A mixin of ``ClusterHub`` (before ``Hub``); ``store``, when set, is a
    ``RedisHistory``.
    """

    _reloading = None  # room key -> (time, line)s kept while a reload is on its way

    def _keep(self, room, line):
        super()._keep(room, line)  # this node's line: ring, and the store
        if self.keep:
            self._noted(room)

    def _keep_heard(self, room, line):
        """
        A line heard from another node: into the ring only (its node wrote it).
        """
        if self.keep:
            room.keep(self._now(), line)
            self._noted(room)

    def _noted(self, room):
        if self._reloading is not None:  # at most a ring's worth per room
            noted = self._reloading.get(room.key)
            if noted is None:
                noted = self._reloading[room.key] = deque(maxlen=self.keep)
            noted.append(room.history[-1])

    def _room_for_history(self, name):
        """
        The room ``name`` made here for the lines heard in it (``None``: no
        history on this node, or no space for one more room).
        """
        if not self.keep:
            return None
        key = grammar.room_key(name)
        if key in self.rooms:
            return self.rooms[key]
        if len(self.rooms) >= self.max_rooms and not self._forget_idlest():
            return None
        room = self.rooms[key] = Room(name, self.keep, self.fanouts)
        return room

    @defer.inlineCallbacks
    def _reload_history(self):
        """
        Load every room's ring from Redis (never fails: on error the rings
        stay as they are, and are logged).
        """
        if self.store is None or not self.keep or self._reloading is not None:
            return
        self._reloading = {}
        try:
            saved = yield self.store.snapshot(self.max_rooms, self.keep)
        except Exception as e:
            self.log.warn("history not loaded from redis: {why}", why=str(e))
            return
        finally:
            heard, self._reloading = self._reloading, None
        if self.store.dropped:
            self.log.info("{dropped} history lines were not written to redis so far",
                          dropped=self.store.dropped)
        try:
            self._load_rings(saved, heard)
        except Exception:
            self.log.failure("loading the rings from redis failed")

    def _load_rings(self, saved, heard):
        loaded = set()
        for key, name, topic, lines in reversed(saved):  # the idlest first
            if not lines and not topic and key not in self.rooms:
                continue  # nothing readable kept: no room made for it
            room = self._room_for_history(name)
            if room is None:
                continue
            loaded.add(key)
            room.history.clear()
            room.history.extend(_merged(lines, heard.get(key, [])))
            if room.history:
                room.last_active = room.history[-1][0]
            if topic and not room.topic:
                room.topic = topic
        for room in list(self.rooms.values()):
            if room.key not in loaded and room.history:
                self.store.seed(room.key, room.name, room.topic, list(room.history))

    def history(self, client, name=None, count=50):
        """
        As ``Hub.history``, from Redis; while the link is down, this node's ring.
        """
        room_name, d = super().history(client, name, count)
        ring = list(self._room_of(client, name).history or ())

        def local(failure):
            failure.trap(LinkDown, RedisGone, RedisTimeout)
            return ring[-count:]
        return room_name, d.addErrback(local)


def _merged(saved, heard):
    """
    ``saved`` then the lines of ``heard`` it does not end with already.
    """
    texts, heard = [line for _, line in saved], list(heard)
    said = [line for _, line in heard]
    for n in range(min(len(heard), len(saved)), 0, -1):
        if texts[-n] == said[0] and texts[-n:] == said[:n]:
            return saved + heard[n:]
    return saved + heard
