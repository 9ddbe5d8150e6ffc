"""
The web client in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium), against a real daemon, beside
raw-socket users: chat both ways, files both ways, the server's errors,
hostile text kept inert, a foreign origin refused, reconnecting, and a
screenshot of a busy page.
"""

import hashlib
import http.server
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from loopback import download, upload
from webclient import web_daemon

sys.path.insert(0, str(Path(__file__).parent / "adversarial"))
from test_adv_lines import HOSTILE  # noqa: E402  (the adversarial suite's list)

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT = 10

# Text that would become markup or script if a page ever used innerHTML.
INJECTIONS = [
    "<script>window.pwned = 1</script>",
    "<img src=x onerror=\"window.pwned = 2\">",
    "<b>bold</b> &amp; &lt;i&gt; <!-- comment -->",
    "<a href=\"javascript:window.pwned = 3\">click</a>",
    "</li></ol><h1 id=injected>big</h1>",
    "<svg onload=\"window.pwned = 4\"></svg>",
    "\"'><iframe src=\"about:blank\"></iframe>",
]

# What the page's message list may contain: nothing else is ever created.
MESSAGES_DOM = """
const tags = new Set();
for (const el of document.querySelectorAll('#messages *')) tags.add(el.tagName);
return {tags: Array.from(tags).sort(),
        scripts: document.scripts.length,
        injected: document.querySelectorAll('#injected, iframe, svg, img, h1:not(#server)').length,
        pwned: window.pwned === undefined ? null : window.pwned};
"""

LINES = """
return Array.from(document.querySelectorAll('#messages li')).map(li => ({
  kind: li.className,
  text: Array.from(li.children).filter(c => c.tagName !== 'TIME')
             .map(c => c.textContent).join(' ')}));
"""


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def browser(tmp_path):
    """
    ``browser(name)``: a headless Chromium downloading into
    ``tmp_path/downloads-NAME``; all are closed at the end.
    """
    drivers = []

    def open_browser(name, width=1100, height=720):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", f"--window-size={width},{height}",
                    "--disable-extensions", "--no-first-run"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        drivers.append(driver)
        driver.downloads = tmp_path / f"downloads-{name}"
        driver.downloads.mkdir()
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": str(driver.downloads)})
        return driver

    yield open_browser
    for driver in drivers:
        driver.quit()


def lines(driver):
    return driver.execute_script(LINES)


def wait_for(driver, predicate, what, timeout=WAIT):
    """
    Wait until ``predicate(driver)`` is true (selenium polls the page).
    """
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(predicate)
    except Exception:
        raise AssertionError(f"{what}; the page shows: {lines(driver)[-15:]}")


def wait_line(driver, test, what=None):
    """
    Wait for a message line whose text satisfies ``test`` (a substring or
    a callable); return it.
    """
    check = (lambda text: test in text) if isinstance(test, str) else test

    def found(d):
        return next((l for l in lines(d) if check(l["text"])), False)
    return wait_for(driver, found, what or f"no line matching {test!r}")


def open_page(driver, daemon):
    driver.get(daemon.url + "/")
    wait_for(driver, lambda d: d.find_element(By.ID, "status").text == "connected",
             "the page did not connect")
    greeting = wait_line(driver, "*** Welcome")
    return greeting["text"].split("you are ")[1].split(";")[0]


def type_line(driver, text):
    box = driver.find_element(By.ID, "line")
    box.send_keys(text)
    driver.find_element(By.CSS_SELECTOR, "#say button").click()


def rename(driver, name):
    driver.find_element(By.ID, "nick").send_keys(name)
    driver.find_element(By.CSS_SELECTOR, "#rename button").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "whoami").text == f"you are {name}",
             f"not renamed to {name}")


