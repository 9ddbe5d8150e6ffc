"""
The client's side of file transfers, on the local disk.

A download streams into a hidden file in its destination directory (named
after it, so one cut off can be resumed), hashed as the bytes arrive, and is
renamed into place only once its sha256 matches; an existing file is never replaced (``name (1).ext`` is taken
instead).  An upload's source is opened and hashed first, by a blocking
function meant for a thread, then read back exactly as many bytes as were
announced, whatever happens to the file meanwhile.
"""

import contextlib
import errno
import hashlib
import os
import stat

from chatd import grammar
from chatd.grammar import ChatError
from chatd.incoming import IncomingFile

CHUNK = 64 * 1024
MAX_VARIANTS = 999  # name (1).ext ... name (999).ext
_NO_HARD_LINKS = {errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP,
                  errno.EXDEV, errno.EMLINK, errno.ENOSYS}


class TransferError(Exception):
    """
    A transfer failed for a reason to tell the user in one line.
    """

    @property
    def message(self):
        return str(self.args[0])


def _reason(error):
    return error.strerror or str(error)


@contextlib.contextmanager
def _cleaning_up(cleanup, what):
    """
    On an ``OSError`` or ``TransferError`` inside: ``cleanup()``, then raise
    ``TransferError`` (an ``OSError`` as ``what: reason``).
    """
    try:
        yield
    except OSError as e:
        cleanup()
        raise TransferError(f"{what}: {_reason(e)}")
    except TransferError:
        cleanup()
        raise


# --- downloads ---------------------------------------------------------------


def variants(name):
    """
    ``name``, then ``stem (1).ext``, ``stem (2).ext``, ...
    """
    yield name
    stem, ext = os.path.splitext(name)
    for i in range(1, MAX_VARIANTS + 1):
        yield f"{stem} ({i}){ext}"


def place(temp, directory, name):
    """
    Move the file ``temp`` into ``directory`` as ``name`` or, if that exists,
    the first free variant of it; never replaces anything (a hard link is
    atomic about it, a rename after a check where links are not supported).
    Returns the path used.
    """
    for candidate in variants(name):
        target = os.path.join(directory, candidate)
        try:
            os.link(temp, target)
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in _NO_HARD_LINKS:
                raise
            if os.path.lexists(target):
                continue
            os.rename(temp, target)
            return target
        os.unlink(temp)
        return target
    raise TransferError(f"no free file name for {name} in {directory or '.'}")


def resolve_destination(dest, name):
    """
    Where ``/download NAME [DEST]`` saves: ``(directory, filename)``.  DEST
    may be an existing directory or a file path in one; ``None`` means the
    current directory.  Raises ``TransferError``.
    """
    if not dest:
        return ".", name
    dest = os.path.expanduser(dest)
    if os.path.isdir(dest):
        return dest, name
    directory, filename = os.path.split(dest)
    if dest.endswith(os.sep) or not filename:
        raise TransferError(f"no such directory: {dest}")
    if not os.path.isdir(directory or "."):
        raise TransferError(f"no such directory: {directory}")
    return directory or ".", filename


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def partial_path(directory, filename):
    """
    Where a download of ``filename`` into ``directory`` is received: a
    hidden file named after it, so a download cut off can be resumed.
    """
    name = f".chatd-{filename}.part"
    if len(name.encode("utf-8", "surrogateescape")) > 250:
        name = f".chatd-{hashlib.sha256(filename.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}.part"
    return os.path.join(directory, name)


def partial_size(directory, filename):
    """
    The bytes a cut-off download of ``filename`` left in ``directory`` (0: none).
    """
    try:
        info = os.lstat(partial_path(directory, filename))
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


