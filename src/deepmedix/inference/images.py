"""Reading uploaded or referenced images for inference, with cheap size checks before any pixel is decoded."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from deepmedix.data.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, CXRImage, open_image
from deepmedix.errors import ImageTooLargeError

__all__ = ["CXRImage", "load_image", "probe_size"]


def load_image(
    source: str | Path | bytes,
    name: str | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> CXRImage:
    """PNG, JPEG or DICOM → an 8-bit grey image at original resolution (the project's one reader)."""
    return open_image(source, name=name, max_side=max_side, max_pixels=max_pixels)


def probe_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the file header alone — PIL reads only the header; DICOM stops before pixel data.

    None when the header is not recognised (the full reader then gives the error). Raises ImageTooLargeError
    for a header beyond PIL's decompression-bomb guard."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.width), int(im.height)
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"image is too large to decode ({e})") from None
    except Exception:  # noqa: BLE001 - not a PIL format; try DICOM below
        pass
    try:
        import pydicom

        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=False)
        if "Rows" in ds and "Columns" in ds:
            return int(ds.Columns), int(ds.Rows)
    except Exception:  # noqa: BLE001 - unreadable header: the full reader reports it
        return None
    return None
