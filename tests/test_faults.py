"""Faults and bad input, second round: nothing hangs, encodings, damaged checkpoints and exports,
concurrent exports, cluster descriptions, silent misreads. Each one line, exit 2, nothing partial."""
import concurrent.futures
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import pytest

from cnn_tf import config
from cnn_tf.data import image_folder
from cnn_tf.distributed import cluster_from
from cnn_tf.errors import UserError
from conftest import make_folder_layout, make_images, run_cli, small_run_flags, write_image, write_slim_shards


def one_error_line(result, *expected, notes=()):
    """`notes`: what a stderr line before the error may start with (progress the command reports)."""
    lines = [line for line in result.stderr.strip().splitlines() if not (notes and line.startswith(notes))]
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def truncated_run(digits_run, tmp_path_factory):
    """A copy of the run whose checkpoint's data file lost its second half (the latest's and the best's:
    the same file, a hard link, in the run itself)."""
    train_dir = str(tmp_path_factory.mktemp("truncated") / "run")
    shutil.copytree(digits_run, train_dir)
    for folder in ("checkpoints", "checkpoints/best"):
        data = os.path.join(train_dir, folder, "model.ckpt-16.data-00000-of-00001")
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
    return train_dir


def test_a_fifo_named_like_an_image_is_named_not_read(tmp_path):
    folder = tmp_path / "pets"
    make_folder_layout(folder, per_class=4)
    os.mkfifo(folder / "cat" / "pipe.png")  # reading it would block forever
    with pytest.raises(UserError, match=r"pipe.png: not a regular file \(a FIFO, device or socket\)"):
        image_folder.load(str(folder), image_size=8)
    data = image_folder.load(str(folder), image_size=8, skip_bad_images=True)
    assert sum(data.size(name) for name in data.splits) == 12


def test_sizes_and_timeouts_past_any_sense_are_refused_before_any_work():
    with pytest.raises(UserError, match=r"--image_size must be in 1..4096 pixels \(got 100000\)"):
        config.RunConfig(image_size=100000)
    for value in (float("inf"), float("nan"), 1e300):
        with pytest.raises(UserError, match="--worker_timeout must be a positive number of seconds, at most a week"):
            config.RunConfig(worker_timeout=value)


@pytest.mark.parametrize("cluster, message", [
    ({"ps": ["127.0.0.1:2222"], "worker": [2223]}, 'TF_CONFIG: cluster.worker must be a list of "host:port" strings'),
    ({"ps": "127.0.0.1:2222", "worker": ["127.0.0.1:2223"]}, "TF_CONFIG: cluster.ps must be a list"),
    ({"ps": ["127.0.0.1"], "worker": ["127.0.0.1:2223"]}, "TF_CONFIG's cluster (ps_hosts): '127.0.0.1' is not host:port"),
])
def test_a_tf_config_of_the_wrong_shape_is_named_as_tf_config(cluster, message):
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cluster_from(config.RunConfig(), {"TF_CONFIG": tf_config})


@pytest.mark.slow
def test_text_files_in_another_encoding_are_one_line_and_a_bom_is_accepted(tmp_path, digits_run, data_dir):
    folder = tmp_path / "flat"
    folder.mkdir()
    make_folder_layout(tmp_path / "layout", per_class=3)
    rows = []
    for cls in ("bird", "cat"):
        for i, name in enumerate(sorted(os.listdir(tmp_path / "layout" / cls))[:3]):
            shutil.copy(tmp_path / "layout" / cls / name, folder / f"{cls}{i}{os.path.splitext(name)[1]}")
            rows.append(f"{cls}{i},{cls}")
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfid,label\n" + "\n".join(rows).encode() + b"\n")
    data = image_folder.load(str(folder), labels_csv=str(bom), image_size=8, validation_fraction=0, test_fraction=0)
    assert data.class_names == ["bird", "cat"] and data.size("train") == 6
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"id,label\n" + "\n".join(rows[:2]).encode() + b"\nbird2,caf\xe9\n")
    with pytest.raises(UserError, match=r"latin.csv:4: byte 0xe9 at column 10 is not UTF-8 .* save it as UTF-8"):
        image_folder.load(str(folder), labels_csv=str(latin), image_size=8)

    flagfile = tmp_path / "latin.cfg"
    flagfile.write_bytes(b"--model=lenet\n# r\xe9sum\xe9 of the run\n")
    one_error_line(run_cli("train", f"--flagfile={flagfile}"), f"{flagfile}:2: byte 0xe9 at column 4 is not UTF-8")
    run_dir = tmp_path / "latin_run"
    shutil.copytree(digits_run, run_dir)
    with open(run_dir / "flags.cfg", "ab") as f:
        f.write(b"# caf\xe9\n")
    lines = len(open(run_dir / "flags.cfg", "rb").read().splitlines())
    one_error_line(run_cli("evaluate", f"--checkpoint_dir={run_dir}"), f"flags.cfg:{lines}: byte 0xe9")


