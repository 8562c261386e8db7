"""The hostile cases, format by format (see hostile.py for the world they are built in)."""

from __future__ import annotations

from pathlib import Path

from tests.data.hostile import (
    CASES,
    GOOD,
    SECRET,
    World,
    case,
    coco_boxes,
    coco_images,
    gt_line,
    jpeg,
    truncated_jpeg,
    voc_xml,
)

__all__ = ["CASES"]

# ---- bad boxes: zero, negative, out of range, NaN, duplicates ----

# YOLO rows on a 64x48 image: zero width, negative width, reaching past the right edge, wholly
# outside, a good box, then an exact copy of the good box (also written with other digits).
YOLO_BOXES = "0 0.5 0.5 0 0.1\n0 0.5 0.5 -0.1 0.1\n0 0.95 0.5 0.2 0.2\n0 1.5 0.5 0.1 0.1\n1 0.5 0.5 0.2 0.2\n1 0.50 0.5 0.2 0.20\n"


@case(
    "yolo-bad-boxes",
    "yolo",
    "converted",
    "box.zero_area",
    "box.negative_size",
    "box.out_of_image",
    "box.outside_image",
    "box.duplicate",
    findings=(
        "labels/a.txt:1: zero width or height (0 x 4.8 px): dropped [box.zero_area]",
        "labels/a.txt:2: negative width or height (-6.4 x 4.8 px): dropped [box.negative_size]",
        "labels/a.txt:3: reaches outside the 64x48 image: clipped to it [box.out_of_image]",
        "labels/a.txt:4: lies wholly outside the 64x48 image: dropped [box.outside_image]",
        "labels/a.txt:6: same class and box as line 5: kept once [box.duplicate]",
    ),
)
def _yolo_bad_boxes(world: World) -> Path:
    return world.yolo({"a": YOLO_BOXES, "b": GOOD})


@case("yolo-nan", "yolo", "refused", "box.not_finite")
def _yolo_nan(world: World) -> Path:
    return world.yolo({"a": GOOD + "0 nan 0.5 0.1 0.1\n", "b": GOOD})


@case(
    "visdrone-bad-boxes",
    "visdrone",
    "converted",
    "box.zero_area",
    "box.negative_size",
    "box.out_of_image",
    "box.outside_image",
    "box.duplicate",
    findings=(
        "annotations/a.txt:1: zero width or height (0 x 5 px): dropped [box.zero_area]",
        "annotations/a.txt:2: negative width or height (-5 x 5 px): dropped [box.negative_size]",
        "annotations/a.txt:3: reaches outside the 64x48 image: clipped to it [box.out_of_image]",
        "annotations/a.txt:4: lies wholly outside the 64x48 image: dropped [box.outside_image]",
        "annotations/a.txt:6: same class and box as line 5: kept once [box.duplicate]",
    ),
)
def _visdrone_bad_boxes(world: World) -> Path:
    rows = "10,10,0,5,1,1,0,0\n10,10,-5,5,1,1,0,0\n60,40,10,10,1,1,0,0\n100,100,5,5,1,1,0,0\n5,5,10,10,1,4,0,0\n5,5,10,10,1,4,0,0\n"
    return world.visdrone({"a": rows, "b": "1,1,8,8,1,1,0,0\n"})


@case("visdrone-nan", "visdrone", "refused", "box.not_finite")
def _visdrone_nan(world: World) -> Path:
    return world.visdrone({"a": "nan,1,2,3,1,1,0,0\n", "b": "1,1,8,8,1,1,0,0\n"})


