"""Classification of image files with an exported file's runtime alone (ONNX Runtime for .onnx, OpenVINO for .xml,
LiteRT for .tflite), using the preprocessing stored in the file.

Needs the runtime, numpy and Pillow only: proof that an exported file deploys without edgenas's PyTorch code.
A file that cannot be read does not stop the others: it gets the reason in place of its classes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgenas.errors import EdgeNASError
from exporters.metadata import read_metadata
from exporters.runtimes import runtime_for_path


def preprocess(path: str | os.PathLike, preprocessing: dict) -> np.ndarray:
    """An image file -> 3 x R x R float32: shorter side resized, centre crop, RGB / 255, standardised."""
    from PIL import Image

    resolution = preprocessing["resolution"]
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            w, h = image.size
            scale = resolution / min(w, h)
            image = image.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))),
                                 Image.BILINEAR)
            w, h = image.size
            left, top = (w - resolution) // 2, (h - resolution) // 2
            pixels = np.asarray(image.crop((left, top, left + resolution, top + resolution)), dtype=np.float32)
    # Not an image, truncated or corrupt data (OSError; SyntaxError from some plugins), a mode with no conversion
    # to RGB (ValueError), a decompression bomb.
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise EdgeNASError(f"cannot read image {path}: {exc}") from None
    mean = np.asarray(preprocessing["mean"], np.float32)
    std = np.asarray(preprocessing["std"], np.float32)
    return ((pixels / 255.0 - mean) / std).transpose(2, 0, 1)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def image_files(paths: list[str | os.PathLike]) -> list[Path]:
    """Image files as given, with each folder replaced by the image files under it (by suffix, sorted)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise EdgeNASError(f"folder {path} holds no image files (expected names ending in "
                                   f"{', '.join(IMAGE_SUFFIXES)})")
            files += found
        else:
            files.append(path)
    return files


def predict(path: str | os.PathLike, images: list[str | os.PathLike], threads: int = 1, top: int = 1) -> list:
    """Per image, in order (a folder stands for the image files under it): the `top` classes with their softmax
    probabilities (`"top"`), or, for a file that cannot be read, why (`"error"`)."""
    if top < 1:
        raise EdgeNASError(f"bad top {top}: expected 1 or more classes per image")
    images = image_files(images)
    runtime = runtime_for_path(path)
    runtime.require()
    metadata = read_metadata(path)
    session = runtime.open(Path(path), threads)
    results, inputs = [], []
    for path in images:
        try:
            inputs.append(preprocess(path, metadata["preprocessing"]))
            results.append({"image": str(path)})
        except EdgeNASError as exc:
            results.append({"image": str(path), "error": str(exc)})
    if not inputs:
        return results
    logits = session.run(np.stack(inputs))
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    probs = shifted / shifted.sum(1, keepdims=True)
    classes = metadata["classes"]
    for result, row in zip([r for r in results if "error" not in r], probs, strict=True):
        best = np.argsort(-row)[:top]
        result["top"] = [{"class": classes[i], "index": int(i), "probability": float(row[i])} for i in best]
    return results
