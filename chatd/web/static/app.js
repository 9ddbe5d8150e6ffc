// The chatd web client: one WebSocket to /ws, each text frame one protocol
// line both ways (docs/PROTOCOL.md).  Every text from the server is shown
// with textContent, never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const messages = $("messages");
  const CHUNK = 256 * 1024;          // bytes per binary frame of an upload
  const WINDOW = 2 * 1024 * 1024;    // bytes allowed to wait in the socket
  const MAX_LINES = 2000;            // messages kept on the page
  const FILE_LINE = /^(.+): (\d+) bytes, shared by (\S+) at (.+ UTC), sha256 ([0-9a-f]{64})$/;

  let ws = null;
  let me = null;
  let backoff = 1;
  let retryTimer = null;
  let everConnected = false;
  let online = [];
  let filesBlock = false;            // inside a run of /files reply lines
  let upload = null;                 // the upload in progress
  const hidden = { who: 0, files: 0, rooms: 0 };  // replies the page asked for

  // --- the server's lines, classified as grammar.parse_server_line does ---

  function parse(line) {
    let m;
    if (line.startsWith("<") && (m = /^<([^>]*)> (.*)$/s.exec(line))) {
      return { kind: "chat", name: m[1], text: m[2] };
    }
    if (line.startsWith("*** ")) return { kind: "notice", text: line.slice(4) };
    if (line.startsWith("* ")) {
      const rest = line.slice(2), i = rest.indexOf(" ");
      return { kind: "action", name: i < 0 ? rest : rest.slice(0, i), text: i < 0 ? "" : rest.slice(i + 1) };
    }
    if ((m = /^\[private\] <([^>]*)> (.*)$/s.exec(line))) {
      return { kind: "private", name: m[1], text: m[2] };
    }
    if ((m = /^\[private to ([^\]]*)\] (.*)$/s.exec(line))) {
      return { kind: "private-sent", name: m[1], text: m[2] };
    }
    if (line.startsWith("- ") || line === "-") return { kind: "reply", text: line.slice(2) };
    if (line.startsWith("! ")) return { kind: "error", text: line.slice(2) };
    if ((m = /^FILE (\d+) ([0-9a-f]{64}) (.+)$/.exec(line))) {
      return { kind: "file", size: +m[1], name: m[3], text: m[3] };
    }
    return { kind: "unknown", text: line };
  }

  // --- showing lines --------------------------------------------------------

  function time() {
    const d = new Date();
    return [d.getHours(), d.getMinutes(), d.getSeconds()]
      .map((n) => String(n).padStart(2, "0")).join(":");
  }

  function show(kind, parts, own) {
    const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    const li = document.createElement("li");
    li.className = kind + (own ? " own" : "");
    const stamp = document.createElement("time");
    stamp.textContent = time();
    li.append(stamp);
    for (const [cls, text] of parts) {
      const span = document.createElement("span");
      if (cls) span.className = cls;
      span.textContent = text;
      li.append(span);
    }
    messages.append(li);
    while (messages.childElementCount > MAX_LINES) messages.firstElementChild.remove();
    if (atBottom || own) messages.scrollTop = messages.scrollHeight;
    return li;
  }

  function local(text, kind) {
    return show(kind || "local", [["text", text]]);
  }

  function display(p) {
    switch (p.kind) {
      case "chat":
        return show("chat", [["name", `<${p.name}>`], ["text", p.text]], p.name === me);
      case "action":
        return show("action", [["name", `* ${p.name}`], ["text", p.text]], p.name === me);
      case "private":
        return show("private", [["name", `[private] <${p.name}>`], ["text", p.text]]);
      case "private-sent":
        return show("private", [["name", `[private to ${p.name}]`], ["text", p.text]], true);
      case "notice":
        return show("notice", [["text", `*** ${p.text}`]]);
      case "reply":
        return show("reply", [["text", p.text]]);
      case "error":
        return show("error", [["text", `! ${p.text}`]]);
      default:
        return show("unknown", [["text", p.text]]);
    }
  }

  // --- what the lines tell us -------------------------------------------------

  function setMe(name) {
    me = name;
    $("whoami").textContent = name ? `you are ${name}` : "";
  }

  function renderWho() {
    const list = $("who");
    list.replaceChildren(...online.map((name) => {
      const li = document.createElement("li");
      li.textContent = name;
      if (name === me) li.className = "own";
      return li;
    }));
    $("count").textContent = `(${online.length})`;
  }

  function renamed(from, to) {
    online = online.map((n) => (n === from ? to : n));
    if (from === me) {
      setMe(to);
      sessionStorage.setItem("chatd-name", to);
    }
    renderWho();
  }

  function fileLine(text) {
    const m = FILE_LINE.exec(text);
    if (!m) return false;
    const list = $("files");
    if (!filesBlock) list.replaceChildren();
    filesBlock = true;
    const [, name, size, who, when] = m;
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = "files/" + encodeURIComponent(name);
    a.download = name;
    a.textContent = name;
    const about = document.createElement("small");
    about.textContent = ` ${formatSize(+size)}, from ${who}, ${when}`;
    li.append(a, about);
    list.append(li);
    return true;
  }

  function formatSize(n) {
    const units = ["bytes", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i ? `${n.toFixed(1)} ${units[i]}` : `${n} bytes`;
  }

  function request(what) {
    hidden[what]++;
    send("/" + what);
  }

  // Returns true if the line was consumed (a reply the page asked for).
  function track(p) {
    const isFiles = p.kind === "reply" && (FILE_LINE.test(p.text) || p.text === "no files shared yet");
    if (!isFiles && filesBlock) {
      filesBlock = false;  // a /files answer is one run of lines: it ended
      if (hidden.files) hidden.files--;
    }
    let m;
    if (p.kind === "notice") {
      const t = p.text;
      if (t.startsWith("Welcome to ")) {
        const server = /^Welcome to (.*?): /.exec(t);
        if (server) { $("server").textContent = server[1]; document.title = server[1]; }
        if ((m = /\byou are (\S+?);/.exec(t))) {  // else: --require-login, not in yet
          setMe(m[1]);
          joinedRoom();
          const wanted = sessionStorage.getItem("chatd-name");
          if (wanted && wanted !== me) send("/nick " + wanted);
        }
      } else if ((m = /^(\S+) is now known as (\S+)$/.exec(t))) {
        renamed(m[1], m[2]);
      } else if ((m = /^(?:registered and )?logged in as (\S+)$/.exec(t))) {
        const first = me === null;
        renamed(me, m[1]);
        if (first) joinedRoom();
      } else if ((m = /^(\S+) joined$/.exec(t))) {
        if (!online.includes(m[1])) online.push(m[1]);
        renderWho();
      } else if ((m = /^(\S+) left\b/.exec(t))) {
        online = online.filter((n) => n !== m[1]);
        renderWho();
      } else if (/^stored /.test(t) || / shared .+ \(/.test(t) || / was removed \(/.test(t)) {
        if (upload && t.startsWith(`stored ${upload.name}:`)) finishUpload(true);
        request("files");
      }
    } else if (p.kind === "reply") {
      if ((m = /^online \((\d+)\): (.*)$/.exec(p.text))) {
        online = m[2] ? m[2].split(", ") : [];
        renderWho();
        if (hidden.who) { hidden.who--; return true; }
      } else if (isFiles) {
        if (p.text !== "no files shared yet") return fileLine(p.text) && hidden.files > 0;
        $("files").replaceChildren();
        if (hidden.files) { hidden.files--; return true; }
      } else if ((m = /^rooms?\b.*?:\s*(.*)$/i.exec(p.text))) {
        showRooms(m[1]);
        if (hidden.rooms) { hidden.rooms--; return true; }
      }
    } else if (p.kind === "error") {
      if (hidden.rooms && /unknown command: \/rooms/.test(p.text)) {
        hidden.rooms--;
        return true;
      }
      if (upload && !upload.done) finishUpload(false, p.text);
    }
    return false;
  }

  function joinedRoom() {
    request("who");
    request("files");
    request("rooms");
  }

  function showRooms(text) {
    const names = text.split(/,\s*/).map((s) => s.trim()).filter(Boolean);
    $("rooms").replaceChildren(...names.map((name) => {
      const li = document.createElement("li");
      li.textContent = name;
      return li;
    }));
    $("rooms-panel").hidden = false;
  }

  // --- the socket -----------------------------------------------------------------

  function send(line) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(line);
      return true;
    }
    return false;
  }

  function setStatus(text, cls) {
    const status = $("status");
    status.textContent = text;
    status.className = cls;
  }

  function connect() {
    retryTimer = null;
    setStatus("connecting…", "connecting");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + "/ws");
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      backoff = 1;
      if (everConnected) local("reconnected", "status-line");
      everConnected = true;
      setStatus("connected", "connected");
      hidden.who = hidden.files = hidden.rooms = 0;
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return;  // a /download's bytes: use the links
      const p = parse(event.data);
      if (p.kind === "file") {
        local(`downloads in the page are links: files/${p.name}`, "status-line");
        return;
      }
      if (!track(p)) display(p);
    };
    ws.onclose = (event) => {
      ws = null;
      setMe(null);
      if (upload && !upload.done) finishUpload(false, "connection lost");
      const why = event.reason ? ` (${event.reason})` : "";
      const wait = backoff;
      backoff = Math.min(backoff * 2, 30);
      setStatus(`disconnected; reconnecting in ${wait} s`, "disconnected");
      local(`disconnected${why}; reconnecting in ${wait} s`, "status-line");
      online = [];
      renderWho();
      retryTimer = setTimeout(connect, wait * 1000);
    };
  }

  // --- uploads: "/upload NAME SIZE SHA256", then the bytes as binary frames ---

  async function sha256(file) {
    if (!(window.crypto && crypto.subtle) || file.size > 256 * 1024 * 1024) return null;
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function progress(fraction, text) {
    $("transfer").hidden = false;
    $("progress").value = fraction;
    $("progress-text").textContent = text;
  }

  function finishUpload(ok, why) {
    const u = upload;
    if (!u || u.done) return;
    u.done = true;
    u.failed = !ok;
    progress(ok ? 1 : $("progress").value,
      ok ? `${u.name}: uploaded` : `${u.name}: not uploaded (${why})`);
    $("transfer").className = ok ? "ok" : "failed";
    if (!u.sending) upload = null;
  }

  function waitForRoom(socket) {
    return new Promise((resolve) => {
      const check = () => {
        if (socket.readyState !== WebSocket.OPEN || socket.bufferedAmount < WINDOW) resolve();
        else setTimeout(check, 20);
      };
      check();
    });
  }

  async function startUpload(file) {
    if (upload) {
      local(`wait: ${upload.name} is still uploading`, "error");
      return;
    }
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      local("not connected; try again when the page says connected", "error");
      return;
    }
    const name = file.name.replace(/[\r\n]/g, " ");
    upload = { name, size: file.size, done: false, sending: true };
    $("transfer").className = "";
    progress(0, `${name}: checking…`);
    const socket = ws;
    const digest = await sha256(file);
    if (socket !== ws || upload.done) { upload.sending = false; upload = null; return; }
    socket.send(`/upload ${name} ${file.size}` + (digest ? ` ${digest}` : ""));
    // The declared bytes always follow (the server skips them if it refused).
    let sent = 0;
    while (sent < file.size && socket.readyState === WebSocket.OPEN) {
      await waitForRoom(socket);
      const chunk = await file.slice(sent, sent + CHUNK).arrayBuffer();
      if (socket.readyState !== WebSocket.OPEN) break;
      socket.send(chunk);
      sent += chunk.byteLength;
      if (!upload.done) {
        const moved = Math.max(0, sent - socket.bufferedAmount);
        progress(moved / Math.max(1, file.size), `${name}: ${formatSize(moved)} of ${formatSize(file.size)}`);
      }
    }
    upload.sending = false;
    if (upload.done) upload = null;
    else progress(1, `${name}: sent, waiting for the server…`);
  }

  // --- the page's controls -------------------------------------------------------

  $("say").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("line");
    const line = input.value;
    if (!line.trim()) return;
    let m;
    if (/^\/upload\b/i.test(line)) {
      local("to upload, use the Upload button or drop a file on the page", "error");
    } else if ((m = /^\/download\s+(.+)$/i.exec(line))) {
      const li = local("download: ", "status-line");
      const a = document.createElement("a");
      a.href = "files/" + encodeURIComponent(m[1].trim());
      a.download = m[1].trim();
      a.textContent = m[1].trim();
      li.append(a);
    } else if (!send(line)) {
      local("not connected; your line was not sent", "error");
      return;
    } else if (!line.startsWith("/") || line.startsWith("//")) {
      // the server sends our own lines to everyone else, not back to us
      display({ kind: "chat", name: me, text: line.startsWith("//") ? line.slice(1) : line });
    } else if ((m = /^\/me (.+)$/i.exec(line))) {
      display({ kind: "action", name: me, text: m[1].trim() });
    }
    input.value = "";
  });

  $("rename").addEventListener("submit", (event) => {
    event.preventDefault();
    const nick = $("nick").value.trim();
    if (nick && send("/nick " + nick)) $("nick").value = "";
  });

  $("upload").addEventListener("change", (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (file) startUpload(file);
  });

  const drop = document.body;
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    document.body.classList.add("dragging");
  });
  drop.addEventListener("dragleave", (event) => {
    if (event.target === document.body || !event.relatedTarget) document.body.classList.remove("dragging");
  });
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    document.body.classList.remove("dragging");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) startUpload(file);
  });

  connect();
})();