@case(
    "coco-bad-boxes",
    "coco",
    "converted",
    "box.zero_area",
    "box.negative_size",
    "box.out_of_image",
    "box.outside_image",
    "box.duplicate",
    findings=(
        "instances.json: annotations[0]: zero width or height (0 x 5 px): dropped [box.zero_area]",
        "instances.json: annotations[1]: negative width or height (-5 x 5 px): dropped [box.negative_size]",
        "instances.json: annotations[2]: reaches outside the 64x48 image: clipped to it [box.out_of_image]",
        "instances.json: annotations[3]: lies wholly outside the 64x48 image: dropped [box.outside_image]",
        "instances.json: annotations[5]: same class and box as annotations[4]: kept once [box.duplicate]",
    ),
)
def _coco_bad_boxes(world: World) -> Path:
    return world.coco(
        coco_images("a.jpg", "b.jpg"),
        coco_boxes([10, 10, 0, 5], [10, 10, -5, 5], [60, 40, 10, 10], [100, 100, 5, 5], [5, 5, 10, 10], [5, 5, 10, 10]),
    )


@case("coco-nan", "coco", "refused", "box.not_finite")
def _coco_nan(world: World) -> Path:
    return world.coco(coco_images("a.jpg"), coco_boxes([float("nan"), 1, 2, 3]))  # json.dumps writes NaN, json.loads reads it


@case(
    "voc-bad-boxes",
    "voc",
    "converted",
    "box.zero_area",
    "box.negative_size",
    "box.out_of_image",
    "box.outside_image",
    "box.duplicate",
    findings=(
        "Annotations/a.xml: object 1: zero width or height (0 x 5 px): dropped [box.zero_area]",
        "Annotations/a.xml: object 2: negative width or height (-5 x 5 px): dropped [box.negative_size]",
        "Annotations/a.xml: object 3: reaches outside the 64x48 image: clipped to it [box.out_of_image]",
        "Annotations/a.xml: object 4: lies wholly outside the 64x48 image: dropped [box.outside_image]",
        "Annotations/a.xml: object 6: same class and box as object 5: kept once [box.duplicate]",
    ),
)
def _voc_bad_boxes(world: World) -> Path:
    # VOC is 1-based and inclusive: (11, 11, 10, 15) spans 0 pixels in x, (11, 11, 5, 15) spans -5.
    boxes = [("11", "11", "10", "15"), ("11", "11", "5", "15"), ("61", "41", "70", "50"), ("101", "101", "105", "105")]
    return world.voc(
        {"a": voc_xml("a.jpg", *boxes, ("6", "6", "15", "15"), ("6", "6", "15", "15")), "b": voc_xml("b.jpg", ("2", "2", "9", "9"))}
    )


@case("voc-nan", "voc", "refused", "box.not_finite")
def _voc_nan(world: World) -> Path:
    return world.voc({"a": voc_xml("a.jpg", ("nan", "1", "5", "5")), "b": voc_xml("b.jpg", ("2", "2", "9", "9"))})


@case(
    "groundtruth-bad-boxes",
    "groundtruth",
    "converted",
    "box.zero_area",
    "box.negative_size",
    "box.out_of_image",
    "box.outside_image",
    "box.duplicate",
    findings=(
        "output.manifest:1: annotations[0]: zero width or height (0 x 5 px): dropped [box.zero_area]",
        "output.manifest:1: annotations[1]: negative width or height (-5 x 5 px): dropped [box.negative_size]",
        "output.manifest:1: annotations[2]: reaches outside the 64x48 image: clipped to it [box.out_of_image]",
        "output.manifest:1: annotations[3]: lies wholly outside the 64x48 image: dropped [box.outside_image]",
        "output.manifest:1: annotations[5]: same class and box as annotations[4]: kept once [box.duplicate]",
    ),
)
def _groundtruth_bad_boxes(world: World) -> Path:
    boxes = [(10, 10, 0, 5), (10, 10, -5, 5), (60, 40, 10, 10), (100, 100, 5, 5), (5, 5, 10, 10), (5, 5, 10, 10)]
    return world.groundtruth([gt_line("images/a.jpg", *boxes), gt_line("images/b.jpg", (1, 1, 8, 8))])


@case("groundtruth-nan", "groundtruth", "refused", "box.not_finite")
def _groundtruth_nan(world: World) -> Path:
    return world.groundtruth([gt_line("images/a.jpg", (float("nan"), 1, 2, 3))])


