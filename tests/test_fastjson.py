"""pollux.fastjson reads what the standard library reads, and writes what it can write."""

from __future__ import annotations

import json

import pytest

from pollux import fastjson
from pollux.api import json_reader


@pytest.mark.parametrize("text", [
    '{"a": 1, "b": [true, false, null], "c": "\\u00e9\\ud83d\\ude00"}',
    '{"a": 1, "a": 2}',  # the last wins, as in the standard library
    '"\\ud800"',  # a lone surrogate: orjson refuses it, the standard library reads it
    "NaN", "[Infinity, -Infinity]",  # not JSON, but what a Python server writes for floats it cannot spell
    "9223372036854775808", "-9223372036854775808", "1.5e300",
])
def test_reads_what_the_standard_library_reads(text):
    got, want = fastjson.loads(text), json.loads(text)
    assert repr(got) == repr(want)  # repr: NaN != NaN, and int vs float matters
    assert repr(fastjson.loads(text.encode())) == repr(want)


@pytest.mark.parametrize("text", ["{not json", "", "[1,]", '"raw \x01 control"'])
def test_refuses_what_the_standard_library_refuses(text):
    with pytest.raises(ValueError):
        fastjson.loads(text)


def test_integers_beyond_64_bits_are_doubles():
    """The one difference: as protobuf's JSON (and Gemini's request reader) has it."""
    assert fastjson.loads("18446744073709551616") == 2.0**64 and fastjson.loads("-9223372036854775809") < 0


@pytest.mark.parametrize("value", [
    {"text": "caf\u00e9 \U0001F600 \"q\" \\ \n", "n": 3, "f": 0.1, "list": [None, True]},
    {"big": 2**70},  # beyond 64 bits: the standard library writes it
    {"lone": "\ud800"},  # orjson cannot encode a lone surrogate: written escaped
])
def test_writes_json_that_reads_back(value):
    assert json.loads(fastjson.dumps(value)) == value


@pytest.mark.parametrize("raw", [
    b'{"n": 18446744073709551616, "m": -9223372036854775809, "k": 9223372036854775808}',  # beyond 64 bits: doubles
    b'{"a": {"b": [1, 2.5, "x"]}, "a": 3}',
])
def test_request_reader_fast_path_keeps_the_number_rules(raw):
    """json_reader reads strict JSON with orjson first: the same values as its own standard-library path."""
    expected = json.loads(raw, parse_int=json_reader._int, parse_float=json_reader._float)
    assert repr(json_reader.loads(raw)) == repr(expected)
