"""parse.js (boxes, timestamps, SSE) run under node: the playground's answer reading, without a browser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

PARSE_JS = Path(__file__).resolve().parents[2] / "src" / "pollux" / "web" / "parse.js"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def run_js(body: str):
    script = f"import * as p from {json.dumps(PARSE_JS.as_uri())};\nconst out = await (async () => {{ {body} }})();\n" \
             "console.log(JSON.stringify(out));"
    done = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def boxes(text: str):
    return run_js(f"return p.findBoxes({json.dumps(text)});")


def test_box_2d_json_with_labels():
    text = 'Here:\n```json\n[{"box_2d": [100, 200, 300, 400], "label": "piranha"}, ' \
           '{"box_2d": [0, 0, 1000, 1000], "label": "tank"}]\n```'
    assert boxes(text) == [
        {"ymin": 100, "xmin": 200, "ymax": 300, "xmax": 400, "label": "piranha"},
        {"ymin": 0, "xmin": 0, "ymax": 1000, "xmax": 1000, "label": "tank"},
    ]


def test_bare_list_and_nested_lists():
    assert boxes("The piranha is at [120, 80, 560, 900].") == [
        {"ymin": 120, "xmin": 80, "ymax": 560, "xmax": 900, "label": "box 1"}]
    assert [b["ymin"] for b in boxes("[[1, 2, 3, 4], [5, 6, 7, 8]]")] == [1, 5]


def test_not_boxes():
    # The seed's prompt words, out-of-range numbers, inverted corners and broken JSON are ignored.
    for text in ("Return a bounding box. [ymin, xmin, ymax, xmax]", "[1, 2, 3]", "[10, 20, 3000, 40]",
                 "[500, 500, 100, 100]", '[{"box_2d": [1, 2, 3'):
        assert boxes(text) == [], text


def test_to_pixels_follows_the_seed():
    px = run_js("return p.toPixels({ymin: 100, xmin: 250, ymax: 500, xmax: 1000}, 640, 480);")
    assert px == {"x0": 160, "y0": 48, "x1": 640, "y1": 240}


def test_timestamps():
    segs = run_js('return p.splitTimestamps("At 01:05 and 1:19, then 1:02:03; not 3.14:15 or 12:345.");')
    marked = [(s["text"], s["seconds"]) for s in segs if "seconds" in s]
    assert marked == [("01:05", 65), ("1:19", 79), ("1:02:03", 3723)]
    assert "".join(s["text"] for s in segs) == "At 01:05 and 1:19, then 1:02:03; not 3.14:15 or 12:345."


def test_sse_parser_handles_split_events_and_crlf():
    out = run_js("""
      const sse = new p.SseParser();
      const a = sse.push('data: {"candidates":[{"content":{"parts":[{"text":"Hel"}]}}]}\\r\\n\\r\\ndata: {"cand');
      const b = sse.push('idates":[{"content":{"parts":[{"text":"lo"},{"text":"x","thought":true}]}}]}\\n\\n');
      return [...a, ...b].map(p.responseText);
    """)
    assert out == ["Hel", "lo"]