def severe_console(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_two_browsers_and_nc_chat_and_share_files(make_daemon, browser, tmp_path):
    d = web_daemon(make_daemon, "--rate", "0", "--max-file-size", "300K")
    alice, bob = browser("alice"), browser("bob")
    open_page(alice, d)
    open_page(bob, d)
    rename(alice, "alice")
    rename(bob, "bob")
    nc = d.client()
    nc.nick("carol")

    # Chat both ways between the browsers and the raw socket.
    type_line(alice, "hello from alice's browser")
    assert nc.expect("<alice>") == "<alice> hello from alice's browser"
    wait_line(bob, "<alice> hello from alice's browser")
    own = wait_line(alice, "hello from alice's browser")
    assert "own" in own["kind"]
    nc.say("hi browsers, carol here")
    wait_line(alice, "<carol> hi browsers, carol here")
    wait_line(bob, "<carol> hi browsers, carol here")
    type_line(bob, "/me waves")
    assert nc.expect("* bob") == "* bob waves"
    assert wait_line(alice, "* bob waves")["kind"] == "action"
    type_line(bob, "/msg alice just for you")
    assert wait_line(alice, "just for you")["kind"] == "private"
    assert wait_line(bob, "[private to alice]")["kind"].startswith("private")
    type_line(alice, "/who")
    wait_line(alice, lambda t: t.startswith("online (3)"))
    type_line(alice, "/frobnicate")
    assert wait_line(alice, "unknown command: /frobnicate")["kind"] == "error"
    wait_for(alice, lambda dr: dr.find_element(By.ID, "who").text.split("\n")
             == ["alice", "bob", "carol"], "who-is-online list")

    # A browser upload, downloaded byte-identical by the raw socket.
    sent = tmp_path / "from browser.bin"
    payload = bytes(range(256)) * 1000 + b"end"
    sent.write_bytes(payload)
    alice.find_element(By.ID, "upload").send_keys(str(sent))
    wait_line(alice, f"stored from browser.bin: {len(payload)} bytes, sha256 {sha(payload)}")
    wait_for(alice, lambda dr: "uploaded" in dr.find_element(By.ID, "progress-text").text,
             "the progress bar did not finish")
    nc.expect(lambda l: "alice shared from browser.bin" in l)
    header, body = download(nc, "from browser.bin")
    assert body == payload and header.sha256 == sha(payload)

    # A raw-socket upload, downloaded by a browser from its file list.
    shared = b"carol's notes\n" * 3000
    assert upload(nc, "notes é.txt", shared, sha(shared)).startswith("*** stored")
    link = wait_for(bob, lambda dr: next(
        (a for a in dr.find_elements(By.CSS_SELECTOR, "#files a") if a.text == "notes é.txt"),
        False), "the file list has no notes é.txt")
    link.click()
    saved = bob.downloads / "notes é.txt"
    wait_for(bob, lambda dr: saved.is_file() and saved.stat().st_size == len(shared),
             f"no download in {sorted(p.name for p in bob.downloads.iterdir())}")
    assert saved.read_bytes() == shared

    # Over the limit: the server's own error, shown as an error.
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 400 * 1024)
    bob.find_element(By.ID, "upload").send_keys(str(big))
    error = wait_line(bob, "file too large: big.bin")
    assert error["kind"] == "error" and error["text"].startswith("! file too large")
    wait_for(bob, lambda dr: "not uploaded" in dr.find_element(By.ID, "progress-text").text,
             "the upload was not marked failed")
    # The refused bytes were skipped: bob still chats.
    type_line(bob, "still here")
    assert nc.expect("<bob>") == "<bob> still here"

    # Busy page: more lines, then the screenshot, kept with the test's files
    # (and, with CHATD_SCREENSHOT_DOCS=1, as docs/web-client.png for the README).
    for i in range(3):
        nc.say(f"line {i} from carol over nc")
    type_line(alice, "/help")
    wait_line(alice, "/quit [REASON]")
    type_line(alice, "thanks all, see you")
    wait_line(bob, "thanks all, see you")
    shot = tmp_path / "web-client.png"
    alice.execute_script("document.getElementById('messages').scrollTop = 1e9")
    assert alice.save_screenshot(str(shot))
    assert shot.stat().st_size > 10000  # a picture, not a blank
    if os.environ.get("CHATD_SCREENSHOT_DOCS"):
        shutil.copy(shot, ROOT / "docs" / "web-client.png")
    assert severe_console(alice) == [] and severe_console(bob) == []


