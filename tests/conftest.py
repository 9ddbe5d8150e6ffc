import pytest

from daemon import Daemon


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
