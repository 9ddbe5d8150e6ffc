import datetime
import ipaddress
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """
    A self-signed certificate for localhost and 127.0.0.1: (cert, key) paths.
    """
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return str(cert_path), str(key_path)
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