@pytest.mark.slow
def test_a_truncated_checkpoint_is_one_line_in_every_reader(truncated_run, tmp_path):
    # evaluate reads the latest checkpoint, export and predict the best one: the same truncated file
    message = (f"cannot restore checkpoint {os.path.join(truncated_run, 'checkpoints')}", "model.ckpt-16: Read less bytes "
               "than requested; it is corrupt")
    image = tmp_path / "digit.png"
    write_image(str(image), make_images([3])[0][..., None])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda args: run_cli(*args), [
            ("evaluate", f"--checkpoint_dir={truncated_run}"),
            ("export", f"--checkpoint_dir={truncated_run}", f"--export_dir={tmp_path / 'export'}"),
            ("predict", f"--checkpoint_dir={truncated_run}", str(image))]))
    for result in results:
        one_error_line(result, *message)
    assert not (tmp_path / "export").exists() or os.listdir(tmp_path / "export") == []


def test_a_truncated_warm_start_source_is_one_line_before_the_train_dir_exists(truncated_run, data_dir, tmp_path):
    train_dir = tmp_path / "tuned"
    result = run_cli("train", *small_run_flags(data_dir, str(train_dir), f"--warm_start_from={truncated_run}"))
    one_error_line(result, "--warm_start_from: cannot read", "model.ckpt-16", "corrupt or truncated")
    assert not train_dir.exists()


@pytest.mark.slow
def test_a_checkpoint_path_may_name_any_of_its_files_and_a_wrong_one_is_one_line(digits_run, tmp_path):
    train_dir = str(shutil.copytree(digits_run, tmp_path / "run"))  # evaluate writes its report into the run
    checkpoint = os.path.join(train_dir, "checkpoints", "model.ckpt-16")
    runs = [("evaluate", f"--checkpoint_dir={train_dir}", f"--checkpoint_path={given}")
            for given in (checkpoint + ".index", checkpoint + ".meta", checkpoint + ".data-00000-of-00001")]
    runs += [("evaluate", f"--checkpoint_dir={train_dir}", f"--checkpoint_path={checkpoint[:-3]}"),
             ("export", f"--checkpoint_dir={train_dir}", f"--export_dir={tmp_path / 'e'}",
              f"--checkpoint_path={checkpoint[:-2]}-7"),
             ("evaluate", f"--checkpoint_dir={os.path.join(train_dir, 'flags.cfg')}"),
             ("export", f"--checkpoint_dir={train_dir}", f"--export_dir={tmp_path / 'e'}",
              f"--checkpoint_path={checkpoint}.index")]  # it gave ValueError
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        *evaluated, no_step, missing, a_file, exported = pool.map(lambda args: run_cli(*args), runs)
    for result in evaluated:
        assert result.returncode == 0 and f"checkpoint: {checkpoint} (global step 16)" in result.stdout, result.stderr
    one_error_line(no_step, "its name does not end in -<global step>")
    one_error_line(missing, "no complete checkpoint")
    one_error_line(a_file, "is a file, not a train dir")
    assert exported.returncode == 0 and os.listdir(tmp_path / "e") == ["16"], exported.stderr


