"""
Partial uploads kept for resuming: an upload that declared a sha256 and was
cut off (connection lost, idle timeout) keeps the bytes it received, hidden
and never listed, as ``partial/<sha256>-<size>.part`` under the data
directory, for ``window`` seconds after its last byte.  Their total size is
bounded by ``max_bytes`` (the oldest goes first); expired ones are removed by
a timer and, after a restart, by the sweep (by modification time).

A partial is *claimed* by the one connection resuming it (``/upload-resume``)
until that upload is stored, refused, or cut off again (then it is kept
again, with its new bytes).
"""

import os
import re
import time

from twisted.logger import Logger

_NAME = re.compile(r"([0-9a-f]{64})-(\d+)\.part\Z")


class Partials:
    """
    The kept partial uploads in ``directory`` (a ``FilePath``).  ``clock``
    is an ``IReactorTime`` (the reactor, or ``task.Clock`` in tests) for
    the expiry timers; ``wall`` the time the restart sweep compares
    modification times with.
    """

    log = Logger()

    def __init__(self, directory, window, max_bytes, clock, wall=time.time):
        self.directory = directory
        self.window = window
        self.max_bytes = max_bytes
        self.clock = clock
        self._kept = {}  # (size, sha256) -> [bytes, kept at (clock), timer]
        self._claimed = set()
        if not directory.isdir():
            directory.makedirs(ignoreExistingDirectory=True)
        self._sweep(wall())

    @property
    def used(self):
        return sum(held for held, _, _ in self._kept.values())

    def path(self, size, sha256):
        return self.directory.child(f"{sha256}-{size}.part").path

    def _sweep(self, now):
        """
        At start: keep what is named right, not too big and not expired;
        the oldest go first past the size bound.
        """
        found = []
        for child in self.directory.children():
            match = _NAME.match(child.basename())
            try:
                info = os.stat(child.path)
            except OSError:
                continue
            age = max(0.0, now - info.st_mtime)
            if match is None or info.st_size > int(match.group(2)) or \
                    age >= self.window:
                self.log.info("sweeping partial upload {path}", path=child.path)
                _remove(child.path)
                continue
            found.append((info.st_mtime, (int(match.group(2)), match.group(1)),
                          info.st_size, age))
        for _, key, held, age in sorted(found):
            self._hold(key, held, self.window - age)
        self._bound()

    def _hold(self, key, held, lifetime):
        timer = self.clock.callLater(max(0.0, lifetime), self._expire, key)
        self._kept[key] = [held, self.clock.seconds(), timer]

    def keep(self, size, sha256, temp, held):
        """
        Keep ``held`` bytes received at ``temp`` for ``(size, sha256)`` (a
        rename), unless a partial at least as long is kept already.
        Returns whether it was kept.
        """
        key = (size, sha256)
        target = self.path(size, sha256)
        if temp == target:  # the resumer's own part, cut off again
            self._claimed.discard(key)
        elif key in self._claimed:  # being resumed: its file is the target
            _remove(temp)
            return False
        old = self._kept.get(key)
        if temp != target and (not held or (old is not None and old[0] >= held)):
            _remove(temp)
            return False
        if old is not None:
            _cancel(self._kept.pop(key)[2])
        try:
            if temp != target:
                os.replace(temp, target)
            os.utime(target)
        except OSError as e:
            self.log.warn("could not keep a partial upload: {error}", error=e)
            _remove(temp)
            return False
        self._hold(key, held, self.window)
        self._bound()
        return key in self._kept

    def claim(self, size, sha256):
        """
        Take the partial for ``(size, sha256)`` for resuming: ``(path, held)``,
        ``(None, 0)`` if there is none, or ``None`` if another connection has
        claimed it.
        """
        key = (size, sha256)
        if key in self._claimed:
            return None
        kept = self._kept.pop(key, None)
        if kept is None:
            return None, 0
        _cancel(kept[2])
        self._claimed.add(key)
        return self.path(size, sha256), kept[0]

    def unclaim(self, size, sha256):
        """
        A resume ended (stored, or refused and its file deleted).
        """
        self._claimed.discard((size, sha256))

    def drop(self, size, sha256):
        """
        The file was stored whole (by a plain upload): its kept part, if
        any and not being resumed, is no longer needed.
        """
        kept = self._kept.pop((size, sha256), None)
        if kept is not None:
            _cancel(kept[2])
            _remove(self.path(size, sha256))

    def _expire(self, key):
        kept = self._kept.pop(key, None)
        if kept is not None:
            self.log.info("partial upload {key} expired", key=key[1])
            _remove(self.path(*key))

    def _bound(self):
        """
        Drop the oldest partials until the rest fit in ``max_bytes``.
        """
        by_age = sorted(self._kept.items(), key=lambda item: item[1][1])
        used = self.used
        for key, (held, _, timer) in by_age:
            if used <= self.max_bytes:
                break
            _cancel(timer)
            del self._kept[key]
            _remove(self.path(*key))
            used -= held
            self.log.info("dropped partial upload {key} (over {limit} bytes kept)",
                          key=key[1], limit=self.max_bytes)


def _cancel(timer):
    if timer.active():
        timer.cancel()


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass
