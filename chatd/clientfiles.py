"""
``chatd-client``'s side of file transfers, a mixin of ``ChatClient``:
``/upload PATH`` (hashed in a thread, then sent), ``/download NAME [DEST]``
(into a hidden file, verified, renamed into place), and resuming both when
``--reconnect`` brings a new connection (``/upload-resume``,
``/download-from``).  Only files it asked for are accepted.
"""

import collections
import os
import re
import shlex

from twisted.python.failure import Failure

from chatd import grammar, localfiles
from chatd.grammar import ChatError
from chatd.localfiles import TransferError


class ResumeUpload:
    def __init__(self, path):
        self.path = path


_PAST_END = re.compile(r"offset \d+ is past the end of (.+) \(\d+ bytes\)\Z")


class _Incoming:
    """
    The raw-section sink of one download: disk and progress bar.
    """

    def __init__(self, name, download, progress):
        self.name = name
        self.download = download
        self.progress = progress

    def write(self, data):
        self.download.write(data)
        self.progress.update(len(data))


class FileTransfers:
    """
    Transfers for a ``TransferReceiver`` with a ``console``, ``blocking``,
    ``send``, ``_drain``, ``_touch`` and ``_open``.
    """

    def __init__(self, keep_partials=False, resume=()):
        self._pending = {}  # file name -> deque of (directory, filename, offset) asked for
        self._download = None  # the _Incoming being received
        # With --reconnect: transfers cut off by a lost connection are kept
        # (``unfinished``) and resumed by the next connection (``resume``).
        self.keep_partials = keep_partials
        self.unfinished = []  # ("download", name, directory, filename) / ("upload", path)
        self._to_resume = list(resume)
        self._resuming = None  # (source, path): /upload-resume sent, answer awaited
        self._sending = None  # (name, path) of the upload going out, or unanswered

    def transfer_line(self, message):
        """
        A server line, seen first by the transfers: returns True if it was
        theirs alone (a file header, a resume answer).
        """
        if message.kind in ("file", "part"):
            self._receive_file(message)
            return True
        if self._sending is not None and (message.kind == "error" or (
                message.kind == "notice"
                and message.text.startswith(f"stored {self._sending[0]}: "))):
            self._sending = None  # the server answered the upload
        if message.kind == "notice":
            resumed = grammar.resumed_from(message.text)
            if resumed and self._resuming and resumed[0] == self._resuming[0].name:
                self._send_rest(resumed[1])
                return True
        elif message.kind == "error":
            self._error_answer(message.text)
        return False

    def _error_answer(self, text):
        """
        An error that ends a transfer we asked for.
        """
        if text.startswith("no such file: "):
            self._take_pending(text[len("no such file: "):])
        past = _PAST_END.match(text)
        where = past and self._take_pending(past.group(1))
        if where:
            # The kept part is longer than the file now shared: start over.
            directory, filename, _ = where
            self._discard_partial(directory, filename)
            self._request_download(past.group(1), directory, filename)
        if self._resuming is not None:
            source, path = self._resuming
            self._resuming = None
            source.close()
            self._failed(f"could not resume the upload of {source.name}")
            self._upload_done()

    def _transfers_lost(self):
        """
        The connection is gone: a download under way is deleted, or (with
        ``keep_partials``) kept, and every transfer cut off is remembered in
        ``unfinished`` for the next connection.
        """
        if self._download is not None:
            sink, self._download = self._download, None
            sink.progress.close()
            got = sink.download.offset + sink.download.received
            if self.keep_partials:
                sink.download.keep()
                self.console.info(f"download of {sink.name} cut off after {got} of "
                                  f"{sink.download.size} bytes; kept to resume")
                self.unfinished.append(("download", sink.name, sink.download.directory,
                                        sink.download.filename))
            else:
                sink.download.abort()
                self._failed(f"download of {sink.name} cut off after {got} "
                             f"of {sink.download.size} bytes; partial file deleted")
        if self.keep_partials:
            self._upload_cut_off()
            for name, queue in self._pending.items():  # asked for, not started
                self.unfinished.extend(("download", name, d, f) for d, f, _ in queue)
            if self._resuming is not None:
                source, path = self._resuming
                source.close()
                self.unfinished.append(("upload", path))
        self._pending.clear()
        self._resuming = None

    # --- uploads ----------------------------------------------------------

    def do_upload(self, arg):
        path = _path_argument(arg)
        if not path:
            self.console.error("usage: /upload PATH")
            return
        self._uploading = os.path.basename(path) or path
        d = self.blocking(localfiles.open_upload, path)
        d.addCallback(self._send_upload, path)
        d.addErrback(self._upload_refused)

    def _upload_done(self):
        self._uploading = None
        self._said_waiting = False
        self._drain()

    def _upload_refused(self, failure):
        if failure.check(TransferError):
            self._failed(failure.value.message)
        else:
            self._failed(f"upload failed: {failure.getErrorMessage()}")
        self._upload_done()

    def _send_upload(self, source, path, offset=None):
        """
        Send ``source``: a whole upload, or (``offset``) the rest of one
        the server said it holds ``offset`` bytes of.
        """
        if not self._open:
            source.close()
            return
        self._uploading = source.name
        if offset is None:
            self.console.info(f"uploading {path} as {source.name} "
                              f"({grammar.format_size(source.size)})")
        progress = self.console.progress(source.size, f"upload {source.name}")
        if offset:
            progress.update(offset)

        def sent(chunk):
            progress.update(len(chunk))
            self._touch()
            return chunk

        def done(result):
            progress.close()
            if isinstance(result, Failure) and self._open:
                if self.keep_partials:
                    self._upload_cut_off()
                else:
                    self._failed(f"upload of {source.name} failed: {result.getErrorMessage()}")
            if not self.keep_partials:
                self._sending = None  # else: until the server answers
            self._upload_done()

        self._sending = (source.name, path)

        header = None if offset is not None else \
            grammar.upload_command(source.name, source.size, source.sha256)
        self.send_file(header, source, transform=sent, done=done)

    def _upload_cut_off(self):
        """
        The connection dropped while an upload was going out: the next
        connection resumes it.
        """
        if self._sending is not None:
            (name, path), self._sending = self._sending, None
            self.console.info(f"upload of {name} cut off; resumed once reconnected")
            self.unfinished.append(("upload", path))

    def _resume_transfers(self):
        """
        After the greeting of a new connection: ask again for what the last
        one cut off (uploads go first in the outbox, in order).
        """
        uploads = []
        for item in self._to_resume:
            if item[0] == "download":
                self._request_download(*item[1:])
            else:
                uploads.append(ResumeUpload(item[1]))
        self._to_resume = []
        self._outbox.extendleft(reversed(uploads))

    def _resume_upload(self, path):
        self._uploading = os.path.basename(path) or path
        d = self.blocking(localfiles.open_upload, path)
        d.addCallback(self._ask_resume, path)
        d.addErrback(self._upload_refused)

    def _ask_resume(self, source, path):
        if not self._open:
            source.close()
            self.unfinished.append(("upload", path))
            return
        self._uploading = source.name
        self._resuming = (source, path)
        self.send(grammar.upload_resume_command(source.name, source.size, source.sha256))

    def _send_rest(self, offset):
        source, path = self._resuming
        self._resuming = None
        if offset:
            self.console.info(f"resuming {source.name} from {grammar.format_size(offset)}")
        source.skip_to(offset)
        self._send_upload(source, path, offset)

    # --- downloads --------------------------------------------------------

    def do_download(self, arg):
        try:
            parts = shlex.split(arg)
        except ValueError:
            parts = [arg]
        if len(parts) > 2:
            parts = [arg]  # an unquoted name with spaces
        if not parts or not parts[0]:
            self.console.error("usage: /download NAME [DEST]")
            return
        name, dest = parts[0], (parts[1] if len(parts) == 2 else None)
        try:
            where = localfiles.resolve_destination(dest, name)
        except TransferError as e:
            self._failed(f"cannot download {name}: {e.message}")
            return
        self._request_download(name, *where)

    def _request_download(self, name, directory, filename):
        """
        Ask for ``name``, from where a kept part of it left off if there is one.
        """
        offset = localfiles.partial_size(directory, filename)
        self._pending.setdefault(name, collections.deque()).append((directory, filename, offset))
        if offset:
            self.console.info(f"resuming {name} from {grammar.format_size(offset)}")
            self.send(grammar.download_from_command(offset, name))
        else:
            self.send(grammar.client_command("download", name))

    def _discard_partial(self, directory, filename):
        try:
            os.unlink(localfiles.partial_path(directory, filename))
        except OSError:
            pass

    def _take_pending(self, name):
        queue = self._pending.get(name)
        if not queue:
            return None
        where = queue.popleft()
        if not queue:
            del self._pending[name]
        return where

    def _receive_file(self, header):
        name, size = header.text, header.size
        where = self._take_pending(name)
        if where is None or where[2] != header.offset:
            # Never write what we did not ask for; its bytes would follow as
            # lines, so nothing more from this server is read.
            self._failed(f"the server sent a file nobody asked for ({name!r}); "
                         f"closing the connection")
            self._refused_server = True
            self.transport.loseConnection()
            return
        directory, filename, offset = where
        try:
            grammar.check_filename(name)
            download = localfiles.Download(directory, filename, size, header.sha256, offset)
        except ChatError as e:
            self._failed(f"refused a download named {name!r}: {e.message}")
            self.receive_raw(size - offset, None)
            return
        except TransferError as e:
            self._failed(f"download of {name} failed: {e.message}")
            self.receive_raw(size - offset, None)
            return
        progress = self.console.progress(size, f"download {name}")
        if offset:
            progress.update(offset)
        sink = _Incoming(name, download, progress)
        self._download = sink
        self.receive_raw(size - offset, sink)

    def raw_finished(self, sink, rest):
        if sink is not None:
            self._download = None
            self._finish_download(sink)
        self.setLineMode(rest)

    def _finish_download(self, sink):
        sink.progress.close()
        download = sink.download
        try:
            path = download.finish()
        except TransferError as e:
            self._failed(f"download of {sink.name} failed: {e.message}; "
                         f"partial file deleted")
            return
        note = ""
        if os.path.basename(path) != download.filename:
            note = f" ({download.filename} already exists)"
        self.console.info(f"saved {sink.name} ({grammar.format_size(download.size)}, "
                          f"sha256 verified) as {path}{note}")

    def _failed(self, message):
        self.failures += 1
        self.console.error(message)


def _path_argument(arg):
    """
    ``/upload PATH``: the path as typed if it exists, else unquoted.
    """
    arg = arg.strip()
    if not arg or os.path.exists(os.path.expanduser(arg)):
        return arg
    try:
        parts = shlex.split(arg)
    except ValueError:
        return arg
    return parts[0] if len(parts) == 1 else arg