# ---- text encodings and line endings ----


@case("yolo-bom", "yolo", "converted", "text.bom")
def _yolo_bom(world: World) -> Path:
    return world.yolo({"a": "\ufeff" + GOOD, "b": GOOD})


@case("visdrone-bom", "visdrone", "converted", "text.bom")
def _visdrone_bom(world: World) -> Path:
    return world.visdrone({"a": "\ufeff5,5,10,10,1,4,0,0\n", "b": "1,1,8,8,1,1,0,0\n"})


@case("coco-bom", "coco", "converted", "text.bom")
def _coco_bom(world: World) -> Path:
    return world.coco(coco_images("a.jpg"), coco_boxes([5, 5, 10, 10]), prefix=b"\xef\xbb\xbf")


@case("groundtruth-bom", "groundtruth", "converted", "text.bom")
def _groundtruth_bom(world: World) -> Path:
    return world.groundtruth([gt_line("images/a.jpg", (5, 5, 10, 10))], prefix=b"\xef\xbb\xbf")


@case("voc-bom", "voc", "converted")  # the XML parser reads the BOM as the encoding declaration it is
def _voc_bom(world: World) -> Path:
    return world.voc({"a": "\ufeff" + voc_xml("a.jpg", ("6", "6", "15", "15")), "b": voc_xml("b.jpg", ("2", "2", "9", "9"))})


@case("yolo-mixed-line-endings", "yolo", "converted", "text.line_endings")
def _yolo_line_endings(world: World) -> Path:
    return world.yolo(
        {"a": "0 0.5 0.5 0.2 0.2\r\n1 0.2 0.2 0.1 0.1\r0 0.7 0.7 0.1 0.1\n", "b": "0 0.5 0.5 0.2 0.2\r\n"}
    )  # b: CRLF only, no note


@case("visdrone-mixed-line-endings", "visdrone", "converted", "text.line_endings")
def _visdrone_line_endings(world: World) -> Path:
    return world.visdrone({"a": "5,5,10,10,1,4,0,0\r1,1,8,8,1,1,0,0\r\n", "b": "1,1,8,8,1,1,0,0\r\n"})


@case("groundtruth-mixed-line-endings", "groundtruth", "converted", "text.line_endings")
def _groundtruth_line_endings(world: World) -> Path:
    return world.groundtruth([gt_line("images/a.jpg", (5, 5, 10, 10)) + "\r" + gt_line("images/b.jpg", (1, 1, 8, 8))])


@case(
    "yolo-latin1",
    "yolo",
    "refused",
    "text.not_utf8",
    findings=("labels/a.txt:2: byte 0xe9 is not UTF-8; re-save the file as UTF-8 [text.not_utf8]",),
)
def _yolo_latin1(world: World) -> Path:
    return world.yolo({"a": GOOD.encode() + "0 0.5 0.5 0.2 0.2 # voiture immatriculée\n".encode("latin-1"), "b": GOOD})


@case("yolo-utf16", "yolo", "refused", "text.not_utf8")
def _yolo_utf16(world: World) -> Path:
    return world.yolo({"a": GOOD.encode("utf-16"), "b": GOOD})


@case("visdrone-not-utf8", "visdrone", "refused", "text.not_utf8")
def _visdrone_not_utf8(world: World) -> Path:
    return world.visdrone({"a": b"5,5,10,10,1,4,0,0\n\xff\xfe\n", "b": "1,1,8,8,1,1,0,0\n"})


@case("groundtruth-not-utf8", "groundtruth", "refused", "text.not_utf8")
def _groundtruth_not_utf8(world: World) -> Path:
    source = world.groundtruth([gt_line("images/a.jpg", (5, 5, 10, 10))])
    with open(source, "ab") as f:
        f.write(b'{"source-ref": "images/b.jpg", "note": "\xe9t\xe9"}\n')  # latin-1 bytes
    return source


# ---- paths that leave the dataset: traversal names and symlinks ----


