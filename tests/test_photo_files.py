"""Photo oddities: a JPEG's EXIF orientation is read (and never applied: training, predict and export
see the same stored pixels) with one warning per folder; 16-bit PNGs and CMYK JPEGs decode."""
import io
import os

import numpy as np
import PIL.Image
import tensorflow as tf

from cnn_tf.data import image_folder
from cnn_tf.data.preprocess import decode, exif_orientation


def with_orientation(jpeg, orientation, order="II"):
    """`jpeg` with an APP1 Exif segment whose IFD0 holds Orientation = `orientation`."""
    endian = "little" if order == "II" else "big"
    magic = b"II*\0" if order == "II" else b"MM\0*"
    entry = (0x0112).to_bytes(2, endian) + (3).to_bytes(2, endian) + (1).to_bytes(4, endian) + \
        orientation.to_bytes(2, endian) + b"\0\0"
    tiff = magic + (8).to_bytes(4, endian) + (1).to_bytes(2, endian) + entry + (0).to_bytes(4, endian)
    payload = b"Exif\0\0" + tiff
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def encoded(array, mode=None, format="JPEG"):
    buffer = io.BytesIO()
    image = PIL.Image.fromarray(array)
    (image.convert(mode) if mode else image).save(buffer, format)
    return buffer.getvalue()


def test_exif_orientation_is_read_in_either_byte_order_and_absent_without_a_tag():
    jpeg = encoded(np.zeros((8, 8, 3), np.uint8))
    assert exif_orientation(jpeg) is None
    assert exif_orientation(with_orientation(jpeg, 6)) == 6
    assert exif_orientation(with_orientation(jpeg, 8, "MM")) == 8
    assert exif_orientation(b"\x89PNG\r\n\x1a\n") is None and exif_orientation(b"\xff\xd8\xff") is None


def test_a_folder_of_odd_photos_loads_as_stored_and_warns_once_of_rotation_tags(tmp_path, capsys):
    rng = np.random.default_rng(0)
    pixels = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
    for name in ("a", "b"):
        os.makedirs(tmp_path / name)
    files = {"a/rotated.jpg": with_orientation(encoded(pixels), 6), "a/plain.jpg": encoded(pixels),
             "b/cmyk.jpg": encoded(pixels, "CMYK"),
             "b/deep.png": encoded((pixels[..., 0].astype(np.uint16) * 257), format="PNG")}
    for name, contents in files.items():
        (tmp_path / name).write_bytes(contents)
    data = image_folder.load(str(tmp_path), image_size=16, validation_fraction=0, test_fraction=0)
    images, _ = data.split("train")
    assert len(images) == 4 and images.shape[1:] == (16, 16, 3)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "EXIF" in line]
    assert len(warnings) == 1 and "1 images" in warnings[0] and "rotated.jpg" in warnings[0]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        rotated, plain, cmyk, deep = sess.run([decode(tf.constant(files[n]), 16, 16, 3) for n in files])
    np.testing.assert_array_equal(rotated, plain)  # the tag is not applied: the pixels as stored
    assert np.abs(cmyk.astype(int) - plain.astype(int)).mean() < 8  # CMYK's colours come back as RGB
    assert abs(deep.astype(float).mean() - pixels[..., 0].mean()) < 8  # 16 bits scaled to 8
