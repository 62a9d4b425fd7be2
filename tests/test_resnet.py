"""resnet: its shapes at several sizes and depths, a short training that learns, and a checkpoint of an
older resnet (with conv biases) refused by name."""

import pytest
import tensorflow as tf

from cnn_tf.errors import UserError
from cnn_tf.nets import get_network_fn
from conftest import printed_accuracy, run_cli


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
