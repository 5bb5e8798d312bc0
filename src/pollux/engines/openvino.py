"""The fast CPU engine: the local engine (`local.py`) on the OpenVINO runtime (`runtimes/openvino.py`:
int8 weights by default, vision features and KV prefixes kept and computed ahead of requests).

Families without an OpenVINO path, a device other than the CPU, OpenVINO not installed, or a
conversion that fails run on the torch runtime instead: decided once per load
(`runtimes.load_runtime`) and reported by `info()` (`runtime`, `fallbackReason`).
"""

from __future__ import annotations

from pollux.engines.local import LocalEngine
from pollux.engines.runtimes import OPENVINO


class OpenVINOEngine(LocalEngine):
    name = "openvino"
    default_runtime = OPENVINO
