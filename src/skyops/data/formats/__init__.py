"""Source-format readers for the converters, one module per format; see base.py for the shared shape."""

from __future__ import annotations

from skyops.data.formats.base import Format, Reader, SourceOptions
from skyops.data.formats.coco import CocoReader
from skyops.data.formats.dior import DiorReader
from skyops.data.formats.dota import DotaReader
from skyops.data.formats.groundtruth import GroundTruthReader
from skyops.data.formats.visdrone import VisDroneReader
from skyops.data.formats.voc import VocReader
from skyops.data.formats.yolo import YoloReader
from skyops.data.layout import group_of

READERS: dict[Format, Reader] = {
    Format.VISDRONE: VisDroneReader(),
    Format.COCO: CocoReader(),
    Format.VOC: VocReader(),
    Format.GROUNDTRUTH: GroundTruthReader(),
    Format.YOLO: YoloReader(),
    Format.DOTA: DotaReader(),
    Format.DIOR: DiorReader(),
}
# A format whose sources are also sources of another: when both recognise a folder, detection names the first only.
REFINES: dict[Format, Format] = {Format.DIOR: Format.VOC}

__all__ = ["READERS", "REFINES", "Format", "Reader", "SourceOptions", "group_of"]
