"""
``--kernel-sendq``: a reader that stops reading holds at most about that
much in the server's kernel (not the ~4 MiB autotuning allows), is still
dropped with its reason, and a stalled download is not capped by it.
"""

import re

from helpers import AdvClient, kernel_send_queue, wait_until

KiB = 1024


def stalled_queue(make_daemon, *options):
    """
    The most the kernel held for a reader that never reads while another
    says 4 KB lines, up to the reader's drop; and the drop notice seen.
    """
    d = make_daemon("--rate", "0", "--max-conns-per-ip", "0", *options)
    stalled = AdvClient(d.port, rcvbuf=4096)
    talker = AdvClient(d.port, source="127.0.0.2", nodelay=True)
    left = re.compile(rf"\*\*\* {stalled.name} left \(not reading: send queue over .*\)")
    most, dropped = 0, None
    try:
        for _ in range(3000):
            talker.send(("z" * 4000 + "\n") * 4)
            queued = kernel_send_queue(d.port, stalled)
            most = max(most, queued or 0)
            try:
                while not dropped:  # what the talker heard so far
                    line = talker.line(0.001)
                    dropped = line if left.match(line) else None
            except TimeoutError:
                pass
            if dropped:
                break
        return most, dropped
    finally:
        talker.close()
        stalled.close()


def test_stalled_reader_kernel_queue_is_capped(make_daemon, figure):
    capped, dropped = stalled_queue(make_daemon, "--kernel-sendq", "64K")
    figure("kernel queue of a stalled reader, --kernel-sendq 64K", capped // KiB, "KiB")
    assert dropped, "the stalled reader was never dropped"
    assert capped < 64 * KiB + 192 * KiB
    autotuned, dropped = stalled_queue(make_daemon, "--kernel-sendq", "0")
    figure("kernel queue of a stalled reader, --kernel-sendq 0", autotuned // KiB, "KiB")
    assert dropped
    assert autotuned > 4 * capped  # what the option is for


def test_stalled_download_is_not_capped(make_daemon, tmp_path, figure):
    """
    While a file is sent the limit is lifted: the kernel keeps the file's
    bytes ahead of a slow reader as it always did.
    """
    d = make_daemon("--rate", "0", "--kernel-sendq", "16K", "--max-file-size", "16M")
    up = AdvClient(d.port, source="127.0.0.2")
    data = b"f" * (8 * 2**20)
    up.send(b"/upload big.bin %d\n" % len(data) + data)
    up.expect("*** stored big.bin")
    down = AdvClient(d.port, rcvbuf=4096, source="127.0.0.3")
    down.say("/download big.bin")
    assert wait_until(lambda: (kernel_send_queue(d.port, down) or 0) > 256 * KiB, timeout=5)
    figure("kernel queue of a stalled download, --kernel-sendq 16K",
           kernel_send_queue(d.port, down) // KiB, "KiB")
    up.close()
    down.close()
