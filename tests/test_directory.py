"""Directory exports: AD (Get-ADUser | Export-Csv) and Entra ("Download users"), encodings, DNs and OUs, aliases."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from evtrack.directory import Directory, dns_domain_of, in_ou, load_directory, split_dn
from evtrack.errors import SourceError
from evtrack.identity import IdentityResolver, Observation

AD_CSV = """#TYPE Microsoft.ActiveDirectory.Management.ADUser
"DisplayName","DistinguishedName","Enabled","GivenName","Name","ObjectClass","SamAccountName","SID","Surname","UserPrincipalName","Department"
"Alice Archer","CN=Alice Archer,OU=Sales,DC=contoso,DC=local","True","Alice","Alice Archer","user","alice","S-1-5-21-1-2-3-1104","Archer","alice.archer@contoso.com","Sales"
"Smith, Bob","CN=Smith\\, Bob,OU=Team 2,OU=Sales,DC=contoso,DC=local","False","Bob","Smith, Bob","user","bsmith","S-1-5-21-1-2-3-1105","Smith","bob@contoso.com","Sales"
"Carol","CN=Carol,OU=BigSales,DC=contoso,DC=local","True","Carol","Carol","user","carol","S-1-5-21-1-2-3-1106","","carol@contoso.com",""
"""  # noqa: E501

ENTRA_CSV = """userPrincipalName,displayName,surname,mail,givenName,objectId,userType,jobTitle,department,accountEnabled,onPremisesSamAccountName,onPremisesSecurityIdentifier,onPremisesDistinguishedName,mailNickname
alice.archer@contoso.com,Alice Archer,Archer,alice.archer@contoso.com,Alice,11111111-1111-1111-1111-111111111111,Member,,Sales,True,alice,S-1-5-21-1-2-3-1104,"CN=Alice Archer,OU=Sales,DC=contoso,DC=local",alice.archer
dave@contoso.onmicrosoft.com,Dave Cloud,Cloud,,Dave,22222222-2222-2222-2222-222222222222,Member,,IT,False,,,,dave
"""  # noqa: E501


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8", bom: bytes = b"") -> Path:
    path = tmp_path / name
    path.write_bytes(bom + text.replace("\n", "\r\n").encode(encoding))
    return path


@pytest.mark.parametrize(("encoding", "bom"), [
    ("utf-8", b""), ("utf-8", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-le", b""),
    ("utf-16-be", codecs.BOM_UTF16_BE),
])
def test_ad_export_in_any_encoding(tmp_path: Path, encoding: str, bom: bytes) -> None:
    directory = load_directory(write(tmp_path, "users.csv", AD_CSV, encoding, bom))
    assert len(directory) == 3
    alice = directory.by_sid("s-1-5-21-1-2-3-1104")
    assert alice is not None
    assert (alice.sam, alice.upn, alice.display_name, alice.enabled, alice.department) == (
        "alice", "alice.archer@contoso.com", "Alice Archer", True, "Sales")
    assert alice.dns_domain == "contoso.local"
    assert alice.ou_path == "OU=Sales,DC=contoso,DC=local"
    bob = directory.by_sam("BSMITH", "CONTOSO")
    assert bob is not None and bob.display_name == "Smith, Bob" and bob.enabled is False
    assert bob.ou_path == "OU=Team 2,OU=Sales,DC=contoso,DC=local"
    assert directory.by_upn("Bob@Contoso.com") is bob


def test_entra_export(tmp_path: Path) -> None:
    directory = load_directory(write(tmp_path, "exportUsers_2024-6-1.csv", ENTRA_CSV, bom=codecs.BOM_UTF8))
    alice = directory.by_upn("alice.archer@contoso.com")
    assert alice is not None and alice.sam == "alice" and alice.sid == "S-1-5-21-1-2-3-1104"
    assert alice.dns_domain == "contoso.local" and in_ou(alice, "OU=Sales,DC=contoso,DC=local")
    dave = directory.by_upn("dave@contoso.onmicrosoft.com")
    assert dave is not None
    assert (dave.sam, dave.sid, dave.dn, dave.enabled, dave.department) == ("dave", None, None, False, "IT")
    assert dave.dns_domain == "contoso.onmicrosoft.com"  # from the UPN suffix: no DN for cloud users


def test_lookup_from_log_forms(tmp_path: Path) -> None:
    directory = load_directory(write(tmp_path, "users.csv", AD_CSV), netbios="contoso")
    assert directory.netbios == "CONTOSO"
    alice = directory.by_sid("S-1-5-21-1-2-3-1104")
    assert directory.lookup("alice", "CONTOSO") is alice
    assert directory.lookup("CONTOSO\\alice") is alice
    assert directory.lookup("alice", "contoso.local") is alice
    assert directory.lookup("alice.archer@contoso.com") is alice
    assert directory.lookup("nobody", sid="S-1-5-21-1-2-3-1104") is alice
    assert directory.lookup("alice", "FABRIKAM") is None
    assert directory.lookup("alice") is alice  # any domain, one match


def test_same_sam_in_two_domains_needs_the_domain(tmp_path: Path) -> None:
    text = ('SamAccountName,DistinguishedName\n'
            'alice,"CN=Alice,OU=Users,DC=contoso,DC=local"\n'
            'alice,"CN=Alice,OU=Users,DC=fabrikam,DC=local"\n')
    directory = load_directory(write(tmp_path, "users.csv", text))
    assert directory.by_sam("alice") is None  # ambiguous
    fabrikam = directory.by_sam("alice", "fabrikam")
    assert fabrikam is not None and fabrikam.dns_domain == "fabrikam.local"
    with pytest.raises(SourceError, match="several domains"):
        directory.aliases("CONTOSO")
    assert directory.aliases({"contoso.local": "CONTOSO", "fabrikam.local": "FABRIKAM"}) == {
        "contoso.local": "CONTOSO", "fabrikam.local": "FABRIKAM"}


def test_in_ou_child_ous_case_spaces_and_escaped_commas(tmp_path: Path) -> None:
    directory = load_directory(write(tmp_path, "users.csv", AD_CSV))
    alice, bob, carol = directory.users
    assert in_ou(alice, "OU=Sales,DC=contoso,DC=local")
    assert in_ou(bob, "ou=sales, dc=CONTOSO, dc=local")  # child OU, other case, spaces after commas
    assert in_ou(bob, "OU=Team 2,OU=Sales,DC=contoso,DC=local")
    assert not in_ou(alice, "OU=Team 2,OU=Sales,DC=contoso,DC=local")
    assert not in_ou(carol, "OU=Sales,DC=contoso,DC=local")  # BigSales is not Sales
    assert in_ou(carol, "DC=contoso,DC=local")
    assert not in_ou(bob, "OU=Sales,DC=fabrikam,DC=local")
    # the escaped comma in "Smith\, Bob" is not a separator: the CN is one part
    assert split_dn(bob.dn or "")[0] == ("cn", "smith, bob")
    assert in_ou("CN=a\\,OU=Sales,OU=Other,DC=x", "OU=Other,DC=x")
    assert not in_ou("CN=a\\,OU=Sales,OU=Other,DC=x", "OU=Sales,OU=Other,DC=x")
    assert split_dn("CN=Caf\\C3\\A9 \\2C x,DC=a")[0] == ("cn", "caf\u00e9 , x")
    assert split_dn("CN=trailing\\ ,DC=a")[0] == ("cn", "trailing ")


def test_dns_domain_of() -> None:
    assert dns_domain_of("CN=x,OU=y,DC=contoso,DC=com") == "contoso.com"
    assert dns_domain_of("CN=x, OU=y, dc=Corp, dc=Contoso, dc=com") == "corp.contoso.com"
    assert dns_domain_of("CN=x,OU=y") is None


def test_aliases_feed_the_identity_resolver(tmp_path: Path) -> None:
    directory = load_directory(write(tmp_path, "users.csv", AD_CSV), netbios="CONTOSO")
    aliases = directory.aliases()
    assert aliases == {"contoso.com": "CONTOSO", "contoso.local": "CONTOSO"}
    assert Directory(directory.users).aliases() == {}  # no NetBIOS hint: nothing to map to
    observations = [Observation("alice", "CONTOSO", None, "rdsh01"),
                    Observation("alice@contoso.com", None, None, "rdsh01")]
    resolver = IdentityResolver(observations, aliases=aliases)
    one = resolver.resolve("alice", "CONTOSO", None)
    other = resolver.resolve("alice@contoso.com", None, None)
    assert one is not None and other is not None and one.key == other.key == "contoso\\alice"


def test_no_identity_column_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.csv", "Name,Description\nSales,The sales team\n")
    with pytest.raises(SourceError) as error:
        load_directory(path)
    message = str(error.value)
    assert "groups.csv" in message and "no identity column" in message and "SamAccountName" in message
    assert "columns: name, description" in message


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="empty CSV"):
        load_directory(write(tmp_path, "empty.csv", "#TYPE x\n"))
    with pytest.raises(SourceError, match=r"missing\.csv"):
        load_directory(tmp_path / "missing.csv")


def test_semicolon_delimiter_and_blank_rows(tmp_path: Path) -> None:
    text = 'SamAccountName;SID;Enabled\nalice;S-1-5-21-1-2-3-1104;True\n\n;;\nbob;not-a-sid;yes\n'
    directory = load_directory(write(tmp_path, "users.csv", text, "cp1252"))
    assert [(u.sam, u.sid, u.enabled) for u in directory.users] == [
        ("alice", "S-1-5-21-1-2-3-1104", True), ("bob", None, True)]
