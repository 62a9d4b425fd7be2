"""--dataset=oxford_pets: a small archive in the published layout, served from 127.0.0.1 or extracted."""
import hashlib
import os
import tarfile

import numpy as np
import pytest

from cnn_tf.data import load_dataset, oxford_pets
from cnn_tf.data.image_files import decode_all
from cnn_tf.errors import UserError
from conftest import colour_image, printed_accuracy, run_cli, write_image

# (breed, species, class id, the dominant colour of its images); cat breeds are capitalized, as published
BREEDS = [("Abyssinian", 1, 1, 0), ("Bengal", 1, 2, 1), ("beagle", 2, 3, 2)]
PER_BREED = 30


def write_published_layout(root):
    """images/<Breed>_<n>.jpg and annotations/{list,trainval,test}.txt; one image of each breed is a
    PNG named .jpg, as some of the real archive's are. Returns the names test.txt lists."""
    os.makedirs(root / "images")
    os.makedirs(root / "annotations")
    rows, test = [], []
    for breed, species, class_id, channel in BREEDS:
        for n in range(1, PER_BREED + 1):
            name = f"{breed}_{n}"
            image = colour_image(channel, class_id * 1000 + n, 40 + n % 7, 48)
            write_image(str(root / "images" / f"{name}.{'png' if n == 3 else 'jpg'}"), image)
            if n == 3:
                os.rename(root / "images" / f"{name}.png", root / "images" / f"{name}.jpg")
            rows.append(f"{name} {class_id} {species} {class_id}")
            (test if n % 3 == 0 else []).append(name)
    header = "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n#SPECIES: 1:Cat 2:Dog\n"
    (root / "annotations" / "list.txt").write_text(header + "\n".join(rows) + "\n")
    (root / "annotations" / "trainval.txt").write_text(
        "\n".join(r for r in rows if r.split()[0] not in test) + "\n")
    (root / "annotations" / "test.txt").write_text("\n".join(r for r in rows if r.split()[0] in test) + "\n")
    return test


def pack(root, www):
    for folder in ("images", "annotations"):
        with tarfile.open(www / f"{folder}.tar.gz", "w:gz") as tar:
            tar.add(root / folder, arcname=folder)
    return {f"{folder}.tar.gz": (hashlib.sha256((www / f"{folder}.tar.gz").read_bytes()).hexdigest(), folder)
            for folder in ("images", "annotations")}


@pytest.fixture
def published(tmp_path, http_server, monkeypatch):
    url, www = http_server
    test_names = write_published_layout(tmp_path / "layout")
    monkeypatch.setattr(oxford_pets, "ARCHIVES", pack(tmp_path / "layout", www))
    return url, tmp_path / "layout", test_names


def test_downloaded_archives_give_the_official_test_split_and_the_extracted_ones_the_same_splits(tmp_path, published):
    url, layout, test_names = published
    (tmp_path / "dl").mkdir()
    data = load_dataset("oxford_pets", data_dir=str(tmp_path / "dl"), download_mirror=url, image_size=16)
    assert data.class_names == ["Abyssinian", "Bengal", "beagle"]
    assert sorted(os.listdir(tmp_path / "dl")) == ["annotations", "annotations.tar.gz", "images", "images.tar.gz"]
    # the test split is exactly test.txt's images, in its order, the PNG named .jpg decoded by its content
    paths = [str(layout / "images" / f"{name}.jpg") for name in test_names]
    decoded, expected, errors = decode_all(paths, 16, 3)
    assert not errors and len(decoded) == len(test_names) == 30
    np.testing.assert_array_equal(data.split("test")[0], expected)
    assert data.split("test")[1].tolist() == [[b[0] for b in BREEDS].index(n.rsplit("_", 1)[0]) for n in test_names]
    assert data.size("train") + data.size("validation") == 60
    assert np.bincount(data.split("validation")[1]).tolist() == [2, 2, 2]  # 10% of each class's 20 trainval
    extracted = load_dataset("oxford_pets", data_dir=str(layout), image_size=16, download_mirror="http://127.0.0.1:9/")
    for split in ("train", "validation", "test"):
        assert extracted.fingerprint(split) == data.fingerprint(split)
    species = load_dataset("oxford_pets", data_dir=str(layout), image_size=16, label="species")
    assert species.class_names == ["cat", "dog"]
    assert np.bincount(species.split("test")[1]).tolist() == [20, 10]


def test_a_corrupt_download_is_refused_and_leaves_nothing(tmp_path, published, monkeypatch):
    url, _, _ = published
    monkeypatch.setitem(oxford_pets.ARCHIVES, "images.tar.gz", ("0" * 64, "images"))
    (tmp_path / "dl").mkdir()
    with pytest.raises(UserError, match="checksum mismatch for .*images.tar.gz"):
        load_dataset("oxford_pets", data_dir=str(tmp_path / "dl"), download_mirror=url)
    assert os.listdir(tmp_path / "dl") == []


def test_a_listed_image_that_is_missing_or_unreadable_is_named_or_skipped(tmp_path, published):
    _, layout, _ = published
    os.remove(layout / "images" / "Bengal_7.jpg")
    (layout / "images" / "beagle_8.jpg").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"Bengal_7.jpg: listed in the annotations, but not there \(and 1 more\)"):
        load_dataset("oxford_pets", data_dir=str(layout), image_size=16)
    data = load_dataset("oxford_pets", data_dir=str(layout), image_size=16, skip_bad_images=True)
    assert data.size("train") + data.size("validation") == 58


def test_a_damaged_list_is_named_with_its_line(tmp_path, published):
    _, layout, _ = published
    with open(layout / "annotations" / "test.txt", "a") as f:
        f.write("beagle_99 three 2 3\n")
    with pytest.raises(UserError, match=r"test.txt:31: 'beagle_99 three 2 3' is not"):
        load_dataset("oxford_pets", data_dir=str(layout), image_size=16)


@pytest.mark.slow
def test_training_on_the_extracted_archive_learns(tmp_path):
    write_published_layout(tmp_path / "pets")
    result = run_cli("train", "--dataset=oxford_pets", f"--data_dir={tmp_path / 'pets'}", "--model=three_conv",
                     "--image_size=32", "--batch_size=16", "--num_epochs=4", f"--train_dir={tmp_path / 'run'}",
                     "--progress=false", "--download_mirror=http://127.0.0.1:9/")
    assert result.returncode == 0, result.stderr
    assert printed_accuracy(result.stdout) >= 0.8, result.stdout  # chance: 0.33
    evaluated = run_cli("evaluate", f"--checkpoint_dir={tmp_path / 'run'}")
    assert evaluated.returncode == 0, evaluated.stderr
    assert printed_accuracy(evaluated.stdout) == pytest.approx(printed_accuracy(result.stdout), abs=1e-4)
