"""image_folder: both layouts on generated PNG/JPEG/BMP files, matching by id, bad files, splits."""
import os

import numpy as np
import pytest

from cnn_tf.data import load_dataset
from cnn_tf.errors import UserError
from conftest import COLOURS, colour_image, make_folder_layout, write_image

def make_csv_layout(root, n=24):
    """ids 1..n whose listing order (1, 10, 11, ..., 2, 20, ...) is not the CSV's (shuffled)."""
    root.mkdir()
    names = list(COLOURS)
    truth = {}
    for i in range(1, n + 1):
        name = names[(i * 7) % 3]
        truth[str(i)] = name
        write_image(str(root / f"{i}{'.png' if i % 2 else '.jpg'}"), colour_image(COLOURS[name], seed=i))
    rows = list(truth.items())
    np.random.default_rng(1).shuffle(rows)
    csv_path = root.parent / "labels.csv"
    csv_path.write_text("id,label\n" + "".join(f"{i},{label}\n" for i, label in rows))
    return csv_path, truth


def dominant_channels(images):
    return images.reshape(len(images), -1, 3).mean(axis=1).argmax(axis=1) if len(images) else []


def check_labels_match_pictures(data):
    """Every image's label is the class its colour says: proof images and labels were not misaligned."""
    for images, labels in data.splits.values():
        expected = [COLOURS[data.class_names[k]] for k in labels]
        np.testing.assert_array_equal(dominant_channels(images), expected)


def test_folder_layout_decodes_png_jpeg_bmp_into_rgb_at_the_image_size(tmp_path):
    make_folder_layout(tmp_path / "pets")
    data = load_dataset("image_folder", data_dir=str(tmp_path / "pets"), image_size=16,
                        validation_fraction=0.2, test_fraction=0.2, seed=3)
    assert data.class_names == ["bird", "cat", "dog"]
    assert data.image_shape == (16, 16, 3)
    sizes = {name: len(labels) for name, (_, labels) in data.splits.items()}
    assert sizes == {"train": 18, "validation": 6, "test": 6}  # 2 of each class in validation and test
    for _, labels in data.splits.values():
        assert np.bincount(labels, minlength=3).min() >= 2
    check_labels_match_pictures(data)


def test_split_is_deterministic_disjoint_and_depends_on_the_seed(tmp_path):
    make_folder_layout(tmp_path / "pets")

    def split_means(seed):
        data = load_dataset("image_folder", data_dir=str(tmp_path / "pets"), image_size=8, seed=seed,
                            validation_fraction=0.3, test_fraction=0.3)
        return {name: sorted(image.tobytes() for image in x) for name, (x, _) in data.splits.items()}

    first, again, other = split_means(0), split_means(0), split_means(1)
    assert first == again
    assert first != other
    everything = first["train"] + first["validation"] + first["test"]
    assert len(everything) == 30 and len(set(everything)) == 30


def test_csv_layout_matches_files_to_labels_by_id_not_listing_order(tmp_path):
    csv_path, truth = make_csv_layout(tmp_path / "train")
    assert sorted(os.listdir(tmp_path / "train"))[:3] == ["1.png", "10.jpg", "11.png"]
    data = load_dataset("image_folder", data_dir=str(tmp_path / "train"), labels_csv=str(csv_path),
                        image_size=12, validation_fraction=0, test_fraction=0.25)
    assert data.class_names == ["bird", "cat", "dog"]
    assert sum(len(labels) for _, labels in data.splits.values()) == len(truth)
    check_labels_match_pictures(data)


def test_gif_and_grayscale_images_become_rgb(tmp_path):
    root = tmp_path / "d"
    for name in ("a", "b"):
        os.makedirs(root / name)
    write_image(str(root / "a" / "gray.png"), np.full((9, 9, 1), 77, np.uint8))
    # A 1x1 GIF89a with one red pixel, written byte by byte (TensorFlow cannot encode GIF).
    (root / "b" / "red.gif").write_bytes(bytes.fromhex(
        "47494638396101000100800000ff000000000021f90400000000002c00000000010001000002024401003b"))
    data = load_dataset("image_folder", data_dir=str(root), image_size=4, validation_fraction=0,
                        test_fraction=0)
    images, labels = data.split("train")
    assert images.shape == (2, 4, 4, 3)
    by_label = dict(zip(labels.tolist(), images))
    assert (by_label[0] == 77).all()
    assert by_label[1][0, 0].tolist() == [255, 0, 0]


