"""Decoding DICOM pixel data, with a message naming the package a codec needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from dipmed.errors import InputError

# Transfer-syntax name fragments -> what to pip install so pydicom can decode them.
_DECODERS = (
    ("JPEG-LS", "pyjpegls"),
    ("JPEG 2000", "pylibjpeg pylibjpeg-openjpeg"),
    ("High-Throughput JPEG 2000", "pylibjpeg pylibjpeg-openjpeg"),
    ("JPEG", "pylibjpeg pylibjpeg-libjpeg"),
    ("Deflate", "(none: deflate is built in; the file is corrupt)"),
)


def decode_pixels(dataset: Dataset, path: Path) -> np.ndarray:
    """`dataset.pixel_array`, or an InputError that says how to make it decodable."""
    if "PixelData" not in dataset:
        raise InputError(f"{path} holds no image pixel data; point dipmed at an image series")
    try:
        return dataset.pixel_array
    except Exception as error:  # pydicom raises many types for missing codecs and bad data
        syntax = dataset.file_meta.get("TransferSyntaxUID") if "file_meta" in dir(dataset) else None
        if syntax is not None and syntax.is_compressed and _no_decoder(error):
            raise InputError(
                f"{path}: pixel data are compressed as {syntax.name} and no installed "
                f"package decodes them; install one: pip install {_package_for(syntax.name)}"
            ) from None
        text = str(error).strip()
        reason = text.splitlines()[0][:120] if text else type(error).__name__
        raise InputError(
            f"{path}: pixel data cannot be decoded ({reason}); the file is "
            "corrupt or truncated: re-export it"
        ) from None


def _no_decoder(error: Exception) -> bool:
    text = str(error).lower()
    return any(word in text for word in ("plugin", "missing", "install", "handler", "dependenc"))


def _package_for(syntax_name: str) -> str:
    for fragment, package in _DECODERS:
        if fragment.lower() in syntax_name.lower():
            return package
    return "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg"
