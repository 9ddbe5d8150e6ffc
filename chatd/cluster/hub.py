"""
``ClusterHub``: the local ``Hub`` for this node's members (delivery through
the same coalesced write path), plus the bus for everything that crosses
nodes.  It stands where ``chatd.hub.Hub`` stands, with the same methods.

Names are held in Redis: a /nick waits for its claim (``rename`` then
answers with a ``Deferred``), a guest name comes from a reserved block at
once and is claimed behind it, and a user whose name turns out to be held
elsewhere becomes a fresh guest and is told.  While the link is down the
node is a plain one-node chat for its own users; when it is back the node
registers its users again (clashes are settled in Redis the same way
whichever node asks first) and reloads who is elsewhere.

Every room crosses nodes: a line, /join, /part or /topic is published once
with its room, and each node hands it to its own members of that room
(``Heard``).  Presence is cluster-wide (``ClusterRooms``: who is in which
room on every node, the topics).  History is the cluster's, in Redis, and
every node keeps the rings it replays in step with it (``HistoryRings``);
file notices cross nodes through the file index's commit (``files``).
Operators' walls, kicks and mutes reach every node (``moderation``), and
bans are the cluster's (``bans``); a plain ``notify`` with no room stays
on this node.
"""

import uuid

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from txredisapi import ConnectionError as RedisGone, TimeoutError as RedisTimeout

from chatd import grammar
from chatd.cluster import bus
from chatd.cluster.files import FileNotices
from chatd.cluster.heard import Heard
from chatd.cluster.link import LinkDown, RedisLink
from chatd.cluster.members import RemoteMembers
from chatd.cluster.moderation import ClusterModeration
from chatd.cluster.names import LOGGED_IN, LOGIN_NOW, ClusterNames, GuestNumbers, Heartbeat
from chatd.cluster.presence import Presence
from chatd.cluster.rings import HistoryRings
from chatd.cluster.rooms import ClusterRooms
from chatd.cluster.scripts import Keys
from chatd.cluster.takeover import TakeOver
from chatd.grammar import ChatError
from chatd.hub import Hub

LINK_LOST = "cluster link lost: only this node's users get your lines until it is back"
LINK_RESTORED = "cluster link restored"
NODE_LOST = "server lost"  # the departure reason of a dead node's users
NODE_STOPPED = "server stopped"


class RemoteUser:
    """
    A user on another node, as ``find`` reports it.
    """

    def __init__(self, node, name):
        self.node, self.name = node, name


