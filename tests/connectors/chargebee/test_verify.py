"""Chargebee Basic-auth parsing and comparison (providers.md §3.2, appendix A vector 9)."""

from __future__ import annotations

import base64

import pytest

from connectors.chargebee.verify import credentials, header, verify
from hub.kernel.errors import VerificationError


def test_appendix_vector_9() -> None:
    assert header("cbuser", "cbpass") == "Basic Y2J1c2VyOmNicGFzcw=="
    verify("Basic Y2J1c2VyOmNicGFzcw==", ["cbuser"], ["cbpass"])


def test_password_is_split_at_the_first_colon() -> None:
    assert credentials(header("u", "a:b:c")) == (b"u", b"a:b:c")
    verify(header("u", "a:b:c"), ["u"], ["a:b:c"])
    with pytest.raises(VerificationError):
        verify(header("u", "a:b:c"), ["u"], ["a"])  # not a prefix match on the first segment


def test_rotation_pairs_by_position() -> None:
    users, passwords = ["new", "old"], ["new-pw", "old-pw"]
    verify(header("new", "new-pw"), users, passwords)
    verify(header("old", "old-pw"), users, passwords)
    with pytest.raises(VerificationError):
        verify(header("new", "old-pw"), users, passwords)


def test_non_ascii_credentials_compare_as_utf8() -> None:
    verify(header("ünïcode", "pässwörd"), ["ünïcode"], ["pässwörd"])


@pytest.mark.parametrize("value, reason", [
    (None, "missing"),
    ("", "missing"),
    ("Bearer Y2J1c2VyOmNicGFzcw==", "not 'Basic"),
    ("Basic", "not 'Basic"),
    ("Basic  Y2J1c2VyOmNicGFzcw==", "not 'Basic"),  # exactly two space-separated parts
    ("Basic Y2J1c2VyOmNicGFzcw== extra", "not 'Basic"),
    ("Basic %%%notbase64", "not base64"),
    ("Basic é", "not base64"),
    ("Basic " + base64.b64encode(b"no-colon").decode(), "no ':'"),
])
def test_malformed_headers_say_what_is_wrong(value: str | None, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        verify(value, ["cbuser"], ["cbpass"])


def test_scheme_name_is_case_insensitive() -> None:
    verify("basic Y2J1c2VyOmNicGFzcw==", ["cbuser"], ["cbpass"])


def test_unpaired_settings_are_named_and_refuse_everything() -> None:
    with pytest.raises(VerificationError, match="paired by position") as info:
        verify(header("user-a", "pw-secret-a"), ["user-a", "user-c"], ["pw-secret-a"])
    assert "pw-secret-a" not in str(info.value)


def test_wrong_password_message_names_the_settings_not_the_secret() -> None:
    with pytest.raises(VerificationError) as info:
        verify(header("cbuser", "guess"), ["cbuser"], ["s3cr3t-value"])
    assert "HUB_CHARGEBEE_WEBHOOK_PASSWORD" in str(info.value)
    assert "s3cr3t-value" not in str(info.value) and "guess" not in str(info.value)