@pytest.mark.slow
def test_damaged_or_foreign_saved_models_are_one_line_and_two_exports_at_once_one_wins(digits_run, tmp_path):
    export_dir = tmp_path / "export"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_cli("export", f"--checkpoint_dir={digits_run}",
                                                  f"--export_dir={export_dir}"), range(2)))
    assert sorted(r.returncode for r in results) == [0, 2], [r.stderr for r in results]
    one_error_line(next(r for r in results if r.returncode), f"{export_dir}/16 already exists")
    assert os.listdir(export_dir) == ["16"]  # no staging folder left behind
    image = tmp_path / "digit.png"
    write_image(str(image), make_images([3])[0][..., None])
    assert run_cli("predict", f"--saved_model={export_dir}", str(image)).returncode == 0

    damaged = tmp_path / "damaged"
    shutil.copytree(export_dir, damaged)
    pb = damaged / "16" / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:2000])
    one_error_line(run_cli("predict", f"--saved_model={damaged}", str(image)), "cannot load the SavedModel in",
                   "export the checkpoint again")
    foreign = tmp_path / "foreign"
    shutil.copytree(export_dir, foreign)
    os.remove(foreign / "16" / "assets" / "class_names.txt")
    one_error_line(run_cli("predict", f"--saved_model={foreign}", str(image)),
                   "was not exported by cnn_tf (it has no assets/class_names.txt)")
    shutil.rmtree(foreign / "16" / "variables")
    one_error_line(run_cli("predict", f"--saved_model={foreign}", str(image)), "was not exported by cnn_tf")


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of `size` at tmp_path/disk (root only), unmounted after the test."""
    mounted = []

    def mount(size, read_only_copy_of=None):
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                                               capture_output=True).returncode:
            pytest.skip("needs root to mount a small tmpfs")
        mounted.append(point)
        if read_only_copy_of:
            shutil.copytree(read_only_copy_of, point / "run")
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        else:  # full: one file takes every block
            with open(point / "filler", "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], capture_output=True, timeout=60)


def test_a_full_disk_is_one_line_and_leaves_nothing_partial(small_disk, digits_run, data_dir):
    disk = small_disk("1m")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        train, export, convert = pool.map(lambda args: run_cli(*args), [
            ("train", *small_run_flags(data_dir, str(disk / "run"), "--num_epochs=1")),
            ("export", f"--checkpoint_dir={digits_run}", f"--export_dir={disk / 'export'}"),
            ("data.convert", "--dataset=mnist", f"--data_dir={data_dir}", "--validation_size=200",
             f"--output_dir={disk / 'records'}")])
    one_error_line(train, "No space left on device", "free some space")
    one_error_line(export, "No space left on device")
    one_error_line(convert, "No space left on device", "free some space")
    assert os.listdir(disk) == ["filler"]  # no train dir, export dir or *.partial left


def test_evaluate_on_a_read_only_train_dir_prints_its_report_and_warns(small_disk, digits_run):
    disk = small_disk("300m", read_only_copy_of=digits_run)
    result = run_cli("evaluate", f"--checkpoint_dir={disk / 'run'}")
    assert result.returncode == 0, result.stderr
    assert "test accuracy:" in result.stdout and "wrote" not in result.stdout
    assert "warning: cannot write" in result.stderr and "the result is printed, not saved" in result.stderr


def png_bomb(path, side=20000):
    """A valid 8-bit grey PNG of side x side zeros: 0.4 MB on disk, 400 MB decoded (more in float32)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(b"\0" * (side + 1)) for _ in range(side)) + packer.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)) +
                chunk(b"IDAT", body) + chunk(b"IEND", b""))