def test_hostile_text_stays_inert(make_daemon, browser):
    d = web_daemon(make_daemon, "--rate", "0")
    page = browser("page")
    open_page(page, d)
    nc = d.client()
    nc.nick("mallory")
    texts = [t.encode() for t in INJECTIONS] + HOSTILE
    for i, text in enumerate(texts):
        nc.send(b"h%02d " % i + text + b"\n")
        nc.send(b"/me h%02d " % i + text + b"\n")
    nc.say("done")
    wait_line(page, "<mallory> done")
    shown = lines(page)
    chat = [l["text"] for l in shown if l["text"].startswith("<mallory> h")]
    acts = [l["text"] for l in shown if l["text"].startswith("* mallory h")]
    assert len(chat) == len(acts) == len(texts)
    for i, text in enumerate(INJECTIONS):
        assert chat[i] == f"<mallory> h{i:02d} {text}"  # verbatim, as text
    dom = page.execute_script(MESSAGES_DOM)
    assert dom["tags"] == ["LI", "SPAN", "TIME"], dom
    assert dom["scripts"] == 1 and dom["injected"] == 0 and dom["pwned"] is None, dom
    assert severe_console(page) == []


class _OtherSite(http.server.BaseHTTPRequestHandler):
    """
    A page from another origin (no CSP of ours in the way).
    """

    def do_GET(self):
        body = b"<!doctype html><title>elsewhere</title><p>another site</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def other_site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def test_foreign_origin_refused(make_daemon, browser, other_site):
    d = web_daemon(make_daemon)
    page = browser("page")
    page.get(other_site)
    outcome = page.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const ws = new WebSocket(arguments[0]);
        ws.onopen = () => done('open');
        ws.onclose = (e) => done('closed ' + e.code);
    """, f"ws://127.0.0.1:{d.web_port}/ws")
    assert outcome == "closed 1006", outcome
    assert "403" in str(page.get_log("browser"))
    assert "refused a WebSocket from origin" in d.log()
    # The page from the daemon's own origin connects.
    open_page(page, d)


def test_reconnects_with_backoff(make_daemon, browser):
    d = web_daemon(make_daemon)
    page = browser("page")
    open_page(page, d)
    rename(page, "steady")
    d.stop()
    wait_for(page, lambda dr: dr.find_element(By.ID, "status").text.startswith(
        "disconnected; reconnecting in"), "the page did not say it lost the server")
    wait_line(page, "disconnected; reconnecting in 1 s")
    d.start()
    wait_for(page, lambda dr: dr.find_element(By.ID, "status").text == "connected",
             "the page did not reconnect", timeout=40)
    wait_line(page, "reconnected")
    # It asks for its name back.
    wait_for(page, lambda dr: dr.find_element(By.ID, "whoami").text == "you are steady",
             "the name was not taken back")


def test_phone_sized_screen(make_daemon, browser, tmp_path):
    d = web_daemon(make_daemon)
    phone = browser("phone")
    # A phone's viewport (Chromium's windows are at least 500 px wide).
    phone.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    open_page(phone, d)
    assert phone.execute_script("return window.innerWidth") == 390
    type_line(phone, "typed on a phone")
    wait_line(phone, "typed on a phone")
    overflow = phone.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    for element in ("line", "upload", "files-panel", "who"):
        assert phone.find_element(By.ID, element).rect["x"] < 390
    phone.save_screenshot(str(tmp_path / "web-client-phone.png"))
    assert severe_console(phone) == []


def test_drag_and_drop_upload(make_daemon, browser):
    d = web_daemon(make_daemon, "--rate", "0")
    page = browser("page")
    open_page(page, d)
    nc = d.client()
    # What a drop from the file manager delivers: a DragEvent with a File.
    page.execute_script("""
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(70000).fill(65), 'tail'], 'dropped.txt'));
        document.body.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true}));
        document.body.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));
    """)
    wait_line(page, "stored dropped.txt: 70004 bytes")
    nc.expect(lambda l: "shared dropped.txt" in l)
    assert download(nc, "dropped.txt")[1] == b"A" * 70000 + b"tail"
    assert severe_console(page) == []


def test_login_required_then_register_in_the_page(make_daemon, browser):
    d = web_daemon(make_daemon, "--require-login", "--hash-memory", "1M")
    page = browser("page")
    page.get(d.url + "/")
    wait_line(page, "log in first")
    assert page.find_element(By.ID, "whoami").text == ""
    type_line(page, "/register webuser s3cret-pass")
    wait_line(page, "registered and logged in as webuser")
    wait_for(page, lambda dr: dr.find_element(By.ID, "whoami").text == "you are webuser",
             "the page did not take the account's name")
    wait_for(page, lambda dr: dr.find_element(By.ID, "who").text == "webuser",
             "the who list was not asked for after logging in")
    assert "s3cret-pass" not in page.find_element(By.ID, "messages").text
    assert severe_console(page) == []
