"""Your own images: a folder with one sub-folder per class, or a folder of images plus a labels CSV.

    data_dir/cats/001.jpg, data_dir/dogs/002.png, ...         (class names: the folder names)
    data_dir/1.png, data_dir/2.png, ... + labels.csv "id,label" (class names: the CSV's labels)

Images are matched to CSV rows by id (the file name without its extension), never by listing
order: a glob's order is not the CSV's. Every image is decoded with tf.io (PNG, JPEG, BMP, GIF),
made RGB, or grayscale with `channels=1` (by default when every image is grey), and resized to a
square `image_size`. The splits are drawn per class from the seed, so
the same flags always give the same train / validation / test images; once a run has started, its
manifest (cnn_tf.manifest) records every file's digest and split, and a resume reads the splits from
there after checking that no file was added, removed or changed.
"""
import collections
import csv
import io
import os
import unicodedata

import numpy as np
import tensorflow as tf

from cnn_tf import log
from cnn_tf.data.dataset import Dataset, register_dataset
from cnn_tf.data.fingerprint import changes, digest, inspect, relative, split_fingerprint
from cnn_tf.data.image_files import decode_all, unreadable
from cnn_tf.data.preprocess import EXTENSIONS, decode
from cnn_tf.errors import UserError
from cnn_tf.registry import MODELS
from cnn_tf.textfile import read_text

Record = collections.namedtuple("Record", "path label")


def _images_in(directory, bad):
    """{id: path} of the image files directly in `directory` (other files are not images: ignored). An
    image's name on something that is not a regular file (a FIFO, whose reading blocks forever, a
    device, a socket) is a bad image, added to `bad`."""
    found = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        stem, ext = os.path.splitext(name)
        if name.startswith(".") or ext.lower() not in EXTENSIONS or os.path.isdir(path):
            continue
        if not os.path.isfile(path):
            bad.append(f"{path}: not a regular file (a FIFO, device or socket): not read")
            continue
        if stem in found:
            raise UserError(f"{found[stem]} and {path} have the same id {stem!r}; rename one")
        found[stem] = path
    return found


def _folder_records(data_dir):
    classes = sorted(n for n in os.listdir(data_dir)
                     if not n.startswith(".") and os.path.isdir(os.path.join(data_dir, n)))
    if not classes:
        raise UserError(f"{data_dir} has no class sub-folders; put each class's images in a folder named "
                        "after it, or give a labels CSV with --labels_csv")
    records, bad = [], []
    for name in classes:
        paths = _images_in(os.path.join(data_dir, name), bad)
        if not paths:
            raise UserError(f"class folder {os.path.join(data_dir, name)} holds no "
                            f"{'/'.join(e[1:] for e in EXTENSIONS)} images")
        records += [Record(path, name) for path in paths.values()]
    return records, classes, bad


def _csv_records(data_dir, labels_csv):
    if not os.path.isfile(labels_csv):
        raise UserError(f"--labels_csv={labels_csv} is not a file")
    records, missing, seen = [], [], {}
    files = _images_in(data_dir, missing)
    with io.StringIO(read_text(labels_csv), newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"id", "label"} <= {c.strip() for c in reader.fieldnames}:
            raise UserError(f"{labels_csv} must start with a header line naming its columns id,label "
                            f"(it has {reader.fieldnames})")
        for row in reader:
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            line = reader.line_num
            image_id = os.path.splitext(row["id"])[0] if row["id"] not in files else row["id"]
            if image_id in seen:
                raise UserError(f"{labels_csv}:{line}: id {image_id!r} is listed again (first on line "
                                f"{seen[image_id]})")
            seen[image_id] = line
            if not row["label"]:
                raise UserError(f"{labels_csv}:{line}: id {image_id!r} has no label")
            if image_id not in files:
                missing.append(f"{labels_csv}:{line}: id {image_id!r} has no image file in {data_dir}")
                continue
            records.append(Record(files[image_id], row["label"]))
    unlabeled = len(files) - len(seen.keys() & files.keys())
    if unlabeled:
        log.warning(f"{unlabeled} images in {data_dir} have no row in {labels_csv}; not used")
    return records, sorted({r.label for r in records}), missing


def split_indices(labels, num_classes, validation_fraction, test_fraction, seed):
    """Split name -> sorted indices, drawn per class so every split keeps the class balance."""
    rng = np.random.default_rng([seed, 0x5117])
    parts = {"train": [], "validation": [], "test": []}
    for k in range(num_classes):
        members = rng.permutation(np.flatnonzero(labels == k))
        n_test = int(round(len(members) * test_fraction))
        n_val = int(round(len(members) * validation_fraction))
        parts["test"].append(members[:n_test])
        parts["validation"].append(members[n_test:n_test + n_val])
        parts["train"].append(members[n_test + n_val:])
    return {name: np.sort(np.concatenate(p)).astype(np.int64) for name, p in parts.items()}


