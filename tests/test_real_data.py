"""The real Fashion-MNIST (installed by `make test` from Debian's dataset-fashion-mnist)."""
import os

import numpy as np
import pytest

from cnn_tf.data import load_dataset
from cnn_tf.data.mnist import SYSTEM_DIR
from conftest import export_and_compare, printed_accuracy, run_cli

REAL = os.path.join(SYSTEM_DIR, "fashion-mnist")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("CI") != "true" and not os.path.isdir(REAL),
                       reason="real Fashion-MNIST not installed (make test installs it)"),
]


def test_real_fashion_mnist_splits_and_checksums():
    data = load_dataset("fashion_mnist")  # from /usr/share/datasets, checksums as the official files
    assert [len(data.split(s)[0]) for s in ("train", "validation", "test")] == [55000, 5000, 10000]
    assert data.image_shape == (28, 28, 1) and data.class_names[-1] == "Ankle boot"
    assert np.bincount(data.split("test")[1]).tolist() == [1000] * 10


def test_lenet_learns_real_fashion_mnist_in_one_epoch(tmp_path):
    train_dir = str(tmp_path / "real")
    result = run_cli("train", "--flagfile=configs/lenet_fashion_mnist.cfg", f"--train_dir={train_dir}",
                     "--num_epochs=1")
    assert result.returncode == 0, result.stderr
    accuracy = printed_accuracy(result.stdout)
    assert accuracy > 0.85  # one epoch; `make train`'s five reach 0.90+
    evaluated = run_cli("evaluate", f"--checkpoint_dir={train_dir}")
    assert evaluated.returncode == 0, evaluated.stderr
    assert printed_accuracy(evaluated.stdout) == accuracy
    assert "Ankle boot" in evaluated.stdout
    assert "T-sh  Trou  Pull  Dres  Coat  Sand  Shir  Snea   Bag  Ankl" in evaluated.stdout  # the matrix's header

    # Exported, the model classifies 1,000 real test images written as PNG files, in a process that
    # never imports cnn_tf, exactly as the checkpoint does (ids equal, probabilities within 1e-5).

    data = load_dataset("fashion_mnist")
    images, labels = data.split("test")
    _, _, out = export_and_compare(train_dir, images[:1000], data.class_names, tmp_path)
    assert abs(np.mean(np.array(out["classes"]) == labels[:1000]) - accuracy) < 0.03

    # Fine-tuned with the shipped config on five kinds of tops from the test split (the script the
    # README gives), it beats the same epoch from scratch.
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
    from fashion_mnist_subset import write_subset

    tops = str(tmp_path / "tops")
    write_subset(tops, per_class=300)
    tuned = run_cli("train", "--flagfile=configs/lenet_fashion_mnist_finetune.cfg", f"--data_dir={tops}",
                    f"--warm_start_from={train_dir}", f"--train_dir={tmp_path / 'tuned'}")
    assert tuned.returncode == 0, tuned.stderr
    assert "warm start: 12 of the model's 14 variables" in tuned.stdout
    scratch = run_cli("train", "--flagfile=configs/lenet_fashion_mnist_finetune.cfg", f"--data_dir={tops}",
                      "--warm_start_from=", "--checkpoint_exclude_scopes=", f"--train_dir={tmp_path / 'scratch'}")
    assert scratch.returncode == 0, scratch.stderr
    assert printed_accuracy(tuned.stdout) > 0.65
    assert printed_accuracy(tuned.stdout) > printed_accuracy(scratch.stdout) + 0.05
