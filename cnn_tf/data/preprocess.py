"""The one way an image becomes a model's input, for training, evaluation, export and prediction:

    encoded file bytes --decode--> uint8 [size, size, channels] --scale_pixels--> float32 in [0, 1]
    --normalize--> minus the training images' per-channel mean (--normalization=mean), in the graph

The named placeholder `image:0` sits between scale_pixels and normalize: it always takes [0, 1]
pixels, whatever --normalization the run trained with.
"""
import functools
import zlib

import numpy as np
import tensorflow as tf

from cnn_tf.options import MAX_IMAGE_PIXELS  # Pillow's bound: past it, a decompression bomb

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")  # what tf.io.decode_image reads


def header_size(contents):
    """(width, height) from a PNG, JPEG, GIF or BMP file's header, read without decoding it; None when
    the bytes are none of those (decoding then says what is wrong)."""
    head = bytes(contents[:64])
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 33:
        # The IHDR chunk's CRC tells a real header from a damaged file (which decoding then names).
        if head[12:16] == b"IHDR" and zlib.crc32(head[12:29]) == int.from_bytes(head[29:33], "big"):
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        return None
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head.startswith(b"BM") and len(head) >= 30 and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124) \
            and int.from_bytes(head[26:28], "little") == 1:  # a known info header, one plane
        return abs(int.from_bytes(head[18:22], "little", signed=True)), abs(
            int.from_bytes(head[22:26], "little", signed=True))
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(contents)
    return None


def _jpeg_size(contents):
    """The frame size of a JPEG's first start-of-frame marker (SOF0..SOF15 but DHT, JPG, DAC)."""
    i = 2
    while i + 9 <= len(contents):
        if contents[i] != 0xFF:
            return None
        marker = contents[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(contents[i + 7:i + 9], "big"), int.from_bytes(contents[i + 5:i + 7], "big")
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        i += 2 + int.from_bytes(contents[i + 2:i + 4], "big")
    return None


def exif_orientation(contents):
    """The EXIF Orientation (1-8; 1: upright as stored) of a JPEG's APP1 segment, or None. cnn_tf
    never applies it: TensorFlow's decoders and so an exported SavedModel cannot, and training,
    predict and export must see the same pixels (see image_files.warn_rotated)."""
    head = bytes(contents[:1 << 16])
    i = 2 if head.startswith(b"\xff\xd8") else len(head)
    while i + 4 <= len(head) and head[i] == 0xFF:
        marker, length = head[i + 1], int.from_bytes(head[i + 2:i + 4], "big")
        if marker == 0xE1 and head[i + 4:i + 10] == b"Exif\0\0":
            return _tiff_orientation(head[i + 10:i + 2 + length])
        if marker == 0xDA:  # the image data: no metadata after it
            return None
        i += 2 + length
    return None


def _tiff_orientation(tiff):
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    ifd = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[ifd:ifd + 2], order)
    for entry in range(ifd + 2, min(ifd + 2 + 12 * count, len(tiff) - 11), 12):
        if int.from_bytes(tiff[entry:entry + 2], order) == 0x0112:
            return int.from_bytes(tiff[entry + 8:entry + 10], order)
    return None


def too_many_pixels(contents, limit=MAX_IMAGE_PIXELS):
    """What is wrong with an image whose header gives more than `limit` pixels (a 1 MB PNG can decode
    to gigabytes), said before it is decoded; None if nothing is."""
    size = header_size(contents)
    if size and size[0] * size[1] > (limit or MAX_IMAGE_PIXELS):
        return (f"{size[0]}x{size[1]} is {size[0] * size[1]:,} pixels, over the limit of {limit or MAX_IMAGE_PIXELS:,}: "
                "not decoded (a decompression bomb, or a huge scan); --max_image_pixels raises the limit")
    return None


