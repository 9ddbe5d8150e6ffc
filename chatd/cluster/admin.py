"""
``chatd-admin --redis URL``: operators of a cluster, whose accounts live in
its Redis (``chatd.cluster.accounts``).  One connection, one script, done.
"""

from twisted.internet import defer
import txredisapi

from chatd import grammar
from chatd.cluster import account_scripts as scripts
from chatd.cluster.scripts import Keys

CONNECT_TIMEOUT = 10.0  # seconds


@defer.inlineCallbacks
def set_operator(address, name, operator):
    """
    Make the account ``name`` an operator (or not) in the Redis at
    ``address``: a ``Deferred`` of its registered name, or ``None`` if
    there is no such account.
    """
    redis = yield txredisapi.Connection(
        address.host, address.port, dbid=address.db, reconnect=False,
        password=address.password, connectTimeout=CONNECT_TIMEOUT,
        replyTimeout=CONNECT_TIMEOUT, convertNumbers=False)
    try:
        keys = scripts.AccountKeys(Keys(address.db).prefix)
        registered = yield redis.eval(scripts.SET_OPERATOR,
                                      [keys.account(grammar.name_key(name))],
                                      [str(int(bool(operator)))])
    finally:
        yield redis.disconnect()
    return registered
