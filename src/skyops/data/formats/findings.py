"""What a conversion finds in a source: stable rule ids, what each one does, and where it was found.

Every finding names the source file as written (relative to the source root) and the place in it:
a 1-based line for text files (VisDrone, YOLO, a Ground Truth manifest), an entry for structured
ones (`annotations[3]` in COCO and Ground Truth, `object 2` in VOC). The rule decides the outcome,
so a rule id means the same thing in every format:

    refused   the conversion fails; every refusal of the source is listed in one error
    skipped   the image is left out of the output
    missing   the image is converted without a label file (validation raises `label.missing`)
    orphan    an annotation file without its image: counted, not converted
    dropped   the box is left out of the label
    clipped   the box is clipped to the image and kept
    note      nothing is changed; worth knowing (a BOM, odd line endings, a truncated image)

Boxes the format itself marks as ignored (VisDrone regions, COCO crowd, VOC difficult) are not
findings: they are counted per reason in `ConvertReport.dropped`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from skyops.data.formats.files import read_bytes


class Outcome(StrEnum):
    REFUSED = "refused"
    SKIPPED = "skipped"
    MISSING = "missing"
    ORPHAN = "orphan"
    DROPPED = "dropped"
    CLIPPED = "clipped"
    NOTE = "note"


class Rule(StrEnum):
    """Stable rule ids of conversion findings (reports and tests refer to these strings)."""

    # refused: the source must be fixed (or the convert arguments)
    PATH_ESCAPES_ROOT = "path.escapes_root"  # a symlink, `../` or absolute name leading outside its root
    PATH_UNRESOLVED = "path.unresolved"  # a Ground Truth s3:// source-ref without a matching s3_prefix
    SOURCE_LAYOUT = "source.layout"  # the wrong number of annotation files, several label attributes
    SOURCE_STRUCTURE = "source.structure"  # a COCO / Ground Truth entry of the wrong shape, a VOC file that is not XML
    FILE_UNREADABLE = "file.unreadable"  # an annotation file the operating system will not read (permissions)
    TEXT_NOT_UTF8 = "text.not_utf8"
    NAMES_MISSING = "names.missing"  # a YOLO source without class names
    NAMES_INVALID = "names.invalid"  # clashing class names in the source, or a bad names override
    CLASS_UNKNOWN = "class.unknown"  # a box's class is not among the source's classes
    ROW_UNPARSEABLE = "row.unparseable"
    BOX_NOT_FINITE = "box.not_finite"  # NaN / inf coordinates
    IMAGE_MISSING = "image.missing"  # a COCO / Ground Truth entry names an image that is not there
    IMAGE_DUPLICATE_ID = "image.duplicate_id"  # two COCO images share an id
    IMAGE_SIZE_MISMATCH = "image.size_mismatch"  # the annotation's stated size differs from the image's header
    IMAGE_NAME_CLASH = "image.name_clash"  # two images would get the same label file
    # skipped: the image is left out
    IMAGE_UNREADABLE = "image.unreadable"
    IMAGE_ZERO_BYTES = "image.zero_bytes"
    GROUNDTRUTH_NO_LABEL = "groundtruth.no_label"  # a manifest line without a label attribute (a failed task)
    # missing / orphan
    LABEL_MISSING = "label.missing"
    LABEL_ORPHAN = "label.orphan"
    # dropped / clipped boxes
    BOX_ZERO_AREA = "box.zero_area"  # width or height 0 in the source
    BOX_NEGATIVE_SIZE = "box.negative_size"  # width or height < 0 in the source
    BOX_OUTSIDE_IMAGE = "box.outside_image"  # no part of the box lies inside the image
    BOX_DUPLICATE = "box.duplicate"  # same class and coordinates as an earlier box of the image: kept once
    BOX_OUT_OF_IMAGE = "box.out_of_image"  # partly outside the image: clipped to it
    # notes
    TEXT_BOM = "text.bom"  # a UTF-8 byte-order mark, stripped
    TEXT_LINE_ENDINGS = "text.line_endings"  # lone \r or mixed line endings, each read as a line break
    IMAGE_TRUNCATED = "image.truncated"  # converted; validation's `image.truncated` decides


OUTCOME: dict[Rule, Outcome] = {
    **{
        rule: Outcome.REFUSED
        for rule in (
            Rule.PATH_ESCAPES_ROOT,
            Rule.PATH_UNRESOLVED,
            Rule.SOURCE_LAYOUT,
            Rule.SOURCE_STRUCTURE,
            Rule.FILE_UNREADABLE,
            Rule.TEXT_NOT_UTF8,
            Rule.NAMES_MISSING,
            Rule.NAMES_INVALID,
            Rule.CLASS_UNKNOWN,
            Rule.ROW_UNPARSEABLE,
            Rule.BOX_NOT_FINITE,
            Rule.IMAGE_MISSING,
            Rule.IMAGE_DUPLICATE_ID,
            Rule.IMAGE_SIZE_MISMATCH,
            Rule.IMAGE_NAME_CLASH,
        )
    },
    Rule.IMAGE_UNREADABLE: Outcome.SKIPPED,
    Rule.IMAGE_ZERO_BYTES: Outcome.SKIPPED,
    Rule.GROUNDTRUTH_NO_LABEL: Outcome.SKIPPED,
    Rule.LABEL_MISSING: Outcome.MISSING,
    Rule.LABEL_ORPHAN: Outcome.ORPHAN,
    Rule.BOX_ZERO_AREA: Outcome.DROPPED,
    Rule.BOX_NEGATIVE_SIZE: Outcome.DROPPED,
    Rule.BOX_OUTSIDE_IMAGE: Outcome.DROPPED,
    Rule.BOX_DUPLICATE: Outcome.DROPPED,
    Rule.BOX_OUT_OF_IMAGE: Outcome.CLIPPED,
    Rule.TEXT_BOM: Outcome.NOTE,
    Rule.TEXT_LINE_ENDINGS: Outcome.NOTE,
    Rule.IMAGE_TRUNCATED: Outcome.NOTE,
}


@dataclass(frozen=True, order=True, kw_only=True)
class Finding:
    """One thing a conversion found. Ordered by place: file, line, entry, then rule."""

    file: str  # the source file as written, relative to its root ('' for the convert arguments)
    line: int = 0  # 1-based line in `file`; 0 when the place is not a line
    entry: str = ""  # the place inside `file` when it is not a line: "annotations[3]", "object 2"
    rule: Rule
    message: str

    @property
    def outcome(self) -> Outcome:
        return OUTCOME[self.rule]

    @property
    def where(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else self.file
        return ": ".join(p for p in (place, self.entry) if p)

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.rule}]" if self.where else f"{self.message} [{self.rule}]"

    def to_json(self) -> dict[str, object]:
        return {
            "rule": str(self.rule),
            "outcome": str(self.outcome),
            "file": self.file,
            "line": self.line or None,
            "entry": self.entry,
            "message": self.message,
        }


def read_text(path: str, file: str, findings: list[Finding]) -> str | None:
    """The text of the annotation file at `path` (see `decode_text`); None after a refusal."""
    try:
        data = read_bytes(path)
    except OSError as e:
        findings.append(Finding(file=file, rule=Rule.FILE_UNREADABLE, message=f"cannot read the file ({e.strerror})"))
        return None
    return decode_text(data, file, findings)


def decode_text(data: bytes, file: str, findings: list[Finding]) -> str | None:
    """`data` as text: UTF-8, a leading BOM stripped (and noted), odd line endings noted.

    Returns None after adding a `text.not_utf8` refusal when the bytes are not UTF-8. Label files
    are numbers and separators: a byte that is not UTF-8 means a damaged or mis-encoded file, and
    guessing an encoding would turn it into wrong numbers rather than an error.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        prefix = data[: e.start]
        line = len(prefix.splitlines()) + (1 if not prefix or prefix.endswith((b"\n", b"\r")) else 0)
        utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
        why = "UTF-16 text (a UTF-16 byte-order mark)" if utf16 else f"byte 0x{data[e.start]:02x} is not UTF-8"
        findings.append(Finding(file=file, line=line, rule=Rule.TEXT_NOT_UTF8, message=f"{why}; re-save the file as UTF-8"))
        return None
    if text.startswith("\ufeff"):
        text = text[1:]
        findings.append(Finding(file=file, rule=Rule.TEXT_BOM, message="starts with a UTF-8 byte-order mark (ignored)"))
    if "\r" in text:
        crlf = text.count("\r\n")
        lone_cr, lone_lf = text.count("\r") - crlf, text.count("\n") - crlf
        if lone_cr or (crlf and lone_lf):
            kinds = ", ".join(k for k, n in (("\\r\\n", crlf), ("\\r", lone_cr), ("\\n", lone_lf)) if n)
            findings.append(Finding(file=file, rule=Rule.TEXT_LINE_ENDINGS, message=f"line endings {kinds}: each read as a line break"))
    return text
