import pytest
from PIL import Image

from handssca.io_images import ImageReadError, load_image


def test_a_huge_jpeg_with_a_small_box_decodes_reduced_instead_of_refused(tmp_path):
    """The pixel limit bounds the decode: a JPEG over it is read at 1/2..1/8 (a PNG cannot be, and is refused)."""
    Image.new("RGB", (2000, 1500), (200, 120, 90)).save(tmp_path / "big.jpg", quality=90)
    img = load_image(tmp_path / "big.jpg", 1.0, max_pixels=1_000_000)
    assert img.pixels.shape[0] * img.pixels.shape[1] <= 1_000_000
    Image.new("RGB", (2000, 1500), (200, 120, 90)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="big.png"):
        load_image(tmp_path / "big.png", 1.0, max_pixels=1_000_000)
