"""Augmentation and test-time augmentation: the crop alone never flips and honours its padding; flip
TTA equals no TTA on a mirror-symmetric image and differs on another."""

import numpy as np
import tensorflow as tf

from cnn_tf.config import RunConfig
from cnn_tf.graph import build_graph


def test_crop_alone_never_flips_and_padding_is_honoured():
    from cnn_tf.data.pipeline import augment_batch

    images = np.arange(8 * 6 * 6, dtype=np.uint8).reshape(8, 6, 6, 1)  # no image is its own mirror
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        seed = tf.constant([1, 2], tf.int64)
        unpadded_crop = sess.run(augment_batch(tf.constant(images), seed, flip=False, padding=0))
        flipped = sess.run(augment_batch(tf.constant(images), seed, flip=True, padding=0))
        padded = sess.run(augment_batch(tf.constant(images), seed, flip=False, padding=2))
    np.testing.assert_array_equal(unpadded_crop, images)  # no padding: the crop is the image
    mirrored = [np.array_equal(f, x[:, ::-1]) for f, x in zip(flipped, images)]
    assert any(mirrored) and all(m or np.array_equal(f, x) for m, f, x in zip(mirrored, flipped, images))
    # Padded by 2, each crop is the image shifted by at most 2 pixels, never mirrored.
    for crop, image in zip(padded, images):
        shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                  if np.array_equal(crop, np.pad(image, [(2, 2), (2, 2), (0, 0)])[2 + dy:8 + dy, 2 + dx:8 + dx])]
        assert shifts, "a crop that is no shift of its image"


def test_flip_tta_equals_no_tta_on_a_mirror_symmetric_image_and_differs_on_another(tmp_path):
    cfg = RunConfig(model="three_conv", batch_norm=True)
    rng = np.random.default_rng(0)
    half = rng.random((4, 28, 14, 1)).astype(np.float32)
    symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)
    lopsided = rng.random((4, 28, 28, 1)).astype(np.float32)
    probabilities = {}
    path = str(tmp_path / "model.ckpt")
    for tta in ("none", "flip"):
        g = build_graph(cfg, (28, 28, 1), 10, 100, tta=tta)
        with g.graph.as_default():
            softmax = tf.nn.softmax(g.inference.logits)
        with tf.compat.v1.Session(graph=g.graph) as sess:
            if tta == "none":
                sess.run(g.saving.init_op)
                g.saving.saver.save(sess, path)
            else:
                g.saving.saver.restore(sess, path)  # the same weights
            probabilities[tta] = [sess.run(softmax, {g.inputs.image: x}) for x in (symmetric, lopsided)]
    np.testing.assert_allclose(probabilities["flip"][0], probabilities["none"][0], rtol=1e-5, atol=1e-7)
    assert not np.allclose(probabilities["flip"][1], probabilities["none"][1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probabilities["flip"][1].sum(axis=1), 1.0, rtol=1e-5)
