"""The pieces of the accuracy recipes: resnet's shapes, every learning-rate schedule at chosen steps
(and after a restore), label smoothing's loss and adamw's update against hand computations."""
import math

import numpy as np
import pytest
import tensorflow as tf

from cnn_tf import schedules
from cnn_tf.config import RunConfig
from cnn_tf.errors import UserError
from cnn_tf.graph import build_graph, cross_entropy
from cnn_tf.optimization import decay_weights
from cnn_tf.nets import get_network_fn
from conftest import finish, printed_accuracy, run_cli, small_run_flags, start


def rates(cfg, steps, num_examples=1000, num_replicas=1):
    graph = tf.Graph()
    with graph.as_default():
        step = tf.compat.v1.placeholder(tf.int64, [])
        rate = schedules.learning_rate(cfg, step, num_examples, num_replicas)
        with tf.compat.v1.Session() as sess:
            return [float(sess.run(rate, {step: s})) for s in steps]


def schedule(kind, **kw):
    # 1,000 examples in batches of 100: 10 steps an epoch, 100 in the 10 epochs.
    return RunConfig(learning_rate_schedule=kind, initial_learning_rate=0.1, batch_size=100, num_epochs=10, **kw)


def test_cosine_warms_up_then_follows_half_a_cosine_to_the_end_rate():
    cfg = schedule("cosine", warmup_epochs=1, end_learning_rate=0.001)
    got = rates(cfg, [0, 5, 10, 55, 100, 150])
    expected = [0.01, 0.01 + 0.09 * 0.5, 0.1, 0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi * 0.5)), 0.001, 0.001]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_one_cycle_rises_from_a_25th_over_30_percent_then_falls():
    got = rates(schedule("one_cycle"), [0, 15, 30, 65, 100])
    np.testing.assert_allclose(got, [0.004, 0.004 + 0.096 * 0.5, 0.1, 0.05, 0.0], rtol=1e-6, atol=1e-9)


