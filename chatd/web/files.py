"""
``GET /files/NAME``: a shared file for the browser, with its size, an ETag
of its sha256 and ``Range`` answered with 206 (``static.File`` does the
ranges), so an interrupted download can resume.
"""

from urllib.parse import quote

from twisted.internet import defer
from twisted.web import http, resource, server, static

from chatd.grammar import ChatError


def content_disposition(name):
    """
    ``attachment`` with an ASCII fallback name and the exact UTF-8 name.
    """
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_"
                       for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class SharedFile(static.File):
    """
    One stored file, served as a download whatever its name says.
    """

    def __init__(self, path, entry):
        static.File.__init__(self, path, defaultType="application/octet-stream")
        self.entry = entry

    def render_GET(self, request):
        etag = f'"{self.entry.sha256}"'.encode("ascii")
        if_range = request.getHeader(b"if-range")
        if if_range is not None and if_range.strip() != etag:
            request.requestHeaders.removeHeader(b"range")  # changed: send it all
        if request.setETag(etag) == http.CACHED:
            return b""
        request.setHeader(b"content-disposition",
                          content_disposition(self.entry.name).encode("ascii"))
        request.setHeader(b"cache-control", b"no-cache")
        return static.File.render_GET(self, request)

    def getChild(self, name, request):
        return resource.NoResource()


class FilesResource(resource.Resource):
    """
    ``/files/NAME`` (NAME URL-encoded UTF-8) from the file store.
    """

    def __init__(self, store):
        resource.Resource.__init__(self)
        self.store = store

    def render(self, request):
        return resource.NoResource("use /files/NAME").render(request)

    def getChild(self, segment, request):
        if request.postpath:  # /files/a/b: names have no slashes
            return resource.NoResource()
        try:
            name = segment.decode("utf-8")
            entry = self.store.lookup(name)
        except (UnicodeDecodeError, ChatError):
            return resource.NoResource("no such file")
        if isinstance(entry, defer.Deferred):  # a cluster's index, in Redis
            return LookedUp(self.store, entry)
        return SharedFile(self.store.path(entry).path, entry)


class LookedUp(resource.Resource):
    """
    A shared file whose entry is still on its way: served once it comes.
    """

    isLeaf = True

    def __init__(self, store, lookup):
        resource.Resource.__init__(self)
        self.store, self.lookup = store, lookup

    def render(self, request):
        gone = []
        request.notifyFinish().addErrback(gone.append)

        def found(entry):
            if gone:
                return server.NOT_DONE_YET
            return SharedFile(self.store.path(entry).path, entry).render(request)

        def missing(failure):
            failure.trap(ChatError)
            return resource.NoResource("no such file").render(request)

        def answer(body):
            if body is not server.NOT_DONE_YET and not gone:
                request.write(body)
                request.finish()
        d = self.lookup.addCallbacks(found, missing).addCallback(answer)
        d.addErrback(lambda failure: gone or request.processingFailed(failure))
        return server.NOT_DONE_YET
