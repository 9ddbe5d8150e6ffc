"""
The brute-force ``LoginLimiter``.  Time comes from a clock passed in.
"""

import collections

FAILURES = 3  # failed logins per name or per address...
WINDOW = 60.0  # ...within this many seconds lock further attempts out


class LoginLimiter:
    """
    After ``failures`` failed logins for a name, or from an address, within
    ``window`` seconds, refuse further attempts until the oldest of them is
    ``window`` seconds old.  Refused attempts do not count.
    """

    def __init__(self, clock, failures=FAILURES, window=WINDOW):
        self.clock = clock
        self.failures = failures
        self.window = window
        self._recent = {}  # ("name"|"address", key) -> deque of times

    def _times(self, subject):
        times = self._recent.get(subject)
        if times is None:
            return None
        cutoff = self.clock.seconds() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._recent[subject]
            return None
        return times

    def refusal(self, name_key, address):
        """
        Why an attempt now must be refused, or ``None``.
        """
        for subject, what in ((("name", name_key), f"for {name_key}"),
                              (("address", address), "from your address")):
            times = self._times(subject)
            if times is not None and len(times) >= self.failures:
                wait = max(1, int(times[-self.failures] + self.window
                                  - self.clock.seconds() + 0.999))
                return (f"too many failed logins {what}; "
                        f"try again in {wait} s")
        return None

    def failed(self, name_key, address):
        now = self.clock.seconds()
        if len(self._recent) > 100000:  # an address sweep: forget the stale
            for subject in list(self._recent):
                self._times(subject)
        for subject in (("name", name_key), ("address", address)):
            times = self._recent.setdefault(subject, collections.deque())
            times.append(now)
            while len(times) > self.failures:
                times.popleft()
