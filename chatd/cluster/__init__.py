"""
The cluster: chatd nodes that share one chat through Redis.

``config`` parses ``--redis URL``; ``bus`` is the format of what nodes
publish to each other (and the check of everything read back); ``link``
keeps the two Redis connections (commands, subscriber) with back-off and a
bounded outgoing queue; ``names`` holds the Redis side of names, guest
numbers and node liveness (its Lua in ``scripts``); ``directory`` is this
node's copy of who is on the other nodes, and ``members`` adds the rooms
they are in; ``presence`` keeps this node's memberships and the topics in
Redis; ``heard`` acts on what the other nodes publish; ``rooms`` counts
and lists every room cluster-wide; ``files`` keeps the file index in Redis
for nodes sharing one ``--data-dir``, where ``nodedir`` gives each node a
directory of its own; ``history`` and ``rings`` keep the rooms' history in
Redis and every node's replay in step with it; ``hub`` puts them together
as ``ClusterHub``, which stands where ``chatd.hub.Hub`` stands.
The accounts live in Redis too: ``accounts`` (the store), ``lockouts``
(the failed-login limit), ``account_scripts`` (their keys and Lua),
``takeover`` (a login's name let go by its node first), and ``admin``
(``chatd-admin --redis``).  Operators' actions cross nodes in
``moderation``, and ``bans`` keeps the bans in Redis.
"""
