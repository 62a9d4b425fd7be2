"""The Oxford-IIIT Pet dataset as published (Parkhi et al., 2012): 37 breeds of cats and dogs.

    images.tar.gz       -> images/<Breed>_<n>.jpg   (cat breeds are capitalized, dog breeds not)
    annotations.tar.gz  -> annotations/list.txt, trainval.txt, test.txt, each line
                           "<image> <class id 1..37> <species: 1 cat, 2 dog> <breed id>"

The classes come from list.txt: `--pets_label=breed`, the breeds in class-id order, named as their
images are; `species`, cat and dog. The test split is the images test.txt names; validation is drawn
per class from trainval.txt's with --validation_fraction and --seed, the rest is train. A file is
decoded by its content, whatever its extension says; one that is missing or will not decode stops
the load, or with --skip_bad_images is left out with a warning.
"""
import os

import numpy as np

from cnn_tf import log
from cnn_tf.data.archive import extract_folder, find_or_download
from cnn_tf.data.dataset import Dataset, register_dataset
from cnn_tf.data.fingerprint import oversize
from cnn_tf.data.image_files import decode_all, unreadable
from cnn_tf.data.image_folder import report_bad, split_indices
from cnn_tf.data.mnist import cache_dir
from cnn_tf.errors import UserError
from cnn_tf.registry import MODELS
from cnn_tf.textfile import read_text

MIRROR = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/"
# archive -> (its SHA-256 as published, the folder it unpacks to)
ARCHIVES = {"images.tar.gz": ("67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d", "images"),
            "annotations.tar.gz": ("52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91", "annotations")}
LISTS = ("list.txt", "trainval.txt", "test.txt")
LABELS = ("breed", "species")
SPECIES = ("cat", "dog")


def _extracted(directory):
    return os.path.isdir(os.path.join(directory, "images")) and all(
        os.path.isfile(os.path.join(directory, "annotations", name)) for name in LISTS)


def locate(data_dir=None, download_mirror=None):
    """The folder holding images/ and annotations/: --data_dir or the cache, each archive extracted
    there from a copy found in either, or downloaded (SHA-256 checked) when neither has one."""
    if data_dir and not os.path.isdir(data_dir):
        raise UserError(f"--data_dir={data_dir} is not a directory; create it or point it at the Oxford-IIIT Pet "
                        "archives (or their extracted images/ and annotations/)")
    directories = [d for d in (data_dir, cache_dir("oxford_pets")) if d]
    found = next((d for d in directories if _extracted(d)), None)
    if found:
        return found
    target = data_dir or cache_dir("oxford_pets")
    for name, (sha256, folder) in ARCHIVES.items():
        if not os.path.isdir(os.path.join(target, folder)):  # one of the two may be there already
            archive = find_or_download("oxford_pets", name, sha256, directories, target, download_mirror or MIRROR,
                                       folder)
            extract_folder(archive, target, folder, "", f"the Oxford-IIIT Pet {name}")
    if not _extracted(target):
        raise UserError(f"{target}/annotations lacks one of {', '.join(LISTS)}: not the Oxford-IIIT Pet "
                        "annotations.tar.gz; delete annotations/ and fetch it again")
    return target


def read_list(path):
    """[(image name, class id, species id)] of one annotation list; '#' lines are comments."""
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        try:
            if len(parts) != 4:
                raise ValueError
            rows.append((parts[0], int(parts[1]), int(parts[2])))
        except ValueError:
            raise UserError(f"{path}:{number}: {line.strip()!r} is not '<image> <class id> <species> <breed id>': "
                            "the annotations are damaged; delete annotations/ and fetch them again") from None
        if rows[-1][2] not in (1, 2):
            raise UserError(f"{path}:{number}: species {rows[-1][2]} is neither 1 (cat) nor 2 (dog)")
    return rows


def breed_names(rows, path):
    """The breeds in class-id order (1, 2, ...), each named as its images are (Abyssinian, beagle, ...)."""
    names = {}
    for image, class_id, _ in rows:
        breed = image.rsplit("_", 1)[0]
        if names.setdefault(class_id, breed) != breed:
            raise UserError(f"{path}: class id {class_id} is given to both {names[class_id]} and {breed} images")
    if sorted(names) != list(range(1, len(names) + 1)):
        raise UserError(f"{path}: the class ids are {sorted(names)}, not 1..{len(names)}")
    return [names[k] for k in sorted(names)]


def _decode(directory, rows, label_of, image_size, max_image_pixels, bad):
    """uint8 images and int64 labels of the rows whose file is there and decodes; the rest added to `bad`."""
    paths, labels = [], []
    for image, class_id, species in rows:
        path = os.path.join(directory, "images", image + ".jpg")
        problem = "listed in the annotations, but not there" if not os.path.isfile(path) else \
            oversize(path, max_image_pixels)
        if problem:
            bad.append(f"{path}: {problem}")
            continue
        paths.append(path)
        labels.append(label_of(class_id, species))
    decoded, images, errors = decode_all(paths, image_size, 3)
    bad += [unreadable(paths[i], message) for i, message in errors.items()]
    return images, np.array(labels, np.int64)[decoded]


def load(data_dir=None, download_mirror=None, label="breed", image_size=224, validation_fraction=0.1, seed=0,
         skip_bad_images=False, max_image_pixels=None):
    if label not in LABELS:
        raise UserError(f"--pets_label={label} is not one of {', '.join(LABELS)}")
    directory = locate(data_dir, download_mirror)
    lists = {name: read_list(os.path.join(directory, "annotations", name)) for name in LISTS}
    if label == "breed":
        classes = breed_names(lists["list.txt"], os.path.join(directory, "annotations", "list.txt"))
        label_of = lambda class_id, species: class_id - 1  # noqa: E731
    else:
        classes, label_of = list(SPECIES), lambda class_id, species: species - 1  # noqa: E731
    for name in ("trainval.txt", "test.txt"):
        wrong = next((r for r in lists[name] if not 0 <= label_of(r[1], r[2]) < len(classes)), None)
        if wrong:
            raise UserError(f"{directory}/annotations/{name}: {wrong[0]} has class id {wrong[1]}, which list.txt "
                            "does not give")
    log.info(f"decoding the Oxford-IIIT Pet images of {directory} to {image_size}x{image_size} ...")
    bad = []
    trainval = _decode(directory, lists["trainval.txt"], label_of, image_size, max_image_pixels, bad)
    test = _decode(directory, lists["test.txt"], label_of, image_size, max_image_pixels, bad)
    report_bad(bad, skip_bad_images)
    parts = split_indices(trainval[1], len(classes), validation_fraction, 0.0, seed)
    splits = {name: (trainval[0][parts[name]], trainval[1][parts[name]]) for name in ("train", "validation")}
    splits["test"] = test
    return Dataset("oxford_pets", splits, classes, source=directory)


def _options(cfg, record=None, train_dir=None):
    return dict(data_dir=cfg.data_dir, download_mirror=cfg.download_mirror, label=cfg.pets_label,
                image_size=cfg.image_size or MODELS[cfg.model].default_image_size,
                validation_fraction=cfg.validation_fraction, seed=cfg.seed, skip_bad_images=cfg.skip_bad_images,
                max_image_pixels=cfg.max_image_pixels)


register_dataset("oxford_pets", load, _options)
