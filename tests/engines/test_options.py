"""Per-engine options are typed and checked when the catalog loads: a misspelled key or a value of the
wrong type in catalog.toml is a start-up error naming the model and the key."""

from __future__ import annotations

import pytest

from pollux.catalog import Catalog, ModelEntry
from pollux.engines.options import LocalOptions, RemoteOptions, validate


def _catalog(tmp_path, body: str):
    path = tmp_path / "catalog.toml"
    path.write_text(body)
    return path


def test_a_misspelled_option_is_a_start_up_error_naming_key_and_model(tmp_path):
    path = _catalog(tmp_path, '[[models]]\nid = "smolvlm2-256m"\noptions = { weigths = "int4" }\n')
    with pytest.raises(ValueError, match=r"'smolvlm2-256m'.*unknown option 'weigths'.*weights") as caught:
        Catalog.from_file(path)
    assert str(path) in str(caught.value)


def test_wrong_types_and_values_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"'big'.*option 'feature_cache_mb'"):
        Catalog.from_file(_catalog(tmp_path, '[[models]]\nid = "big"\nengine = "openvino"\nsource = "x"\n'
                                             'options = { feature_cache_mb = "lots" }\n'))
    with pytest.raises(ValueError, match=r"option 'weights'.*one of int8"):
        Catalog.from_file(_catalog(tmp_path, '[[models]]\nid = "q"\nengine = "openvino"\nsource = "x"\n'
                                             'options = { weights = "int3" }\n'))


def test_remote_options_are_checked_too(tmp_path):
    with pytest.raises(ValueError, match=r"'r'.*unknown option 'api_key_evn'"):
        Catalog.from_file(_catalog(tmp_path, '[[models]]\nid = "r"\nengine = "openai"\nsource = "http://h/v1"\n'
                                             'options = { model = "m", api_key_evn = "KEY" }\n'))
    good = Catalog.from_file(_catalog(tmp_path, '[[models]]\nid = "r"\nengine = "openai"\nsource = "http://h/v1"\n'
                                                'options = { model = "m", max_images = 4, retries = 1 }\n'))
    options = validate(good.entries["r"])
    assert isinstance(options, RemoteOptions) and (options.model, options.max_images, options.retries) == ("m", 4, 1)


def test_valid_catalog_options_are_typed(tmp_path):
    catalog = Catalog.from_file(_catalog(tmp_path, '[[models]]\nid = "smolvlm2-256m"\n'
                                                   'options = { weights = "INT4", group_size = 32, dtype = "float16" }\n'))
    options = validate(catalog.entries["smolvlm2-256m"])
    assert isinstance(options, LocalOptions) and (options.weights, options.group_size) == ("int4", 32)
    entry = ModelEntry(id="third", display_name="t", description="", engine="some.module:Engine", source="x",
                       family="", options={"anything": 1})
    assert validate(entry).anything == 1  # an engine that declares no options model takes any


def test_the_server_refuses_to_start_on_a_misspelled_option(make_client, tmp_path):
    path = _catalog(tmp_path, '[[models]]\nid = "smolvlm2-256m"\noptions = { kv_snapshot_mib = 64 }\n')
    with pytest.raises(ValueError, match="unknown option 'kv_snapshot_mib'"):
        make_client(catalog_file=path)
