"""
What clients send: parsing each line on the server, and formatting the
commands ``chatd-client`` sends.
"""

from dataclasses import dataclass
from typing import Optional
from chatd.grammar.text import (
    _REPLACEMENT, ENCODING, MAX_FILENAME_BYTES, SHA256_HEX, ChatError, clean_text, decode)


# --- client -> server ----------------------------------------------------


@dataclass(frozen=True)
class Command:
    """
    One parsed client line: ``name`` is the lower-case command word without
    the slash ("" for a plain chat line), ``arg`` the rest of the line.
    """

    name: str
    arg: str


def parse_client_line(raw: bytes) -> Optional[Command]:
    """
    Parse one line (without its LF) from a client.  Returns ``None`` for an
    empty line.  ``//text`` is chat that starts with a slash.
    """
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    text = decode(raw)
    if not text.strip():
        return None
    if text.startswith("//"):
        return Command("", text[1:])
    if text.startswith("/"):
        word, _, arg = text[1:].partition(" ")
        if not word and not arg.strip():
            return None  # a lone "/" says nothing, like an empty line
        return Command(word.lower(), arg.strip())
    return Command("", text)


def split_target(arg: str, usage: str) -> tuple:
    """
    Split ``NAME TEXT`` into its two parts; both must be present.
    """
    name, _, text = arg.strip().partition(" ")
    text = text.strip()
    if not name or not text:
        raise ChatError(f"usage: {usage}")
    return name, text


@dataclass(frozen=True)
class UploadRequest:
    name: str
    size: int
    sha256: Optional[str]


def parse_upload(arg: str) -> UploadRequest:
    """
    Parse the arguments of ``/upload NAME SIZE [SHA256]``.  NAME is all up to
    the last (or, with a checksum, the second-to-last) space, so it may hold
    spaces; it is not checked here (see ``check_filename``), because the
    declared bytes must be consumed even when the name is refused.
    """
    usage = ChatError("usage: /upload NAME SIZE [SHA256]")
    parts = arg.rsplit(" ", 2)
    sha = None
    if len(parts) == 3 and SHA256_HEX.fullmatch(parts[2].lower()):
        sha = parts[2].lower()
        name, size_text = parts[0], parts[1]
    else:
        parts = arg.rsplit(" ", 1)
        if len(parts) != 2:
            raise usage
        name, size_text = parts
    if not size_text.isdigit() or not size_text.isascii():
        raise ChatError(f"upload size must be a whole number of bytes, not {size_text!r}")
    return UploadRequest(name, int(size_text), sha)


def parse_upload_resume(arg: str) -> UploadRequest:
    """
    Parse the arguments of ``/upload-resume NAME SIZE SHA256`` (the same
    rules as ``/upload``, the sha256 required).
    """
    usage = ChatError("usage: /upload-resume NAME SIZE SHA256")
    try:
        request = parse_upload(arg)
    except ChatError as e:
        raise usage if e.message.startswith("usage:") else e
    if request.sha256 is None:
        raise usage
    return request


def parse_download_from(arg: str) -> tuple:
    """
    Parse ``/download-from OFFSET NAME``: ``(offset, name)``.  The offset
    comes first so a NAME with spaces stays whole.
    """
    offset_text, _, name = arg.partition(" ")
    if not offset_text or not name:
        raise ChatError("usage: /download-from OFFSET NAME")
    if not offset_text.isdigit() or not offset_text.isascii():
        raise ChatError(f"download offset must be a whole number of bytes, not {offset_text!r}")
    return int(offset_text), name


def check_filename(name: str) -> str:
    """
    Return a shareable file name or raise ``ChatError`` saying why not: no
    path separators, no ``.``/``..``/empty, no control characters, at most
    255 bytes of UTF-8.
    """
    name = name.strip()
    if not name or name in (".", ".."):
        raise ChatError("file name must not be empty, '.' or '..'")
    if "/" in name or "\\" in name:
        raise ChatError("file name must not contain '/' or '\\'")
    if _REPLACEMENT in name or clean_text(name) != name:
        raise ChatError("file name must not contain control or invalid characters")
    if len(name.encode(ENCODING)) > MAX_FILENAME_BYTES:
        raise ChatError(f"file name is longer than {MAX_FILENAME_BYTES} bytes")
    return name



# --- client -> server: formatting (for chatd-client) -----------------------


def client_command(word: str, *args) -> str:
    """
    A command line as a client sends it: ``/word arg ...``, empty arguments
    left out.
    """
    return " ".join(["/" + word] + [str(a) for a in args if a not in (None, "")])


def upload_command(name: str, size: int, sha256: str) -> str:
    return client_command("upload", name, size, sha256)


def upload_resume_command(name: str, size: int, sha256: str) -> str:
    return client_command("upload-resume", name, size, sha256)


def download_from_command(offset: int, name: str) -> str:
    return client_command("download-from", offset, name)
