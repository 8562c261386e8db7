"""A trained model's folder as a step receives it, on either engine.

The local engine hands a step the train step's model folder (best.pt, training.json, ...). On
SageMaker a training job's model arrives as one `model.tar.gz` in the input folder; it is unpacked
into a private temp folder first, since inputs are never written to.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

MODEL_ARCHIVE = "model.tar.gz"  # how SageMaker uploads a training job's /opt/ml/model
WEIGHTS = "best.pt"


def model_folder(folder: Path) -> Path:
    """`folder`, or the folder its model.tar.gz unpacks into when it holds that instead of best.pt.

    tarfile's 'data' filter refuses absolute paths, '..' and device files in the archive.
    """
    if (folder / WEIGHTS).is_file() or not (folder / MODEL_ARCHIVE).is_file():
        return folder
    unpacked = Path(tempfile.mkdtemp(prefix="skyops-model-"))
    with tarfile.open(folder / MODEL_ARCHIVE) as archive:
        archive.extractall(unpacked, filter="data")
    return unpacked
