"""The one JSON reader for every request body, reading JSON the way Google's API front end does.

Google parses request JSON with protobuf's lenient stream parser, so code written against Gemini
sends things strict JSON refuses, and Gemini answers 200 to them: the docs' curl samples post
`{'file': {'display_name': 'x'}}`. Accepted beyond RFC 8259, as that parser does:
* strings in single quotes as well as double quotes; `\\'`, `\\v` and any `\\<char>` escape (it means
  the char); raw control characters inside strings;
* unquoted object keys (a letter, `_` or `$`, then letters, digits, `_`, `$`);
* a trailing comma before `}` or `]`;
* integers beyond 64 bits, read as doubles.
Refused, as there: `NaN`/`Infinity` literals, numbers beyond a double's range, leading zeros, and
more than `MAX_DEPTH` nested objects/arrays (the parser is iterative, so depth never costs stack).
Every failure is an InvalidArgument with Gemini's "Invalid JSON payload received." wording and a
caret under the offending spot; nothing else ever escapes.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring  # type: ignore[attr-defined]  # the stdlib's, untyped in typeshed
from typing import Any

from starlette.requests import Request

from pollux.fastjson import orjson

from pollux.errors import InvalidArgument, PayloadTooLarge

MAX_DEPTH = 100  # protobuf's default recursion limit for JSON
_PREFIX = "Invalid JSON payload received. "
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1

_WS = re.compile(r"[ \t\n\r\f\v]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_BAD_NUMBER = re.compile(r"-?0[0-9xX]")
_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_DQ = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: linear on a 20 MB base64 string
_SQ = re.compile(r"'[^'\\]*(?:\\.[^'\\]*)*'", re.DOTALL)
_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|.)|"', re.DOTALL)
_JSON_ESCAPES = {"b": "\\b", "f": "\\f", "n": "\\n", "r": "\\r", "t": "\\t", "/": "/", "\\": "\\\\"}


class _Fail(ValueError):
    def __init__(self, message: str, pos: int):
        super().__init__(message)
        self.message, self.pos = message, pos


# ---- public API ----

def loads(raw: bytes | str) -> Any:
    """Decode one JSON value leniently; InvalidArgument on anything unreadable."""
    if orjson is not None:  # strict JSON, nearly every body: orjson reads numbers by the rules below too
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # whatever it refuses goes the whole way below (a BOM, raw control characters, the lenient forms)
        else:
            _check_depth(value, "")
            return value
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(_PREFIX + "Encountered non UTF-8 code points.") from None
    else:
        text = raw
    text = text.removeprefix("\ufeff")
    try:  # strict JSON (nearly every body) goes through the C decoder
        value = json.loads(text, strict=False, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except (ValueError, RecursionError):
        value = None
    else:
        _check_depth(value, text)
        return value
    try:
        return _Parser(text).parse()
    except _Fail as f:
        raise InvalidArgument(_PREFIX + f.message + _context(text, f.pos)) from None


def loads_object(raw: bytes | str) -> dict:
    """A request message: a JSON object, or {} for an empty body."""
    if not (raw.strip() if isinstance(raw, (bytes, str)) else raw):
        return {}
    value = loads(raw)
    if not isinstance(value, dict):
        raise InvalidArgument(_PREFIX + "Expected a JSON object at the top level.")
    return value


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused as soon as it crosses `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_object(request: Request, limit: int) -> dict:
    """`read_body` + `loads_object`: what every JSON request handler starts with."""
    return loads_object(await read_body(request, limit))


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request payload size exceeds the limit: {limit} bytes. "
                           "Upload large media with the File API instead.")


# ---- the strict fast path's number rules (the same as the lenient parser's) ----

def _int(s: str) -> int | float:
    if len(s) <= 20:
        n = int(s)
        if _INT64_MIN <= n <= _UINT64_MAX:
            return n
    return _float(s)  # beyond 64 bits: a double, as protobuf reads it


def _float(s: str) -> float:
    f = float(s)
    if f in (float("inf"), float("-inf")):
        raise ValueError("Number exceeds the range of double.")
    return f


def _constant(s: str) -> Any:
    raise ValueError(f"{s} is not a JSON value")


def _check_depth(value: Any, text: str) -> None:
    """Iterative, so a deep value cannot overflow the stack here or in the recursive code after us."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_DEPTH:
                    raise InvalidArgument(_PREFIX + _too_deep())
                stack.append((child, depth + 1))


def _too_deep() -> str:
    return f"Message too deep: more than {MAX_DEPTH} nested objects or arrays."


def _context(text: str, pos: int) -> str:
    """Gemini's error context: up to 20 characters each side of the spot, a caret under it."""
    begin = max(0, pos - 20)
    segment = text[begin:pos + 20].replace("\n", " ").replace("\r", " ")
    return "\n" + segment + "\n" + " " * (pos - begin) + "^"


