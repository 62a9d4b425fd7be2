"""The photo augmentation's statistics on fixed images: random-resized crop's boxes within their
ranges, colour jitter within its bounds, random erasing at its rate and sizes, mixup's and cutmix's
weights matching their pixels (the two labels' shares sum to one), RandAugment changing images and
keeping their range; and the pipeline combining them all with flip_crop."""
import math

import numpy as np
import pytest
import tensorflow as tf

from cnn_tf.data import mixing, photo_augment, randaugment

SEED = np.array([7, 11], np.int64)


def run(tensors):
    with tf.compat.v1.Session() as sess:
        return sess.run(tensors)


@pytest.fixture(autouse=True)
def graph():
    with tf.Graph().as_default():
        yield


def test_resized_crop_boxes_have_areas_and_ratios_in_range_and_stay_inside_the_image():
    boxes, found = run(photo_augment.resized_crop_boxes(4000, SEED, [0.25, 0.8], [0.5, 2.0]))
    height, width = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert found.mean() > 0.95  # with 10 attempts, ratio 2 at area 0.8 misses sometimes, rarely
    area, ratio = (height * width)[found], (width / height)[found]
    assert area.min() >= 0.25 - 1e-5 and area.max() <= 0.8 + 1e-5
    assert ratio.min() >= 0.5 - 1e-4 and ratio.max() <= 2.0 + 1e-4
    assert np.all(boxes >= -1e-6) and np.all(boxes <= 1 + 1e-6)
    # Spread over the whole range, log-uniform in ratio: about as many below 1 as above.
    assert area.min() < 0.3 and area.max() > 0.75
    assert 0.4 < np.mean(ratio < 1) < 0.6
    np.testing.assert_array_equal(boxes[~found], np.tile([0, 0, 1, 1], (int((~found).sum()), 1)))


def test_random_resized_crop_keeps_the_shape_and_zooms_in():
    ramp = np.tile(np.linspace(0, 1, 32, dtype=np.float32)[None, :, None], (32, 1, 3))[None].repeat(64, 0)
    out = run(photo_augment.random_resized_crop(tf.constant(ramp), SEED, [0.1, 0.3], [1.0, 1.0]))
    assert out.shape == ramp.shape and out.min() >= 0 and out.max() <= 1
    # A crop of at most 30% of the area, resized back, spans at most sqrt(0.3) of the ramp.
    spans = out[:, 0, :, 0].max(1) - out[:, 0, :, 0].min(1)
    assert spans.max() <= math.sqrt(0.3) + 0.05 and spans.min() >= math.sqrt(0.1) - 0.05
    descending = out[:, 0, 0, 0] > out[:, 0, -1, 0]  # flipped ramps run the other way
    assert 0.25 < descending.mean() < 0.75


def test_color_jitter_stays_within_its_bounds_and_spreads():
    strength = 0.4
    grey = np.full((500, 8, 8, 3), 0.5, np.float32)
    out = run(photo_augment.color_jitter(tf.constant(grey), SEED, strength))
    # Contrast and saturation blend a flat grey with itself: only brightness moves it.
    assert out.min() >= 0.5 * (1 - strength) - 1e-5 and out.max() <= 0.5 * (1 + strength) + 1e-5
    assert out.std(axis=(1, 2, 3)).max() < 1e-5  # each image stays flat
    means = out.mean(axis=(1, 2, 3))
    assert means.min() < 0.5 * (1 - 0.8 * strength) and means.max() > 0.5 * (1 + 0.8 * strength)
    colourful = np.random.default_rng(0).random((50, 8, 8, 3)).astype(np.float32)
    jittered = run(photo_augment.color_jitter(tf.constant(colourful), SEED, strength))
    assert jittered.min() >= 0 and jittered.max() <= 1 and not np.allclose(jittered, colourful, atol=0.02)
    unchanged = run(photo_augment.color_jitter(tf.constant(colourful), SEED, 0.0))
    np.testing.assert_allclose(unchanged, colourful, atol=1e-5)


def test_random_erasing_erases_at_its_rate_a_box_of_its_size_and_nothing_else():
    n, side, probability = 2000, 32, 0.3
    images = np.full((n, side, side, 1), 2.0, np.float32)  # no noise pixel can be 2
    out = run(photo_augment.random_erasing(tf.constant(images), SEED, probability))
    erased = out != 2.0
    rate = erased.any(axis=(1, 2, 3)).mean()
    assert abs(rate - probability) < 4 * math.sqrt(probability * (1 - probability) / n)
    for image in erased[erased.any(axis=(1, 2, 3))][:200, :, :, 0]:
        rows, cols = np.where(image.any(1))[0], np.where(image.any(0))[0]
        box = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        assert box.all() and image.sum() == box.size  # one solid rectangle, nothing outside it
        assert 0.02 * side * side * 0.85 <= box.size <= side * side / 3 * 1.15
    assert out[erased].min() >= 0 and out[erased].max() <= 1


def mixes(images, mixup_alpha, cutmix_alpha, count):
    """[(pixels, weight)] of mix_batch on `images` under `count` seeds, one graph fed each seed."""
    seed = tf.compat.v1.placeholder(tf.int64, [2])
    mixed = mixing.mix_batch(tf.constant(images, tf.float32), seed, mixup_alpha, cutmix_alpha, 0.5)
    with tf.compat.v1.Session() as sess:
        return [sess.run(mixed, {seed: [i, 3]}) for i in range(count)]


