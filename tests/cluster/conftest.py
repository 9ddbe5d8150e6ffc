"""
The cluster tests' fixtures live in ``tests/redis_server.py``: a real
``redis-server`` per session (emptied per test), one per test to stop and
start, and chatd nodes joined to it.
"""

from redis_server import make_node, own_redis, redis, session_redis  # noqa: F401
