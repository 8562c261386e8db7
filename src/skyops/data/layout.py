"""The canonical dataset layout every data step reads and writes.

    <root>/
      images/<name>.<ext>        image files, flat, unique names
      labels/<name>.txt          YOLO labels: `class cx cy w h`, normalised to [0, 1], one box per line
      attributes/<name>.txt      (optional) per-box attributes beyond the label, one line per label row
                                 (VisDrone truncation, occlusion: see skyops.data.attributes)
      labels-obb/<name>.txt      (optional, convert --obb of a DOTA source) YOLO-OBB rows
                                 `class x1 y1 ... x4 y4`, one per label row (see formats/dota.py)
      manifest.json              see `Manifest`: names, one record per image with sha256s, fingerprint
      train.txt, val.txt, test.txt   (after `split`) image paths relative to <root>, one per line

`data.yaml` for Ultralytics is never trusted from an upstream artifact (its absolute paths are
those of wherever that step ran); a consumer writes a fresh one with `write_data_yaml`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from skyops.errors import DataValidationError

MANIFEST = "manifest.json"
IMAGES = "images"
LABELS = "labels"
ATTRIBUTES = "attributes"  # optional; see skyops.data.attributes
OBB_LABELS = "labels-obb"  # optional; see skyops.data.formats.dota
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MANIFEST_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class ImageRecord:
    """One image of a dataset. Paths are relative to the dataset root."""

    image: str  # "images/x.jpg"
    label: str  # "labels/x.txt"
    width: int
    height: int
    sha256: str  # of the image file
    label_sha256: str  # of the label file; '' when there is none (convert: the source has no annotation for the image)
    boxes: int
    group: str = ""  # frames that must stay on one side of a split (sequence id, source stem)
    source: str = ""  # the original file this came from, for lineage


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """names: class names by id. fingerprint: sha256 over names and every record's hashes."""

    names: list[str]
    images: list[ImageRecord]
    source_format: str = "yolo"
    stats: dict[str, Any] = field(default_factory=dict)  # converter counts: dropped, clipped, ...
    version: int = MANIFEST_VERSION

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(json.dumps(self.names).encode())
        for r in sorted(self.images, key=lambda r: r.image):
            digest.update(f"{r.image}\0{r.sha256}\0{r.label_sha256}\n".encode())
        return digest.hexdigest()

    def to_json(self) -> dict[str, Any]:
        # Same dict as asdict(self), built shallow: records hold only str/int fields, and asdict's
        # recursive deep copies cost ~15 µs per record (a third of a fast conversion's time).
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["images"] = [dict(vars(r)) for r in self.images]
        return {**data, "fingerprint": self.fingerprint}

    def write(self, root: Path) -> Path:
        path = root / MANIFEST
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json_lines(self.to_json()))
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, root: Path) -> Manifest:
        path = root / MANIFEST
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataValidationError(
                f"{root} has no {MANIFEST}", hint="produce the dataset with `skyops data convert` or the ingest step"
            ) from None
        except json.JSONDecodeError as e:
            raise DataValidationError(f"{path} is not valid JSON: {e}") from None
        if data.get("version") != MANIFEST_VERSION:
            raise DataValidationError(
                f"{path} has manifest version {data.get('version')!r}; expected {MANIFEST_VERSION}",
                hint="re-run ingest with this skyops version",
            )
        data.pop("fingerprint", None)
        data["images"] = [ImageRecord(**r) for r in data["images"]]
        return cls(**data)


def json_lines(doc: dict[str, Any]) -> str:
    """`doc` as JSON text with one top-level key per line, and one entry per line in its lists.

    As readable as `json.dumps(doc, indent=1)` for a manifest or a report, at half the cost: with
    `indent` set, json falls back to its pure-Python encoder (~20 µs per manifest record).
    """
    parts = []
    for key, value in doc.items():
        if isinstance(value, list) and value:
            parts.append(f"{json.dumps(key)}: [\n  " + ",\n  ".join(map(json.dumps, value)) + "\n ]")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{\n " + ",\n ".join(parts) + "\n}\n"


# Roboflow exports name augmented copies `<stem>_<ext>.rf.<hash>`; the ext is the original's (jpg, JPG, png...).
_ROBOFLOW = re.compile(r"^(?P<stem>.+)_(?:jpe?g|png|bmp|tiff?|webp)\.rf\.[0-9a-f]{8,}$", re.IGNORECASE)
# VisDrone-DET names frames `<sequence>_<frame>_d_<n>`, e.g. 0000001_04527_d_0000008.
_VISDRONE = re.compile(r"^(?P<sequence>\d+)_\d+_d_\d+$")


