"""python -m cnn_tf.data.fetch --weights=NAME: a published checkpoint archive from a 127.0.0.1 server."""
import hashlib
import io
import os
import tarfile

from conftest import run_cli


def write_archive(path, name, extra=()):
    """A .tgz laid out as slim's: ./NAME.ckpt.{data-00000-of-00001,index,meta} at the top, and more."""
    with tarfile.open(path, "w:gz") as tar:
        for member, data in [(f"./{name}.ckpt.data-00000-of-00001", b"\0" * 64), (f"./{name}.ckpt.index", b"i"),
                             (f"./{name}.ckpt.meta", b"m"), (f"./{name}_info.txt", b"info"), *extra]:
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_weights_are_downloaded_unpacked_and_their_digest_printed_then_pinned(tmp_path, http_server):
    url, www = http_server
    sha256 = write_archive(www / "mobilenet_v1_0.25_128.tgz", "mobilenet_v1_0.25_128")
    out = tmp_path / "weights"
    result = run_cli("data.fetch", "--weights=mobilenet_v1_0.25_128", f"--data_dir={out}", f"--download_mirror={url}")
    assert result.returncode == 0, result.stderr
    prefix = out / "mobilenet_v1_0.25_128" / "mobilenet_v1_0.25_128.ckpt"
    assert result.stdout.splitlines() == [f"checkpoint: {prefix}", f"sha256: {sha256}"]
    assert f"--sha256={sha256}" in result.stderr
    assert sorted(os.listdir(out)) == ["mobilenet_v1_0.25_128"]  # no archive, no staging folder left
    assert os.path.isfile(str(prefix) + ".index")
    # there already: nothing downloaded (the server is not asked), the same checkpoint printed
    again = run_cli("data.fetch", "--weights=mobilenet_v1_0.25_128", f"--data_dir={out}",
                    "--download_mirror=http://127.0.0.1:9/")
    assert again.returncode == 0 and again.stdout.splitlines() == [f"checkpoint: {prefix}"], again.stderr


def test_a_pinned_digest_that_differs_or_an_unsafe_archive_is_refused_and_leaves_nothing(tmp_path, http_server):
    url, www = http_server
    write_archive(www / "mobilenet_v1_1.0_224.tgz", "mobilenet_v1_1.0_224")
    out = tmp_path / "weights"
    result = run_cli("data.fetch", "--weights=mobilenet_v1_1.0_224", f"--data_dir={out}", f"--download_mirror={url}",
                     f"--sha256={'0' * 64}")
    assert result.returncode == 2 and "checksum mismatch" in result.stderr and "Traceback" not in result.stderr
    assert os.listdir(out) == []
    write_archive(www / "resnet_v1_50_2016_08_28.tar.gz", "resnet_v1_50", extra=[("../escape.txt", b"x")])
    result = run_cli("data.fetch", "--weights=resnet_v1_50", f"--data_dir={out}", f"--download_mirror={url}")
    assert result.returncode == 2 and "would be written outside" in result.stderr, result.stderr
    assert os.listdir(out) == [] and not os.path.exists(tmp_path / "escape.txt")
    result = run_cli("data.fetch", "--weights=mobilenet_v9", f"--data_dir={out}")
    assert result.returncode == 2 and "--weights" in result.stderr and "mobilenet_v1_1.0_224" in result.stderr
