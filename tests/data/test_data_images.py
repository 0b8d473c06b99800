"""open_image: PNG/JPEG/DICOM decoding, DICOM windowing and MONOCHROME1, and refusal of bad or oversized input."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from deepmedix.data.images import image_size, open_image
from deepmedix.errors import ImageError

REAL_MONO2 = "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
REAL_MONO1 = "Fake_MONOHR1.dcm"


def make_dicom(pixels: np.ndarray, photometric: str = "MONOCHROME2", **tags: object) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    bits = 8 if pixels.dtype == np.uint8 else 16
    ds.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=bits if bits == 8 else 12)
    for key, value in tags.items():
        setattr(ds, key, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` with almost no pixel data (a decompression-bomb stand-in)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# --- real DICOMs ----------------------------------------------------------------------------------------------------


def test_real_dicom_decodes_with_spacing_and_view(shared_data: Path) -> None:
    img = open_image(shared_data / "dicom" / REAL_MONO2)
    assert (img.width, img.height, img.format, img.view) == (1024, 1024, "DICOM", "PA")
    assert img.image.mode == "L" and img.image.size == (1024, 1024)
    assert img.pixel_spacing == pytest.approx([0.168, 0.168])
    arr = np.asarray(img.image)
    assert arr.min() == 0 and arr.max() == 255  # percentile window stretches the full grey range
    assert img.rgb().mode == "RGB"


def test_real_monochrome1_is_inverted(shared_data: Path) -> None:
    # The two files hold the same pixel data; only the photometric interpretation differs.
    mono2 = np.asarray(open_image(shared_data / "dicom" / REAL_MONO2).image).astype(int)
    mono1 = np.asarray(open_image(shared_data / "dicom" / REAL_MONO1).image).astype(int)
    assert np.array_equal(mono1, 255 - mono2)
    # and the lungs (dark in display convention) are darker than the image border region in both
    assert mono2.mean() != pytest.approx(mono1.mean(), abs=1.0)


def test_dicom_from_bytes_names_the_given_name(shared_data: Path) -> None:
    data = (shared_data / "dicom" / REAL_MONO2).read_bytes()
    assert open_image(data, name="upload.dcm").name == "upload.dcm"
    with pytest.raises(ImageError, match="upload.dcm"):
        open_image(data[: len(data) // 3], name="upload.dcm")  # truncated pixel data


# --- synthetic DICOMs: windowing, rescale, MONOCHROME1 ----------------------------------------------------------------


def test_dicom_window_and_rescale_are_applied() -> None:
    stored = np.array([[412, 462, 512], [562, 612, 100]], dtype=np.uint16)
    # value = 2*stored - 1024 → [-200, -100, 0], [100, 200, -824]; window 0 ± 200 → 0, 64, 128, 191, 255, 0
    data = make_dicom(stored, RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=0, WindowWidth=400)
    arr = np.asarray(open_image(data, name="ct-like.dcm").image).astype(int)
    assert arr.tolist() == [[0, 64, 128], [191, 255, 0]]


def test_dicom_multivalued_window_uses_first_pair_and_monochrome1_inverts() -> None:
    stored = np.array([[0, 50, 100, 150]], dtype=np.uint16)
    data = make_dicom(
        stored,
        photometric="MONOCHROME1",
        WindowCenter=[50, 500],
        WindowWidth=[100, 1000],
        PixelSpacing=[0.2, 0.25],
        ViewPosition="AP",
    )
    img = open_image(data, name="m1.dcm")
    assert np.asarray(img.image).astype(int).tolist() == [[255, 127, 0, 0]]  # 50 → 128 before inversion
    assert img.pixel_spacing == pytest.approx([0.2, 0.25]) and img.view == "AP"


def test_dicom_without_window_uses_percentiles() -> None:
    ramp = np.tile(np.arange(1000, 3000, 2, dtype=np.uint16), (4, 1))
    arr = np.asarray(open_image(make_dicom(ramp), name="ramp.dcm").image).astype(int)
    assert arr[0, 0] == 0 and arr[0, -1] == 255
    assert np.all(np.diff(arr[0]) >= 0)  # monotone
    assert 120 <= arr[0, 500] <= 136


def test_oversized_dicom_is_refused_before_decoding() -> None:
    data = make_dicom(np.zeros((4, 4), dtype=np.uint8))
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.Rows, ds.Columns = 30000, 30000  # header claims a huge image; the pixel data is tiny
    buf = io.BytesIO()
    ds.save_as(buf)
    with pytest.raises(ImageError, match="30000×30000.*refusing"):
        open_image(buf.getvalue(), name="huge.dcm")


# --- PNG / JPEG ---------------------------------------------------------------------------------------------------------


def test_png_jpeg_and_modes_become_8bit_grey(tmp_path: Path) -> None:
    rgb = tmp_path / "colour.png"
    Image.new("RGB", (30, 20), (200, 100, 50)).save(rgb)
    img = open_image(rgb)
    assert (img.width, img.height, img.format, img.image.mode) == (30, 20, "PNG", "L")
    jpg = tmp_path / "x.jpg"
    Image.new("L", (17, 33), 90).save(jpg, quality=95)
    img = open_image(jpg)
    assert (img.width, img.height, img.format) == (17, 33, "JPEG")
    assert abs(int(np.asarray(img.image).mean()) - 90) <= 2
    sixteen = tmp_path / "16.png"
    Image.fromarray(np.tile(np.arange(0, 4000, 40, dtype=np.uint16), (3, 1))).save(sixteen)
    arr = np.asarray(open_image(sixteen).image)
    assert arr.dtype == np.uint8 and arr[0, 0] == 0 and arr[0, -1] == 255


def test_truncated_and_non_images_are_errors_naming_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(good)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ImageError, match="cut.png"):
        open_image(truncated)
    with pytest.raises(ImageError, match="cut.png"):
        image_size(truncated)
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    with pytest.raises(ImageError, match=r"notes\.jpg: not an image"):
        open_image(text)
    with pytest.raises(ImageError, match="no such image file"):
        open_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="empty"):
        open_image(b"", name="empty.png")
    assert isinstance(ImageError("x"), ValueError)


def test_decompression_bomb_is_refused_from_the_header() -> None:
    bomb = png_header_only(30000, 30000)
    start = time.perf_counter()
    with pytest.raises(ImageError, match=r"bomb\.png: .*(30000×30000|900000000 pixels).*"):
        open_image(bomb, name="bomb.png")
    assert time.perf_counter() - start < 1.0  # nothing was decoded
    # below Pillow's own bomb threshold, the project's pixel limit refuses it, still from the header
    with pytest.raises(ImageError, match=r"big\.png: image is 12000×9000 = 108,000,000 pixels, over the"):
        open_image(png_header_only(12000, 9000), name="big.png")


def test_side_limit_applies_and_can_be_raised(tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    Image.new("L", (30000, 2), 7).save(wide)
    with pytest.raises(ImageError, match="side limit"):
        open_image(wide)
    img = open_image(wide, max_side=40000)
    assert (img.width, img.height) == (30000, 2)
    with pytest.raises(ImageError, match="pixel limit"):
        open_image(wide, max_side=None, max_pixels=1000)


def test_image_size_reads_headers(shared_data: Path, tmp_path: Path) -> None:
    assert image_size(shared_data / "dicom" / REAL_MONO1) == (1024, 1024)
    png = tmp_path / "p.png"
    Image.new("L", (31, 17)).save(png)
    assert image_size(png) == (31, 17)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(12000, 9000))
    with pytest.raises(ImageError, match=r"bomb\.png: image is 12000×9000 = 108,000,000 pixels"):
        image_size(bomb)
    fake = tmp_path / "fake.dcm"
    fake.write_text("plain text")
    with pytest.raises(ImageError, match="fake.dcm"):
        image_size(fake)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    with pytest.raises(ImageError, match=r"notes\.jpg: not an image"):
        image_size(text)
