"""One key per person: SID, DOMAIN\\sam, fqdn\\sam, UPN, any case; built-ins never counted; exclusions reported."""

from __future__ import annotations

import pytest

from evtrack.identity import Exclusions, IdentityResolver, Observation, builtin_reason, host_key

SID = "S-1-5-21-1111-2222-3333-1105"
SID_BOB = "S-1-5-21-1111-2222-3333-1106"


def obs(user: str, domain: str | None = None, sid: str | None = None, host: str = "rdsh01") -> Observation:
    return Observation(user, domain, sid, host)


def test_sid_name_fqdn_and_case_are_one_person() -> None:
    sightings = [
        obs("alice", "CONTOSO", SID), obs("Alice", "contoso.local", SID), obs("ALICE", "contoso"),
        obs("alice", "CONTOSO.LOCAL"),
    ]
    resolver = IdentityResolver(sightings)
    keys = {resolver.resolve(o.user, o.domain, o.sid).key for o in sightings}  # type: ignore[union-attr]
    assert keys == {SID}
    person = resolver.resolve("alice", "contoso.local", None)
    assert person is not None
    assert person.display == "CONTOSO\\alice"
    assert person.domain == "CONTOSO"
    assert set(person.aliases) >= {"CONTOSO\\alice", "contoso.local\\Alice", "contoso\\ALICE", SID}


def test_fqdn_mapped_through_the_domain_sid_of_another_user() -> None:
    sightings = [obs("alice", "CONTOSO", SID), obs("bob", "contoso.local", SID_BOB), obs("bob", "CONTOSO")]
    resolver = IdentityResolver(sightings)
    assert resolver.canonical_domain("contoso.local") == "CONTOSO"
    bob = resolver.resolve("bob", "CONTOSO", None)
    assert bob is not None and bob.key == SID_BOB


def test_upn_mapped_by_alias_map() -> None:
    resolver = IdentityResolver([obs("alice", "CONTOSO", SID), obs("alice@contoso.com")],
                                aliases={"contoso.com": "CONTOSO"})
    person = resolver.resolve("alice@contoso.com", None, None)
    assert person is not None and person.key == SID


def test_upn_without_a_mapping_stays_apart_but_counted() -> None:
    resolver = IdentityResolver([obs("alice", "CONTOSO", SID), obs("alice@fabrikam.com")])
    person = resolver.resolve("alice@fabrikam.com", None, None)
    assert person is not None and person.key != SID


def test_domainless_name_attached_only_when_unambiguous() -> None:
    resolver = IdentityResolver([obs("alice", "CONTOSO", SID), obs("alice"), obs("admin", "CONTOSO"),
                                 obs("admin", "RDSH01"), obs("admin")])
    alice = resolver.resolve("alice", None, None)
    assert alice is not None and alice.key == SID and alice.domain_resolved
    admin = resolver.resolve("admin", None, None)
    assert admin is not None
    assert admin.key == "?\\admin" and not admin.domain_resolved
    assert resolver.resolve("admin", "CONTOSO", None).key == "contoso\\admin"  # type: ignore[union-attr]


def test_local_account_is_flagged() -> None:
    resolver = IdentityResolver([obs("administrator", "RDSH01", host="rdsh01"), obs("alice", "CONTOSO", SID)])
    local = resolver.resolve("administrator", "RDSH01", None)
    assert local is not None and local.local_account
    assert not resolver.resolve("alice", "CONTOSO", SID).local_account  # type: ignore[union-attr]


@pytest.mark.parametrize(("user", "domain", "sid", "reason"), [
    ("RDSH01$", "CONTOSO", "S-1-5-21-1-2-3-1000", "machine account"),
    ("SYSTEM", "NT AUTHORITY", "S-1-5-18", "built-in account"),
    ("LOCAL SERVICE", "NT AUTHORITY", None, "built-in account"),
    ("NETWORK SERVICE", "NT AUTHORITY", None, "built-in account"),
    ("ANONYMOUS LOGON", "NT AUTHORITY", "S-1-5-7", "built-in account"),
    ("DWM-2", "Window Manager", "S-1-5-90-0-2", "window manager / font driver session"),
    ("UMFD-0", "Font Driver Host", "S-1-5-96-0-0", "window manager / font driver session"),
    ("-", "-", "S-1-0-0", "no user name"),
    ("", None, None, "no user name"),
])
def test_builtins_are_never_people(user: str, domain: str | None, sid: str | None, reason: str) -> None:
    assert builtin_reason(user, domain, sid) == reason
    assert IdentityResolver([obs(user, domain, sid)]).resolve(user, domain, sid) is None


def test_configured_exclusions_are_reported_with_their_reason() -> None:
    exclusions = Exclusions.build(names=["contoso\\adm-bob"], sids=[SID], patterns=["svc_*"])
    resolver = IdentityResolver([obs("alice", "CONTOSO", SID), obs("adm-bob", "contoso.local"),
                                 obs("adm-bob", "CONTOSO", SID_BOB), obs("svc_backup", "CONTOSO"),
                                 obs("carol", "CONTOSO")], exclusions=exclusions)
    assert resolver.resolve("alice", "CONTOSO", None).excluded == f"excluded by SID {SID}"  # type: ignore[union-attr]
    assert resolver.resolve("adm-bob", "contoso.local", None).excluded == "excluded by name contoso\\adm-bob"  # type: ignore[union-attr]
    assert resolver.resolve("svc_backup", "CONTOSO", None).excluded == "excluded by pattern svc_*"  # type: ignore[union-attr]
    assert resolver.resolve("carol", "CONTOSO", None).excluded is None  # type: ignore[union-attr]


def test_host_key() -> None:
    assert host_key("WIN-E0PO207ERMD.C137.local") == host_key("WIN-E0PO207ERMD") == "win-e0po207ermd"


def test_two_sids_with_one_name_are_two_accounts_never_merged() -> None:
    old, new = "S-1-5-21-1111-2222-3333-1200", "S-1-5-21-1111-2222-3333-1300"
    sightings = [obs("jsmith", "CONTOSO", old), obs("jsmith", "CONTOSO", new), obs("jsmith", "CONTOSO")]
    resolver = IdentityResolver(sightings)
    first = resolver.resolve("jsmith", "CONTOSO", old)
    second = resolver.resolve("jsmith", "CONTOSO", new)
    assert first is not None and second is not None
    assert (first.key, second.key) == (old, new)
    assert second.display == "CONTOSO\\jsmith"
    assert resolver.conflicts == {"CONTOSO\\jsmith"}
    name_only = resolver.resolve("jsmith", "CONTOSO", None)
    assert name_only is not None and name_only.key == old  # attributed to the first account, and flagged


@pytest.mark.parametrize("written", ["bob@contoso.local", "contoso.local\\bob", "CONTOSO\\BOB", "bob"])
def test_exclusion_matches_any_written_form(written: str) -> None:
    resolver = IdentityResolver([obs("bob", "CONTOSO", SID_BOB), obs("alice", "CONTOSO", SID)],
                                aliases={"contoso.local": "CONTOSO"}, exclusions=Exclusions.build(names=[written]))
    bob = resolver.resolve("bob", "CONTOSO", SID_BOB)
    assert bob is not None and bob.excluded is not None
    assert resolver.resolve("alice", "CONTOSO", SID).excluded is None  # type: ignore[union-attr]
