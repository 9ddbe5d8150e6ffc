import shutil

import pytest

from daemon import Daemon
from tmux import Terminal


@pytest.fixture
def make_daemon(tmp_path):
    """
    Start real chatd daemons (``make_daemon(*extra_args)``); all are stopped
    at the end of the test.
    """
    started = []

    def make(*args, data_dir=None, **kw):
        d = Daemon(data_dir or tmp_path / f"data{len(started)}", *args, **kw)
        started.append(d)
        return d.start()

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def daemon(make_daemon):
    return make_daemon()


@pytest.fixture
def pair_daemon(make_daemon):
    """
    A daemon in pair mode whose next connection is client X.
    """
    d = make_daemon("--mode", "pair")
    # Daemon.start's probe connection was seated as X; wait until it has left.
    d.wait_log("Client X left before client Y connected")
    return d


@pytest.fixture
def term(tmp_path):
    """
    A tmux terminal running bash in ``tmp_path``; killed at the end.
    """
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: `make test` installs it "
                    "(apt-get install tmux); this test must run, not be skipped")
    t = Terminal(tmp_path)
    t.wait_for(lambda s: "$" in s)
    yield t
    t.kill()
