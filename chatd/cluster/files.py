"""
One file store for the cluster: the index in Redis, the bytes in the
``--data-dir`` every node mounts (NFS, a cloud file share, or one
machine's disk for nodes on one host).

A listed file's bytes are ``files/<id>`` in the shared directory; ids are
random 128-bit hex, so nodes never collide.  Uploads in progress and kept
partials are in each node's own directory (``nodedir``).  The index is one
Redis list of JSON entries, newest first, changed only by ``COMMIT``: one
Lua script lists the new file, drops the one of the same name and every
one past keep-N, and publishes the announcements, so two nodes racing for
the last slot never leave more than N listed.  The order keeps every listed
file downloadable: the bytes are fsynced and renamed into place before the
script lists them, and an evicted file's bytes are deleted only after the
script took it out.  A commit whose reply was lost (it may have listed the
file) keeps its bytes: an unlisted file is harmless, a listed one without
bytes is not.

Everything read back from Redis is checked (``parse_entry``): junk is
skipped and logged, and only a well-formed id ever becomes a path.
"""

import json
import math
import os
import re
import uuid
from dataclasses import asdict

from twisted.logger import Logger
from txredisapi import ConnectionError as RedisGone, ResponseError, TimeoutError as RedisTimeout

from chatd import grammar
from chatd.cluster import bus
from chatd.cluster.link import LinkDown
from chatd.grammar import ChatError
from chatd.store import StoredFile, place, remove_files

ID = re.compile(r"[0-9a-f]{32}\Z")
SHA256 = re.compile(r"[0-9a-f]{64}\Z")
FIELDS = frozenset(("id", "name", "size", "sha256", "uploader", "time"))
MAX_ENTRY = 4096  # characters: far more than any entry a node writes
ORPHAN_AGE = 3600.0  # seconds: an unlisted file this old is no commit under way
VOLUME = "cluster-volume"  # in the shared --data-dir: the token Redis also holds

# KEYS: the index list, the lobby channel, where a non-list index is set
# aside.  ARGV: the new entry (JSON), its file name, keep, this node, the
# bus version, the uploader's room ('' for none), the uploader, the size.
# Lists the new entry first, drops the entry of the same name, junk, and
# everything past keep; announces the upload in its room and each eviction
# to everyone.  Returns {kept entries, dropped entries}.
COMMIT = """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'list' and kind ~= 'none' then
  redis.call('RENAME', KEYS[1], KEYS[3])
end
local keep = tonumber(ARGV[3])
local kept, dropped, evicted = {ARGV[1]}, {}, {}
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local ok, e = pcall(cjson.decode, raw)
  local good = ok and type(e) == 'table' and type(e.id) == 'string'
    and type(e.name) == 'string' and #e.id == 32
    and string.match(e.id, '^[0-9a-f]+$') ~= nil
  if good and e.name ~= ARGV[2] and #kept < keep then
    table.insert(kept, raw)
  else
    table.insert(dropped, raw)
    if good and e.name ~= ARGV[2] then table.insert(evicted, e.name) end
  end
end
redis.call('DEL', KEYS[1])
redis.call('RPUSH', KEYS[1], unpack(kept))
local v = tonumber(ARGV[5])
if ARGV[6] ~= '' then
  redis.call('PUBLISH', KEYS[2], cjson.encode({v = v, node = ARGV[4], kind = 'shared',
    room = ARGV[6], name = ARGV[7], file = ARGV[2], size = ARGV[8]}))
end
for _, name in ipairs(evicted) do
  redis.call('PUBLISH', KEYS[2], cjson.encode({v = v, node = ARGV[4], kind = 'removed',
    file = name, keep = ARGV[3]}))
end
return {kept, dropped}
"""


def encode_entry(entry):
    return json.dumps(asdict(entry), ensure_ascii=False, separators=(",", ":"))