def bounded(contents, limit=MAX_IMAGE_PIXELS):
    """`contents` (files' bytes, a string tensor of any shape) once every header says at most `limit`
    pixels, checked in the graph before any decoding (what an export's serving_default does with the
    files it is sent). One check for a whole batch: per image, its ops cost a third of a small PNG's decode."""
    files = tf.reshape(contents, [-1])
    padded = _padded(files)
    number = functools.partial(_header_number, padded)

    def starts(magic):
        return tf.equal(tf.strings.substr(padded, 0, len(magic)), magic)

    def signed32(position):  # a BMP's height is negative for top-down rows
        value = number(position, 4)
        return tf.where(value >= 2 ** 31, 2 ** 32 - value, value)

    # A JPEG's size is in its first start-of-frame marker, wherever that is: TensorFlow reads it.
    jpeg = starts(b"\xff\xd8")
    jpeg_pixels = tf.map_fn(lambda c: tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(c)[:2], tf.int64)),
                            tf.boolean_mask(files, jpeg), fn_output_signature=tf.int64)
    jpeg_pixels = tf.scatter_nd(tf.where(jpeg), jpeg_pixels, tf.shape(files, out_type=tf.int64))
    pixels = tf.where(starts(b"\x89PNG\r\n\x1a\n"), number(16, 4, True) * number(20, 4, True),
                      tf.where(starts(b"GIF"), number(6, 2) * number(8, 2),
                               tf.where(starts(b"BM"), signed32(18) * signed32(22), jpeg_pixels)))
    check = tf.debugging.assert_less_equal(pixels, tf.constant(limit or MAX_IMAGE_PIXELS, tf.int64), message=(
        f"an image has more than {limit or MAX_IMAGE_PIXELS:,} pixels: not decoded (a decompression bomb, or a "
        "huge scan); --max_image_pixels raises the limit"))
    with tf.control_dependencies([check]):
        return tf.identity(contents)


def decode(contents, height, width, channels, max_pixels=None):
    """A PNG/JPEG/BMP/GIF file's bytes (a GIF's first frame) -> uint8 [height, width, channels]: grey
    replicated or colour averaged as `channels` asks, alpha dropped, resized with antialiasing.
    `max_pixels`: refuse (InvalidArgumentError) an image whose header gives more, before decoding it."""
    if max_pixels:
        contents = bounded(contents, max_pixels)
    return resize(decode_as_found(contents, channels), height, width, channels)


def decode_as_found(contents, channels):
    """uint8 [h, w, channels] at the image's own size (see decode)."""
    image = tf.cond(_is_palette_bmp(contents), lambda: _palette_bmp(contents), lambda: tf.io.decode_image(
        contents, channels=3 if channels == 1 else channels, expand_animations=False))
    image = tf.ensure_shape(image, [None, None, 3 if channels == 1 else channels])
    if channels == 1:  # decode_image's channels=1 refuses colour PNGs; this takes their luminance
        image = tf.image.rgb_to_grayscale(image)
    return image


def _header_number(padded, position, length, big_endian=False):
    """The unsigned integer of `length` bytes at `position` of each file's (zero-padded) bytes, in the graph."""
    digits = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, position, length), tf.uint8, fixed_length=length),
                     tf.int64)
    weights = tf.constant([256 ** k for k in range(length)][::-1 if big_endian else 1], tf.int64)
    return tf.reduce_sum(digits * weights, axis=-1)  # one number per file


def _padded(contents):
    return tf.strings.join([contents, tf.constant(b"\0" * 64)])  # a short file reads as zeros, not an error


def _is_palette_bmp(contents):
    padded = _padded(contents)
    return tf.logical_and(tf.equal(tf.strings.substr(padded, 0, 2), b"BM"), _header_number(padded, 28, 2) <= 8)