class Download(IncomingFile):
    """
    One file being received: ``write`` each chunk, then ``finish`` (verify
    and move into place), ``abort`` (delete), or ``keep`` (cut off: left
    for a later resume).  With ``offset``, the first ``offset`` bytes are
    already in the hidden file (hashed again first, so the sha256 check
    covers the whole file) and the rest is appended.
    """

    def __init__(self, directory, filename, size, sha256, offset=0):
        self.directory = directory
        self.filename = filename
        self.size = size
        self.sha256 = sha256
        self.offset = offset
        temp = partial_path(directory, filename)
        try:
            if offset:
                file = open(temp, "r+b")
            else:
                flags = (os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_BINARY", 0))  # the last two: POSIX, Windows
                fd = os.open(temp, flags, 0o600)
                file = os.fdopen(fd, "wb")
        except OSError as e:
            raise TransferError(f"cannot write in {directory}: {_reason(e)}")
        IncomingFile.__init__(self, temp, file)
        if offset:
            self._rehash()

    def _rehash(self):
        with _cleaning_up(self.abort, f"cannot read the kept part of {self.filename}"):
            left = self.offset
            while left:
                chunk = self._file.read(min(left, CHUNK * 16))
                if not chunk:
                    raise TransferError(f"the kept part of {self.filename} is shorter "
                                        f"than {self.offset} bytes")
                self._hash.update(chunk)
                left -= len(chunk)
            self._file.truncate(self.offset)

    def keep(self):
        """
        Cut off: leave what arrived for a resume.
        """
        try:
            self._file.close()
        except OSError:
            self.abort()

    def finish(self):
        """
        Verify the sha256 and move the file into place; returns its path.
        Raises ``TransferError`` (the partial file is gone by then).
        """
        if self.error is not None:
            raise TransferError(f"could not write {self.filename}: {_reason(self.error)}")
        digest = self.hexdigest()
        if digest != self.sha256:
            self.abort()
            raise TransferError(
                f"sha256 mismatch for {self.filename}: got {digest}, "
                f"expected {self.sha256}")
        with _cleaning_up(self.abort, f"could not save {self.filename}"):
            self.close()
            os.chmod(self.temp, 0o666 & ~_umask())  # created private (0600)
            return place(self.temp, self.directory, self.filename)


# --- uploads -----------------------------------------------------------------


class UploadSource:
    """
    An open local file with the name, size and sha256 it is announced with.
    ``read`` gives exactly ``size`` bytes in all: a file that grew is cut, one
    that shrank is padded with zeros (the server then refuses the sha256).
    """

    def __init__(self, file, name, size, sha256):
        self.file = file
        self.name = name
        self.size = size
        self.sha256 = sha256
        self._left = size

    def skip_to(self, offset):
        """
        Go on from byte ``offset`` (a resumed upload).
        """
        self.file.seek(offset)
        self._left = self.size - offset

    def read(self, n=-1):
        if n < 0 or n > self._left:
            n = self._left
        data = self.file.read(n) if n else b""
        if len(data) < n:
            data += b"\0" * (n - len(data))
        self._left -= n
        return data

    def close(self):
        self.file.close()


def open_upload(path):
    """
    Open and hash the file at ``path`` (blocking: run it in a thread).
    Returns an ``UploadSource`` positioned at the start, or raises
    ``TransferError``.
    """
    path = os.path.expanduser(path)
    try:
        name = grammar.check_filename(os.path.basename(path.rstrip(os.sep)))
    except ChatError as e:
        raise TransferError(f"cannot upload {path}: {e.message}")
    try:
        file = open(path, "rb")
    except OSError as e:
        raise TransferError(f"cannot read {path}: {_reason(e)}")
    with _cleaning_up(file.close, f"cannot read {path}"):
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise TransferError(f"cannot upload {path}: not a regular file")
        size = info.st_size
        digest = hashlib.sha256()
        left = size
        while left:
            chunk = file.read(min(CHUNK, left))
            if not chunk:
                raise TransferError(f"cannot upload {path}: it shrank while being read")
            digest.update(chunk)
            left -= len(chunk)
        file.seek(0)
    return UploadSource(file, name, size, digest.hexdigest())
