"""
Hostile resumes: absurd offsets and sizes, names that try to escape, a
resume refused for space (its kept part survives), and a resume that stalls
(kept again, with what it added).
"""

import hashlib
import os
import socket

from helpers import AdvClient, wait_until


def sha(data):
    return hashlib.sha256(data).hexdigest()


def parts(d):
    directory = d.data_dir / "partial"
    return {p.name: p.stat().st_size for p in directory.iterdir()} if directory.is_dir() else {}


def cut(d, name, data, sent):
    c = AdvClient(d.port, source="127.0.0.5")
    c.send(f"/upload {name} {len(data)} {sha(data)}\n".encode() + data[:sent])
    c.sock.shutdown(socket.SHUT_WR)
    c.expect(f"! upload of {name} cut off")
    assert wait_until(lambda: parts(d).get(f"{sha(data)}-{len(data)}.part") == sent)


def test_absurd_offsets_and_names(make_daemon):
    d = make_daemon("--rate", "0")
    u = AdvClient(d.port)
    u.send(b"/upload a.txt 3\nabc")
    u.expect("*** stored a.txt")
    for line, answer in [
        (b"/download-from 99999999999999999999999999999 a.txt",
         "! offset 99999999999999999999999999999 is past the end of a.txt (3 bytes)"),
        (b"/download-from 0x1 a.txt", "! download offset must be a whole number of bytes, not '0x1'"),
        (b"/download-from +1 a.txt", "! download offset must be a whole number of bytes, not '+1'"),
        (b"/download-from 1 ../a.txt", "! no such file: ../a.txt"),
        (b"/download-from 1 a.txt\x1b[2J", "! no such file: a.txt\ufffd[2J"),
        (b"/upload-resume ../../etc/passwd 10 " + b"a" * 64,
         "! file name must not contain '/' or '\\'"),
        (b"/upload-resume big 99999999999999999999 " + b"a" * 64,
         "! file too large: big is 90949470.2 TiB (99999999999999999999 bytes); "
         "the limit is 50 MiB (52428800 bytes)"),
    ]:
        u.send(line + b"\n")
        got = u.line()
        assert got == answer, (line, got)
    u.say("/download-from 3 a.txt")
    assert u.line() == f"PART 3 3 {sha(b'abc')} a.txt"  # no bytes: straight to the next line
    u.say("/who")
    assert u.line().startswith("- online (")
    assert parts(d) == {}
    assert sorted(os.listdir(d.data_dir / "tmp")) == []


def test_a_resume_refused_for_space_keeps_the_part(make_daemon):
    d = make_daemon("--rate", "0", "--max-file-size", "64K", "--max-upload-space", "64K")
    data = os.urandom(60000)
    cut(d, "p.bin", data, 30000)
    hog = AdvClient(d.port, source="127.0.0.2")
    hog.send(b"/upload hog.bin 60000\n" + b"h" * 10)  # holds the upload space
    assert wait_until(lambda: os.listdir(d.data_dir / "tmp"))
    u = AdvClient(d.port, source="127.0.0.3")
    u.say(f"/upload-resume p.bin {len(data)} {sha(data)}")
    assert u.expect("! ").startswith("! no room for uploads right now")
    assert parts(d) == {f"{sha(data)}-{len(data)}.part": 30000}
    hog.close()
    assert wait_until(lambda: not os.listdir(d.data_dir / "tmp"))
    u.say(f"/upload-resume p.bin {len(data)} {sha(data)}")
    assert u.expect("*** resume") == "*** resume p.bin from 30000"
    u.send(data[30000:])
    assert u.expect("*** stored").startswith("*** stored p.bin: 60000 bytes")


def test_a_stalled_resume_is_kept_again_with_what_it_added(make_daemon):
    d = make_daemon("--rate", "0", "--upload-timeout", "0.5")
    data = os.urandom(50000)
    cut(d, "s.bin", data, 10000)
    u = AdvClient(d.port)
    u.say(f"/upload-resume s.bin {len(data)} {sha(data)}")
    assert u.expect("*** resume") == "*** resume s.bin from 10000"
    u.send(data[10000:25000])
    assert u.expect("! ").startswith("! upload of s.bin timed out")
    assert u.closed()
    assert wait_until(lambda: parts(d).get(f"{sha(data)}-{len(data)}.part") == 25000)
    v = AdvClient(d.port)
    v.say(f"/upload-resume s.bin {len(data)} {sha(data)}")
    assert v.expect("*** resume") == "*** resume s.bin from 25000"
    v.send(data[25000:])
    assert v.expect("*** stored").startswith("*** stored s.bin: 50000 bytes")
