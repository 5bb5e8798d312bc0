"""The grounding service for models without native grounding (SmolVLM2): OWLv2 open-vocabulary
detection via transformers, loaded on first use and unloaded when idle (`GroundingService`). Box
requests themselves are recognised in prompt assembly (`pollux.prompt`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pollux.engines.boxes import Detection, from_owlv2
from pollux.engines.services import ModelService
from pollux.prompt import is_box_request, phrases, wants_json, wants_many  # noqa: F401  (recognised in prompt.py)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from pollux.catalog import ModelEntry
    from pollux.settings import Settings

DEFAULT_GROUNDING_MODEL = "owlv2-base"


def grounding_entries() -> dict[str, "ModelEntry"]:
    """Grounding models `pollux pull` knows by id (weights resolve like any catalog model)."""
    from pollux.catalog import ModelEntry

    return {"owlv2-base": ModelEntry(
        id="owlv2-base", display_name="OWLv2 base (grounding)",
        description="Open-vocabulary detector that answers bounding-box requests for models without grounding.",
        engine="transformers", source="google/owlv2-base-patch16-ensemble", family="owlv2")}


class Grounder:
    """An OWLv2 detector loaded from a checkpoint folder; thread-safe (one detection at a time)."""

    def __init__(self, path: Path):
        import torch
        from transformers import AutoProcessor, Owlv2ForObjectDetection

        self.processor = AutoProcessor.from_pretrained(path)
        self.model = Owlv2ForObjectDetection.from_pretrained(path, dtype=torch.float32).eval()
        self._lock = threading.Lock()

    def detect(self, image: "PILImage", names: list[str], *, many: bool = False, threshold: float = 0.1,
               image_index: int = 0) -> list[Detection]:
        """Best box per name (or every box above `threshold` when `many`), in Gemini's convention."""
        import torch
        from torchvision.ops import nms

        side = max(image.size)  # OWLv2 pads bottom/right to a square before resizing
        with self._lock, torch.inference_mode():
            inputs = self.processor(text=[names], images=image, return_tensors="pt")
            outputs = self.model(**inputs)
            logits = outputs.logits[0].sigmoid()  # (patches, names)
            boxes = self._boxes_xyxy(outputs.pred_boxes[0]) * side
        found: list[Detection] = []
        for k, name in enumerate(names):
            scores = logits[:, k]
            if many:
                keep = [int(i) for i in nms(boxes, scores, 0.3) if scores[i] >= threshold]
            else:
                keep = []
            if not keep:
                keep = [int(scores.argmax())]
            for i in keep:
                found.append(Detection(name, from_owlv2(boxes[i].tolist(), side, image.size),
                                       score=round(float(scores[i]), 3), image=image_index))
        return found

    @staticmethod
    def _boxes_xyxy(center_boxes: Any):
        from transformers.image_transforms import center_to_corners_format

        return center_to_corners_format(center_boxes)


def grounder_for(name_or_path: str, settings: "Settings") -> Grounder:
    """Load the Grounder for a grounding model id (see grounding_entries) or a local folder (uncached:
    the `GroundingService` keeps what is loaded)."""
    from pollux.engines import weights

    entry = grounding_entries().get(name_or_path)
    if entry is None:
        from pollux.catalog import ModelEntry

        entry = ModelEntry(id=Path(name_or_path).name, display_name=name_or_path, description="grounding model",
                           engine="transformers", source=name_or_path, family="owlv2")
    return Grounder(weights.resolve(entry, settings))


class GroundingService(ModelService[Grounder]):
    """Grounding models by id or folder (`options.grounding` of each engine), with a model's lifecycle."""

    kind = "grounding"

    def _load(self, name: str) -> Grounder:
        return grounder_for(name, self.settings)