def parse_entry(raw):
    """
    The ``StoredFile`` in ``raw`` (an item of the index list), or ``None``
    if it is not exactly what a node writes.
    """
    if not isinstance(raw, str) or len(raw) > MAX_ENTRY:
        return None
    try:
        item = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(item, dict) or set(item) != FIELDS:
        return None
    ok = (isinstance(item["id"], str) and ID.match(item["id"])
          and isinstance(item["sha256"], str) and SHA256.match(item["sha256"])
          and type(item["size"]) is int and item["size"] >= 0
          and type(item["time"]) in (int, float) and math.isfinite(item["time"])
          and isinstance(item["name"], str) and bus.valid(grammar.check_filename, item["name"])
          and isinstance(item["uploader"], str) and bus.valid(grammar.check_name, item["uploader"]))
    if not ok:
        return None
    return StoredFile(item["id"], item["name"], item["size"], item["sha256"],
                      item["uploader"], float(item["time"]))


class RedisIndex:
    """
    The file index of a cluster, for ``FileStore(index=...)``: made by
    ``RedisIndex.factory(hub)``.  ``entries`` is the list as
    last read; ``listing()`` reads it from Redis (the list last read while
    the link is down).
    """

    log = Logger()
    sweeps = False  # files/ is shared: another node's commit may be under way

    def __init__(self, store, link, keys, node):
        self.store, self.link, self.node = store, link, node
        self.key = keys.prefix + "files"
        self.aside = keys.prefix + "files:unreadable"
        self.channel = keys.lobby
        self.volume_key = keys.prefix + "files:volume"
        self.entries = []
        self.skipped = 0  # junk entries read from the index
        self.foreign = False  # --data-dir is not the one the other nodes share

    @classmethod
    def factory(cls, hub):
        """
        ``index(store)`` for ``FileStore``: the index of ``hub``'s cluster,
        kept fresh by the announcements it hears.
        """
        def make(store):
            index = hub.file_index = cls(store, hub.link, hub.keys, hub.node)
            d = hub.when_registered().addCallback(lambda _: index.check_volume())
            d.addCallback(lambda shared: shared and index.sweep())
            return index
        return make

    def _parse(self, items):
        items = items or []
        entries = [e for e in map(parse_entry, items) if e is not None]
        if len(entries) < len(items):
            self.skipped += len(items) - len(entries)
            self.log.warn("skipped {count} malformed entries of the file index {key}",
                          count=len(items) - len(entries), key=self.key)
        return entries

    def listing(self):
        d = self.link.call("lrange", self.key, 0, -1)
        return d.addCallbacks(self._read, self._unread)

    def _read(self, items):
        self.entries = self._parse(items)
        return self.entries

    def _unread(self, failure):
        failure.trap(LinkDown, RedisGone, RedisTimeout, ResponseError)
        self.log.info("file index not read ({why}); using the list last read",
                      why=failure.getErrorMessage())
        return self.entries

    def check_volume(self):
        """
        Whether ``--data-dir`` is the directory the other nodes share: its
        ``cluster-volume`` token is the one in Redis (the first node sets
        both).  If not, the node says so in the log and refuses uploads.
        """
        def compare(token):
            d = self.link.call("set", self.volume_key, token, None, None, True)
            d.addCallback(lambda _: self.link.call("get", self.volume_key))
            return d.addCallback(lambda theirs: (token, theirs))

        def checked(tokens):
            self.foreign = tokens[0] != tokens[1]
            if self.foreign:
                self.log.error("--data-dir {path} is not the directory the other nodes "
                               "of this cluster share (its {file} differs): files listed "
                               "elsewhere will not download here; uploads are refused",
                               path=self.store.root.path, file=VOLUME)
            else:
                self.log.info("--data-dir {path} is the cluster's shared one",
                              path=self.store.root.path)
            return not self.foreign
        d = self.store.blocking(volume_token, self.store.root).addCallback(compare)
        d.addCallback(checked)
        return d.addErrback(lambda f: self.log.failure("the data directory was not checked", f))

    def sweep(self):
        """
        Read the index; then delete the files in ``files/`` it does not
        list that are older than ``ORPHAN_AGE`` (left by a node that died
        between placing and listing a file, or a commit whose answer was
        lost): never a commit under way.  With no index in Redis (or only
        junk) nothing is deleted: what no index accounts for stays.
        """
        def read(items):
            if not self._read(items):
                return None
            listed = {e.id for e in self.entries}
            return self.store.blocking(sweep_unlisted, self.store.files, listed,
                                       self.store.clock() - ORPHAN_AGE)
        d = self.link.call("lrange", self.key, 0, -1).addCallback(read)
        return d.addErrback(lambda f: self.log.info("unlisted files not swept: {why}",
                                                    why=f.getErrorMessage()))

    def check_open(self, name):
        if self.foreign:
            raise ChatError(f"cannot store {name}: this server's data directory is not "
                            f"the one the other servers share; tell the operator")
        if not self.link.up:
            raise ChatError(f"cannot store {name} now: the cluster link is down; "
                            f"try again in a moment")

    def commit(self, upload, entry):
        target = self.store.files.child(entry.id)
        d = self.store.blocking(place, upload, target)
        d.addCallback(lambda _: self._list(upload, entry).addErrback(
            self._not_listed, entry, target))
        return d.addCallback(self._listed)

    def _list(self, upload, entry):
        args = [encode_entry(entry), entry.name, self.store.keep, self.node, bus.VERSION,
                upload.room or "", entry.uploader, entry.size]
        return self.link.call("eval", COMMIT, [self.key, self.channel, self.aside],
                              [str(a) for a in args])

    def _not_listed(self, failure, entry, target):
        if failure.check(RedisGone, RedisTimeout):
            # Sent, but no answer: it may be listed, so its bytes stay.
            self.log.warn("no answer while listing {file} ({why}); its bytes are "
                          "kept at {path}", file=entry.name, why=failure.getErrorMessage(),
                          path=target.path)
            raise ChatError(f"could not store {entry.name}: the cluster link failed "
                            f"while listing it; see /files")
        if not failure.check(LinkDown):
            self.log.failure("listing {file} failed", failure, file=entry.name)
        why = "the cluster link is down" if failure.check(LinkDown) else "internal error"

        def refused(_):
            raise ChatError(f"could not store {entry.name}: {why}; try again in a moment")
        return self.store.blocking(remove_files, self.store.files, [entry]).addBoth(refused)

    def _listed(self, reply):
        kept, dropped = reply
        self.entries = self._parse(kept)
        gone = [e for e in map(parse_entry, dropped or []) if e is not None]
        if len(gone) < len(dropped or []):
            self.log.warn("dropped {count} malformed entries from the file index",
                          count=len(dropped) - len(gone))
        d = self.store.blocking(remove_files, self.store.files, gone)
        return d.addCallback(lambda _: gone)


