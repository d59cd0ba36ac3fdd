"""Redaction of captured traffic: what each built-in kind catches and leaves, tenant patterns,
nested values (tool-call arguments stay valid JSON), and the checks on a tenant's patterns."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.traffic.redaction import BUILTIN, MAX_PATTERNS, Redactor, check_patterns, luhn_valid

R = Redactor.build([])


def _one(text: str) -> tuple[str, dict[str, int]]:
    out, counts = R.redact(text)
    assert isinstance(out, str)
    return out, counts


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.doe+orders@example.co.uk today", "email"),
        ("ME@MAIL.EXAMPLE.ORG", "email"),
        ("call +44 20 7946 0958", "phone"),
        ("tel: +33 1 23 45 67 89", "phone"),
        ("+4915112345678", "phone"),
        ("+49 (0)30 1234567", "phone"),
        ("0049 30 1234567", "phone"),
        ("(555) 123-4567", "phone"),
        ("555-123-4567", "phone"),
        ("555.123.4567", "phone"),
        ("+1 555 123 4567", "phone"),
        ("1-800-555-0199", "phone"),
        ("4111 1111 1111 1111", "card"),
        ("4111-1111-1111-1111", "card"),
        ("5555555555554444", "card"),
        ("amex 3782 822463 10005", "card"),
        ("6011111111111117", "card"),
        ("sk-proj-abcdefghijklmnopqrstuvwx1234", "api_key"),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "api_key"),
        ("AKIAIOSFODNN7EXAMPLE", "api_key"),
        ("ghp_aBcdEfGhIjKlMnOpQrStUvWxYz0123456789", "api_key"),
        ("xoxb-123456789012-abcdefghij", "api_key"),
        ("AIzaSyA-1234567890abcdefghijklmnopqrstu", "api_key"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "api_key"),
        ('api_key="a8F3kLq9Zx2Mv7Np4Rt6Yw1Bc5De0GhJ"', "api_key"),
        ("client_secret: Zq7Lm2Nx9Kb4Vc8Jh3Gf6Ds1Ap5Wt0Ry", "api_key"),
    ],
)
def test_builtin_kinds_are_replaced_and_counted(text: str, kind: str) -> None:
    out, counts = _one(text)
    assert counts == {kind: 1}, (text, out)
    assert f"[REDACTED:{kind.upper()}]" in out


@pytest.mark.parametrize(
    "text",
    [
        "in 2024 I bought 12 items for 1500 dollars",
        "order 123456, qty 3, zip 94103, room 1204",
        "ship 2,500 units by 2024-01-15 at 10:30",
        "version 1.2.3 on 192.168.1.1 port 8080",
        "ISBN 978-3-16-148410-0",
        "4111 1111 1111 1112",  # fails the Luhn check
        "1234567890123456",  # fails it too
        "5551234567",  # bare digits: could be anything
        "3+4412345678",  # arithmetic
        "+12 34",  # too few digits for a phone
        "password: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",  # no entropy: not a secret
        "the token: supercalifragilisticexpialidociousness",  # a long word
        "sk-short",
        "[REDACTED:EMAIL] stays as it is",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert _one(text) == (text, {})


def test_bearer_and_keyed_tokens_keep_their_label() -> None:
    out, _ = _one("Authorization: Bearer abcdefghij0123456789xyz")
    assert out == "Authorization: Bearer [REDACTED:API_KEY]"
    out, _ = _one('{"api_key": "a8F3kLq9Zx2Mv7Np4Rt6Yw1Bc5De0GhJ"}')
    assert out == '{"api_key": "[REDACTED:API_KEY]"}'


def test_counts_add_up_over_a_text() -> None:
    out, counts = _one("a@b.io, c@d.io, 555-123-4567 and 4111111111111111")
    assert counts == {"email": 2, "phone": 1, "card": 1}
    assert out == "[REDACTED:EMAIL], [REDACTED:EMAIL], [REDACTED:PHONE] and [REDACTED:CARD]"


def _with_check_digit(body: str) -> str:
    for d in "0123456789":
        if luhn_valid(body + d):
            return body + d
    raise AssertionError("unreachable")


_cards = st.builds(
    lambda first, rest: _with_check_digit(first + rest),
    st.sampled_from("3456"),
    st.text("0123456789", min_size=11, max_size=17),
)
_filler = st.text(st.sampled_from("abcdefghij ,.;:!?()"), max_size=30)


@given(_cards, st.sampled_from(["", " ", "-"]), _filler, _filler)
def test_any_luhn_valid_card_is_redacted_and_a_wrong_digit_is_not(
    card: str, sep: str, before: str, after: str
) -> None:
    shown = sep.join(card[i : i + 4] for i in range(0, len(card), 4))
    out, counts = _one(f"{before} {shown} {after}")
    assert counts == {"card": 1} and card not in out.replace(sep, "")
    wrong = card[:-1] + str((int(card[-1]) + 1) % 10)
    shown = sep.join(wrong[i : i + 4] for i in range(0, len(wrong), 4))
    out, counts = _one(f"{before} {shown} {after}")
    assert "card" not in counts and shown in out


_local = st.text(st.sampled_from("abcxyz0189._%+-"), min_size=1, max_size=20).filter(
    lambda s: s[0].isalnum()
)
_label = st.text(st.sampled_from("abcdxyz0189-"), min_size=1, max_size=10).filter(
    lambda s: s[0].isalnum() and s[-1].isalnum()
)
_emails = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    _local,
    st.lists(_label, min_size=1, max_size=3),
    st.sampled_from(["com", "io", "co.uk", "museum"]),
)


@given(_emails, _filler, _filler)
def test_any_email_is_redacted_wherever_it_stands(email: str, before: str, after: str) -> None:
    out, counts = _one(f"{before} {email} {after}")
    assert email not in out and counts.get("email") == 1


def test_nested_values_are_walked_and_tool_arguments_stay_json() -> None:
    value: dict[str, Any] = {
        "messages": [
            {"role": "user", "content": "I am jo@example.com"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "lookup",
                            "arguments": '{"email": "jo@example.com", "phone": "555-123-4567"}',
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"card": "4111111111111111"}'},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        "temperature": 0.5,
    }
    out, counts = R.redact(value)
    assert counts == {"email": 2, "phone": 1, "card": 1}
    assert "jo@example.com" not in orjson.dumps(out).decode()
    args = orjson.loads(out["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert args == {"email": "[REDACTED:EMAIL]", "phone": "[REDACTED:PHONE]"}
    assert out["messages"][2]["content"] == '{"card": "[REDACTED:CARD]"}'
    assert out["tools"] == value["tools"] and out["temperature"] == 0.5
    assert value["messages"][0]["content"] == "I am jo@example.com"  # a copy, not in place


def test_tenant_patterns_run_first_and_never_touch_a_placeholder() -> None:
    patterns = check_patterns(
        [
            {"name": "ORDER_ID", "pattern": "ORD-[0-9]{6}"},
            {"name": "WORD", "pattern": "ORDER_ID|EMAIL"},
            {"name": "ACCOUNT", "pattern": r"ACC-\d{4}-\d{4}-\d{4}-\d{4}"},
        ]
    )
    red = Redactor.build(patterns)
    out, counts = red.redact("ORD-123456, ORD-12345, x@y.io, ACC-4111-1111-1111-1111")
    assert out == "[REDACTED:ORDER_ID], ORD-12345, [REDACTED:EMAIL], [REDACTED:ACCOUNT]"
    assert counts == {"ORDER_ID": 1, "email": 1, "ACCOUNT": 1}


def test_a_tenant_pattern_that_cuts_through_json_redacts_the_values() -> None:
    red = Redactor.build(check_patterns([{"name": "NOTE", "pattern": 'secret[^"]*"'}]))
    out, counts = red.redact('{"a": "secret plan", "b": "x"}')
    assert orjson.loads(out) == {"a": "secret plan", "b": "x"}  # no match inside a value
    out, counts = red.redact('{"a": "my secret" , "b": "secret"}')
    assert orjson.loads(out) == {"a": "my secret", "b": "secret"} and counts == {}


def test_disabled_redaction_returns_the_value_as_it_is() -> None:
    value = {"content": "jo@example.com"}
    red = Redactor.build([{"name": "X", "pattern": "jo"}], enabled=False)
    assert red.redact(value) == (value, {})


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        ("ORD-1", "must be a list"),
        ([{"name": "ORDER_ID"}], 'exactly "name" and "pattern"'),
        ([{"name": "X", "pattern": "a", "flags": "i"}], 'exactly "name" and "pattern"'),
        ([{"name": "order_id", "pattern": "a"}], "name 'order_id' must be"),
        ([{"name": "A" * 33, "pattern": "a"}], "must be 1-32 characters"),
        ([{"name": "EMAIL", "pattern": "a"}], "EMAIL is a built-in kind"),
        ([{"name": "API_KEY", "pattern": "a"}], "API_KEY is a built-in kind"),
        ([{"name": "X", "pattern": "a"}, {"name": "X", "pattern": "b"}], "used twice"),
        ([{"name": "X", "pattern": ""}], "non-empty string"),
        ([{"name": "X", "pattern": 5}], "non-empty string"),
        ([{"name": "X", "pattern": "a" * 501}], "over 500"),
        ([{"name": "X", "pattern": "(?=a)b"}], "not a regex RE2 can run"),
        ([{"name": "X", "pattern": "(a"}], "not a regex RE2 can run"),
        ([{"name": "X", "pattern": "(a{1000}){1000}"}], "not a regex RE2 can run"),
        ([{"name": "X", "pattern": "a*"}], "matches empty text"),
        ([{"name": f"P{i}", "pattern": "a"} for i in range(MAX_PATTERNS + 1)], "over the limit"),
    ],
)
def test_bad_patterns_are_refused_naming_the_entry(patterns: object, message: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        check_patterns(patterns)
    assert message in str(info.value), str(info.value)


def test_good_patterns_come_back_as_given() -> None:
    given_ = [{"name": "ORDER_ID", "pattern": "ORD-[0-9]{6}"}, {"name": "T9", "pattern": "x+"}]
    assert check_patterns(given_) == given_
    assert check_patterns(None) == [] and check_patterns([]) == []
    assert BUILTIN == ("email", "phone", "card", "api_key")


_text = st.text(st.characters(exclude_categories=["Cs"]))  # what a JSON body can hold
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
    | st.sampled_from(["x@y.io", '{"to": "x@y.io"}', "ORD-123456", "+44 20 7946 0958"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


@given(_json)
def test_any_json_value_comes_back_as_json_with_only_strings_changed(value: Any) -> None:
    red = Redactor.build([{"name": "ORDER_ID", "pattern": "ORD-[0-9]{6}"}])
    out, counts = red.redact(value)
    orjson.dumps(out)  # still serializable
    assert all(n > 0 for n in counts.values())
    if not counts:
        assert out == value
