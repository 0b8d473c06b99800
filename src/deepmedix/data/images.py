"""Reading chest X-rays: PNG, JPEG and DICOM into one 8-bit grey image.

Every reader in deepmedix (converters, inference, viewers) opens images here, so a DICOM is windowed and a
MONOCHROME1 image inverted the same way everywhere, and an oversized file is refused before it is decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepmedix.errors import ImageError

# Refuse anything larger before decoding it (a decompression bomb costs memory, not disk). Real CXRs are at most
# ~4,300 px a side; the limits leave ample room.
DEFAULT_MAX_SIDE = 16_384
DEFAULT_MAX_PIXELS = 80_000_000

# Without a window in the file, the grey range is stretched between these percentiles of the pixel values.
PERCENTILE_WINDOW = (0.5, 99.5)


@dataclass
class CXRImage:
    """A decoded radiograph: ``image`` is an 8-bit grey PIL image ("L") at the file's own resolution."""

    image: Image.Image
    width: int
    height: int
    pixel_spacing: list[float] | None  # mm per pixel (row, column), when the file says
    format: str  # "PNG", "JPEG", "DICOM", ...
    name: str  # the file name (or the name given for bytes), used in messages
    view: str | None = None  # DICOM ViewPosition (PA, AP, LL ...) when present

    def rgb(self) -> Image.Image:
        """The image as RGB (what vision-language processors expect)."""
        return self.image.convert("RGB")


def _describe(source: str | Path | bytes, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, bytes | bytearray):
        return "<image bytes>"
    return str(source)


def _check_size(width: int, height: int, label: str, max_side: int | None, max_pixels: int | None) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"{label}: image has no pixels ({width}×{height})")
    if max_side is not None and max(width, height) > max_side:
        raise ImageError(
            f"{label}: image is {width}×{height} pixels, larger than the {max_side}-pixel side limit; "
            "refusing to decode it (raise max_side if the file is genuine)"
        )
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"{label}: image is {width}×{height} = {width * height:,} pixels, over the {max_pixels:,}-pixel limit; "
            "refusing to decode it (raise max_pixels if the file is genuine)"
        )


def _is_dicom(data: bytes, path: Path | None) -> bool:
    if len(data) >= 132 and data[128:132] == b"DICM":
        return True
    return path is not None and path.suffix.lower() in {".dcm", ".dicom"}


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear window [low, high] → 0..255."""
    if high <= low:
        high = low + 1.0
    scaled = (values.astype(np.float64) - low) / (high - low)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _first(value: object) -> float:
    """WindowCenter/WindowWidth may be multi-valued; the first pair is the default display."""
    from pydicom.multival import MultiValue

    if isinstance(value, MultiValue | list | tuple):
        value = value[0]
    return float(value)  # type: ignore[arg-type]


def _read_dicom(data: bytes, label: str, max_side: int | None, max_pixels: int | None) -> CXRImage:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # truncation is reported below, naming the file
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError) as e:
        raise ImageError(f"{label}: not a readable DICOM file ({e})") from None
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if rows is None or cols is None or "PixelData" not in ds:
        raise ImageError(f"{label}: DICOM file has no image (Rows/Columns/PixelData missing)")
    _check_size(int(cols), int(rows), label, max_side, max_pixels)
    try:
        pixels = ds.pixel_array
    except Exception as e:  # pydicom raises many kinds for truncated or undecodable pixel data
        raise ImageError(f"{label}: cannot decode the DICOM pixel data ({type(e).__name__}: {e})") from None
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[0]
    if int(ds.get("SamplesPerPixel", 1)) == 3 and pixels.ndim == 3:
        pixels = pixels.astype(np.float64).mean(axis=-1)
    values = apply_modality_lut(pixels, ds).astype(np.float64)  # RescaleSlope/Intercept or a modality LUT

    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None and _first(width) > 0:
        c, w = _first(center), _first(width)
        low, high = c - w / 2.0, c + w / 2.0
    else:
        low, high = (float(v) for v in np.percentile(values, PERCENTILE_WINDOW))
    grey = _to_uint8(values, low, high)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper() == "MONOCHROME1":
        grey = 255 - grey  # MONOCHROME1: low values are bright; display convention is bright bone
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    pixel_spacing = [float(v) for v in spacing] if spacing is not None and len(spacing) == 2 else None
    view = str(ds.get("ViewPosition", "") or "").strip() or None
    image = Image.fromarray(np.ascontiguousarray(grey))
    return CXRImage(image, image.width, image.height, pixel_spacing, "DICOM", label, view)


def _pil_to_grey(img: Image.Image) -> Image.Image:
    if img.mode == "L":
        return img
    if img.mode in {"I;16", "I;16B", "I;16L", "I", "F"}:  # 16-bit / float grey: stretch to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        low, high = (float(v) for v in np.percentile(arr, PERCENTILE_WINDOW))
        return Image.fromarray(_to_uint8(arr, low, high))
    if img.mode in {"RGBA", "LA", "PA"} or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("L")


def _open_header(fp: Any, label: str) -> Image.Image:
    """``Image.open`` — lazy: only the header is read — with Pillow's errors turned into an :class:`ImageError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limits decide afterwards
            return Image.open(fp)
    except Image.DecompressionBombError as e:
        raise ImageError(f"{label}: refusing to decode a possible decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image (neither PNG, JPEG, DICOM nor another format Pillow reads)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{label}: unreadable image header ({e})") from None