def group_of(stem: str) -> str:
    """The split group of an image from its file stem: related frames share one.

    Args:
        stem: a file name without its extension, e.g. "0000001_04527_d_0000008".

    Returns:
        The source stem for Roboflow augmented copies `<stem>_jpg.rf.<hash>`, then the VisDrone
        sequence id for `<seq>_<frame>_d_<n>` (so a Roboflow copy of a VisDrone frame maps to its
        sequence), else the stem itself.
    """
    roboflow = _ROBOFLOW.match(stem)
    if roboflow:
        stem = roboflow["stem"]
    visdrone = _VISDRONE.match(stem)
    return visdrone["sequence"] if visdrone else stem


def image_stem(path: str) -> str:
    """ "images/a.b.jpg" -> "a.b": only the last extension goes."""
    return os.path.splitext(os.path.basename(path))[0]


@contextmanager
def atomic_output_dir(target: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh folder beside `target`, renamed to `target` when the block succeeds, removed when it raises.

    `target` may exist as an empty folder (the pipeline engine pre-creates outputs). A non-empty one
    is an error, unless `overwrite`: then it is replaced only once the new folder is complete.
    """
    target = Path(target)
    if target.exists() and not overwrite and (not target.is_dir() or any(target.iterdir())):
        raise DataValidationError(
            f"output {target} already exists and is not an empty folder", hint="choose a new output folder or delete this one first"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = None
    try:
        yield staging
        os.chmod(staging, 0o755)  # mkdtemp makes it private (0700)
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        elif target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}-{os.urandom(4).hex()}")
            os.rename(target, old)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def attributes_file(root: Path, image: str) -> Path:
    """The optional box-attributes side file of `image` (a path or name under images/): attributes/<stem>.txt."""
    return root / ATTRIBUTES / f"{image_stem(image)}.txt"


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst` (cheap, same bytes), copying where links are not possible."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def read_split(root: Path, split: str) -> list[str]:
    path = root / f"{split}.txt"
    return [line for line in path.read_text().splitlines() if line] if path.is_file() else []


def private_view(root: Path, target: Path) -> Path:
    """A view of the dataset at `root` in `target` (which must not exist) that Ultralytics may write into.

    Ultralytics writes `labels.cache` beside a dataset's `labels/` folder; reading a private view
    keeps upstream artifacts (cached, content-addressed, maybe shared or read-only) byte for byte
    unchanged. The view has its own `images/` and `labels/` folders (and `attributes/`, when the dataset
    has one); each file in them is a hard link
    to the source file where `target` is on `root`'s filesystem, else a symbolic link to it: never a
    copy (a dataset may be GBs, and on SageMaker the input channel /opt/ml/input/data/<name> is not on
    the filesystem of /tmp). Ultralytics reads through either kind of link, and derives each label's
    path, and so the cache's, from the image path as listed, never resolved: the cache lands in
    `target` (tests/data/test_view.py checks both on a real Ultralytics dataset). The manifest and the
    split lists, a few KB, are copied.

    Raises:
        DataValidationError: a file of `root` can be neither hard- nor symbolically linked into `target`.
    """
    root = Path(os.path.abspath(root))
    target.mkdir(parents=True)
    hard = os.stat(root).st_dev == os.stat(target).st_dev  # across filesystems a hard link is EXDEV: skip the attempts
    for folder in (IMAGES, LABELS, ATTRIBUTES):
        if folder == ATTRIBUTES and not (root / folder).is_dir():
            continue  # optional
        (target / folder).mkdir()
        for path in sorted((root / folder).iterdir()):
            hard = _link(path, target / folder / path.name, hard=hard)
    for name in (MANIFEST, *(f"{split}.txt" for split in SPLITS)):
        if (root / name).is_file():
            shutil.copy2(root / name, target / name)
    return target


def _link(source: Path, link: Path, *, hard: bool) -> bool:
    """Hard-link `link` to `source` if `hard`, else (or if that fails) symlink it; True while hard links work."""
    if hard:
        try:
            os.link(source, link)
        except OSError:
            hard = False  # a filesystem without hard links (a FUSE mount, say): symbolic links from here on
        else:
            return True
    try:
        os.symlink(source, link)
    except OSError as e:
        raise DataValidationError(
            f"cannot link {source} into the private data view {link.parent.parent}: {e.strerror}",
            hint="give the step a temporary folder (TMPDIR) on a filesystem that supports hard or symbolic links",
        ) from None
    return False


def write_data_yaml(root: Path, target: Path, names: list[str]) -> Path:
    """Write an Ultralytics data yaml for the dataset at `root`: absolute paths, no download key.

    Uses `<split>.txt` lists when the dataset is split, else the whole `images/` folder for train
    and val.
    """
    import yaml

    root = root.resolve()
    data: dict[str, Any] = {"path": str(root), "names": dict(enumerate(names)), "nc": len(names)}
    if (root / "train.txt").is_file():
        lists = target.parent / f"{target.stem}-lists"
        lists.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            entries = read_split(root, split)
            if entries:
                listing = lists / f"{split}.txt"
                listing.write_text("".join(f"{root / e}\n" for e in entries))
                data[split] = str(listing)
        data.setdefault("val", data.get("test", data["train"]))
    else:
        data["train"] = data["val"] = str(root / IMAGES)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target
