"""
Hostile values of the operations options (shutdown, metrics, log format):
each is refused by twistd with one usage error and no traceback, before
anything starts; the metrics port answers only GET /metrics and survives
garbage; a shutdown message cannot smuggle control characters to clients.
"""

import json
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from chatd import tap
from daemon import TWISTD, free_port


def _twistd(tmp_path, *args):
    return subprocess.run([TWISTD, "-n", "--pidfile=", "chatd", "--data-dir",
                           str(tmp_path / "data"), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("args, message", [
    (["--shutdown-grace", "0"], "--shutdown-grace must be more than 0"),
    (["--shutdown-grace", "-3"], "--shutdown-grace must be more than 0"),
    (["--shutdown-grace", "inf"], "--shutdown-grace must be more than 0"),
    (["--shutdown-grace", "nan"], "--shutdown-grace must be more than 0"),
    (["--shutdown-grace", "soon"], "--shutdown-grace must be a number of seconds"),
    (["--metrics-port", "70000"], "--metrics-port must be from 0 to 65535"),
    (["--web-port", "x"], "--web-port must be a number from 0 to 65535, not 'x'"),
    (["--metrics-port", "http"], "--metrics-port must be a number"),
    (["--metrics-port", "9100", "--metrics-interface", "localhost:80"],
     "--metrics-interface must be an IP address"),
    (["--metrics-port", "9100", "--metrics-interface", "0.0.0.0/0"],
     "--metrics-interface must be an IP address"),
    (["--metrics-port", "9100", "--mode", "pair"], "--metrics-port is for --mode chat"),
    (["--log-format", "xml"], "--log-format must be one of text, json"),
    (["--log-format", ""], "--log-format must be one of text, json"),
])
def test_bad_operations_options_are_one_usage_error(tmp_path, args, message):
    result = _twistd(tmp_path, *args)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output
    assert "Traceback" not in output
    assert not (tmp_path / "data").exists()


def test_the_metrics_port_answers_only_get_metrics(make_daemon):
    port = free_port()
    d = make_daemon("--metrics-port", str(port))
    base = f"http://127.0.0.1:{port}"
    for path, method, status in (("/", "GET", 404), ("/metrics/x", "GET", 200),
                                 ("/other", "GET", 404), ("/metrics", "POST", 405),
                                 ("/../../etc/passwd", "GET", 404)):
        request = urllib.request.Request(base + path, method=method, data=b"x" * 10
                                         if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                got = r.status
        except urllib.error.HTTPError as e:
            got = e.code
        assert got == status, (path, method, got)
    # Garbage instead of HTTP: the listener answers 400 and the chat is fine.
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(b"\x00\xff" * 5000 + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    d.client().say("/who")
    assert d.proc.poll() is None


def test_json_logs_survive_names_and_files_made_to_break_them(make_daemon):
    d = make_daemon("--log-format", "json")
    c = d.client()
    c.nick("x{y}|^[z]")
    c.say('/upload a"b\\c{0}%s\u202e.txt 3')
    c.send(b"abc")
    assert c.expect(lambda l: l.startswith(("*** stored", "! ")))
    c.say("/quit {log_format} \" injected")
    c.expect("*** bye")
    d.stop()
    lines = [line for line in d.log().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # each line parses
    assert any(e.get("new") == "x{y}|^[z]" for e in events)
    assert "injected" not in d.log()


def test_a_shutdown_message_is_cleaned_of_control_characters():
    options = tap.Options()
    options.parseOptions(["--shutdown-message", "back \x1b[2Jsoon\r\n\x07"])
    assert options["shutdown-message"] == "back \ufffd[2Jsoon\ufffd\ufffd\ufffd"
