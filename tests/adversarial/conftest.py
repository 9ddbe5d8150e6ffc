"""
Fixtures of the adversarial suite: figures named after the test, and
daemons whose start-up probe connection is already gone.
"""

import pytest

from helpers import AdvClient, record


@pytest.fixture
def figure(request):
    """
    ``figure(name, value, unit)``: print and record an observed figure.
    """
    test = request.node.name

    def note(name, value, unit=""):
        record(test, name, value, unit)

    return note


def settle(port):
    """
    ``Daemon.start`` probes the port with a connection it closes at once;
    wait until the daemon has seen it leave, so no test client ever gets
    its departure.  We leave with /quit, which departs before the answer.
    """
    c = AdvClient(port, source="127.0.0.254")
    c.say("/who")
    online = c.expect("- online (")
    if not online.startswith("- online (1)"):
        c.expect(lambda line: line.endswith(" left (connection lost)"))
    c.say("/quit")
    c.expect("*** bye")
    assert c.closed()
    c.close()


@pytest.fixture
def make_daemon(make_daemon):
    """
    The shared ``make_daemon``, settled (see ``settle``).
    """
    def make(*args, **kw):
        d = make_daemon(*args, **kw)
        settle(d.port)
        return d
    return make
