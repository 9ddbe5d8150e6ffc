"""
Password hashing: argon2id (argon2-cffi; no length limit, so no prehash),
with its cost configurable so tests stay fast.
"""

import argon2


class Hasher:
    """
    argon2id.  The defences' defaults are RFC 9106's low-memory profile
    (3 passes over 64 MiB); tests pass ``memory_kib=8, time_cost=1``.
    """

    def __init__(self, memory_kib=65536, time_cost=3, parallelism=4):
        parallelism = max(1, min(parallelism, memory_kib // 8))
        self._ph = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism,
            type=argon2.Type.ID)
        self._dummy = None

    def hash(self, password):
        return self._ph.hash(password)

    def verify(self, password_hash, password):
        try:
            return self._ph.verify(password_hash, password)
        except (argon2.exceptions.VerificationError,
                argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, password_hash):
        return self._ph.check_needs_rehash(password_hash)

    def waste(self, password):
        """
        As slow as a real check, for names without an account (so timing
        does not tell whether a password was even compared).
        """
        if self._dummy is None:
            self._dummy = self.hash("no such account")
        self.verify(self._dummy, password)