@pytest.mark.slow
def test_an_image_of_too_many_pixels_is_refused_before_it_is_decoded(tmp_path, digits_run):
    folder = tmp_path / "pets"
    make_folder_layout(folder, per_class=4)
    bomb = folder / "cat" / "bomb.png"
    png_bomb(bomb)
    message = "20000x20000 is 400,000,000 pixels, over the limit of 89,478,485: not decoded"
    with pytest.raises(UserError, match=f"bomb.png: {message}"):
        image_folder.load(str(folder), image_size=8)
    assert sum(image_folder.load(str(folder), image_size=8, skip_bad_images=True).size(n)
               for n in ("train", "validation", "test")) == 12
    with pytest.raises(UserError, match=r"24x20 is 480 pixels, over the limit of 400: .*--max_image_pixels raises"):
        image_folder.load(str(folder), image_size=8, max_image_pixels=400)
    one_error_line(run_cli("data.convert", "--dataset=image_folder", f"--data_dir={folder}",
                           f"--output_dir={tmp_path / 'records'}"), message)
    assert not os.path.exists(tmp_path / "records") and not os.path.exists(f"{tmp_path / 'records'}.partial")

    digit = tmp_path / "digit.png"
    write_image(str(digit), make_images([3])[0][..., None])
    result = run_cli("predict", f"--checkpoint_dir={digits_run}", str(bomb), str(digit))
    assert result.returncode == 2 and result.stderr.strip().startswith(f"error: {bomb}: {message}"), result.stderr
    assert str(digit) in result.stdout  # the other file is classified
    # The export's serving_default checks the header in the graph, before decoding what it is sent.
    assert run_cli("export", f"--checkpoint_dir={digits_run}", f"--export_dir={tmp_path / 'export'}").returncode == 0
    script = ("import sys, tensorflow as tf\n"
              "m = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
              "try:\n"
              "    m(images=tf.constant([open(sys.argv[2], 'rb').read()]))\n"
              "except tf.errors.InvalidArgumentError as e:\n"
              "    print('refused:', e.message.replace(chr(10), ' '))\n")
    loaded = subprocess.run([sys.executable, "-c", script, str(tmp_path / "export" / "16"), str(bomb)],
                            capture_output=True, text=True, timeout=300)
    assert "refused:" in loaded.stdout and "an image has more than 89,478,485 pixels: not decoded" in loaded.stdout, \
        loaded.stderr[-2000:]


def test_a_bomb_in_tf_slim_shards_is_refused_before_it_is_decoded(tmp_path):
    # Shards written elsewhere were never checked by a conversion: training checks each header.
    bomb = tmp_path / "bomb.png"
    png_bomb(bomb)
    labels = list(range(10)) * 4
    pngs = [tf_png(image) for image in make_images(labels, seed=1)[..., None]]
    slim = tmp_path / "slim"
    slim.mkdir()
    (slim / "labels.txt").write_text("".join(f"{k}:digit {k}\n" for k in range(10)))
    write_slim_shards(slim, None, labels + [3], "train", encoded=pngs + [bomb.read_bytes()])
    train_dir = tmp_path / "run"
    limit = "an image has more than 89,478,485 pixels: not decoded"
    one_error_line(run_cli("train", "--dataset=tfrecord", f"--data_dir={slim}", f"--train_dir={train_dir}",
                           "--batch_size=41", "--num_epochs=1", "--progress=false"), limit, "--max_image_pixels",
                   notes=COUNTING)
    assert not os.path.exists(train_dir / "checkpoints" / "checkpoint")  # no step was taken, none saved
    # The first record is read for the image shape: the same check, before anything is trained.
    write_slim_shards(slim, None, [3] + labels, "train", encoded=[bomb.read_bytes()] + pngs)
    one_error_line(run_cli("train", "--dataset=tfrecord", f"--data_dir={slim}", f"--train_dir={tmp_path / 'run2'}",
                           "--progress=false"), f"a record of {slim}'s shards cannot be used: {limit}", notes=COUNTING)


COUNTING = "counting the records of "  # what loading TF-Slim's shards reports


def tf_png(image):
    import tensorflow as tf

    return tf.io.encode_png(image).numpy()


def palette_bmp(path, indices, palette, bits):
    """A BMP of `bits` (1, 4 or 8) bits per pixel: `indices` [h, w] into `palette` [n, 3] (RGB), bottom-up rows."""
    height, width = indices.shape
    row_bytes = (bits * width + 31) // 32 * 4
    per_byte = 8 // bits
    rows = []
    for y in range(height - 1, -1, -1):
        values = list(indices[y]) + [0] * (-width % per_byte)
        packed = bytes(sum(int(v) << (8 - bits * (k + 1)) for k, v in enumerate(values[i:i + per_byte]))
                       for i in range(0, len(values), per_byte))
        rows.append(packed.ljust(row_bytes, b"\0"))
    table = b"".join(bytes([b, g, r, 0]) for r, g, b in palette)
    offset = 54 + len(table)
    pixels = b"".join(rows)
    with open(path, "wb") as f:
        f.write(struct.pack("<2sIHHI", b"BM", offset + len(pixels), 0, 0, offset) +
                struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, len(pixels), 2835, 2835, len(palette), 0) +
                table + pixels)


