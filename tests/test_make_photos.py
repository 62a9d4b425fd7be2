"""scripts/make_photos.py: the generated photo folders the photo configs are measured on."""
import glob
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import make_photos  # noqa: E402  (a script, not a package)


def test_a_folder_holds_every_class_equally_at_photo_sizes_and_aspects_and_is_the_same_from_its_seed(tmp_path):
    make_photos.write(str(tmp_path / "a"), 12, seed=3)
    make_photos.write(str(tmp_path / "b"), 12, seed=3)
    files = sorted(glob.glob(str(tmp_path / "a" / "*" / "*.jpg")))
    assert len(files) == 12
    assert {os.path.basename(os.path.dirname(f)) for f in files} == set(make_photos.CLASSES)
    assert all(len(os.listdir(tmp_path / "a" / c)) == 4 for c in make_photos.CLASSES)
    for f in files:
        height, width, channels = tf.io.decode_jpeg(open(f, "rb").read()).shape
        assert 200 <= width <= 500 and channels == 3
        assert min(abs(width / height - a) for a in make_photos.ASPECTS) < 0.02
        assert open(f, "rb").read() == open(f.replace(os.sep + "a" + os.sep, os.sep + "b" + os.sep), "rb").read()


def test_the_shape_is_the_class_and_covers_a_fair_part_of_the_photo():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:300, 0:400].astype(np.float32)
    for name in make_photos.CLASSES:
        areas = [make_photos.shape_mask(rng, name, y, x).mean() for _ in range(20)]
        assert 0.02 < min(areas) and max(areas) < 0.5, (name, min(areas), max(areas))
    # A circle's mask is round: its area is pi r^2 of the radius its extent gives.
    mask = make_photos.shape_mask(np.random.default_rng(1), "circle", y, x)
    rows = np.flatnonzero(mask.any(axis=1))
    radius = (rows[-1] - rows[0] + 1) / 2
    assert abs(mask.sum() / (np.pi * radius ** 2) - 1) < 0.05


def test_it_refuses_a_folder_that_is_not_empty_in_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    result = subprocess.run([sys.executable, "scripts/make_photos.py", f"--out={tmp_path}", "--count=6"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: --out={tmp_path} is not empty; give a new folder (nothing there is overwritten)"]
    assert os.listdir(tmp_path) == ["mine.txt"]
