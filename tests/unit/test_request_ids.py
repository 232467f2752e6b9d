"""Request-id rules and payload fingerprints (SPEC 4.2), checked over generated inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from videobatch.errors import InvalidRequestId, RequestIdConflict, RequestIdRequired
from videobatch.services.idempotency import fingerprint, read_request_id

printable = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=255
)


@given(printable)
def test_every_printable_ascii_id_is_accepted_as_is(request_id):
    assert read_request_id(request_id, None) == request_id


@given(
    printable,
    st.characters(blacklist_categories=(), min_codepoint=0, max_codepoint=0x10FFFF).filter(
        lambda c: not 0x21 <= ord(c) <= 0x7E
    ),
    st.integers(min_value=0),
)
def test_any_other_character_is_refused(request_id, bad, where):
    where %= len(request_id) + 1
    with pytest.raises(InvalidRequestId):
        read_request_id(request_id[:where] + bad + request_id[where:][:253], None)


def test_longer_than_255_is_refused():
    with pytest.raises(InvalidRequestId):
        read_request_id("a" * 256, None)


def test_missing_is_required():
    with pytest.raises(RequestIdRequired):
        read_request_id(None, None)


@given(printable)
def test_idempotency_key_may_be_quoted(request_id):
    assert read_request_id(None, f'"{request_id}"') == request_id


def test_differing_headers_conflict():
    with pytest.raises(RequestIdConflict):
        read_request_id("a", "b")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
payloads = st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=6)


@given(payloads)
def test_fingerprint_ignores_key_order(payload):
    reordered = dict(reversed(list(payload.items())))
    assert fingerprint(reordered) == fingerprint(payload)


@given(payloads, st.data())
def test_fingerprint_changes_with_any_value(payload, data):
    key = data.draw(st.sampled_from(sorted(payload)))
    changed = {**payload, key: [payload[key], "changed"]}
    assert fingerprint(changed) != fingerprint(payload)
