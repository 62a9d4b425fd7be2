"""What an image folder's files are, for the run manifest (cnn_tf.manifest): each file's digest, a
split's fingerprint, and what changed between the files a run recorded and the files there now."""
import collections
import hashlib
import os

from cnn_tf.data.preprocess import too_many_pixels


def digest(path):
    """{"size", "sha256"} of a file's bytes."""
    with open(path, "rb") as f:
        sha = hashlib.file_digest(f, "sha256").hexdigest()
    return {"size": os.path.getsize(path), "sha256": sha}


def inspect(path, max_pixels):
    """(digest of the file, what is wrong with its size or None), from one read of it."""
    with open(path, "rb") as f:
        contents = f.read()
    return {"size": len(contents), "sha256": hashlib.sha256(contents).hexdigest()}, too_many_pixels(contents, max_pixels)


def oversize(path, max_pixels):
    """What is wrong with the size its header gives an image file, or None (see preprocess.too_many_pixels)."""
    return inspect(path, max_pixels)[1]


def relative(path, data_dir):
    return os.path.relpath(path, data_dir).replace(os.sep, "/")


def split_fingerprint(files, split):
    """SHA-256 of a split's members: their relative paths, digests and labels, in order."""
    lines = "".join(f"{rel}\t{f['sha256']}\t{f['label']}\n" for rel, f in sorted(files.items()) if f["split"] == split)
    return hashlib.sha256(lines.encode()).hexdigest()


def _folder_of(rel, data_dir):
    return os.path.join(data_dir, os.path.dirname(rel)) if os.path.dirname(rel) else data_dir


def changes(record, found, classes, data_dir, labels_digest=None):
    """What differs between the files a run recorded (`record`, a cnn_tf.manifest.RunManifest) and
    `found` ({relative path: digest} now), per folder: ["12 images added to data/pets/cats, 1 removed"]."""
    if list(classes) != list(record.class_names):
        added = [c for c in classes if c not in record.class_names]
        gone = [c for c in record.class_names if c not in classes]
        parts = ([f"classes added: {', '.join(added)}"] if added else []) + (
            [f"classes gone: {', '.join(gone)}"] if gone else [])
        return parts or [f"the classes are in another order: {', '.join(classes)}"]
    if labels_digest and record.labels_csv and labels_digest["sha256"] != record.labels_csv["sha256"]:
        return [f"{record.labels_csv['name']} changed (another label or row)"]
    per_folder = collections.defaultdict(lambda: collections.Counter())
    for rel in found.keys() - record.files.keys():
        per_folder[_folder_of(rel, data_dir)]["added"] += 1
    for rel in record.files.keys() - found.keys():
        per_folder[_folder_of(rel, data_dir)]["removed"] += 1
    for rel in found.keys() & record.files.keys():
        if found[rel]["sha256"] != record.files[rel]["sha256"]:
            per_folder[_folder_of(rel, data_dir)]["changed"] += 1
    lines = []
    for folder, counts in sorted(per_folder.items()):
        words = [f"{counts[kind]} {kind}" for kind in ("added", "removed", "changed") if counts[kind]]
        first = words[0].split(" ", 1)
        lines.append(f"{first[0]} image{'s' if first[0] != '1' else ''} {first[1]} "
                     f"{'to' if first[1] == 'added' else 'from' if first[1] == 'removed' else 'in'} {folder}"
                     + "".join(f", {w}" for w in words[1:]))
    return lines
