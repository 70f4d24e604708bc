import pytest
from PIL import Image

from handssca.io.images import ImageReadError, load_image


def test_a_huge_jpeg_with_a_small_box_decodes_reduced_instead_of_refused(tmp_path):
    """The pixel limit bounds the decode: a JPEG over it is read at 1/2..1/8 (a PNG cannot be, and is refused)."""
    Image.new("RGB", (2000, 1500), (200, 120, 90)).save(tmp_path / "big.jpg", quality=90)
    img = load_image(tmp_path / "big.jpg", 1.0, max_pixels=1_000_000)
    assert img.pixels.shape[0] * img.pixels.shape[1] <= 1_000_000
    Image.new("RGB", (2000, 1500), (200, 120, 90)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="big.png"):
        load_image(tmp_path / "big.png", 1.0, max_pixels=1_000_000)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_turns_the_picture_upright_as_pillow_does(tmp_path, orientation, suffix):
    """A phone photo's EXIF orientation: pixels, size and scale are those of the upright picture, equal to
    Pillow's own ``ImageOps.exif_transpose``; reduced decoding keeps the same frame."""
    import numpy as np
    from PIL import ImageOps

    rng = np.random.default_rng(orientation)
    raw = np.kron(rng.integers(0, 256, (12, 20, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # 96 x 160, blocky
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}{suffix}"
    Image.fromarray(raw).save(path, exif=exif, **({"quality": 95} if suffix == ".jpg" else {}))
    with Image.open(path) as im:
        upright = np.asarray(ImageOps.exif_transpose(im))
    full = load_image(path)
    assert full.original_hw == upright.shape[:2]
    np.testing.assert_array_equal(full.pixels, upright)
    seen = []
    half = load_image(path, lambda w, h: seen.append((w, h)) or 2.0)
    assert seen == [(upright.shape[1], upright.shape[0])]  # the callback gets the upright (W, H)
    assert half.original_hw == upright.shape[:2]
    assert half.pixels.shape[:2] == (upright.shape[0] // 2, upright.shape[1] // 2)
    assert half.scale_xy == (2.0, 2.0)
    # block centres agree between the reduced and the full picture (same frame, not a turned one)
    small = half.pixels[2::4, 2::4].astype(int)
    big = upright[4::8, 4::8].astype(int)
    assert np.abs(small - big).mean() < 3


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_exif_turned_pictures_keep_each_axis_scale(tmp_path, orientation):
    """Reduced by 3, a 160 x 96 picture gets different x and y scales (160/53, 96/32); turned upright they
    must follow the axes: scale_xy = (upright width / reduced width, upright height / reduced height)."""
    import numpy as np

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.zeros((96, 160, 3), np.uint8)).save(tmp_path / "t.png", exif=exif)
    half = load_image(tmp_path / "t.png", 3.0)
    assert half.original_hw == (160, 96)
    h, w = half.pixels.shape[:2]
    assert (w, h) == (32, 53)
    assert half.scale_xy == pytest.approx((96 / w, 160 / h))
    assert half.scale_xy[0] != pytest.approx(half.scale_xy[1])


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_dark_16_bit_image_is_scaled_as_16_bit(tmp_path, suffix):
    """16-bit pixels are 0-65535 whatever the brightest one is: a dark picture (max 200) stays dark."""
    import numpy as np

    from handssca.io.images import read_image, to_rgb_uint8

    grey = (np.arange(40 * 30).reshape(30, 40) % 201).astype(np.uint16)  # 0..200 out of 65535
    expected = np.floor(grey.astype(np.float64) * 255.0 / 65535.0 + 0.5).astype(np.uint8)  # 0 or 1
    Image.fromarray(grey).save(tmp_path / f"dark{suffix}")
    got = read_image(tmp_path / f"dark{suffix}")
    assert got.shape == (30, 40, 3)
    np.testing.assert_array_equal(got[..., 0], expected)
    np.testing.assert_array_equal(to_rgb_uint8(grey)[..., 1], expected)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 65535)])
    np.testing.assert_array_equal(to_rgb_uint8(rgba)[..., 2], expected)
    # the full range still reaches white
    assert to_rgb_uint8(np.full((2, 2), 65535, np.uint16)).min() == 255


def test_integer_arrays_of_undeclared_depth():
    import numpy as np

    from handssca.io.images import to_rgb_uint8

    eight_bit = np.array([[0, 128, 255]], dtype=np.int64)  # e.g. a list of 8-bit values
    np.testing.assert_array_equal(to_rgb_uint8(eight_bit)[0, :, 0], [0, 128, 255])
    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0]]], dtype=np.int32)  # opaque, then transparent on white
    np.testing.assert_array_equal(to_rgb_uint8(rgba)[0], [[10, 20, 30], [255, 255, 255]])
    with pytest.raises(ImageReadError, match="frame 3: int32 pixels 0..1000: expected 8-bit values"):
        to_rgb_uint8(np.array([[0, 1000]], dtype=np.int32), "frame 3")
