"""
Brute-force limits on logins, and a rate limit on registrations per
address (each costs a hash).  Every login attempt reserves its place in the
allowance when it starts, so guesses in flight at once (on many
connections) are capped like guesses made one after another.  Time comes
from a clock passed in.
"""

import collections

from chatd.grammar import ChatError

FAILURES = 3  # failed logins per name or per address...
WINDOW = 60.0  # ...within this many seconds lock further attempts out
REGISTRATIONS = 5  # registrations hashed per address...
REGISTER_WINDOW = 60.0  # ...within this many seconds
SWEEP = 100000  # subjects remembered before the stale ones are forgotten


def seconds(wait):
    """
    A wait as whole seconds for a refusal (at least 1).
    """
    return max(1, int(wait + 0.999))


def locked_out(what, wait):
    return ChatError(f"too many failed logins {what}; try again in {seconds(wait)} s")


def in_progress(what):
    return ChatError(f"too many logins in progress {what}; try again in a moment")


def lock_checks(name_key, known):
    """
    What a login for ``name_key`` is checked against, in order: ``(kind,
    what)`` pairs (the name's lock is skipped for a ``known`` address).
    """
    checks = [("address", "from your address")]
    if not known:
        checks.insert(0, ("name", f"for {name_key}"))
    return checks


class Allowance:
    """
    At most ``limit`` events per subject within ``window`` seconds, counting
    the ones still in flight: ``hold`` reserves a place, ``release`` gives
    it back, recording the event if it happened.
    """

    def __init__(self, clock, limit, window):
        self.clock = clock
        self.limit = limit
        self.window = window
        self._recent = {}  # subject -> deque of times, the last ``limit``
        self._held = collections.Counter()  # subject -> events in flight

    def _times(self, subject):
        times = self._recent.get(subject)
        if times is None:
            return ()
        cutoff = self.clock.seconds() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._recent[subject]
        return times

    def wait(self, subject, held=True):
        """
        Seconds until ``subject`` may have another event; 0 if it may now.
        An event in flight counts as happening now (unless not ``held``).
        """
        now = self.clock.seconds()
        entries = list(self._times(subject)) + [now] * (self._held[subject] * held)
        if len(entries) < self.limit:
            return 0
        return entries[-self.limit] + self.window - now

    def hold(self, subject):
        self._held[subject] += 1

    def release(self, subject, happened):
        self._held[subject] -= 1
        if self._held[subject] <= 0:
            del self._held[subject]
        if happened:
            self.add(subject)

    def add(self, subject):
        if len(self._recent) > SWEEP:  # an address sweep: forget the stale
            for stale in list(self._recent):
                self._times(stale)
        times = self._recent.setdefault(subject, collections.deque())
        times.append(self.clock.seconds())
        while len(times) > self.limit:
            times.popleft()


class LoginLimiter:
    """
    At most ``failures`` failed logins for a name, and from an address,
    within ``window`` seconds; attempts in flight count as failures until
    they succeed.  Refused attempts do not count.

    A name's lock does not refuse an address ``known`` to its account (one
    that logged in to it before): strangers cannot lock the owner out, and
    the owner's address is still held by its own per-address limit.
    """

    def __init__(self, clock, failures=FAILURES, window=WINDOW):
        self.attempts = Allowance(clock, failures, window)
        self.failures_total = 0  # failed logins, and attempts refused by a
        self.lockouts_total = 0  # lock-out, since start (for the metrics)

    def begin(self, name_key, address, known=False):
        """
        Reserve an attempt: the token for ``end``, or ``ChatError`` saying
        why it must be refused.
        """
        subjects = (("name", name_key), ("address", address))
        for kind, what in lock_checks(name_key, known):
            subject = subjects[kind == "address"]
            wait = self.attempts.wait(subject, held=False)
            if wait:
                self.lockouts_total += 1
                raise locked_out(what, wait)
            if self.attempts.wait(subject):
                raise in_progress(what)
        for subject in subjects:
            self.attempts.hold(subject)
        return subjects

    def end(self, token, failed):
        """
        The attempt reserved as ``token`` is over: a failure counts.
        """
        if failed:
            self.failures_total += 1
        for subject in token:
            self.attempts.release(subject, failed)


class RegisterLimiter:
    """
    At most ``limit`` registrations hashed per address within ``window``
    seconds, counting the ones in flight.
    """

    def __init__(self, clock, limit=REGISTRATIONS, window=REGISTER_WINDOW):
        self.registrations = Allowance(clock, limit, window)

    def begin(self, address):
        """
        Reserve a registration: the token for ``end``, or ``ChatError``.
        """
        wait = self.registrations.wait(address)
        if wait:
            raise ChatError(f"too many registrations from your address; "
                            f"try again in {seconds(wait)} s")
        self.registrations.hold(address)
        return address

    def end(self, token, hashed):
        """
        The registration is over: it counts if its password was hashed.
        """
        self.registrations.release(token, hashed)