def volume_token(root):
    """
    In a worker thread: the token in ``root``'s ``cluster-volume`` file,
    made if there is none (linked into place whole, so two nodes making it
    at once read the same one).
    """
    path = root.child(VOLUME)
    if not path.exists():
        temp = root.child(f"{VOLUME}.{uuid.uuid4().hex}.tmp")
        temp.setContent(uuid.uuid4().hex.encode("ascii"))
        try:
            os.link(temp.path, path.path)
        except FileExistsError:
            pass
        except OSError:  # no hard links here: a rename, after the check above
            os.rename(temp.path, path.path)
        finally:
            if temp.exists():
                temp.remove()
    return path.getContent().decode("ascii", "replace").strip()


def sweep_unlisted(files, listed, before):
    """
    In a worker thread: delete the files in ``files`` whose names are not
    in ``listed`` and that were last changed before ``before``.
    """
    for child in files.children():
        try:
            if child.basename() in listed or child.getModificationTime() >= before:
                continue
            child.remove()
            RedisIndex.log.info("swept unlisted file {path}", path=child.path)
        except OSError:
            pass  # another node swept it first


class FileNotices:
    """
    A mixin of ``ClusterHub``: the announcements ``COMMIT`` publishes, told
    to this node's users (the committing node tells its own), and the
    index's ``entries`` read again (what ``GET /files/NAME`` finds).
    """

    file_index = None

    def _on_shared(self, node, room, name, file, size):
        # Heard like a line in the room: the committing node wrote it to history.
        line = grammar.notice(grammar.file_shared(name, file, int(size)))
        self._in_room(room, lambda _: line)
        self._files_changed()

    def _on_removed(self, node, file, keep):
        self.notify(grammar.file_removed(file, int(keep)))
        self._files_changed()

    def _files_changed(self):
        if self.file_index is not None:
            self.file_index.listing()
