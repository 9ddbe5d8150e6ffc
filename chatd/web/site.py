"""
The web listener's resource tree: the page (``/``, its script and style),
the chat WebSocket (``/ws``) and the shared files (``/files/NAME``); every
response carries a strict Content-Security-Policy and ``nosniff``.
"""

from autobahn.twisted.resource import WebSocketResource
from twisted.python.filepath import FilePath, InsecurePath
from twisted.web import resource, server, static

from chatd.admission import hand_over
from chatd.web.files import FilesResource
from chatd.web.websocket import ChatWebSocketFactory

STATIC = FilePath(__file__).sibling("static")
SECURITY_HEADERS = {
    b"content-security-policy": b"default-src 'self'; base-uri 'none'; "
                                b"form-action 'none'; frame-ancestors 'none'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}


class SecureRequest(server.Request):
    """
    A request whose every answer, errors included, carries the security
    headers.
    """

    def process(self):
        for name, value in SECURITY_HEADERS.items():
            self.setHeader(name, value)
        server.Request.process(self)


class ChatSocketResource(WebSocketResource):
    """
    ``/ws``: hands the HTTP connection over to a ``ChatWebSocket``.
    """

    def render(self, request):
        if request.postpath:
            return resource.NoResource().render(request)
        request.channel.setTimeout(None)  # the chat has its own timers now
        hand_over(request.channel)  # counted since accepted, still counted
        return WebSocketResource.render(self, request)


class StaticFiles(resource.Resource):
    """
    The page's files, by name, from one folder: ``FilePath.child`` refuses
    anything that would leave it; subfolders are not served.
    """

    def __init__(self, folder):
        resource.Resource.__init__(self)
        self.folder = folder

    def file(self, name):
        try:
            path = self.folder.child(name.decode("utf-8"))
            return path if path.isfile() else None
        except (UnicodeError, InsecurePath, ValueError):
            return None

    def getChild(self, name, request):
        path = self.file(name or b"index.html")
        if path is None or request.postpath:
            return resource.NoResource()
        served = static.File(path.path)
        served.contentTypes = dict(served.contentTypes, **{
            ".js": "text/javascript; charset=utf-8",
            ".css": "text/css; charset=utf-8",
            ".html": "text/html; charset=utf-8",
            ".svg": "image/svg+xml",
        })
        return served


def make_site(chat, clock, origins=()):
    """
    The ``Site`` for the web listener, onto the daemon's ``ChatFactory``.
    """
    root = StaticFiles(STATIC)
    sockets = ChatWebSocketFactory(chat, clock, origins)
    root.putChild(b"ws", ChatSocketResource(sockets))
    root.putChild(b"files", FilesResource(chat.store))
    site = server.Site(root)
    site.requestFactory = SecureRequest
    site.displayTracebacks = False
    site.sockets = sockets
    return site