def test_piecewise_changes_at_its_boundaries_and_counts_the_replicas_batches():
    cfg = schedule("piecewise", boundaries_epochs=("2", "5"), values=("0.1", "0.01", "0.001"))
    np.testing.assert_allclose(rates(cfg, [0, 19, 20, 49, 50, 99]), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    # Two workers stepping the global step together: 5 global steps an epoch.
    np.testing.assert_allclose(rates(cfg, [9, 10, 25], num_replicas=2), [0.1, 0.01, 0.001], rtol=1e-6)


def test_constant_exponential_and_warm_up():
    np.testing.assert_allclose(rates(schedule("constant"), [0, 50, 100]), [0.1] * 3, rtol=1e-6)
    cfg = schedule("exponential", learning_rate_decay_factor=0.5, num_epochs_per_decay=2)
    np.testing.assert_allclose(rates(cfg, [0, 19, 20, 45]), [0.1, 0.1, 0.05, 0.025], rtol=1e-6)
    warm = schedule("constant", warmup_epochs=2)  # 20 steps from 0.1/20 to 0.1
    np.testing.assert_allclose(rates(warm, [0, 10, 20]), [0.005, 0.005 + 0.095 * 0.5, 0.1], rtol=1e-6)


@pytest.mark.parametrize("flags, words", [
    (dict(learning_rate_schedule="piecewise", values=("0.1",)), "needs --boundaries_epochs and one more --values"),
    (dict(learning_rate_schedule="piecewise", boundaries_epochs=("5", "2"), values=("1", "2", "3")), "increasing"),
    (dict(learning_rate_schedule="piecewise", boundaries_epochs=("x",), values=("1", "2")), "take numbers"),
    (dict(model="resnet", resnet_depth=21), r"is not 6n\+2"),
])
def test_bad_recipe_flags_are_one_line(flags, words):
    with pytest.raises(UserError, match=words):
        RunConfig(**flags)


@pytest.mark.slow
def test_a_stopped_and_resumed_run_continues_the_schedule_exactly(tmp_path, data_dir):
    import signal

    from conftest import scalar_values

    train_dir = tmp_path / "run"
    flags = small_run_flags(str(data_dir), str(train_dir), "--learning_rate_schedule=cosine", "--warmup_epochs=0.5",
                            "--num_epochs=3", "--progress=false", "--summary_every_n_steps=1")
    process = start("train", *flags)
    for line in process.stdout:  # stopped after its first epoch, mid-schedule
        if line.startswith("epoch 1/3"):
            process.send_signal(signal.SIGTERM)
            break
    code, out, _ = finish(process)
    assert code == 128 + signal.SIGTERM and "stopped by SIGTERM" in out
    resumed = run_cli("train", *flags)
    assert resumed.returncode == 0, resumed.stderr
    logged = dict(scalar_values(str(train_dir / "summaries" / "train"), "learning_rate"))
    steps = sorted(logged)
    assert steps == list(range(1, 3 * 16 + 1))
    # A summary's step is the global step after the update its rate was used in.
    cfg = RunConfig(learning_rate_schedule="cosine", warmup_epochs=0.5, batch_size=64, num_epochs=3)
    np.testing.assert_allclose([logged[s] for s in steps], rates(cfg, [s - 1 for s in steps]), rtol=1e-6)


def test_label_smoothing_loss_against_a_hand_computation():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 6)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    targets = np.full((6, 5), 0.1 / 5)
    targets[np.arange(6), labels] += 0.9
    expected = -(targets * log_p).sum(axis=1)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        got = sess.run(cross_entropy(tf.constant(labels), tf.constant(logits), 0.1))
        plain = sess.run(cross_entropy(tf.constant(labels), tf.constant(logits)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(plain, -log_p[np.arange(6), labels], rtol=1e-5)


def test_adamw_decays_the_weights_apart_from_adams_step():
    """One step of --optimizer=adamw against its hand computation (TensorFlow's Adam, epsilon 1e-8)."""
    lr, decay = 0.01, 0.1
    w0, b0 = np.array([1.0, -2.0, 3.0], np.float32), np.array([0.5], np.float32)
    x = np.array([0.3, -1.0, 2.0], np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        w = tf.compat.v1.get_variable("layer/weights", initializer=w0)
        b = tf.compat.v1.get_variable("layer/biases", initializer=b0)
        loss = tf.reduce_sum(w * x) + 2.0 * tf.reduce_sum(b)
        optimizer = tf.compat.v1.train.AdamOptimizer(lr)
        pairs = decay_weights(optimizer.compute_gradients(loss), tf.constant(lr),
                              RunConfig(optimizer="adamw", weight_decay=decay))
        train_op = optimizer.apply_gradients(pairs)
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train_op)
        w1, b1 = sess.run([w, b])

    def adam_step(grad):
        m, v = 0.1 * grad, 0.001 * grad ** 2
        lr_t = lr * math.sqrt(1 - 0.999) / (1 - 0.9)
        return lr_t * m / (np.sqrt(v) + 1e-8)

    np.testing.assert_allclose(w1, w0 - lr * decay * w0 - adam_step(x), rtol=1e-5)
    np.testing.assert_allclose(b1, b0 - adam_step(np.array([2.0])), rtol=1e-5)  # biases are not decayed
    # adamw's decay is not also in the loss.
    graph = build_graph(RunConfig(model="lenet", optimizer="adamw", weight_decay=0.05), (28, 28, 1), 10, 100)
    assert not graph.graph.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES)


@pytest.mark.parametrize("depth, width, size, channels", [(8, 8, 28, 1), (20, 16, 32, 3), (32, 4, 40, 1)])
def test_resnet_shapes_for_several_sizes_and_depths(depth, width, size, channels):
    with tf.Graph().as_default():
        images = tf.zeros([2, size, size, channels])
        network = get_network_fn("resnet", 10, use_batch_norm=True, resnet_depth=depth, resnet_width=width)
        logits, end_points = network(images, is_training=True)
        assert logits.shape.as_list() == [2, 10]
        for stage, scale in ((1, 1), (2, 2), (3, 4)):
            side = -(-size // scale)
            assert end_points[f"resnet/stage{stage}"].shape.as_list() == [2, side, side, width * scale]
        blocks = (depth - 2) // 6
        convs = [v for v in tf.compat.v1.trainable_variables() if v.op.name.endswith("/weights")]
        # conv1, two per block, two projection shortcuts, the logits.
        assert len(convs) == 1 + 2 * 3 * blocks + 2 + 1
        if (depth, width) == (20, 16):  # the paper's ResNet-20: 0.27M parameters
            count = sum(v.shape.num_elements() for v in tf.compat.v1.trainable_variables())
            assert 0.26e6 < count < 0.29e6, count


@pytest.mark.slow
def test_resnet_trains(tmp_path):
    # Horizontal against vertical stripes: global average pooling keeps what a pattern is, not where.
    from conftest import make_stripes_folder

    make_stripes_folder(tmp_path / "stripes", per_class=100)
    result = run_cli("train", "--dataset=image_folder", f"--data_dir={tmp_path / 'stripes'}", "--image_size=32",
                     f"--train_dir={tmp_path / 'run'}", "--batch_size=32", "--num_epochs=6", "--progress=false",
                     "--model=resnet", "--resnet_depth=8", "--resnet_width=8", "--optimizer=nesterov",
                     "--initial_learning_rate=0.05", "--learning_rate_schedule=one_cycle", "--label_smoothing=0.1",
                     "--augment=flip_crop")
    assert result.returncode == 0, result.stderr
    assert printed_accuracy(result.stdout) >= 0.85  # 20 test images: at most 3 wrong


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


def test_a_checkpoint_with_variables_the_model_lacks_is_refused_naming_one(tmp_path):
    # E.g. a resnet written before its convs lost their biases: restoring the rest would mix models.
    from cnn_tf.checkpoints import check_compatible

    path = str(tmp_path / "model.ckpt")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        weights = tf.compat.v1.get_variable("resnet/conv1/weights", [3, 3, 1, 4])
        slot = tf.compat.v1.get_variable("resnet/conv1/weights/Momentum", [3, 3, 1, 4])
        biases = tf.compat.v1.get_variable("resnet/conv1/biases", [4])
        other = tf.compat.v1.get_variable("nan_guard/rollbacks", [])
        sess.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().save(sess, path)
        check_compatible(path, [weights, slot, biases, other])  # the same variables: fine
        check_compatible(path, [weights, biases])  # a slot of a variable, another scope: not strays
        with pytest.raises(UserError, match=r"holds resnet/conv1/biases, which the model built here does not "
                                            r"have: another model or an older version of it wrote it"):
            check_compatible(path, [weights, slot])
