"""Plots (PNG, matplotlib Agg) and the self-contained HTML page of a dataset profile.

Imported lazily by `skyops.data.profile.profile_dataset`: matplotlib and jinja2 are heavy.
The HTML embeds the plots as base64 data URIs and its CSS inline: it opens offline, from anywhere.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

_BUCKET_COLOURS = {"small": "#d62728", "medium": "#ff7f0e", "large": "#2ca02c"}


def _stairs(ax: Axes, feature: dict[str, Any], title: str, log_x: bool = False) -> None:
    counts, edges = feature["histogram"]["counts"], feature["histogram"]["edges"]
    ax.stairs(counts, edges, fill=True, alpha=0.8)
    if log_x and edges[0] <= 0:
        ax.set_xscale("symlog", linthresh=1.0)
    elif log_x:
        ax.set_xscale("log")
    occupied = [i for i, c in enumerate(counts) if c]
    if occupied:  # the fixed edges span every dataset; show the part this one uses
        ax.set_xlim(edges[occupied[0]], edges[occupied[-1] + 1])
    ax.set_title(title)
    ax.set_xlabel(feature["unit"])
    ax.set_ylabel("count")


def _classes(fig: Figure, profile: dict[str, Any]) -> None:
    ax = fig.subplots()
    names = list(profile["classes"])
    bottom = [0] * len(names)
    for bucket, colour in _BUCKET_COLOURS.items():
        heights = [profile["classes"][n][bucket] for n in names]
        ax.bar(names, heights, bottom=bottom, color=colour, label=bucket)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_title("boxes per class, by COCO size (small < 32², medium < 96², large)")
    ax.set_ylabel("boxes")
    ax.legend()


def _boxes(fig: Figure, profile: dict[str, Any]) -> None:
    features = profile["features"]
    per_image, area, aspect = fig.subplots(1, 3)
    _stairs(per_image, features["boxes_per_image"], "boxes per image", log_x=True)
    _stairs(area, features["box_area"], "box area", log_x=True)
    small, large = profile["settings"]["size_thresholds_px2"]
    for threshold in (small, large):
        area.axvline(threshold, color="black", linestyle="--", linewidth=1)
    _stairs(aspect, features["aspect_ratio"], "box aspect ratio", log_x=True)


def _images(fig: Figure, profile: dict[str, Any]) -> None:
    features = profile["features"]
    axes = fig.subplots(1, 3)
    _stairs(axes[0], features["brightness"], "brightness (mean gray)")
    _stairs(axes[1], features["contrast"], "contrast (std gray)")
    _stairs(axes[2], features["sharpness"], "sharpness (var. of Laplacian)", log_x=True)


def _sizes(fig: Figure, profile: dict[str, Any]) -> None:
    ax = fig.subplots()
    top = sorted(profile["image_sizes"].items(), key=lambda kv: -kv[1])[:12]
    ax.barh([k for k, _ in top][::-1], [v for _, v in top][::-1])
    ax.set_title("image sizes (width x height, px), most frequent")
    ax.set_xlabel("images")


_PLOTS = {"classes": (_classes, (7, 4)), "boxes": (_boxes, (15, 4)), "images": (_images, (15, 4)), "image_sizes": (_sizes, (7, 3.5))}


def write_plots(profile: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Draw every plot of the profile as `<folder>/<name>.png`; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (draw, size) in _PLOTS.items():
        fig = Figure(figsize=size, layout="constrained")  # no pyplot: no global figure state, no GUI backend
        draw(fig, profile)
        paths[name] = folder / f"{name}.png"
        fig.savefig(paths[name], dpi=80, metadata={"Software": None})  # the default names matplotlib's URL
    return paths


def write_html(profile: dict[str, Any], plots: dict[str, Path], target: Path) -> Path:
    """Render the profile page with the plots embedded as base64 PNGs."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("skyops.data", "templates"), autoescape=True, undefined=jinja2.StrictUndefined)
    images = {name: "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii") for name, path in plots.items()}
    target.write_text(env.get_template("profile.html.j2").render(profile=profile, images=images), encoding="utf-8")
    return target
