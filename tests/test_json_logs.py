"""
``--log-format json``: a real daemon's log parses line by line, names its
events' fields, and never holds message text or a password; twistd's
``--logfile`` is honoured and its ``--logger`` cannot be combined.
"""

import json

import pytest
from twisted.logger import Logger
from twisted.python import usage
from twisted.scripts.twistd import ServerOptions

from loopback import admin, upload, users
SECRETS = ("SECRET-CHAT-TEXT", "SECRET-ACTION", "SECRET-PRIVATE", "SECRET-WALL",
           "PW-SECRET-99", "WRONG-PW-77", "NEW-PW-SECRET")


def events(text):
    parsed = []
    for line in text.splitlines():
        if line.strip():
            parsed.append(json.loads(line))  # every line is one JSON object
    return parsed


def test_json_log_lines_parse_name_their_fields_and_hold_no_secrets(make_daemon):
    d = make_daemon("--log-format", "json", "--hash-memory", "8K",
                    "--max-conns-per-ip", "3")
    alice, bob = users(d, "alice", "bob")
    alice.say("SECRET-CHAT-TEXT")
    alice.say("/me SECRET-ACTION")
    alice.say("/msg bob SECRET-PRIVATE")
    bob.expect("[private] <alice> SECRET-PRIVATE")
    alice.say("/register alice PW-SECRET-99")
    alice.expect("*** registered")
    alice.say("/password PW-SECRET-99 NEW-PW-SECRET")
    alice.expect("*** password changed")
    third = d.client()
    third.say("/login alice WRONG-PW-77")
    third.expect("! wrong password")
    refused = d.client(greet=False)  # the fourth from 127.0.0.1
    assert refused.line().startswith("! too many connections")
    assert upload(bob, "notes.txt", b"file bytes").startswith("*** stored")
    made = admin(d.data_dir, "make-operator", "alice")
    assert made.returncode == 0
    alice.say("/wall SECRET-WALL")
    alice.expect("*** notice from alice")
    alice.say("/kick bob")
    assert bob.closed()
    d.stop()

    text = d.log()
    for secret in SECRETS:
        assert secret not in text, secret
    logged = events(text)
    assert all("log_time" in e and "log_format" in e for e in logged)
    kinds = {
        "connect": lambda e: "peer" in e and e["log_format"].endswith("connected from {peer}"),
        "disconnect": lambda e: e["log_format"] == "{name} disconnected ({why})"
        and e["why"] == "kicked by alice",
        "refusal": lambda e: e["log_format"].startswith("refused {peer}")
        and e["why"].startswith("too many connections"),
        "upload": lambda e: e.get("file") == "notes.txt" and e.get("size") == 10,
        "operator": lambda e: e.get("action") == "kick" and e.get("operator") == "alice"
        and e.get("target") == "bob",
        "wall": lambda e: e.get("action") == "wall",
        "failed login": lambda e: e["log_format"].startswith("failed login")
        and e["name"] == "alice",
        "shutdown": lambda e: e["log_format"].startswith("shutting down"),
    }
    for kind, match in kinds.items():
        assert any(match(e) for e in logged), kind


def test_logfile_is_honoured_and_logger_conflicts(tmp_path):
    path = tmp_path / "chatd.json"
    config = ServerOptions()
    config.parseOptions(["--logfile", str(path), "chatd", "--log-format", "json",
                         "--data-dir", str(tmp_path / "data")])
    observer = config["logger"]()
    log = Logger(observer=observer, namespace="test")
    log.info("{name} connected from {peer}", name="alice", peer="127.0.0.1:5")
    [event] = events(path.read_text())
    assert (event["name"], event["peer"]) == ("alice", "127.0.0.1:5")

    with pytest.raises(usage.UsageError) as e:
        ServerOptions().parseOptions(["--logger", "twisted.logger.textFileLogObserver",
                                      "chatd", "--log-format", "json"])
    assert "--logger" in str(e.value)
    with pytest.raises(usage.UsageError) as e:
        ServerOptions().parseOptions(["chatd", "--log-format", "xml"])
    assert "--log-format must be one of text, json" in str(e.value)
