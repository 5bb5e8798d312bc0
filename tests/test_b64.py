"""pollux.b64: the fast codec accepts exactly what the standard library's strict decoder accepts."""

import base64
import os

import pytest

from pollux import b64


@pytest.mark.parametrize("raw", [b"", b"a", b"ab", b"abc", os.urandom(1000), bytes(range(256)) * 3])
def test_round_trip_in_both_alphabets_with_and_without_padding(raw):
    std = base64.b64encode(raw).decode()
    assert b64.encode(raw) == std
    assert b64.decode(std) == raw
    assert b64.decode(std.rstrip("=")) == raw
    assert b64.decode(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw


@pytest.mark.parametrize("text", ["abcd=", "YWI=", "YWJjZA"])
def test_what_the_standard_decoder_accepts_stays_accepted(text):
    padded = text + "=" * (-len(text) % 4)
    assert b64.decode(text) == base64.b64decode(padded, validate=True)


@pytest.mark.parametrize("text", ["ab!c", "ab==cd==", "YWJj\nZA==", "a", "é"])
def test_not_base64_is_a_value_error(text):
    with pytest.raises(ValueError):
        b64.decode(text)
