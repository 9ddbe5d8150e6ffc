"""
File commands: list, upload (the raw section that follows), download.
"""

from datetime import datetime, timezone

from chatd import grammar
from chatd.commands.registry import collector, when_answered
from chatd.grammar import ChatError
from chatd.limits import QUEUED_DOWNLOADS
from chatd.metrics import upload_refusal

COMMANDS = []
command = collector(COMMANDS)


@command("files", "/files               the shared files, newest first")
def files(conn, arg):
    when_answered(conn, conn.store.listing(), lambda entries: _list(conn, entries),
                  hold="files", what="/files")


def _list(conn, entries):
    if not entries:
        conn.send(grammar.reply("no files shared yet"))
    for entry in entries:
        when = datetime.fromtimestamp(entry.time, timezone.utc)
        conn.send(grammar.reply(
            f"{entry.name}: {entry.size} bytes, shared by {entry.uploader} "
            f"at {when:%Y-%m-%d %H:%M:%S} UTC, sha256 {entry.sha256}"))


def _upload_help(conn):
    limit = grammar.format_size(conn.store.max_size)
    return f"/upload NAME SIZE [SHA256]  then SIZE raw bytes: share a file (up to {limit})"


@command("upload", _upload_help)
def upload(conn, arg):
    request = grammar.parse_upload(arg)
    try:
        name = grammar.check_filename(request.name)
        incoming = conn.store.begin(name, request.size, conn.name, request.sha256,
                                    conn.address_key)
    except ChatError as e:
        # The declared bytes follow anyway: swallow them, never as chat.
        conn.factory.metrics.upload_refused(upload_refusal(e.message))
        conn.receive_raw(request.size, None)
        raise
    _receive(conn, incoming)


@command("upload-resume", "/upload-resume NAME SIZE SHA256  go on with a cut-off upload")
def upload_resume(conn, arg):
    # No raw section follows a refusal: the sender waits for "resume ... from K".
    request = grammar.parse_upload_resume(arg)
    name = grammar.check_filename(request.name)
    incoming = conn.store.resume(name, request.size, conn.name, request.sha256,
                                 conn.address_key)
    conn.send(grammar.resume_notice(name, incoming.offset))
    _receive(conn, incoming)


def _receive(conn, incoming):
    incoming.throttle = (lambda: conn.pause_input("disk"),
                         lambda: conn.resume_input("disk"))
    conn.receive_upload(incoming, incoming.size - incoming.offset)


def upload_received(conn, incoming):
    """
    Every byte of ``incoming`` is in: commit it, holding further input
    until it is stored, so replies stay in order ("/upload ..." then
    "/files" lists the new file).
    """
    conn.pause_input("upload")
    incoming.room = conn.hub.current(conn)
    d = incoming.finish()
    d.addCallbacks(lambda result: _stored(conn, result),
                   lambda failure: _failed(conn, failure))
    d.addBoth(lambda _: conn.resume_after("upload"))


def _stored(conn, result):
    entry, removed = result
    conn.factory.metrics.upload_stored(entry.size)
    conn.log.info("{name} stored {file} ({size} bytes)", name=conn.name,
                  file=entry.name, size=entry.size)
    conn.send(grammar.notice(
        f"stored {entry.name}: {entry.size} bytes, sha256 {entry.sha256}"))
    room = conn.hub.current(conn)
    if room is not None:  # announced (and kept) in the uploader's room
        conn.hub.notify(grammar.file_shared(conn.name, entry.name, entry.size),
                        room=room, exclude=conn)
    for old in removed:
        conn.hub.notify(grammar.file_removed(old.name, conn.store.keep))


def _failed(conn, failure):
    if failure.check(ChatError):
        conn.factory.metrics.upload_refused(upload_refusal(failure.value.message))
        conn.error(failure.value.message)
    else:
        conn.log.failure("storing an upload from {name} failed", failure,
                         name=conn.name)
        conn.error("could not store the file (internal error)")


@command("download", "/download NAME       get a file: a line 'FILE SIZE SHA256 NAME', then the bytes")
def download(conn, name):
    if not name:
        raise ChatError("usage: /download NAME")
    when_answered(conn, conn.store.lookup(name), lambda entry: _queue(
        conn, grammar.file_header(entry.size, entry.sha256, entry.name), entry, 0),
        hold="files", what="/download")


@command("download-from", "/download-from OFFSET NAME  get a file from byte OFFSET on")
def download_from(conn, arg):
    offset, name = grammar.parse_download_from(arg)

    def found(entry):
        if offset > entry.size:
            raise ChatError(f"offset {offset} is past the end of {name} ({entry.size} bytes)")
        _queue(conn, grammar.part_header(offset, entry.size, entry.sha256, entry.name),
               entry, offset)
    when_answered(conn, conn.store.lookup(name), found, hold="files", what="/download-from")


def _queue(conn, header, entry, offset):
    if conn.files_queued >= QUEUED_DOWNLOADS:
        raise ChatError("too many downloads queued")
    conn.send_file(header, lambda: _open(conn, entry, offset))


def _open(conn, entry, offset):
    """
    Open a stored file when its transfer starts (it may have been replaced
    or dropped while it waited), at ``offset``.
    """
    try:
        source = open(conn.store.path(entry).path, "rb")
    except OSError:
        raise ChatError(f"no such file: {entry.name}")
    source.seek(offset)
    conn.factory.metrics.download()
    return source
