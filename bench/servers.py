"""
Starting and stopping the servers under test on free loopback ports:
chatd (CPython and PyPy), the Twisted floor, ngircd and the file floor.
Every process is started in its own session and killed with its group.
"""

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
PYPY_VENV = BENCH / ".pypy-venv"

_started = []  # every Popen, so kill_all() can clean up


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile():
    """
    Raise RLIMIT_NOFILE to the hard limit (in this process or a child).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def help_text(twistd):
    try:
        return subprocess.run([str(twistd), "chatd", "--help"], capture_output=True,
                              text=True, timeout=60, cwd=str(ROOT)).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def chatd_extra_options(help_output, presence_limit=None):
    """
    Switch pacing and per-address limits off, where this chatd has options for
    them; set the presence limit when asked and supported.
    """
    extra = []
    for option, value in (("--rate", "0"), ("--max-conns-per-ip", "0"),
                          ("--max-conns", "0"), ("--max-connections-per-ip", "0")):
        if option + "=" in help_output or option + " " in help_output:
            extra += [option, value]
    if presence_limit is not None and "--presence-limit" in help_output:
        extra += ["--presence-limit", str(presence_limit)]
    return extra


class Server:
    """
    One server process on a free loopback port.
    """

    def __init__(self, name, command, port, workdir, env=None, ready_timeout=60):
        self.name = name
        self.command = [str(c) for c in command]
        self.port = port
        self.workdir = Path(workdir)
        self.env = env
        self.ready_timeout = ready_timeout
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}-{self.port}.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command, cwd=str(self.workdir), env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=raise_nofile,
                                     start_new_session=True)
        _started.append(self.proc)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                time.sleep(0.2)  # let it settle (and log the probe)
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen within {self.ready_timeout}s")

    def log_tail(self, n=2000):
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all():
    """
    Kill every process this harness started that is still running.
    """
    for proc in _started:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


# --- the servers ------------------------------------------------------------


def chatd(workdir, python_bin=VENV_BIN, name="chatd", extra=(), profile=None, port=None,
          data=None):
    port = port or free_port()
    data = data or Path(workdir) / f"data-{name}-{port}"
    twistd = Path(python_bin) / "twistd"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [twistd, "-n", "--pidfile="]
    if profile:
        command += [f"--profile={profile}", "--profiler=cprofile", "--savestats"]
    command += ["chatd", "--port", port, "--interface", "127.0.0.1",
                "--data-dir", data, "--max-file-size", "1G", "--keep-files", "1", *extra]
    return Server(name, command, port, workdir, env=env)


def twisted_floor(workdir, python_bin=VENV_BIN, name="floor", backlog=4096):
    port = free_port()
    script = BENCH / "baselines" / "twisted_floor.py"
    return Server(name, [Path(python_bin) / "python", script, port, backlog], port, workdir)


def direct_floor(workdir, python_bin=VENV_BIN, name="dfloor", backlog=4096):
    port = free_port()
    script = BENCH / "baselines" / "direct_floor.py"
    return Server(name, [Path(python_bin) / "python", script, port, backlog], port, workdir)


def file_floor(workdir):
    port = free_port()
    data = Path(workdir) / f"data-filefloor-{port}"
    data.mkdir(parents=True, exist_ok=True)
    script = BENCH / "baselines" / "file_floor.py"
    return Server("filefloor", [sys.executable, script, port, data], port, workdir)


NGIRCD_CONF = """\
[Global]
Name = bench.local
Info = chatd benchmark reference
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = bench
PidFile = {dir}/ngircd.pid
HelpFile = {dir}/help.txt
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
PingTimeout = 3600
PongTimeout = 3600
MaxNickLength = 16
[Options]
DNS = no
Ident = no
PAM = no
[Operator]
Name = bench
Password = bench
"""


def debian_binary(command, package, install=True, log=print):
    """
    The path of ``command``, its Debian ``package`` installed with apt when
    missing (None if impossible).
    """
    def find():
        return shutil.which(command) or next(
            (p for p in (f"/usr/sbin/{command}", f"/usr/bin/{command}") if os.path.exists(p)),
            None)

    if find() or not install:
        return find()
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    log(f"{command} missing: trying apt-get install -y {package}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")
    try:
        subprocess.run(["apt-get", "install", "-y", package], env=env, timeout=300,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return find()


def ngircd_binary(install=True, log=print):
    """
    The ngircd binary, installed with apt when missing (None if impossible).
    """
    return debian_binary("ngircd", "ngircd", install, log)


def ngircd(workdir, binary):
    port = free_port()
    directory = Path(workdir) / f"ngircd-{port}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "help.txt").write_text("")
    conf = directory / "ngircd.conf"
    conf.write_text(NGIRCD_CONF.format(port=port, dir=directory))
    return Server("ngircd", [binary, "-n", "-f", conf], port, workdir)


def pypy_python(install=True, log=print):
    """
    The bin directory of a PyPy venv with Twisted (bench/.pypy-venv), made
    when Debian's pypy3 is there or installable; None otherwise.
    """
    bin_dir = PYPY_VENV / "bin"
    if (bin_dir / "twistd").exists():
        return bin_dir if _pypy_requirements(bin_dir, install, log) else None
    if not install:
        return None
    if not shutil.which("pypy3") or not os.path.isdir("/usr/lib/pypy3.9/include"):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            return None
        log("pypy3 missing: trying apt-get install -y pypy3 pypy3-venv pypy3-dev")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")
        try:
            subprocess.run(["apt-get", "install", "-y", "pypy3", "pypy3-venv", "pypy3-dev"], env=env,
                           timeout=600, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if not shutil.which("pypy3"):
            return None
    log("creating the PyPy venv bench/.pypy-venv with Twisted")
    try:
        subprocess.run(["pypy3", "-m", "venv", str(PYPY_VENV)], check=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return None
    return bin_dir if _pypy_requirements(bin_dir, install, log) else None


def chatd_requirements():
    """
    chatd's install_requires, read from setup.cfg.
    """
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    text = config.get("options", "install_requires", fallback="Twisted")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _pypy_requirements(bin_dir, install, log):
    """
    Make sure chatd's dependencies are in the PyPy venv (chatd itself runs
    from the work tree through PYTHONPATH, unchanged).  cryptography only
    from a wheel (its source needs Rust crates from the network); C
    extensions such as argon2-cffi-bindings build with pypy3-dev.
    """
    requirements = chatd_requirements()
    check = "import importlib.metadata as m, sys\n" \
            "from packaging.requirements import Requirement\n" \
            "for r in sys.argv[1:]:\n" \
            "    m.version(Requirement(r).name)\n"
    ok = subprocess.run([str(bin_dir / "python"), "-c", check, *requirements],
                        capture_output=True, timeout=120).returncode == 0
    if ok:
        return True
    if not install:
        return False
    log(f"installing chatd's requirements into the PyPy venv: {' '.join(requirements)}")
    try:
        subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q",
                        "--only-binary=cryptography", "packaging", *requirements], check=True, timeout=1800)
    except (OSError, subprocess.SubprocessError):
        return False
    return (bin_dir / "twistd").exists()
