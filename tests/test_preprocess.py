import cv2
import numpy as np
import pytest

from lightpose.preprocess import InputTransform, normalize, pad_to_stride, prepare_input


def test_normalize_maps_pixels_to_reference_range():
    image = np.array([[[0, 128, 255]]], dtype=np.uint8)
    assert normalize(image).tolist() == [[[-0.5, 0.0, 127 / 256]]]


@pytest.mark.parametrize(
    ("shape", "expected_input", "expected_pad"),
    [
        ((342, 548), (256, 416), (0, 3, 0, 3)),  # landscape: width rounded up to a multiple of 8, centred
        ((1280, 725), (256, 256), (0, 55, 0, 56)),  # portrait: padded to at least square
        ((720, 1280), (256, 456), (0, 0, 0, 1)),
    ],
)
def test_demo_preprocessing_sizes_and_padding(shape, expected_input, expected_pad):
    image = np.full((*shape, 3), 200, dtype=np.uint8)
    inputs, transform = prepare_input(image, 256)
    assert inputs.shape == (3, *expected_input) and inputs.dtype == np.float32
    assert transform.pad == expected_pad
    assert transform.scale == 256 / shape[0]
    top, left, bottom, right = expected_pad
    inner = inputs[:, top : expected_input[0] - bottom, left : expected_input[1] - right]
    assert np.allclose(inner, (200 - 128) / 256)
    if left:
        assert np.all(inputs[:, :, :left] == 0)  # padding = 0 after normalisation (grey 128)


def test_inverse_transform_maps_back_to_image_pixels():
    transform = InputTransform(scale=0.5, pad=(4, 10, 4, 11), image_size=(100, 200), input_size=(64, 128))
    assert transform.to_image(np.array([[10.0, 4.0], [60.0, 54.0]])).tolist() == [[0.0, 0.0], [100.0, 100.0]]


@pytest.mark.parametrize("shape", [(300, 500), (500, 300), (256, 256)])
def test_a_bright_pixel_maps_back_to_where_it_was(shape):
    """The brightest input pixel, mapped through to_image, lands on the bright image pixel (within a pixel)."""
    image = np.zeros((*shape, 3), dtype=np.uint8)
    y, x = shape[0] * 2 // 3, shape[1] // 5
    cv2.circle(image, (x, y), 3, (255, 255, 255), -1)
    inputs, transform = prepare_input(image, 128)
    row, col = np.unravel_index(np.argmax(inputs[0]), inputs[0].shape)
    back = transform.to_image(np.array([col, row], dtype=np.float64))
    np.testing.assert_allclose(back, [x, y], atol=1.0 / transform.scale + 1.0)
    assert transform.input_size == inputs.shape[1:] and transform.image_size == shape


def test_val_mode_taller_than_min_height_is_not_padded_vertically():
    padded, pad = pad_to_stride(np.zeros((737, 500, 3), np.float32), 368, 500)
    assert pad[0] == pad[2] == 0 and padded.shape[0] == 737 and padded.shape[1] % 8 == 0


def test_val_mode_normalises_before_cubic_resize():
    image = np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    inputs, transform = prepare_input(
        image, 368, interpolation=cv2.INTER_CUBIC, scale=0.5 * 368 / 100, normalize_first=True
    )
    as_float64 = (image.astype(np.float32) - np.array([128, 128, 128])) * (1 / 256)  # val.py promotes to float64
    expected = cv2.resize(as_float64, (0, 0), fx=1.84, fy=1.84, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    top, left, _, _ = transform.pad
    assert np.array_equal(
        inputs[:, top : top + expected.shape[0], left : left + expected.shape[1]], expected.transpose(2, 0, 1)
    )


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.zeros((10, 10, 2), np.uint8), ValueError, r"got shape \(10, 10, 2\)"),
        (np.zeros((10, 10, 5), np.uint8), ValueError, r"got shape \(10, 10, 5\)"),
        (np.zeros((2, 10, 10, 3), np.uint8), ValueError, "got shape"),
        (np.zeros((10, 10, 3), np.float32), ValueError, "got dtype float32"),
        (np.zeros((10, 10, 3), np.int16), ValueError, "got dtype int16"),
        (np.full((10, 10, 3), 300, np.int32), ValueError, "values 0-255"),
        (np.zeros((0, 10, 3), np.uint8), ValueError, "empty"),
        ([[1, 2, 3]], TypeError, "got list"),
    ],
)
def test_bad_images_are_refused(image, error, match):
    with pytest.raises(error, match=match):
        prepare_input(image, 256)


def test_demo_preprocessing_matches_reference_inputs(golden_dir, people_dir):
    golden = np.load(golden_dir / "network.npz")
    for i, name in enumerate(golden["files"]):
        image = cv2.imread(str(people_dir / str(name)), cv2.IMREAD_COLOR)
        inputs, transform = prepare_input(image, 256)
        assert np.array_equal(inputs, golden[f"img{i}_input"][0])
        assert list(transform.pad) == golden[f"img{i}_pad"].tolist()
        assert transform.scale == float(golden[f"img{i}_scale"])


def test_grey_and_bgra_images_become_bgr():
    grey = np.random.default_rng(0).integers(0, 256, (40, 60), dtype=np.uint8)
    bgr = np.repeat(grey[:, :, None], 3, axis=2)
    bgra = np.concatenate([bgr, np.full((40, 60, 1), 255, np.uint8)], axis=2)
    expected, _ = prepare_input(bgr, 64)
    for image in (grey, grey[:, :, None], bgra):
        inputs, _ = prepare_input(image, 64)
        assert np.array_equal(inputs, expected)