@case("coco-traversal", "coco", "refused", "path.escapes_root")
def _coco_traversal(world: World) -> Path:
    return world.coco(coco_images("a.jpg", "../secret.jpg"), coco_boxes([5, 5, 10, 10], image_id=2))


@case("coco-absolute-path", "coco", "refused", "path.escapes_root")
def _coco_absolute(world: World) -> Path:
    return world.coco(coco_images("a.jpg", str(world.root / "secret.jpg")), [])


@case("coco-traversal-under-images-dir", "coco", "refused", "path.escapes_root")
def _coco_images_dir(world: World) -> tuple[Path, dict[str, Path]]:
    # images_dir is ds/images: the JSON beside it is inside the dataset but outside the folder named for images
    return world.coco(coco_images("a.jpg", "../instances.json"), []), {"images_dir": world.ds / "images"}


@case("coco-symlink-image", "coco", "refused", "path.escapes_root")
def _coco_symlink(world: World) -> Path:
    world.link("images/c.jpg", world.root / "secret.jpg")
    return world.coco(coco_images("a.jpg", "c.jpg"), [])


@case("groundtruth-traversal", "groundtruth", "refused", "path.escapes_root")
def _groundtruth_traversal(world: World) -> Path:
    return world.groundtruth([gt_line("images/a.jpg", (5, 5, 10, 10)), gt_line("../secret.jpg", (1, 1, 8, 8))])


@case("groundtruth-absolute-path", "groundtruth", "refused", "path.escapes_root")
def _groundtruth_absolute(world: World) -> Path:
    return world.groundtruth([gt_line(str(world.root / "secret.jpg"), (1, 1, 8, 8))])


@case("groundtruth-s3-traversal", "groundtruth", "refused", "path.escapes_root")
def _groundtruth_s3(world: World) -> tuple[Path, dict[str, str]]:
    return world.groundtruth(
        [gt_line("s3://bucket/raw/images/a.jpg", (5, 5, 10, 10)), gt_line("s3://bucket/raw/../secret.jpg", (1, 1, 8, 8))]
    ), {"s3_prefix": "s3://bucket/raw/"}


@case("groundtruth-symlink-image", "groundtruth", "refused", "path.escapes_root")
def _groundtruth_symlink(world: World) -> Path:
    world.link("images/c.jpg", world.root / "secret.jpg")
    return world.groundtruth([gt_line("images/a.jpg", (5, 5, 10, 10)), gt_line("images/c.jpg", (1, 1, 8, 8))])


@case("voc-traversal", "voc", "refused", "path.escapes_root")
def _voc_traversal(world: World) -> Path:
    return world.voc({"a": voc_xml("a.jpg", ("6", "6", "15", "15")), "b": voc_xml("../../secret.jpg", ("2", "2", "9", "9"))})


@case("voc-symlink-image-and-xml", "voc", "refused", "path.escapes_root")
def _voc_symlinks(world: World) -> Path:
    world.link("JPEGImages/c.jpg", world.root / "secret.jpg")
    world.link("Annotations/d.xml", world.root / "secret.txt")
    return world.voc({"a": voc_xml("a.jpg", ("6", "6", "15", "15")), "b": voc_xml("b.jpg", ("2", "2", "9", "9"))})


@case("yolo-symlink-image", "yolo", "refused", "path.escapes_root")
def _yolo_symlink_image(world: World) -> Path:
    world.link("images/c.jpg", world.root / "secret.jpg")
    return world.yolo()


@case("yolo-symlink-to-a-foreign-jpeg", "yolo", "refused", "path.escapes_root")  # a real image, but not the dataset's
def _yolo_symlink_jpeg(world: World) -> Path:
    (world.root / "outside" / "real.jpg").write_bytes(jpeg(11))
    world.link("images/c.jpg", world.root / "outside" / "real.jpg")
    return world.yolo({"a": GOOD, "b": GOOD, "c": GOOD})