def _palette_bmp(contents):
    """A 1-, 2-, 4- or 8-bit BMP through its colour table -> uint8 [h, w, 3]; tf.io.decode_bmp returns
    such a file's palette indices as grey values."""
    padded = _padded(contents)
    number = functools.partial(_header_number, padded)
    signed = lambda v: tf.where(v >= 2 ** 31, v - 2 ** 32, v)  # noqa: E731
    offset, header, bits, compression = number(10, 4), number(14, 4), number(28, 2), number(30, 4)
    width, height = signed(number(18, 4)), signed(number(22, 4))
    colours = tf.where(number(46, 4) > 0, number(46, 4), tf.bitwise.left_shift(tf.constant(1, tf.int64), bits))
    checks = [tf.debugging.assert_equal(compression, tf.constant(0, tf.int64),
                                        message="a run-length-compressed BMP is not read; save it uncompressed"),
              tf.debugging.assert_positive(width, message="a BMP of no width"),
              tf.debugging.assert_positive(bits, message="a BMP of 0 bits per pixel")]
    with tf.control_dependencies(checks):
        rows = tf.abs(height)
        row_bytes = (bits * width + 31) // 32 * 4
        table = tf.reshape(tf.io.decode_raw(tf.strings.substr(contents, 14 + header, colours * 4), tf.uint8), [-1, 4])
        data = tf.reshape(tf.io.decode_raw(tf.strings.substr(contents, offset, rows * row_bytes), tf.uint8),
                          [rows, row_bytes])
    per_byte = 8 // bits
    shifts = tf.cast(8 - bits * (tf.range(per_byte, dtype=tf.int64) + 1), tf.uint8)
    mask = tf.cast(tf.bitwise.left_shift(tf.constant(1, tf.int64), bits) - 1, tf.uint8)
    indices = tf.bitwise.bitwise_and(tf.bitwise.right_shift(data[..., None], shifts), mask)
    indices = tf.reshape(indices, [rows, row_bytes * per_byte])[:, :width]
    rgb = tf.reverse(table[:, :3], [1])  # the table holds blue, green, red, reserved
    image = tf.gather(rgb, tf.minimum(tf.cast(indices, tf.int64), tf.cast(tf.shape(rgb)[0], tf.int64) - 1))
    return tf.cond(height > 0, lambda: tf.reverse(image, [0]), lambda: image)  # rows are stored bottom-up


def resize(image, height, width, channels):
    """uint8 [h, w, channels] -> uint8 [height, width, channels], antialiased (unchanged at that size)."""
    same_size = tf.reduce_all(tf.equal(tf.shape(image)[:2], [height, width]))
    image = tf.cond(same_size, lambda: image, lambda: tf.cast(tf.round(tf.clip_by_value(
        tf.image.resize(image, [height, width], antialias=True), 0, 255)), tf.uint8))
    return tf.ensure_shape(image, [height, width, channels])


def scale_pixels(images):
    """The one place pixels are scaled: uint8 [0, 255] -> float32 [0, 1]."""
    return tf.cast(images, tf.float32) * (1.0 / 255.0)


IMAGENET_RGB_MEAN = [123.68, 116.78, 103.94]  # slim's vgg_preprocessing, on the 0-255 scale


def normalize(images, pixel_mean=None, normalization="scale"):
    """[0, 1] pixels -> the model's input: minus `pixel_mean` per channel, if given; or with
    normalization "inception", 2x - 1, in [-1, 1] (slim's inception_preprocessing: what its
    MobileNet, Inception and ResNet v2 ImageNet checkpoints were trained on); or "vgg", 255x minus
    ImageNet's channel means (slim's vgg_preprocessing: its VGG and ResNet v1 checkpoints')."""
    if normalization == "inception":
        return tf.subtract(images * 2.0, 1.0, name="to_minus_one_one")
    if normalization == "vgg":
        return tf.subtract(images * 255.0, tf.constant(IMAGENET_RGB_MEAN), name="subtract_imagenet_mean")
    if pixel_mean is None:
        return images
    return tf.subtract(images, tf.constant(np.asarray(pixel_mean, np.float32)), name="subtract_pixel_mean")
