"""responseSchema / responseJsonSchema are checked at the edge: a malformed one is a 400 naming the field."""

from __future__ import annotations

import json

import pytest

from pollux.api.schema import checked_json_schema, openapi_to_json_schema
from pollux.errors import InvalidArgument
from tests.api.helpers import assert_error
from tests.conftest import H

URL = "/v1beta/models/gemini-2.0-flash:generateContent"


def _body(key: str, schema) -> dict:
    return {"contents": [{"parts": [{"text": "hi"}]}],
            "generationConfig": {"responseMimeType": "application/json", key: schema}}


@pytest.mark.parametrize("schema, field", [
    ({"type": "OBJECT", "properties": "x"}, "response_schema.properties"),
    ({"type": "ARRAY", "items": 5}, "response_schema.items"),
    ({"type": "ARRAY", "minItems": "abc"}, "response_schema.min_items"),
    ({"type": "ARRAY", "minItems": -1}, "response_schema.min_items"),
    ({"type": "ARRAY", "max_items": 1.5}, "response_schema.max_items"),
    ({"type": "ARRAY", "minItems": 1e30}, "response_schema.min_items"),
    ({"type": "OBJECT", "properties": {"a": 5}}, "response_schema.properties[a]"),
    ({"type": "OBJECT", "properties": {"a": {"type": "ARRAY", "items": {"minLength": "x"}}}},
     "response_schema.properties[a].items.min_length"),
    ({"type": "BOGUS"}, "response_schema.type"),
    ({"type": 99}, "response_schema.type"),
    ({"anyOf": "x"}, "response_schema.any_of"),
    ({"anyOf": []}, "response_schema.any_of"),
    ({"anyOf": [1]}, "response_schema.any_of[0]"),
    ({"type": "STRING", "enum": "x"}, "response_schema.enum"),
    ({"type": "STRING", "enum": []}, "response_schema.enum"),
    ({"type": "OBJECT", "required": 5}, "response_schema.required"),
    ({"type": "STRING", "pattern": "("}, "response_schema.pattern"),
    ({"type": "NUMBER", "minimum": "x"}, "response_schema.minimum"),
    ({"type": "STRING", "format": 5}, "response_schema.format"),
    ({"type": "STRING", "nullable": "yes"}, "response_schema.nullable"),
    ({"type": "STRING", "bogusField": 1}, "bogusField"),
    ("x", "response_schema"),
    ({"type": "ARRAY", "minItems": "1000000000", "items": {"type": "STRING"}}, "too many states"),
    ({"type": "ARRAY", "minItems": 1000, "items": {"type": "ARRAY", "minItems": 1000}}, "too many states"),
])
def test_malformed_response_schema_is_a_400_naming_the_field(client, schema, field):
    r = client.post(URL, headers=H, json=_body("responseSchema", schema))
    assert_error(r, 400, "INVALID_ARGUMENT", field)


@pytest.mark.parametrize("schema, field", [
    ({"type": "object", "properties": "x"}, "response_json_schema.properties"),
    ({"type": "array", "items": 5}, "response_json_schema.items"),
    ({"type": "array", "minItems": "abc"}, "response_json_schema.minItems"),
    ({"anyOf": [1]}, "response_json_schema.anyOf[0]"),
    ({"type": "string", "pattern": "("}, "response_json_schema.pattern"),
    ({"type": "string", "enum": []}, "enum"),
    ([1], "response_json_schema"),
    ({"$ref": "#/$defs/missing"}, "does not resolve"),
    ({"$ref": "https://example.com/schema.json"}, "does not resolve"),
])
def test_malformed_response_json_schema_is_a_400(client, schema, field):
    r = client.post(URL, headers=H, json=_body("responseJsonSchema", schema))
    assert_error(r, 400, "INVALID_ARGUMENT", field)


def test_countTokens_checks_the_nested_request_schema_too(client):
    r = client.post("/v1beta/models/gemini-2.0-flash:countTokens", headers=H,
                    json={"generateContentRequest": {"model": "models/gemini-2.0-flash", **_body(
                        "responseSchema", {"type": "ARRAY", "items": 5})}})
    assert_error(r, 400, "INVALID_ARGUMENT", "response_schema.items")


def test_well_formed_schemas_still_work(client):
    schema = {"type": "OBJECT", "properties": {"name": {"type": "STRING", "nullable": True},
                                               "tags": {"type": "ARRAY", "items": {"type": "STRING"},
                                                        "minItems": "2", "maxItems": 3}},
              "required": ["name"], "propertyOrdering": ["name", "tags"]}
    r = client.post(URL, headers=H, json=_body("responseSchema", schema))
    assert r.status_code == 200, r.text
    answer = json.loads(r.json()["candidates"][0]["content"]["parts"][0]["text"])
    assert set(answer) == {"name", "tags"} and len(answer["tags"]) == 2
    r = client.post(URL, headers=H, json=_body("responseJsonSchema", {
        "type": "object", "properties": {"a": True, "b": {"type": "integer", "minimum": 3}},
        "additionalProperties": False}))
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["candidates"][0]["content"]["parts"][0]["text"])["b"] == 3


def test_conversion_and_normalisation():
    assert openapi_to_json_schema({"type": "STRING", "nullable": True, "min_length": "1"}) == {
        "type": ["string", "null"], "minLength": 1}
    assert openapi_to_json_schema({"type": 6, "properties": {"x": {"type": "INTEGER", "minimum": "2"}}}) == {
        "type": "object", "properties": {"x": {"type": "integer", "minimum": 2.0}}}
    assert checked_json_schema({"items": False, "anyOf": [True]}) == {"items": {"not": {}}, "anyOf": [{}]}
    with pytest.raises(InvalidArgument):
        checked_json_schema({"$defs": {"a": {"type": "nope"}}})
    ref = {"$defs": {"a": {"type": "string"}}, "type": "object", "properties": {"x": {"$ref": "#/$defs/a"}}}
    assert checked_json_schema(ref) == ref