@case("yolo-link-loop-and-folder-named-like-an-image", "yolo", "converted")  # neither is a file to read
def _yolo_loop(world: World) -> Path:
    world.link("images/loop.jpg", "loop.jpg")
    world.link("labels/up", "..")  # a link to a folder inside the dataset: not walked (it would list files twice)
    (world.ds / "images" / "folder.jpg").mkdir(parents=True)
    return world.yolo()


@case("visdrone-link-loop-and-folder-named-like-an-image", "visdrone", "converted")
def _visdrone_loop(world: World) -> Path:
    world.link("images/loop.jpg", "loop.jpg")
    (world.ds / "annotations" / "folder.txt").mkdir(parents=True)
    return world.visdrone()


@case("yolo-symlink-label", "yolo", "refused", "path.escapes_root")
def _yolo_symlink_label(world: World) -> Path:
    world.link("labels/a.txt", world.root / "secret.txt")  # holds a row that would be quoted if it were parsed
    return world.yolo({"b": GOOD})


@case("yolo-symlink-folder", "yolo", "refused", "path.escapes_root")
def _yolo_symlink_folder(world: World) -> Path:
    world.link("images/extra", world.root / "outside")
    return world.yolo()


@case("yolo-symlink-data-yaml", "yolo", "refused", "path.escapes_root", "names.missing")
def _yolo_symlink_yaml(world: World) -> Path:
    world.yolo()
    (world.ds / "data.yaml").unlink()
    world.link("data.yaml", world.root / "secret.txt")
    return world.ds


@case("yolo-symlink-inside", "yolo", "converted")  # a link that stays in the dataset is followed
def _yolo_symlink_inside(world: World) -> Path:
    world.file("originals/c.jpg", jpeg(7))
    world.link("images/c.jpg", "../originals/c.jpg")
    return world.yolo({"a": GOOD, "b": GOOD, "c": GOOD})


@case("visdrone-symlink-image-and-annotation", "visdrone", "refused", "path.escapes_root")
def _visdrone_symlinks(world: World) -> Path:
    world.link("images/c.jpg", world.root / "secret.jpg")
    world.link("annotations/b.txt", world.root / "secret.txt")
    return world.visdrone({"a": "5,5,10,10,1,4,0,0\n"})


@case("visdrone-detected-with-symlinked-annotation", "auto", "refused", "path.escapes_root")
def _visdrone_detected(world: World) -> Path:
    world.link("annotations/a.txt", world.root / "secret.txt")  # the first file detection would read
    return world.visdrone({"b": "1,1,8,8,1,1,0,0\n"})


# ---- ids, orphans, missing and empty labels, name clashes ----


@case(
    "coco-duplicate-image-id",
    "coco",
    "refused",
    "image.duplicate_id",
    findings=(
        "instances.json: images[1]: 'b.jpg' has id 1, as has images[0] 'a.jpg': their annotations cannot be told apart [image.duplicate_id]",
    ),
)
def _coco_duplicate_id(world: World) -> Path:
    images = coco_images("a.jpg", "b.jpg")
    images[1]["id"] = 1
    return world.coco(images, coco_boxes([5, 5, 10, 10]))


@case("coco-malformed-entries", "coco", "refused", "source.structure", "class.unknown", "row.unparseable")
def _coco_malformed(world: World) -> Path:
    images = [
        *coco_images("a.jpg"),
        {"file_name": "b.jpg"},
        "c.jpg",
        {"id": [3], "file_name": "b.jpg"},
        {"id": 5, "file_name": "b.jpg", "width": "x"},
    ]
    annotations = [
        "not an object",
        {"image_id": 1, "category_id": 9, "bbox": [1, 2, 3, 4]},
        {"image_id": 1, "category_id": 1, "bbox": "1 2 3 4"},
        {"image_id": [1], "category_id": 1, "bbox": [1, 2, 3, 4]},
    ]
    return world.coco(images, annotations)


