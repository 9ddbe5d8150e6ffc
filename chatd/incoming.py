"""
A file arriving over the wire: each chunk is written to a temporary file and
hashed as it comes, so nothing is held whole in memory and the sha256 is
ready the moment the last byte lands.  Used by the server's uploads and the
client's downloads alike.
"""

import hashlib
import os


class IncomingFile:
    """
    Bytes for the open temporary file ``file`` at ``temp``.  The first write
    error is kept in ``error`` (and the temporary file dropped); later chunks
    are only counted, so the sender's declared bytes are still consumed.
    """

    def __init__(self, temp, file):
        self.temp = temp
        self._file = file
        self._hash = hashlib.sha256()
        self.received = 0
        self.error = None

    def write(self, data):
        self.received += len(data)
        if self.error is not None:
            return
        self._hash.update(data)
        try:
            self._file.write(data)
        except OSError as e:
            self.error = e
            self.abort()

    def hexdigest(self):
        return self._hash.hexdigest()

    def close(self, sync=False):
        """
        Close the temporary file, flushed to disk first if ``sync``.
        """
        if sync:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._file.close()

    def abort(self):
        """
        Drop the temporary file.
        """
        try:
            self._file.close()
        except OSError:
            pass
        try:
            os.unlink(self.temp)
        except OSError:
            pass
