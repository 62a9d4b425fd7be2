"""CIFAR-10 end to end against a local HTTP server: download, checksum, safe extraction, load, train."""
import hashlib
import io
import os
import tarfile

import numpy as np
import pytest

from cnn_tf import config
from cnn_tf.data import cifar10, load_dataset, mnist
from cnn_tf.data.archive import safe_extract
from cnn_tf.errors import UserError
from conftest import make_batch


def make_archive(path, per_batch=60, test=50, extra_members=()):
    """A small archive in the real binary layout; returns {file: (images, labels)}."""
    content = {}
    with tarfile.open(path, "w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for i, name in enumerate(cifar10.TRAIN_FILES + [cifar10.TEST_FILE]):
            data, images, labels = make_batch(test if name == cifar10.TEST_FILE else per_batch, seed=i)
            add(f"{cifar10.FOLDER}/{name}", data)
            content[name] = (images, labels)
        add(f"{cifar10.FOLDER}/batches.meta.txt", "\n".join(cifar10.CLASS_NAMES).encode())
        for member in extra_members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return content


@pytest.fixture
def served(tmp_path, http_server, monkeypatch):
    url, www = http_server
    content = make_archive(www / cifar10.ARCHIVE)
    monkeypatch.setattr(cifar10, "SHA256", hashlib.sha256((www / cifar10.ARCHIVE).read_bytes()).hexdigest())
    monkeypatch.setattr(mnist, "SYSTEM_DIR", str(tmp_path / "no-system"))
    monkeypatch.setattr(cifar10, "SYSTEM_DIR", str(tmp_path / "no-system"))
    return url, www, content


def test_download_checksum_extract_and_load(tmp_path, served):
    url, _, content = served
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data = load_dataset("cifar10", data_dir=str(data_dir), validation_size=50, download_mirror=url)
    x, y = data.split("train")
    assert x.shape == (250, 32, 32, 3) and data.split("validation")[0].shape == (50, 32, 32, 3)
    np.testing.assert_array_equal(x[:60], content["data_batch_1.bin"][0])  # RGB planes -> HWC
    np.testing.assert_array_equal(y[:60], content["data_batch_1.bin"][1])
    np.testing.assert_array_equal(data.split("test")[0], content["test_batch.bin"][0])
    assert data.class_names[0] == "airplane" and data.image_shape == (32, 32, 3)
    assert sorted(os.listdir(data_dir)) == sorted([cifar10.ARCHIVE, cifar10.FOLDER])  # no staging left
    # a second load finds the extracted folder and downloads nothing
    os.remove(data_dir / cifar10.ARCHIVE)
    assert len(load_dataset("cifar10", data_dir=str(data_dir), validation_size=50).split("test")[0]) == 50


def test_checksum_mismatch_is_refused(tmp_path, served, monkeypatch):
    url, _, _ = served
    monkeypatch.setattr(cifar10, "SHA256", "0" * 64)
    (tmp_path / "data").mkdir()
    with pytest.raises(UserError, match="checksum mismatch"):
        load_dataset("cifar10", data_dir=str(tmp_path / "data"), download_mirror=url)
    assert os.listdir(tmp_path / "data") == []


@pytest.mark.parametrize("member", [
    tarfile.TarInfo("../escape.bin"),
    tarfile.TarInfo("/tmp/absolute.bin"),
])
def test_archive_members_outside_the_target_are_refused(tmp_path, member):
    member.size = 4
    archive = tmp_path / "evil.tar.gz"
    make_archive(archive, per_batch=2, test=2, extra_members=[member])
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError, match="outside"):
        safe_extract(str(archive), str(tmp_path / "out"))
    assert not (tmp_path / "escape.bin").exists() and os.listdir(tmp_path / "out") == []


def test_archive_links_are_refused(tmp_path):
    link = tarfile.TarInfo(f"{cifar10.FOLDER}/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    archive = tmp_path / "evil.tar.gz"
    make_archive(archive, per_batch=2, test=2, extra_members=[link])
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError, match="link"):
        safe_extract(str(archive), str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == []


def test_truncated_batch_file_is_named(tmp_path):
    folder = tmp_path / cifar10.FOLDER
    folder.mkdir()
    for name in cifar10.TRAIN_FILES + [cifar10.TEST_FILE]:
        (folder / name).write_bytes(make_batch(10, 0)[0])
    (folder / "data_batch_3.bin").write_bytes(make_batch(10, 0)[0][:-5])
    with pytest.raises(UserError, match="data_batch_3.bin is truncated"):
        load_dataset("cifar10", data_dir=str(tmp_path), validation_size=5)


def test_train_one_epoch_on_downloaded_cifar10(tmp_path, served):
    from cnn_tf import train

    url, _, _ = served
    cfg = config.RunConfig(dataset="cifar10", model="three_conv", data_dir=f"{tmp_path}/data",
                           train_dir=f"{tmp_path}/run", download_mirror=url, validation_size=50, batch_size=25,
                           num_epochs=1, progress=False)
    os.makedirs(tmp_path / "data")
    metrics = train.train(cfg.resolved()).metrics
    assert metrics["count"] == 50
    assert os.path.exists(tmp_path / "run" / "checkpoints" / "model.ckpt-10.index")
