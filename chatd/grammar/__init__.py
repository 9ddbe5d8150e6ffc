"""
The chatd wire grammar: what clients send, what the server answers.

Pure functions over ``bytes`` and ``str``; no reactor, no transports.  The
server and ``chatd-client`` both parse and format lines through this module,
so there is exactly one definition of the protocol (see docs/PROTOCOL.md).

Server lines start with a marker that user text can never produce, because
user text only ever appears *after* a marker and a validated name:

    <alice> hi                      chat from alice
    * alice waves                   /me action
    [private] <alice> psst          private message to you
    [private to bob] psst           your private message, delivered
    *** bob joined                  server notice (presence, files, greeting)
    [#dev] <alice> hi               a line from one of your other rooms
    = [2026-12-01 14:02] <alice> hi a line of a room's history
    - guest1, alice                 reply to a command (/who, /help, /files)
    ! no such user: zed             error
    FILE <size> <sha256> <name>     download header, followed by raw bytes
    PART <offset> <size> <sha256> <name>  the same from an offset on

The grammar is a package by part (``text``: encoding, cleaning, names and
sizes; ``commands``: what clients send; ``lines``: what the server sends;
``reading``: server lines read back for ``chatd-client``); every name is
here, so callers write ``grammar.X``.
"""

from chatd.grammar.commands import *  # noqa: F401,F403
from chatd.grammar.lines import *  # noqa: F401,F403
from chatd.grammar.reading import *  # noqa: F401,F403
from chatd.grammar.text import *  # noqa: F401,F403