def test_mixup_pixels_are_the_weighted_sum_and_the_weights_average_a_half():
    images = np.concatenate([np.zeros((4, 6, 6, 1)), np.ones((4, 6, 6, 1))])
    results = mixes(images, 1.0, 0.0, 300)
    for pixels, w in results:
        # Image 0 is black, its partner (the reversed batch's) white: pixel = (1 - w), the label weights w + (1 - w).
        np.testing.assert_allclose(pixels[0], 1 - w, atol=1e-6)
        np.testing.assert_allclose(pixels[-1], w, atol=1e-6)
    lams = np.array([w for _, w in results])
    assert 0 <= lams.min() and lams.max() <= 1 and abs(lams.mean() - 0.5) < 0.05  # Beta(1, 1) is uniform
    assert np.mean(lams < 0.25) > 0.15 and np.mean(lams > 0.75) > 0.15


def test_cutmix_takes_a_box_from_the_partner_whose_area_is_one_minus_the_weight():
    images = np.concatenate([np.zeros((2, 20, 20, 1)), np.ones((2, 20, 20, 1))])
    for pixels, w in mixes(images, 0.0, 1.0, 200):
        assert set(np.unique(pixels)) <= {0.0, 1.0}  # a pasted box, not a blend
        np.testing.assert_allclose(pixels[0].mean(), 1 - w, atol=1e-6)  # the partner's share of the pixels
    switched = mixes(images, 1.0, 1.0, 200)
    cut = np.mean([set(np.unique(p)) <= {0.0, 1.0} for p, _ in switched])
    assert 0.35 < cut < 0.65  # --mixup_switch_prob=0.5


def test_randaugment_changes_images_keeps_their_shape_and_range():
    images = np.random.default_rng(1).random((64, 16, 16, 3)).astype(np.float32)
    out = run(randaugment.randaugment(tf.constant(images), SEED, 2, 9.0))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    changed = np.abs(out - images).max(axis=(1, 2, 3)) > 1e-3
    assert changed.mean() > 0.7  # identity twice: (1/15)^2 of the images; brightness at M=9 moves the rest
    again = run(randaugment.randaugment(tf.constant(images), SEED, 2, 9.0))
    np.testing.assert_array_equal(out, again)  # stateless: the same seed, the same images
    weaker = run(randaugment.randaugment(tf.constant(images), SEED, 2, 1.0))
    assert np.abs(weaker - images).mean() < np.abs(out - images).mean()


def test_every_randaugment_operation_keeps_the_range():
    images = tf.constant(np.random.default_rng(2).random((4, 8, 8, 3)).astype(np.float32))
    sign = tf.constant([1.0, -1.0, 1.0, -1.0])[:, None, None, None]
    ops = run(randaugment.colour_operations(images, 0.9, sign))
    assert set(ops) == set(randaugment.COLOUR)
    for name, result in ops.items():
        assert result.shape == (4, 8, 8, 3) and result.min() >= 0 and result.max() <= 1, name
    np.testing.assert_allclose(ops["invert"], 1 - ops["identity"])


def test_the_pipeline_combines_every_augmentation_with_flip_crop_deterministically():
    from cnn_tf.data.augmentation import AugmentSpec
    from cnn_tf.data.pipeline import EpochPlan, InputPipeline

    images = np.random.default_rng(3).integers(0, 256, (32, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(32) % 4
    spec = AugmentSpec("flip_crop", 2, color_jitter=0.3, randaugment=(2, 5.0), random_erasing=0.5,
                       mixup_alpha=0.4, cutmix_alpha=1.0, mix_off_epoch=2)
    pipeline = InputPipeline((16, 16, 3))
    batches = {}
    with tf.compat.v1.Session() as sess:
        for epoch in (0, 0, 2):
            pipeline.start_epoch(sess, (images, labels), 16, EpochPlan(5, epoch, 0, augment=spec))
            batches.setdefault(epoch, []).append(sess.run([pipeline.images, pipeline.mix_weight]))
        pipeline.start_pass(sess, (images, labels), 16)
        plain, plain_weight = sess.run([pipeline.images, pipeline.mix_weight])
    (first, w), (again, w_again) = batches[0]
    np.testing.assert_array_equal(first, again)
    assert w == w_again and 0 <= w < 1  # mixed in epoch 0
    assert batches[2][0][1] == 1.0  # --mixup_off_epoch=2: epoch 2 is unmixed
    assert first.min() >= 0 and first.max() <= 1
    np.testing.assert_allclose(plain, images[:16] / 255.0, atol=1e-6)  # evaluation: as stored
    assert plain_weight == 1.0


@pytest.mark.parametrize("num_towers", [1, 2])
def test_a_mixed_batch_trains_on_both_labels_by_the_mix_weight(num_towers):
    from cnn_tf.config import RunConfig
    from cnn_tf.graph import build_graph, hardware

    cfg = RunConfig(model="three_conv", mixup_alpha=0.2, weight_decay=0.0, num_towers=num_towers, batch_size=8)
    g = build_graph(cfg, (28, 28, 1), 10, 100)
    images = np.random.default_rng(4).random((8, 28, 28, 1)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    with g.graph.as_default(), tf.compat.v1.Session(config=hardware.session_config(cfg)) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        feed = {g.inputs.image: images, g.inputs.label: labels, g.inputs.keep_prob: 1.0, g.inputs.mix_weight: 0.3}
        loss, logits = sess.run([g.train.loss, g.train.logits], feed)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    own, partner = -log_p[np.arange(8), labels], -log_p[np.arange(8), labels[::-1]]
    np.testing.assert_allclose(loss, np.mean(0.3 * own + 0.7 * partner), rtol=1e-5)