def _all_grey(images):
    """Whether every image has R = G = B (checked in slices: no copy of the whole array)."""
    return all(np.array_equal(chunk[..., 0], chunk[..., 1]) and np.array_equal(chunk[..., 0], chunk[..., 2])
               for chunk in (images[i:i + 1024] for i in range(0, len(images), 1024)))


def check_folder(data_dir):
    if not data_dir:
        raise UserError("--dataset=image_folder needs --data_dir, the folder of your images")
    if not os.path.isdir(data_dir):
        raise UserError(f"--data_dir={data_dir} is not a directory ({'a file' if os.path.exists(data_dir) else 'nothing is there'}): "
                        "--dataset=image_folder expects a folder with one sub-folder of images per class, or a "
                        "folder of images and --labels_csv (README, 'Your own images')")


def labelled_records(data_dir, labels_csv=None, class_names=None):
    """(records whose label is a class, the class names, {class name: label}, problems found): the
    folder's images and their labels, before any is decoded."""
    check_folder(data_dir)
    if labels_csv:
        records, found_classes, bad = _csv_records(data_dir, labels_csv)
    else:
        records, found_classes, bad = _folder_records(data_dir)
    classes = list(class_names) if class_names else found_classes
    check_class_names(classes, "--class_names" if class_names else
                      (f"{labels_csv}: label" if labels_csv else f"{data_dir}: class folder"))
    index = {name: k for k, name in enumerate(classes)}
    for r in records:
        if r.label not in index:
            where = f"{labels_csv} gives {r.path}" if labels_csv else f"{r.path} has"
            bad.append(f"{where} label {r.label!r}, which is not in --class_names={','.join(classes)}")
    records = [r for r in records if r.label in index]
    if len(classes) < 2:
        raise UserError(f"{data_dir} has {len(classes)} class ({', '.join(classes) or 'none'}); "
                        "a classifier needs at least two")
    return records, classes, index, bad


def check_class_names(names, where):
    """A class name is one line of class_names.txt, a cell of a CSV, a label in TensorBoard: no line
    breaks or other control characters, no leading or trailing space, none twice, none empty."""
    seen = set()
    for name in names:
        if not name.strip() or name != name.strip() or any(unicodedata.category(c)[0] == "C" for c in name):
            raise UserError(f"{where} {name!r} is not a usable class name (empty, spaces at an end, or a line break "
                            "or other control character in it); rename it")
        if name in seen:
            raise UserError(f"{where} {name!r} is named twice; class names must be unique")
        seen.add(name)


def report_bad(bad, skip_bad_images):
    """Stops at the first bad image or label, or with --skip_bad_images warns of them all."""
    if bad:
        if not skip_bad_images:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise UserError(f"{bad[0]}{more}; fix it, or pass --skip_bad_images to leave such images out")
        log.warning(f"skipped {len(bad)} bad images or labels (--skip_bad_images); the first: {bad[0]}")


def load(data_dir=None, labels_csv=None, class_names=None, image_size=32, channels=None, validation_fraction=0.1,
         test_fraction=0.1, skip_bad_images=False, seed=0, record=None, train_dir=None, max_image_pixels=None):
    """`channels`: 1 or 3; None: 1 when every image is grey (R = G = B, grayscale files included), else 3.
    `record`: the manifest of the run in `train_dir` being resumed: the folder must hold exactly the
    files it recorded (else one line says what changed), and its splits are the recorded ones."""
    records, classes, index, bad = labelled_records(data_dir, labels_csv, class_names)
    found, usable = {}, []
    for r in records:  # each file read once here: its digest, and its header's size before any decoding
        found[relative(r.path, data_dir)], problem = inspect(r.path, max_image_pixels)
        bad += [f"{r.path}: {problem}"] if problem else []
        usable += [] if problem else [r]
    labels_digest = dict(name=os.path.basename(labels_csv), **digest(labels_csv)) if labels_csv else None
    if record is not None:
        from cnn_tf.manifest import WHAT_TO_DO

        changed = changes(record, found, classes, data_dir, labels_digest)
        if changed:
            raise UserError(f"{data_dir} changed since the run in {train_dir} started: {'; '.join(changed)}; "
                            f"{WHAT_TO_DO.format(train_dir=train_dir)}")
        return _load_recorded(record, data_dir, labels_csv, labels_digest, image_size)
    log.info(f"decoding {len(usable):,} images of {data_dir} to {image_size}x{image_size} ...")
    decoded, images, errors = decode_all([r.path for r in usable], image_size, channels or 3)
    if channels is None and len(images) and _all_grey(images):
        # The same pixels decode(channels=1) gives: the luminance of R = G = B is that value.
        images = np.ascontiguousarray(images[..., :1])
    bad += [unreadable(usable[i].path, msg) for i, msg in errors.items()]
    report_bad(bad, skip_bad_images)
    labels = np.array([index[usable[i].label] for i in decoded], np.int64)
    if len(labels) == 0:
        raise UserError(f"no usable images in {data_dir}")
    parts = split_indices(labels, len(classes), validation_fraction, test_fraction, seed)
    files = {rel: dict(found[rel], label=r.label, split=None) for rel, r in
             ((relative(r.path, data_dir), r) for r in records)}
    for name, ix in parts.items():
        for i in ix:
            files[relative(usable[decoded[i]].path, data_dir)]["split"] = name
    return _dataset({name: (images[ix], labels[ix]) for name, ix in parts.items()}, classes, data_dir, labels_csv,
                    files, labels_digest)


