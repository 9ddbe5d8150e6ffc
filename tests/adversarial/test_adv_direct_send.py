"""
Direct socket writes (issue 13) against peers that vanish mid-broadcast:
sends to a reset socket fail in the middle of a room's pass, some with
bytes still buffered in Twisted; each departure must be announced once and
the others must get every line, in order.
"""

import re

from helpers import AdvClient
from loopback import reset


def test_peers_reset_mid_broadcast_leave_once(make_daemon, figure):
    d = make_daemon("--rate", "0", "--max-conns-per-ip", "0")
    talker = AdvClient(d.port, source="127.0.0.2", nodelay=True)
    watcher = AdvClient(d.port, source="127.0.0.3")
    # Half read nothing through a tiny window (their bytes pile up in
    # Twisted), half read as they like: all are reset while lines flow.
    victims = [AdvClient(d.port, source="127.0.0.4", rcvbuf=2048 if i % 2 else None)
               for i in range(30)]
    names = {v.name for v in victims}
    said = []
    for round_ in range(len(victims)):
        lines = [f"round {round_} line {k} " + "x" * 200 for k in range(10)]
        talker.send("".join(line + "\n" for line in lines))
        said += lines
        reset(victims[round_])
    talker.say("done")
    seen = watcher.lines_until(f"<{talker.name}> done", timeout=15)
    seen += watcher.sync()
    heard = [line.split("> ", 1)[1] for line in seen if line.startswith(f"<{talker.name}> ")]
    left = [m.group(1) for line in seen
            if (m := re.match(r"\*\*\* (\S+) left \((.*)\)\Z", line))]
    figure("lines said", len(said) + 1)
    figure("departures seen", len(left))
    assert heard == said + ["done"]
    assert sorted(left) == sorted(names)  # each exactly once
    talker.say("/who")
    assert talker.expect("- online (").startswith("- online (2):")
