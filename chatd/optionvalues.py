"""
Checked values of the ``chatd`` options: each coercer turns the text given
on the command line into its value, or raises ``usage.UsageError`` saying
what is wrong, in one line.
"""

from twisted.python import usage

from chatd import grammar


def port_number(option):
    def coerce(value):
        try:
            port = int(value)
        except ValueError:
            raise usage.UsageError(f"--{option} must be a number from 0 to 65535, not {value!r}")
        if not 0 <= port <= 65535:
            raise usage.UsageError(f"--{option} must be from 0 to 65535, not {port}")
        return port
    return coerce


def count(option, minimum=0):
    def coerce(value):
        try:
            number = int(value)
        except ValueError:
            raise usage.UsageError(f"--{option} must be a whole number, not {value!r}")
        if number < minimum:
            raise usage.UsageError(f"--{option} must be at least {minimum}, not {number}")
        return number
    return coerce


def size(option):
    def coerce(value):
        if isinstance(value, int):
            return value
        try:
            return grammar.parse_size(value)
        except ValueError:
            raise usage.UsageError(
                f"--{option} must be a byte count like 50M, 1G or 500K, not {value!r}")
    return coerce


def lines_per_second(value):
    try:
        rate = float(value)
    except ValueError:
        raise usage.UsageError(f"--rate must be a number of lines per second, not {value!r}")
    if not 0 <= rate < float("inf"):
        raise usage.UsageError(f"--rate must be 0 (off) or more, not {value!r}")
    return rate



def redis_url(value):
    from chatd.cluster.config import parse_redis_url

    try:
        return parse_redis_url(value)
    except ValueError as e:
        raise usage.UsageError(f"--redis {value!r}: {e}")


MODES = ("chat", "pair")


def choice(option, values):
    def coerce(value):
        if value not in values:
            raise usage.UsageError(
                f"--{option} must be one of {', '.join(values)}, not {value!r}")
        return value
    return coerce


def seconds(option):
    def coerce(value):
        try:
            seconds = float(value)
        except ValueError:
            raise usage.UsageError(f"--{option} must be a number of seconds, not {value!r}")
        if not 0 < seconds < float("inf"):
            raise usage.UsageError(f"--{option} must be more than 0, not {value!r}")
        return seconds
    return coerce