@pytest.mark.parametrize("bits", [1, 4, 8])
def test_a_palette_bmp_is_decoded_through_its_colour_table(tmp_path, bits):
    import numpy as np
    import tensorflow as tf
    from cnn_tf.data.preprocess import decode_as_found

    rng = np.random.default_rng(bits)
    palette = rng.integers(0, 256, (2 ** bits, 3))
    indices = rng.integers(0, 2 ** bits, (9, 13))
    palette_bmp(tmp_path / "p.bmp", indices, palette, bits)
    decoded = decode_as_found(tf.constant((tmp_path / "p.bmp").read_bytes()), 3).numpy()
    np.testing.assert_array_equal(decoded, palette[indices])  # tf.io.decode_bmp gives the indices as grey



def test_a_gzip_idx_bomb_is_refused_from_its_header_and_a_fifo_flagfile_is_not_read(tmp_path):
    import gzip

    import numpy as np
    from cnn_tf.data.idx import read_idx

    bomb = tmp_path / "train-images-idx3-ubyte.gz"  # 10 MB of zeros compress to 10 kB; it declares 100 GB
    bomb.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + np.array([100000, 1000, 1000], ">u4").tobytes() + bytes(10 ** 7)))
    with pytest.raises(UserError, match=r"declares \(100000, 1000, 1000\), 100,000,000,016 bytes decoded, over the limit"):
        read_idx(str(bomb))
    fifo = tmp_path / "run.cfg"
    os.mkfifo(fifo)
    one_error_line(run_cli("train", f"--flagfile={fifo}", timeout=60), f"{fifo} is not a regular file")


def test_two_conversions_into_one_place_at_once_one_wins_and_the_other_is_one_line(tmp_path):
    make_folder_layout(tmp_path / "pets", per_class=40)
    out = tmp_path / "records"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_cli("data.convert", "--dataset=image_folder",
                                                  f"--data_dir={tmp_path / 'pets'}", f"--output_dir={out}"), range(2)))
    assert sorted(r.returncode for r in results) == [0, 2], [r.stderr for r in results]
    loser = next(r for r in results if r.returncode)
    line = loser.stderr.strip().splitlines()[-1]
    assert ("another conversion (pid" in line and "is writing" in line) or "exists; remove it" in line, line
    assert sorted(os.listdir(tmp_path)) == ["pets", "records"]  # the winner's folder; no staging, no lock left
    assert json.load(open(out / "dataset.json"))["splits"]["train"]["size"] == 96


def test_the_in_graph_pixel_check_reads_each_format_of_a_mixed_batch():
    # One check for a whole batch (records, serving_default): each file's header by its own format.
    import tensorflow as tf

    from cnn_tf.data.preprocess import bounded

    image = make_images([1])[0][..., None]
    png, jpeg = tf.io.encode_png(image).numpy(), tf.io.encode_jpeg(image).numpy()
    sof = jpeg.index(b"\xff\xc0")
    huge_jpeg = jpeg[:sof + 5] + struct.pack(">HH", 20000, 20000) + jpeg[sof + 9:]  # its frame's height, width
    bmp = struct.pack("<2sIHHIIiiHH", b"BM", 0, 0, 0, 54, 40, 28, 28, 1, 24)
    tall_bmp = struct.pack("<2sIHHIIiiHH", b"BM", 0, 0, 0, 54, 40, 30000, -30000, 1, 24)  # top-down rows

    def pixels_ok(files, limit=28 * 28):
        try:
            bounded(tf.constant(files, tf.string), limit).numpy()
            return True
        except tf.errors.InvalidArgumentError as e:
            assert f"an image has more than {limit:,} pixels: not decoded" in e.message
            return False

    assert pixels_ok([png, jpeg, bmp, b"", b"not an image"])
    assert not pixels_ok([png, bmp, huge_jpeg]) and not pixels_ok([tall_bmp, jpeg]) and not pixels_ok(png, 100)
    assert pixels_ok([]) and pixels_ok(jpeg)
