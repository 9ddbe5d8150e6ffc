"""
Expectations written from docs/PROTOCOL.md ("Lines"), independent of
``chatd.grammar``: which code points the server replaces in any text it
takes in or sends, so tests never compare the code with its own tables.
"""

import re

FFFD = "\ufffd"

# C0 but tab, DEL and C1; the bidi controls (marks, embeddings, overrides,
# isolates); the line and paragraph separators.
REPLACED = frozenset(
    [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0),
     0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A),
     0x2028, 0x2029])

# What may never appear in text the server shows (a tab becomes a space).
UNSAFE = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(REPLACED | {0x09})) + "]")


def cleaned(text):
    """
    ``text`` as the protocol says the server shows it.
    """
    return "".join(FFFD if ord(c) in REPLACED else " " if c == "\t" else c for c in text)
