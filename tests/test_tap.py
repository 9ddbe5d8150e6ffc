"""
The twistd glue: option parsing, the plugin, and ``makeService``.
"""

import subprocess

import pytest
from twisted.application.service import IServiceMaker
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python import usage

from chatd import tap
from daemon import TWISTD


def parse(*args):
    options = tap.Options()
    options.parseOptions(list(args))
    return options


def test_defaults():
    options = parse()
    assert options["port"] == 5002
    assert options["interface"] == ""
    assert options["data-dir"] == "chatd-data"
    assert options["keep-files"] == 5
    assert options["max-file-size"] == 50 * 1024**2
    assert options["max-upload-space"] == 200 * 1024**2


def test_resume_options():
    options = parse("--max-file-size", "10M")
    assert (options["resume-window"], options["max-partial-space"]) == (600.0, 20 * 2**20)
    options = parse("--resume-window", "30", "--max-partial-space", "1G")
    assert (options["resume-window"], options["max-partial-space"]) == (30.0, 2**30)


def test_max_upload_space():
    assert parse("--max-file-size", "1M")["max-upload-space"] == 4 * 2**20
    assert parse("--max-file-size", "1M", "--max-upload-space", "1M")["max-upload-space"] == 2**20


def test_values():
    options = parse("--port", "6000", "--interface", "127.0.0.1", "--data-dir", "/srv/chat",
                    "--keep-files", "9", "--max-file-size", "10K")
    assert (options["port"], options["interface"], options["data-dir"],
            options["keep-files"], options["max-file-size"]) == \
        (6000, "127.0.0.1", "/srv/chat", 9, 10240)
    assert parse("-p", "0")["port"] == 0
    assert parse("--port", "65535")["port"] == 65535


@pytest.mark.parametrize("size, expected", [
    ("1024", 1024), ("10K", 10240), ("10k", 10240), ("3M", 3 * 2**20), ("1G", 2**30),
    ("0", 0),
])
def test_max_file_size(size, expected):
    assert parse("--max-file-size", size)["max-file-size"] == expected


@pytest.mark.parametrize("args, message", [
    (["--port", "not-a-port"], "--port must be a number from 0 to 65535, not 'not-a-port'"),
    (["--port", "70000"], "--port must be from 0 to 65535, not 70000"),
    (["--port", "65536"], "--port must be from 0 to 65535"),
    (["--port", "-1"], "--port must be from 0 to 65535"),
    (["--port", ""], "--port must be a number"),
    (["--max-file-size", "lots"], "--max-file-size must be a byte count"),
    (["--max-file-size", "-5"], "--max-file-size must be a byte count"),
    (["--max-file-size", "1.5M"], "--max-file-size must be a byte count"),
    (["--max-file-size", "10X"], "--max-file-size must be a byte count"),
    (["--keep-files", "0"], "--keep-files must be at least 1"),
    (["--max-upload-space", "lots"], "--max-upload-space must be a byte count"),
    (["--max-partial-space", "-1"], "--max-partial-space must be a byte count"),
    (["--resume-window", "0"], "--resume-window must be more than 0"),
    (["--resume-window", "soon"], "--resume-window must be a number of seconds"),
    (["--resume-window", "inf"], "--resume-window must be more than 0"),
    (["--max-file-size", "2M", "--max-upload-space", "1M"],
     "--max-upload-space must be at least --max-file-size"),
    (["--keep-files", "many"], "--keep-files must be a whole number"),
    (["--kernel-sendq", "1K"], "--kernel-sendq must be 0 or at least 4K"),
    (["--kernel-sendq", "lots"], "--kernel-sendq must be a byte count"),
    (["--no-such-option"], "no-such-option"),
])
def test_bad_values_are_usage_errors(args, message):
    with pytest.raises(usage.UsageError) as e:
        parse(*args)
    assert message in str(e.value)


@pytest.mark.parametrize("args, expected", [
    ([], 256 * 1024), (["--kernel-sendq", "0"], 0), (["--kernel-sendq", "1M"], 2**20),
])
def test_kernel_sendq(args, expected):
    assert parse(*args).limits().kernel_sendq == expected


def test_endpoint_description():
    backlog = f":backlog={tap.BACKLOG}"
    assert tap.endpoint_description(5002, "127.0.0.1") == \
        "tcp:5002:interface=127.0.0.1" + backlog
    assert tap.endpoint_description(5002, "::1") == "tcp6:5002:interface=\\:\\:1" + backlog
    everywhere = tap.endpoint_description(0, "")
    assert everywhere in ("tcp6:0:interface=\\:\\:" + backlog,
                          "tcp:0:interface=0.0.0.0" + backlog)
    assert tap.BACKLOG > 50  # Twisted's default overflows when a crowd connects


def test_plugin_is_discoverable():
    from twisted import plugins

    makers = {m.tapname: m for m in getPlugins(IServiceMaker, plugins)}
    assert "chatd" in makers
    assert makers["chatd"].options is tap.Options
    assert makers["chatd"].makeService is tap.makeService


def test_make_service_listens_as_asked(tmp_path):
    reactor = MemoryReactorClock()
    options = parse("--port", "0", "--interface", "127.0.0.1",
                    "--data-dir", str(tmp_path / "data"), "--keep-files", "3",
                    "--max-file-size", "2K")
    top = tap.makeService(options, reactor=reactor)
    top.startService()
    try:
        [(port, factory, backlog, interface)] = reactor.tcpServers
        assert (port, interface) == (0, "127.0.0.1")
        assert factory.store.keep == 3 and factory.store.max_size == 2048
        assert (tmp_path / "data" / "files").is_dir()
    finally:
        top.stopService()


def twistd(*args, cwd):
    return subprocess.run([TWISTD, "-n", "--pidfile=", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("args, message", [
    (["--port", "not-a-port"], "--port must be a number from 0 to 65535, not 'not-a-port'"),
    (["--port", "70000"], "--port must be from 0 to 65535, not 70000"),
    (["--max-file-size", "lots"], "--max-file-size must be a byte count"),
])
def test_twistd_usage_error_exits_non_zero(tmp_path, args, message):
    result = twistd("chatd", *args, cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output
    assert "Traceback" not in output
    assert not (tmp_path / "chatd-data").exists()  # refused before starting


def test_twistd_lists_the_plugin(tmp_path):
    result = twistd("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert any(line.split()[:1] == ["chatd"] for line in result.stdout.splitlines()), \
        result.stdout
    options = twistd("chatd", "--help", cwd=tmp_path)
    assert options.returncode == 0
    for option in ("--port=", "--interface=", "--data-dir=", "--keep-files=",
                   "--max-file-size="):
        assert option in options.stdout


def test_room_and_history_options(tmp_path):
    options = parse()
    assert (options["history"], options["max-rooms"], options["max-rooms-per-user"]) == \
        (50, 1000, 20)
    options = parse("--history", "0", "--max-rooms", "3", "--max-rooms-per-user", "1",
                    "--data-dir", str(tmp_path))
    assert (options["history"], options["max-rooms"], options["max-rooms-per-user"]) == (0, 3, 1)
    assert tap.makeHistory(options, MemoryReactorClock(), None) is None  # off: no store
    hub = tap.makeFactory(options, MemoryReactorClock()).hub
    assert (hub.keep, hub.store, hub.max_rooms, hub.max_rooms_per_user) == (0, None, 3, 1)
