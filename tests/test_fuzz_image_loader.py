"""A bounded fuzz pass of the image loader: damaged files of every format people have.

Byte-level mutations of small PNG, JPEG, GIF, TIFF, BMP, WebP and EXIF-tagged files go
through `load_image`: each must give a uint8 picture or an `ImageError`, and print nothing
(a Pillow warning on stderr would break the CLI's one-line errors). `FUZZ_EXAMPLES` scales
the pass, as for the model loader.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bad_inputs import encoded, gradient, mutated_bytes
from viewer.errors import ImageError
from viewer.maps.images import load_image

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))


def _seeds() -> list[bytes]:
    g = gradient(24, 40)
    rgb = Image.fromarray(np.dstack([g, 255 - g, g // 2]))
    exif = Image.Exif()
    exif[0x0112] = 6
    seeds = [encoded(rgb, "JPEG", exif=exif), encoded(rgb.convert("CMYK"), "JPEG"),
             encoded(Image.fromarray(g.astype(np.uint16) * 257), "PNG"),
             encoded(Image.fromarray(g.astype(np.float32)), "TIFF")]
    for mode in ("RGB", "L", "RGBA", "P"):
        for fmt in ("PNG", "JPEG", "GIF", "TIFF", "BMP", "WEBP"):
            if not (fmt == "JPEG" and mode in ("RGBA", "P")):
                seeds.append(encoded(rgb.convert(mode), fmt))
    return seeds


SEEDS = _seeds()


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_bytes(SEEDS))
def test_damaged_images_load_or_fail_clearly_and_silently(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.jpg"
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                image = load_image(path)
            except ImageError as err:
                assert "photo.jpg" in str(err) and "\n" not in str(err)
                return
    assert image.dtype == np.uint8 and image.ndim in (2, 3) and image.size > 0
    assert image.ndim == 2 or image.shape[2] == 3