def test_corrupt_image_is_named_or_skipped(tmp_path, capsys):
    make_folder_layout(tmp_path / "pets")
    bad = tmp_path / "pets" / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    with pytest.raises(UserError, match=f"{bad}: not a readable PNG/JPEG/BMP/GIF image.*--skip_bad_images"):
        load_dataset("image_folder", data_dir=str(tmp_path / "pets"), image_size=8)
    data = load_dataset("image_folder", data_dir=str(tmp_path / "pets"), image_size=8, skip_bad_images=True)
    assert sum(len(labels) for _, labels in data.splits.values()) == 30
    assert "skipped 1 bad images" in capsys.readouterr().err


def test_missing_id_unknown_label_and_duplicate_rows_are_named(tmp_path):
    csv_path, truth = make_csv_layout(tmp_path / "train")
    text = csv_path.read_text()
    kwargs = dict(data_dir=str(tmp_path / "train"), labels_csv=str(csv_path), image_size=8)

    csv_path.write_text(text + "99,cat\n")
    with pytest.raises(UserError, match=r"labels.csv:26: id '99' has no image file in .*train"):
        load_dataset("image_folder", **kwargs)
    data = load_dataset("image_folder", skip_bad_images=True, **kwargs)
    assert sum(len(labels) for _, labels in data.splits.values()) == len(truth)

    csv_path.write_text(text)
    with pytest.raises(UserError, match=r"gives .*train/\d+\.(png|jpg) label 'bird', which is not in "
                                        r"--class_names=cat,dog \(and 7 more\)"):
        load_dataset("image_folder", class_names=["cat", "dog"], **kwargs)

    csv_path.write_text(text + "1,dog\n")
    with pytest.raises(UserError, match=r"labels.csv:26: id '1' is listed again"):
        load_dataset("image_folder", **kwargs)

    csv_path.write_text("name,class\n1,cat\n")
    with pytest.raises(UserError, match="header line naming its columns id,label"):
        load_dataset("image_folder", **kwargs)


def test_folder_problems_are_clear_errors(tmp_path):
    one = tmp_path / "one"
    os.makedirs(one / "cat")
    write_image(str(one / "cat" / "a.png"), colour_image(1, 0))
    with pytest.raises(UserError, match="has 1 class \\(cat\\); a classifier needs at least two"):
        load_dataset("image_folder", data_dir=str(one), image_size=8)
    os.makedirs(one / "dog")
    with pytest.raises(UserError, match="class folder .*dog holds no png/jpg/jpeg/bmp/gif images"):
        load_dataset("image_folder", data_dir=str(one), image_size=8)
    with pytest.raises(UserError, match="has no class sub-folders"):
        load_dataset("image_folder", data_dir=str(one / "cat"), image_size=8)
    with pytest.raises(UserError, match="needs --data_dir"):
        load_dataset("image_folder", image_size=8)
    with pytest.raises(UserError, match="is not a directory"):
        load_dataset("image_folder", data_dir=str(one / "cat" / "a.png"), image_size=8)
    # a missing folder says what layout is expected and where the README explains it
    with pytest.raises(UserError, match=r"missing is not a directory \(nothing is there\): --dataset=image_folder "
                                        r"expects a folder with one sub-folder of images per class, or a folder of "
                                        r"images and --labels_csv \(README, 'Your own images'\)"):
        load_dataset("image_folder", data_dir=str(one / "missing"), image_size=8)


def test_pixel_mean_is_the_training_images_channel_mean(tmp_path):
    make_folder_layout(tmp_path / "pets")
    data = load_dataset("image_folder", data_dir=str(tmp_path / "pets"), image_size=8)
    train = data.split("train")[0].astype(np.float64) / 255
    np.testing.assert_allclose(data.pixel_mean, train.mean(axis=(0, 1, 2)))
