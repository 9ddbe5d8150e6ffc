"""
Bans and mutes as units, with time from ``task.Clock``: expiry, address
and network matching, persistence through the SQLite store; durations in
the grammar.
"""

import pytest
from twisted.internet import task

from chatd import grammar
from chatd.grammar import ChatError
from chatd.moderation import (Bans, MemoryBanStore, Mutes, SQLiteBanStore, covers,
                              describe, parse_target)


def test_durations_parse_and_format():
    assert grammar.parse_duration("90s") == 90
    assert grammar.parse_duration("10m") == 600
    assert grammar.parse_duration("2H") == 7200
    assert grammar.parse_duration("7d") == 7 * 86400
    assert grammar.parse_duration("45") == 45
    for bad in ("", "0m", "-5m", "1.5h", "10x", "m", "١٠m", "10 m"):
        with pytest.raises(ValueError):
            grammar.parse_duration(bad)
    assert [grammar.format_duration(s) for s in (0.2, 59, 60, 599, 600, 7200, 86400)] == \
        ["1s", "59s", "1m", "10m", "10m", "2h", "1d"]


def test_targets_are_accounts_or_addresses():
    assert parse_target("Alice") == ("account", "alice")
    assert parse_target("10.1.2.3") == ("address", "10.1.2.3")
    assert parse_target("10.1.2.3/8") == ("address", "10.0.0.0/8")
    assert parse_target("2001:db8::1/32") == ("address", "2001:db8::/32")
    assert parse_target("::ffff:10.0.0.1") == ("address", "10.0.0.1")
    with pytest.raises(ChatError):
        parse_target("no/such thing")
    assert covers("10.0.0.0/8", "10.9.9.9")
    assert covers("10.0.0.0/8", "::ffff:10.9.9.9")  # IPv4-mapped
    assert not covers("10.0.0.0/8", "11.0.0.1")
    assert not covers("::/0", "10.0.0.1")
    assert not covers("alice", "10.0.0.1")


def test_a_ban_expires_with_the_clock():
    clock = task.Clock()
    bans = Bans(MemoryBanStore(), clock)
    bans.add("mallory", clock.seconds() + 600, "spam", "boss")
    bans.add("192.0.2.0/24", clock.seconds() + 60, "", "boss")
    assert bans.for_account("mallory").reason == "spam"
    assert bans.for_address("192.0.2.55").target == "192.0.2.0/24"
    assert describe(bans.for_account("mallory"), clock) == \
        "banned from this server (spam) for 10m"
    clock.advance(60)
    assert bans.for_address("192.0.2.55") is None
    assert [b.target for b in bans] == ["mallory"]
    clock.advance(539)
    assert describe(bans.for_account("mallory"), clock) == \
        "banned from this server (spam) for 1s"
    clock.advance(1)
    assert bans.for_account("mallory") is None
    assert list(bans) == []


def test_bans_outlive_the_store_being_reopened(tmp_path):
    clock = task.Clock()
    clock.advance(1000)
    bans = Bans(SQLiteBanStore.in_directory(tmp_path), clock)
    bans.add("mallory", None, "forever", "boss")
    bans.add("203.0.113.7", clock.seconds() + 10, "", "boss")
    bans.add("2001:db8::/48", None, "", "boss")
    bans.close()
    clock.advance(10)  # the address ban expired while "down"
    again = Bans(SQLiteBanStore.in_directory(tmp_path), clock)
    assert again.for_account("mallory").reason == "forever"
    assert again.for_address("203.0.113.7") is None
    assert again.for_address("2001:db8:0:1::5") is not None
    assert again.remove("2001:db8::/48").target == "2001:db8::/48"
    again.close()
    third = Bans(SQLiteBanStore.in_directory(tmp_path), clock)
    assert [b.target for b in third] == ["mallory"]
    assert third.remove("not a name!") is None


class Client:
    account = None


def test_mutes_by_connection_and_account_expire():
    clock = task.Clock()
    mutes = Mutes(clock)
    guest, user, other = Client(), Client(), Client()
    user.account = "alice"
    assert mutes.muted(guest) is None
    mutes.mute(guest, None)
    mutes.mute(user, clock.seconds() + 30)
    assert mutes.muted(guest) == float("inf")
    assert mutes.muted(user) == 30
    again = Client()
    again.account = "alice"  # the same account on a new connection
    assert mutes.muted(again) == 30
    assert mutes.muted(other) is None
    clock.advance(30)
    assert mutes.muted(user) is None and mutes.muted(again) is None
    assert mutes.unmute(guest) and not mutes.unmute(guest)
    assert mutes.muted(guest) is None