# ---- the lenient parser: an explicit stack, no recursion ----

class _Parser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def parse(self) -> Any:
        value = self._value_or_container()
        result = value
        # stack entries: [container, pending key or None]
        stack: list[list] = []
        if isinstance(value, (dict, list)):
            stack.append([value, None])
            if len(stack) > MAX_DEPTH:
                raise _Fail(_too_deep(), self.pos)
        while stack:
            top = stack[-1]
            container = top[0]
            self._ws()
            if isinstance(container, list):
                if self._peek() == "]":
                    self.pos += 1
                    stack.pop()
                    self._after_value(stack)
                    continue
                if container and not top[1]:
                    raise self._fail("Expected , or ] after array value.")
                item = self._value_or_container()
                container.append(item)
                top[1] = False  # a value now needs a comma before the next one
                if isinstance(item, (dict, list)):
                    stack.append([item, None])
                    if len(stack) > MAX_DEPTH:
                        raise _Fail(_too_deep(), self.pos)
                else:
                    self._after_value(stack)
                continue
            # an object: expect a key (or the end) once any previous pair has been closed by a comma
            if self._peek() == "}":
                self.pos += 1
                stack.pop()
                self._after_value(stack)
                continue
            if container and not top[1]:
                raise self._fail("Expected , or } after key:value pair.")
            key = self._key()
            self._ws()
            if self._peek() != ":":
                raise self._fail("Expected : between key:value pair.")
            self.pos += 1
            self._ws()
            item = self._value_or_container()
            container[key] = item
            top[1] = False
            if isinstance(item, (dict, list)):
                stack.append([item, None])
                if len(stack) > MAX_DEPTH:
                    raise _Fail(_too_deep(), self.pos)
            else:
                self._after_value(stack)
        self._ws()
        if self.pos != len(self.text):
            raise self._fail("Parsing terminated before end of input.")
        return result

    def _after_value(self, stack: list[list]) -> None:
        """After a complete value inside a container: a comma (then maybe a trailing close) or a close."""
        if not stack:
            return
        self._ws()
        if self._peek() == ",":
            self.pos += 1
            stack[-1][1] = True  # the comma opens a slot (a trailing one may just be closed)

    def _value_or_container(self) -> Any:
        self._ws()
        c = self._peek()
        if c == "{":
            self.pos += 1
            return {}
        if c == "[":
            self.pos += 1
            return []
        if c in ("'", '"'):
            return self._string()
        if c == "-" or c.isdigit() and c.isascii():
            return self._number()
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return value
        if not c:
            raise self._fail("Unexpected end of string. Expected a value.")
        raise self._fail("Unexpected token.")

    def _key(self) -> str:
        c = self._peek()
        if c in ("'", '"'):
            return self._string()
        m = _KEY.match(self.text, self.pos)
        if not m:
            if not c:
                raise self._fail("Unexpected end of string. Expected an object key or }.")
            raise self._fail("Expected an object key or }.")
        self.pos = m.end()
        return m.group()

    def _string(self) -> str:
        start = self.pos
        m = (_DQ if self.text[start] == '"' else _SQ).match(self.text, start)
        if not m:
            raise _Fail("Closing quote expected in string.", start)
        self.pos = m.end()
        body = m.group()[1:-1]
        if "\\" not in body and '"' not in body:
            return body
        try:  # rewrite to a JSON string literal, then let the C decoder handle \uXXXX and surrogates
            return scanstring('"' + _ESCAPE.sub(_json_escape, body) + '"', 1, False)[0]
        except ValueError:
            raise _Fail("Invalid escape sequence.", start) from None

    def _number(self) -> int | float:
        start = self.pos
        if _BAD_NUMBER.match(self.text, start):
            raise self._fail("Octal/hex numbers are not valid JSON values.")
        m = _NUMBER.match(self.text, start)
        if not m or m.end() == start or self.text[start:m.end()] == "-":
            raise self._fail("Unable to parse number.")
        self.pos = m.end()
        try:
            return _float(m.group()) if m.group(1) or m.group(2) else _int(m.group())
        except ValueError:
            raise _Fail("Number exceeds the range of double.", start) from None

    def _ws(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()  # type: ignore[union-attr]  # \s* always matches

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _fail(self, message: str) -> _Fail:
        return _Fail(message, self.pos)


def _json_escape(m: re.Match) -> str:
    """One escape (or bare double quote) of a lenient string, as a JSON string literal spells it."""
    if m.group(0) == '"':
        return '\\"'
    esc = m.group(1)
    if esc == "u":
        raise ValueError("bad \\u escape")
    if esc[0] == "u":
        return "\\" + esc
    if esc in _JSON_ESCAPES:
        return _JSON_ESCAPES[esc]
    if esc == "v":
        return "\\u000b"
    if esc == '"':
        return '\\"'
    return esc  # protobuf: any other escaped char stands for itself