def _dataset(splits, classes, data_dir, labels_csv, files, labels_digest):
    source = f"{data_dir} with labels from {labels_csv}" if labels_csv else data_dir
    return Dataset("image_folder", splits, classes, source,
                   fingerprints={name: split_fingerprint(files, name) for name in splits},
                   files=files, labels_file=labels_digest)


def _decode_members(record, data_dir, split, image_size):
    """uint8 images and int64 labels of the recorded members of `split`, in the recorded order."""
    members = sorted(rel for rel, f in record.files.items() if f["split"] == split)
    paths = [os.path.join(data_dir, rel) for rel in members]
    decoded, images, errors = decode_all(paths, image_size, record.image_shape[-1])
    if errors:
        i, message = next(iter(errors.items()))
        raise UserError(f"{unreadable(paths[i], message)}; the run trained with it readable: restore the file")
    index = {name: k for k, name in enumerate(record.class_names)}
    return images, np.array([index[record.files[rel]["label"]] for rel in members], np.int64)


def _load_recorded(record, data_dir, labels_csv, labels_digest, image_size):
    names = ("train", "validation", "test")
    log.info(f"decoding the {sum(record.size(n) for n in names):,} images of {data_dir} the run recorded ...")
    splits = {name: _decode_members(record, data_dir, name, image_size) for name in names}
    return _dataset(splits, list(record.class_names), data_dir, labels_csv, record.files, labels_digest)


def load_split(record, data_dir, split, image_size):
    """The recorded members of one `split` of a run's image folder (for `evaluate`): read from
    `data_dir` (the recorded source unless moved) and checked against their recorded digests."""
    if not data_dir or not os.path.isdir(data_dir):
        raise UserError(f"the run's image folder {data_dir} is not there (moved or deleted?): pass --data_dir=<the "
                        f"folder its class folders are in now> to evaluate the {split} split")
    members = sorted(rel for rel, f in record.files.items() if f["split"] == split)
    missing = [rel for rel in members if not os.path.isfile(os.path.join(data_dir, rel))]
    if missing:
        raise UserError(f"{len(missing)} of the {split} split's {len(members)} images are not in {data_dir} (the "
                        f"first: {missing[0]}); the run recorded them there: put them back, or pass --data_dir=<the "
                        "folder they are in now>")
    changed = [rel for rel in members if digest(os.path.join(data_dir, rel))["sha256"] != record.files[rel]["sha256"]]
    if changed:
        raise UserError(f"{len(changed)} of the {split} split's {len(members)} images in {data_dir} are not the "
                        f"files the run recorded (the first: {changed[0]}); restore them to evaluate this run")
    log.info(f"decoding the {len(members):,} {split} images of {data_dir} ...")
    images, labels = _decode_members(record, data_dir, split, image_size)
    return Dataset("image_folder", {split: (images, labels)}, list(record.class_names), data_dir,
                   fingerprints={split: split_fingerprint(record.files, split)})


def _options(cfg, record=None, train_dir=None):
    return dict(data_dir=cfg.data_dir, labels_csv=cfg.labels_csv, class_names=cfg.class_names,
                image_size=cfg.image_size or MODELS[cfg.model].default_image_size, channels=cfg.channels,
                validation_fraction=cfg.validation_fraction, test_fraction=cfg.test_fraction,
                skip_bad_images=cfg.skip_bad_images, seed=cfg.seed, record=record if record and record.files else None,
                train_dir=train_dir, max_image_pixels=cfg.max_image_pixels)


register_dataset("image_folder", load, _options)
