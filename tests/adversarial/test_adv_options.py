"""
Hostile values of the operations options (shutdown, metrics, log format):
each is refused by twistd with one usage error and no traceback, before
anything starts; a shutdown message cannot smuggle control characters to
clients.
"""

import subprocess

import pytest

from chatd import tap
from daemon import TWISTD


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
])
def test_bad_operations_options_are_one_usage_error(tmp_path, args, message):
    result = _twistd(tmp_path, *args)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output
    assert "Traceback" not in output
    assert not (tmp_path / "data").exists()


def test_a_shutdown_message_is_cleaned_of_control_characters():
    options = tap.Options()
    options.parseOptions(["--shutdown-message", "back \x1b[2Jsoon\r\n\x07"])
    assert options["shutdown-message"] == "back \ufffd[2Jsoon\ufffd\ufffd\ufffd"
