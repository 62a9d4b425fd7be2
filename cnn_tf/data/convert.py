"""Convert a dataset once into sharded TFRecord files, to stream it: `python -m cnn_tf.data.convert
--dataset=NAME [dataset flags] --output_dir=D [--num_shards=N]`, then train with
`--dataset=tfrecord --data_dir=D` (the layout of D: cnn_tf.data.records).

Every split the dataset flags give (train, validation, test, exactly as training in memory would
split them) becomes N shards of tf.train.Examples. Array datasets (mnist, fashion_mnist, cifar10)
are stored as lossless PNGs; an image folder's files are stored as found (their bytes, not their
decoded pixels) and read one by one, in two passes: the first decodes each image once for its size,
whether it is grey and its pixel sums (for --normalization=mean), the second copies the bytes. The
conversion is written into D.partial, renamed to D when dataset.json is written: an interrupted
one leaves nothing that looks complete, and the next conversion starts that folder afresh.
"""
import dataclasses
import json
import os
import shutil
import time
import typing

import numpy as np
import tensorflow as tf
import tqdm
from absl import flags

from cnn_tf import cli, config, log, options
from cnn_tf.data import fingerprint, image_files, image_folder, load_dataset_for, records
from cnn_tf.data.preprocess import decode_as_found, resize
from cnn_tf.errors import UserError
from cnn_tf.lock import FileLock
from cnn_tf.options import CONVERSION, Options, option, positive

FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp", ".gif": "gif"}


@dataclasses.dataclass(frozen=True)
class ConvertOptions(Options):
    output_dir: typing.Optional[str] = option(None, "The folder to write (it must not exist): shards, labels.txt "
                                              "and dataset.json.", CONVERSION, saved=False)
    num_shards: int = option(4, "TFRecord files per split (fewer for a split with fewer images).", CONVERSION,
                             check=positive, saved=False)


# The RunConfig flags that say which dataset and how it is split: what the converter reads.
CONVERT_DATA_FLAGS = ("dataset", "data_dir", "validation_size", "labels_csv", "image_size", "class_names", "channels",
                      "validation_fraction", "test_fraction", "skip_bad_images", "download_mirror", "seed",
                      "max_image_pixels")


def shard_ranges(size, num_shards):
    """[(start, end)] of each shard of a split of `size` records: contiguous, sizes differing by at most 1."""
    n = min(num_shards, size)
    return [(k * size // n, (k + 1) * size // n) for k in range(n)]


def write_split(folder, name, examples, size, num_shards, progress):
    """Writes `examples` (an iterable of `size` tf.train.Examples) as shards of split `name`; returns
    its dataset.json entry."""
    shards, examples = [], iter(examples)
    ranges = shard_ranges(size, num_shards)
    for k, (start, end) in enumerate(ranges):
        file = f"{name}-{k:05d}-of-{len(ranges):05d}.tfrecord"
        path = os.path.join(folder, file)
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(end - start):
                writer.write(next(examples).SerializeToString())
                progress.update(1)
        shards.append({"file": file, "records": end - start, "bytes": tf.io.gfile.stat(path).length,
                       "sha256": records.sha256(path)})
    return {"size": size, "shards": shards}


def _png_encoder(image_shape):
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.uint8, [None, *image_shape])
        encoded = tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string, parallel_iterations=32)
    sess = tf.compat.v1.Session(graph=graph)
    return lambda batch: sess.run(encoded, {images: batch})


def convert_arrays(cfg, folder, num_shards):
    """mnist, fashion_mnist, cifar10: loaded and split as training does, each image a PNG."""
    data = load_dataset_for(cfg)
    encode = _png_encoder(data.image_shape)
    height, width, _ = data.image_shape
    splits = {}
    total = sum(data.size(name) for name in data.splits)
    with tqdm.tqdm(total=total, unit="img", desc="writing", disable=None) as progress:
        for name, (images, labels) in data.splits.items():
            def examples():
                for start in range(0, len(images), 1000):
                    for i, png in enumerate(encode(images[start:start + 1000]), start):
                        yield records.example(png, "png", labels[i], height, width, f"{name}/{i}")
            splits[name] = write_split(folder, name, examples(), len(images), num_shards, progress)
    return dict(dataset=cfg.dataset, source=data.source, class_names=list(data.class_names),
                image_shape=list(data.image_shape), pixel_mean=[float(v) for v in data.pixel_mean], splits=splits)