def _read_raster(data: bytes, label: str, max_side: int | None, max_pixels: int | None) -> CXRImage:
    img = _open_header(io.BytesIO(data), label)
    fmt = img.format or "unknown"
    _check_size(img.width, img.height, label, max_side, max_pixels)
    try:
        img.load()
    except Image.DecompressionBombError as e:
        raise ImageError(f"{label}: {e}") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{label}: truncated or corrupt {fmt} image ({e})") from None
    img = ImageOps.exif_transpose(img) or img
    grey = _pil_to_grey(img)
    spacing = None
    dpi = img.info.get("dpi")
    if dpi and all(float(d) > 1 for d in dpi[:2]):
        spacing = [25.4 / float(dpi[1]), 25.4 / float(dpi[0])]  # mm per pixel (row, column)
    return CXRImage(grey, grey.width, grey.height, spacing, fmt, label)


def open_image(
    source: str | Path | bytes,
    name: str | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> CXRImage:
    """Open a PNG, JPEG or DICOM radiograph (a path or the file's bytes) as an 8-bit grey image.

    DICOM: the modality LUT (rescale slope/intercept) is applied, then the file's WindowCenter/WindowWidth or, when
    absent, a 0.5–99.5 percentile window; MONOCHROME1 is inverted; the pixel spacing is kept. Images whose size
    exceeds ``max_side`` or ``max_pixels`` are refused from their header, before any pixel is decoded.
    Raises :class:`ImageError` (a ``ValueError``) naming the file for anything unusable.
    """
    label = _describe(source, name)
    path: Path | None = None
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{label}: no such image file")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ImageError(f"{label}: cannot read ({e.strerror or e})") from None
    if not data:
        raise ImageError(f"{label}: empty file")
    if _is_dicom(data, path if name is None else Path(name)):
        return _read_dicom(data, label, max_side, max_pixels)
    return _read_raster(data, label, max_side, max_pixels)


def image_size(
    source: str | Path, max_side: int | None = DEFAULT_MAX_SIDE, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding pixels (PNG chunks are walked to catch truncation)."""
    path = Path(source)
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such image file") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
    if _is_dicom(head, path):
        return _dicom_size(path, max_side, max_pixels)
    with _open_header(path, str(path)) as img:
        width, height = img.width, img.height
        _check_size(width, height, str(path), max_side, max_pixels)
        if img.format == "PNG":
            try:
                img.verify()  # walks the chunks: a truncated PNG is caught without decoding it
            except (OSError, ValueError, SyntaxError) as e:
                raise ImageError(f"{path}: truncated or corrupt image ({e})") from None
        return width, height


def _dicom_size(path: Path, max_side: int | None, max_pixels: int | None) -> tuple[int, int]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)  # the header is enough for the size
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError) as e:
        raise ImageError(f"{path}: not a readable DICOM file ({e})") from None
    if ds.get("Rows") is None or ds.get("Columns") is None:
        raise ImageError(f"{path}: DICOM file has no image (Rows/Columns missing)")
    width, height = int(ds.Columns), int(ds.Rows)
    _check_size(width, height, str(path), max_side, max_pixels)
    return width, height
