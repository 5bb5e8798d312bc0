"""Token ids → streamed text: whole characters only, stop sequences cut exactly, even across tokens."""

from __future__ import annotations

import pytest

from pollux.engines.decoding import TextStream
from tests.fixtures.tiny_models import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["<s>"], vocab_size=300)


def _stream(tokenizer, text, stops=None):
    ids = tokenizer.encode(text).ids
    stream = TextStream(lambda part: tokenizer.decode(part), stops)
    pieces = []
    for token in ids:
        piece, stopped = stream.push(token)
        pieces.append(piece)
        if stopped:
            return pieces, True
    pieces.append(stream.finish())
    return pieces, False


def test_multibyte_characters_are_never_split(tokenizer):
    text = "Größe: 😀 café — ok"
    pieces, stopped = _stream(tokenizer, text)
    assert "".join(pieces) == text and not stopped
    assert all("\ufffd" not in p for p in pieces)
    assert len([p for p in pieces if p]) > 3  # it really streamed


def test_stop_sequence_is_cut_and_never_leaked(tokenizer):
    text = "The quick brown fox. END of the story"
    pieces, stopped = _stream(tokenizer, text, stops=["END", "never"])
    assert stopped and "".join(pieces) == "The quick brown fox. "
    pieces, stopped = _stream(tokenizer, "no stop sequence here, only EN", stops=["END"])
    assert not stopped and "".join(pieces) == "no stop sequence here, only EN"  # held "EN" released at the end


def test_text_that_may_start_a_stop_sequence_is_held(tokenizer):
    stream = TextStream(lambda part: tokenizer.decode(part), ["STOP"])
    sent = ""
    for token in tokenizer.encode("abc ST").ids:
        sent += stream.push(token)[0]
    assert sent == "abc "
    for token in tokenizer.encode("ART").ids:
        sent += stream.push(token)[0]
    assert sent + stream.finish() == "abc START"