def _scan(paths, image_size, channels, progress):
    """The first pass over an image folder, file by file: per image its original height and width,
    whether it is grey, and its per-channel pixel sums at `image_size` ([height, width]); and
    {index: error} of the files that do not decode."""
    graph = tf.Graph()
    with graph.as_default():
        def scan(index, path):
            image = decode_as_found(tf.io.read_file(path), channels)
            shape = tf.shape(image)
            pixels = resize(image, *image_size, channels)
            grey = (tf.reduce_all(tf.equal(pixels[..., 0], pixels[..., -1])) &
                    tf.reduce_all(tf.equal(pixels[..., 0], pixels[..., min(1, channels - 1)])))
            return index, shape[0], shape[1], grey, tf.reduce_sum(tf.cast(pixels, tf.float64), [0, 1])

        dataset = (tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), list(paths)))
                   .map(scan, num_parallel_calls=os.cpu_count() or 2, deterministic=True)
                   .ignore_errors()
                   .batch(256))
        next_batch = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
        one_path = tf.compat.v1.placeholder(tf.string, [])
        one = decode_as_found(tf.io.read_file(one_path), channels)
    parts = []
    with tf.compat.v1.Session(graph=graph) as sess:
        while True:
            try:
                batch = sess.run(next_batch)
            except tf.errors.OutOfRangeError:
                break
            parts.append(batch)
            progress.update(len(batch[0]))
        found = np.concatenate([p[0] for p in parts]) if parts else np.zeros([0], np.int64)
        errors = image_files.decode_errors(sess, one, one_path, paths, found)
    columns = [np.concatenate([p[k] for p in parts]) if parts else np.zeros([0]) for k in range(5)]
    return columns, errors


def _first_size(paths):
    graph = tf.Graph()
    with graph.as_default():
        path = tf.compat.v1.placeholder(tf.string, [])
        shape = tf.shape(decode_as_found(tf.io.read_file(path), 3))
    with tf.compat.v1.Session(graph=graph) as sess:
        for p in paths:
            try:
                return [int(d) for d in sess.run(shape, {path: p})[:2]]
            except tf.errors.OpError:
                continue
    raise UserError("no readable image in the folder")


def convert_folder(cfg, folder, num_shards):
    """An image folder, file by file (see the module docstring)."""
    found, classes, index, bad = image_folder.labelled_records(cfg.data_dir, cfg.labels_csv, cfg.class_names)
    oversize = {r.path: problem for r in found if (problem := fingerprint.oversize(r.path, cfg.max_image_pixels))}
    bad += [f"{path}: {problem}" for path, problem in oversize.items()]
    found = [r for r in found if r.path not in oversize]  # never decoded
    paths = [r.path for r in found]
    image_files.warn_rotated(paths)
    size = [cfg.image_size] * 2 if cfg.image_size else _first_size(paths)
    with tqdm.tqdm(total=len(paths), unit="img", desc="reading", disable=None) as progress:
        (indices, heights, widths, grey, sums), errors = _scan(paths, size, cfg.channels or 3, progress)
    bad += [image_files.unreadable(paths[i], message) for i, message in errors.items()]
    image_folder.report_bad(bad, cfg.skip_bad_images)
    if len(indices) == 0:
        raise UserError(f"no usable images in {cfg.data_dir}")
    channels = cfg.channels or (1 if grey.all() else 3)
    labels = np.array([index[found[i].label] for i in indices], np.int64)
    # The same splits as the folder loaded in memory (image_folder.load) with these flags.
    parts = image_folder.split_indices(labels, len(classes), cfg.validation_fraction, cfg.test_fraction, cfg.seed)
    train = parts["train"]
    mean = sums[train][:, :channels].sum(axis=0) / max(1, len(train) * size[0] * size[1]) / 255.0
    splits = {}
    with tqdm.tqdm(total=len(indices), unit="img", desc="writing", disable=None) as progress:
        for name, members in parts.items():
            def examples():
                for j in members:
                    record = found[indices[j]]
                    with open(record.path, "rb") as f:
                        contents = f.read()
                    yield records.example(contents, FORMATS[os.path.splitext(record.path)[1].lower()], labels[j],
                                          heights[j], widths[j], os.path.relpath(record.path, cfg.data_dir))
            splits[name] = write_split(folder, name, examples(), len(members), num_shards, progress)
    source = f"{cfg.data_dir} with labels from {cfg.labels_csv}" if cfg.labels_csv else cfg.data_dir
    return dict(dataset="image_folder", source=source, class_names=list(classes), image_shape=[*size, channels],
                pixel_mean=[float(v) for v in mean], splits=splits)