class ClusterHub(ClusterModeration, TakeOver, FileNotices, Heard, HistoryRings,
                 ClusterRooms, Hub):
    log = Logger()

    def __init__(self, address, reactor, node=None, **hub_options):
        Hub.__init__(self, clock=reactor, **hub_options)
        self.node = node or uuid.uuid4().hex[:16]
        self.clock = reactor
        self.keys = Keys(address.db)
        self.link = RedisLink(address, reactor, [self.keys.lobby, self.keys.inbox(self.node)],
                              self._received, self._link_up, self._link_down)
        self.registry = ClusterNames(self.link, self.keys, self.node)
        self.guests = GuestNumbers(self.registry)
        self.heartbeat = Heartbeat(self.registry, reactor, self._nodes_released)
        self.remote = RemoteMembers()
        self.presence = Presence(self.link, self.keys, self.node, self.max_rooms)
        self.skipped = 0  # malformed bus messages
        self._since = {}  # name key -> when its local holder claimed it
        self._told_lost = False
        self._stopping = False
        self._registered = []  # Deferreds waiting for the next registration
        self.accounts = None  # the RedisAccountStore attached, if any
        self.bans = None  # the RedisBanStore attached, if any
        self._making_way = {}  # name key -> logins waiting for its holder (TakeOver)

    # --- life -------------------------------------------------------------

    def start(self):
        self._stopping = False
        self.link.start()
        self.heartbeat.start()

    @defer.inlineCallbacks
    def stop(self):
        """
        Leave the cluster: others announce our users' departures now.
        """
        self._stopping = True
        self.heartbeat.stop()
        if self.link.up:
            try:
                yield self.registry.release_nodes(NODE_STOPPED, self.node)
            except Exception:
                self.log.failure("could not release this node's names")
        yield self.link.stop()

    def _link_up(self):
        self.log.info("cluster link up: node {node}, {users} users here",
                      node=self.node, users=len(self.users))
        self.guests.top_up()
        if self.accounts is not None:
            self.accounts.link_up()
        if self.bans is not None:
            self.bans.link_up()
        d = self._reload_history()  # first: who joins once we are registered sees it
        d.addCallback(lambda _: self.registry.heartbeat())
        d.addCallback(lambda _: self._register())
        d.addErrback(lambda f: self.log.failure(
            "could not register with the cluster; trying again when the link is back", f))

    @defer.inlineCallbacks
    def _register(self):
        """
        Hold our users' names again, reload who is elsewhere, tell the others.
        """
        lost = yield self.registry.register(
            [(c.name, self._since.get(k, 0)) for k, c in self.users.items()],
            self.guests.highest)
        for key in lost:
            self._lose_name(self.users.get(key), key)
        yield self._place_everyone()
        yield self._load_topics(give=True)
        yield self._reload()
        self._publish("sync")
        waiting, self._registered = self._registered, []
        for d in waiting:
            d.callback(self)
        if self._told_lost:
            self._told_lost = False
            self.log.info("cluster link restored; {dropped} lines dropped so far",
                          dropped=self.link.dropped)
            Hub.notify(self, LINK_RESTORED)

    def when_registered(self):
        """
        A ``Deferred`` that fires when this node has next (re-)registered
        its users and loaded who is elsewhere.
        """
        d = defer.Deferred()
        self._registered.append(d)
        return d

    def _reload(self):
        self.remote.reloading()
        d = self.presence.snapshot()
        d.addCallbacks(
            lambda entries: self.remote.load(
                [entry for entry in entries if entry[0] != self.node]),
            lambda failure: self.remote.load(None) or failure)
        return d

    def _link_down(self):
        self.remote.clear()
        if self._stopping:
            return
        self.log.warn("cluster link lost: node {node} is on its own, {users} users here",
                      node=self.node, users=len(self.users))
        if self.users and not self._told_lost:
            self._told_lost = True
            Hub.notify(self, LINK_LOST)

    def _nodes_released(self, nodes):
        for node in nodes:
            if node == self.node:
                self.log.warn("node {node} was taken for dead (its heartbeat "
                              "expired): registering again", node=node)
                self._register().addErrback(
                    lambda f: self.log.failure("registering again failed", f))
            else:
                self.log.info("node {dead} is gone: its names are released", dead=node)
                self.remote.forget_node(node)

    # --- the local hub, and the bus behind it ----------------------------------

    def __len__(self):
        return len(self.users) + len(self.remote)

    def find(self, name):
        """
        The local client called ``name``, a ``RemoteUser``, or ``ChatError``.
        """
        if grammar.name_key(name) in self.users:
            return Hub.find(self, name)
        found = self.remote.find(name)
        if found is None:
            raise ChatError(f"no such user: {name}")
        return RemoteUser(*found)

    def _next_guest_number(self):
        return self.guests.take()

    def connect(self, client, name=None):
        """
        As ``Hub.connect``; a ``name`` given (an account's) is taken from
        whoever has it anywhere.
        """
        logged_in = name is not None
        name = Hub.connect(self, client, name)
        self._place(client)
        self._publish("join", name=name)
        self._hold(client, LOGGED_IN if logged_in else self.clock.seconds())
        return name

    def disconnect(self, client, reason="", announce=False):
        key = grammar.name_key(client.name)
        if self.users.get(key) is not client:
            return
        Hub.disconnect(self, client, reason, announce)
        self._since.pop(key, None)
        self.presence.unplace(client.name)
        self._publish("left", name=client.name, reason=reason)
        self._release(key)

    def _move_aside(self, name, client):
        holder = self.users.get(grammar.name_key(name))
        Hub._move_aside(self, name, client)
        if holder is not None and holder is not client:
            self._place(holder, name)
            self._publish("rename", old=name, new=holder.name)
            self._hold(holder, self.clock.seconds())

    def rename(self, client, new, claim=False):
        """
        As ``Hub.rename``; with the link up and no ``claim``, a ``Deferred``
        that fires once the name is ours everywhere (or fails with
        ``ChatError``: ``name is taken``).
        """
        old = client.name
        if claim or not self.link.up or grammar.name_key(new) in self.users:
            Hub.rename(self, client, new, claim)
            self._renamed(client, old)
            self._hold(client, LOGGED_IN if claim else self.clock.seconds())
            return None
        grammar.check_name(new)
        if grammar.is_guest_name(new):
            raise ChatError(f"guest names are given by the server: {new}")
        since = self.clock.seconds()
        d = self.registry.claim(new, since)
        d.addErrback(self._link_failed)
        return d.addCallback(self._claimed, client, old, new, since)

    def _claimed(self, ours, client, old, new, since):
        if not ours:
            raise ChatError(f"name is taken: {new}")
        old = client.name  # moved aside to a fresh guest meanwhile, it may differ
        if old is None or self.users.get(grammar.name_key(old)) is not client:
            self._release(grammar.name_key(new))  # gone while we waited
            return
        try:
            Hub.rename(self, client, new)
        except ChatError:
            self._release(grammar.name_key(new))
            raise
        self._renamed(client, old)
        self._since[grammar.name_key(new)] = since

    def _renamed(self, client, old):
        new = client.name
        self._since.pop(grammar.name_key(old), None)
        self._place(client, old)
        self._publish("rename", old=old, new=new)
        if grammar.name_key(old) != grammar.name_key(new):
            self._release(grammar.name_key(old))

    def say(self, client, text):
        Hub.say(self, client, text)
        self._publish("say", room=self.current(client), name=client.name, text=text)

    def act(self, client, text):
        Hub.act(self, client, text)
        self._publish("act", room=self.current(client), name=client.name, text=text)

    def join(self, client, name):
        before = len(client.rooms)
        room = Hub.join(self, client, name)
        if len(client.rooms) > before:  # entered, not just made current
            self._place(client)
            self._publish("enter", room=room, name=client.name)
        return room

    def part(self, client, name=None, reason=""):
        room = self._room_of(client, name).name
        Hub.part(self, client, name, reason)
        self._place(client)
        self._publish("part", room=room, name=client.name, reason=reason)

    def topic(self, client, name=None, text=None):
        Hub.topic(self, client, name, text)
        if text is not None:
            room = self._room_of(client, name).name
            self._share_topic(room, text)
            self._publish("topic", room=room, name=client.name, text=text)

    def private(self, client, target_name, text):
        """
        As ``Hub.private``; for a user not on this node (link up), a
        ``Deferred`` of the recipient's name.
        """
        key = grammar.name_key(target_name)
        if key in self.users or not self.link.up:
            return Hub.private(self, client, target_name, text)
        message = bus.encode(self.node, "private", to=key, name=client.name, text=text)
        d = self.registry.private(key, message)
        d.addErrback(self._link_failed)

        def answered(name):
            if name is None:
                raise ChatError(f"no such user: {target_name}")
            return name
        return d.addCallback(answered)

    def _link_failed(self, failure):
        failure.trap(LinkDown, RedisGone, RedisTimeout)
        raise ChatError("the cluster link is down; try again in a moment")

    # --- names in Redis ---------------------------------------------------------

    def _hold(self, client, since):
        """
        Claim ``client``'s name in Redis (a logged-in name is taken from
        whoever has it); if another node holds it, ``client`` loses it.
        """
        name = client.name
        self._since[grammar.name_key(name)] = since
        if since == LOGGED_IN:  # a login now: the older session anywhere goes
            d = self.registry.register([(name, LOGIN_NOW)], self.guests.highest)
            d.addCallback(lambda lost: not lost)
        else:
            d = self.registry.claim(name, since)
        d.addCallback(lambda ours: ours or self._lose_name(client, name))
        d.addErrback(lambda f: None)  # link down: re-registered when it is back

    def _lose_name(self, client, name):
        """
        Another node holds ``name``: its local holder becomes a fresh guest
        (or, logged in to it, is closed: its account logged in elsewhere).
        """
        key = grammar.name_key(name)
        if client is None or self.users.get(key) is not client:
            return
        if getattr(client, "account", None) == key:
            client.logged_in_elsewhere()
            return
        old, guest = client.name, self._guest_name()
        self._since.pop(key, None)
        self._apply_rename(client, guest)
        why = ("is a registered name and its owner logged in" if self.reserved(key)
               else "is taken by a user on another server of this chat")
        self._deliver_to(client, grammar.notice(f"{old} {why}; you are now {guest}"))
        self._place(client, old)
        self._publish("rename", old=old, new=guest)
        self._hold(client, self.clock.seconds())

    def _release(self, key):
        if key not in self.users and self.link.up:
            self.registry.release([key]).addErrback(lambda f: None)

    # --- the bus ------------------------------------------------------------

    def _publish(self, kind, **fields):
        self.link.publish(self.keys.lobby, bus.encode(self.node, kind, **fields))


class ClusterService(service.Service):
    """
    Starts the hub's link to the cluster, and leaves the cluster at stop.
    """

    def __init__(self, hub):
        self.hub = hub

    def startService(self):
        service.Service.startService(self)
        self.hub.start()

    def stopService(self):
        service.Service.stopService(self)
        return self.hub.stop()