@case("groundtruth-malformed-lines", "groundtruth", "refused", "source.structure", "row.unparseable")
def _groundtruth_malformed(world: World) -> Path:
    bad_map = gt_line("images/a.jpg", (5, 5, 10, 10)).replace('"1": "person"', '"one": "person"')
    return world.groundtruth([bad_map, "[1, 2]", "{not json", gt_line("images/b.jpg").replace("[]", '[{"class_id": 0}]')])


@case("yolo-orphan-label", "yolo", "converted", "label.orphan")
def _yolo_orphan(world: World) -> Path:
    return world.yolo({"a": GOOD, "b": GOOD, "z": GOOD})


@case("visdrone-orphan-annotation", "visdrone", "converted", "label.orphan")
def _visdrone_orphan(world: World) -> Path:
    return world.visdrone({"a": "5,5,10,10,1,4,0,0\n", "b": "1,1,8,8,1,1,0,0\n", "z": "1,1,8,8,1,1,0,0\n"})


@case("voc-orphan-xml", "voc", "converted", "label.orphan")
def _voc_orphan(world: World) -> Path:
    return world.voc({"a": voc_xml("a.jpg", ("6", "6", "15", "15")), "b": voc_xml("b.jpg"), "z": voc_xml("z.jpg", ("2", "2", "9", "9"))})


@case("yolo-missing-label", "yolo", "converted", "label.missing")
def _yolo_missing(world: World) -> Path:
    return world.yolo({"a": GOOD}, images=("a.jpg", "b.jpg"))


@case("visdrone-missing-annotation", "visdrone", "converted", "label.missing")
def _visdrone_missing(world: World) -> Path:
    return world.visdrone({"a": "5,5,10,10,1,4,0,0\n"})


@case("voc-missing-xml", "voc", "converted", "label.missing")
def _voc_missing(world: World) -> Path:
    return world.voc({"a": voc_xml("a.jpg", ("6", "6", "15", "15"))})


@case("yolo-empty-label", "yolo", "converted")  # an empty label file: an image with no objects, no finding
def _yolo_empty(world: World) -> Path:
    return world.yolo({"a": "", "b": "\n\n"})


@case("yolo-name-clash", "yolo", "refused", "image.name_clash")
def _yolo_clash(world: World) -> Path:
    world.file("images/a.png", jpeg(5))
    return world.yolo()


# ---- damaged images ----


@case("yolo-truncated-image", "yolo", "converted", "image.truncated")
def _yolo_truncated(world: World) -> Path:
    world.yolo()
    world.file("images/a.jpg", truncated_jpeg(0))
    return world.ds


@case("visdrone-zero-byte-image", "visdrone", "converted", "image.zero_bytes")
def _visdrone_zero(world: World) -> Path:
    world.visdrone()
    world.file("images/a.jpg", b"")
    return world.ds


@case("coco-zero-byte-and-header-cut-images", "coco", "converted", "image.zero_bytes", "image.unreadable")
def _coco_damaged(world: World) -> Path:
    source = world.coco(coco_images("a.jpg", "b.jpg", "c.jpg"), coco_boxes([5, 5, 10, 10]))
    world.file("images/b.jpg", b"")
    world.file("images/c.jpg", jpeg(3)[:12])  # cut inside the header: no size to read
    return source


@case("voc-truncated-image", "voc", "converted", "image.truncated")
def _voc_truncated(world: World) -> Path:
    world.voc({"a": voc_xml("a.jpg", ("6", "6", "15", "15")), "b": voc_xml("b.jpg", ("2", "2", "9", "9"))})
    world.file("JPEGImages/b.jpg", truncated_jpeg(1))
    return world.ds


@case("groundtruth-zero-byte-image", "groundtruth", "converted", "image.zero_bytes")
def _groundtruth_zero(world: World) -> Path:
    source = world.groundtruth([gt_line("images/a.jpg", (5, 5, 10, 10)), gt_line("images/b.jpg", (1, 1, 8, 8))])
    world.file("images/b.jpg", b"")
    return source


assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
assert SECRET not in "".join(c.id for c in CASES)