def convert(cfg, output_dir, num_shards=4):
    """Converts the dataset of run configuration `cfg` into `output_dir`; returns its dataset.json."""
    if cfg.dataset == "tfrecord":
        raise UserError("--dataset=tfrecord is already converted; name the dataset to convert "
                        "(fashion_mnist, mnist, cifar10, image_folder)")
    if not output_dir:
        raise UserError("--output_dir is required: the folder the shards go to")
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir):
        raise UserError(f"--output_dir={output_dir} exists; remove it or choose another (a conversion never "
                        "overwrites)")
    staging = output_dir + records.STAGING
    # Beside the staging folder, not in it (it is renamed into place): a second conversion into the same
    # place is refused, and a staging folder nobody holds is provably left by one that died.
    lock = FileLock(staging + ".lock", "another conversion ({holder}) is writing " + staging + "; wait for it to "
                    "finish, or choose another --output_dir")
    if os.path.isdir(os.path.dirname(output_dir)):
        lock.acquire()
    try:
        return _convert_locked(cfg, output_dir, staging, num_shards)
    finally:
        lock.release()


def _convert_locked(cfg, output_dir, staging, num_shards):
    if os.path.exists(output_dir):  # finished by a conversion that held the lock before this one
        raise UserError(f"--output_dir={output_dir} exists; remove it or choose another (a conversion never "
                        "overwrites)")
    if os.path.exists(staging):
        log.info(f"removing {staging}, left by a conversion that did not finish")
        shutil.rmtree(staging)
    started = time.perf_counter()
    try:
        os.makedirs(staging)
    except OSError as e:
        raise UserError(f"cannot create {staging}: {e.strerror}; choose another --output_dir") from e
    try:
        if cfg.dataset == "image_folder":
            meta = convert_folder(cfg, staging, num_shards)
        else:
            meta = convert_arrays(cfg, staging, num_shards)
        with open(os.path.join(staging, records.LABELS), "w") as f:  # TF-Slim's label file
            f.writelines(f"{k}:{name}\n" for k, name in enumerate(meta["class_names"]))
        meta = {"format": records.FORMAT, **meta}
        with open(os.path.join(staging, records.METADATA), "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        os.rename(staging, output_dir)
    except BaseException:  # a full disk, a bad image, Ctrl-C: this process made the staging folder, it goes
        shutil.rmtree(staging, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    total = sum(s["size"] for s in meta["splits"].values())
    print(f"wrote {output_dir}: " + " · ".join(f"{name} {s['size']:,} in {len(s['shards'])} shards"
                                               for name, s in meta["splits"].items()) +
          f"; {total:,} images in {seconds:.1f} s ({total / max(seconds, 1e-9):.0f} img/s)")
    return meta


FIELDS = [f for f in dataclasses.fields(config.RunConfig) if f.name in CONVERT_DATA_FLAGS]


def main(argv):
    cli.no_arguments(argv)
    cfg = options.from_flags(config.RunConfig, flags.FLAGS, FIELDS).resolved()
    opts = options.from_flags(ConvertOptions, flags.FLAGS)
    convert(cfg, opts.output_dir, opts.num_shards)


def run():
    cli.run(main, "python -m cnn_tf.data.convert --dataset=NAME [dataset flags] --output_dir=D [--num_shards=N]",
            [*dataclasses.fields(ConvertOptions), *FIELDS])


if __name__ == "__main__":
    run()
