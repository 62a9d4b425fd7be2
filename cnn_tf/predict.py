"""Classify image files: `python -m cnn_tf.predict (--checkpoint_dir=DIR | --saved_model=E) PATH...`.

PATHs are image files or folders (searched recursively for PNG, JPEG, BMP and GIF files). Prints each
image's --top_k classes with their probabilities, as a table, or --format=json|csv for scripts. A
checkpoint and its SavedModel give the same answers: both decode and scale with
cnn_tf.data.preprocess, inside the graph.
"""
import csv
import dataclasses
import json
import os
import stat
import sys
import typing

import numpy as np
import tensorflow as tf
import tqdm
from absl import flags, logging

from cnn_tf import cli, errors, exit_codes, log, options
from cnn_tf.data.image_files import warn_rotated
from cnn_tf.data.preprocess import EXTENSIONS, too_many_pixels
from cnn_tf.errors import UserError
from cnn_tf.graph.memory import batch_for_budget
from cnn_tf.inference import build_inference_graph, restore
from cnn_tf.options import PREDICTION, option, positive


@dataclasses.dataclass(frozen=True)
class PredictOptions(cli.CheckpointOptions):
    saved_model: typing.Optional[str] = option(None, "A SavedModel written by export (a version folder, or the "
                                               "export dir: its newest version), instead of --checkpoint_dir.",
                                               PREDICTION, saved=False)
    top_k: int = option(3, "Classes shown per image, most probable first.", PREDICTION, check=positive, saved=False)
    format: str = option("table", "Output: a table for people, json or csv for scripts.", PREDICTION,
                         choices=("table", "json", "csv"), saved=False)
    batch_size: typing.Optional[int] = option(None, "Images classified at once (default: --checkpoint_dir, as many, "
                                              "up to 1000, as 1 GiB of the model's activations holds; "
                                              "--saved_model, 64).", PREDICTION,
                                              check=positive, saved=False)
    skip_bad_images: bool = option(False, "Warn of each unreadable file and exit 0, instead of an error line for "
                                   "each and exit 2 (the readable files are classified either way).", PREDICTION,
                                   saved=False)


def image_files(paths):
    """The image files among `paths` and inside the folders among them, in order (anything named so
    that is not a regular file, a FIFO or a device, is listed too: `classify` refuses to read it)."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            for directory, subdirectories, names in os.walk(path):
                subdirectories.sort()
                found += [os.path.join(directory, n) for n in sorted(names)
                          if os.path.splitext(n)[1].lower() in EXTENSIONS and not n.startswith(".")]
        elif os.path.exists(path):
            found.append(path)
        else:
            raise UserError(f"{path} does not exist; give image files or folders of them")
    if not found:
        raise UserError(f"no PNG/JPEG/BMP/GIF files in {', '.join(paths)}")
    return found


def read_file(path, max_pixels=None):
    """A regular file's bytes; reading a FIFO or a device could block forever, and decoding an image of
    more than `max_pixels` could take all the memory, so those are refused (OSError)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError("not a regular file (a FIFO, device or socket): not read")
    with open(path, "rb") as f:
        contents = f.read()
    problem = too_many_pixels(contents, max_pixels)
    if problem:
        raise OSError(problem)
    return contents


class CheckpointClassifier:
    def __init__(self, opts, overrides, tta="none"):
        run_dir, cfg = cli.load_run(opts.checkpoint_dir, overrides)
        record = cli.run_record(run_dir, cfg)  # the trained class names, never the data folder's of today
        self.g = build_inference_graph(cfg, record.image_shape, record.class_names, record.mean_to_subtract(), tta=tta)
        self.g.graph.finalize()
        self.sess = tf.compat.v1.Session(graph=self.g.graph)
        # Which checkpoint, said once the images are classified: an error before stays one line.
        _, path = cli.with_checkpoint(run_dir, opts, lambda path: restore(self.sess, self.g, path), default="best",
                                      announce=False)
        self.note = cli.best_note(run_dir, path) if not opts.checkpoint_path else None
        self.class_names = record.class_names
        self.batch_size = batch_for_budget(self.g.graph.get_operations())

    def __call__(self, contents):
        return self.sess.run(self.g.from_files["probabilities"], {self.g.encoded: contents})


class SavedModelClassifier:
    note = None  # a SavedModel is what it is: no checkpoint to choose
    def __init__(self, saved_model):
        if not os.path.isdir(saved_model):
            raise UserError(f"--saved_model={saved_model} is not a directory; give the --export_dir of export or "
                            "one of its versions")
        versions = sorted((int(n) for n in os.listdir(saved_model) if n.isdigit()), reverse=True)
        if not os.path.isfile(os.path.join(saved_model, "saved_model.pb")) and versions:
            saved_model = os.path.join(saved_model, str(versions[0]))
        if not os.path.isfile(os.path.join(saved_model, "saved_model.pb")):
            raise UserError(f"--saved_model={saved_model} holds no saved_model.pb; give the --export_dir of export")
        names_file = os.path.join(saved_model, "assets", "class_names.txt")
        if not os.path.isfile(names_file):
            raise UserError(f"--saved_model={saved_model} was not exported by cnn_tf (it has no assets/class_names.txt); "
                            "give a SavedModel written by `python -m cnn_tf.export`")
        try:
            with open(names_file, encoding="utf-8") as f:
                self.class_names = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read {names_file}: {e}; export the checkpoint again") from e
        verbosity = logging.get_verbosity()
        if verbosity < logging.DEBUG:  # its INFO lines ("Fingerprint not found", ...) are not for users
            logging.set_verbosity(logging.WARNING)
        try:
            self.model = tf.saved_model.load(saved_model)
        except Exception as e:  # noqa: BLE001 - a damaged file raises whatever its parser meets
            raise UserError(f"cannot load the SavedModel in {saved_model}: {errors.reason(e)}; its saved_model.pb or "
                            "variables are damaged: export the checkpoint again") from e
        finally:
            logging.set_verbosity(verbosity)
        self.signature = self.model.signatures.get("serving_default")
        if self.signature is None or "images" not in self.signature.structured_input_signature[1]:
            raise UserError(f"--saved_model={saved_model} has no serving_default signature taking encoded images: it "
                            "was not exported by cnn_tf")
        self.batch_size = 64  # fixed: the loaded function's graph is not inspected for its activations
        outputs = self.signature.structured_outputs
        if "probabilities" not in outputs or outputs["probabilities"].shape[-1] != len(self.class_names):
            raise UserError(f"--saved_model={saved_model}: its probabilities do not match the "
                            f"{len(self.class_names)} classes of assets/class_names.txt: it was not exported by cnn_tf")

    def __call__(self, contents):
        return self.signature(images=tf.constant(contents))["probabilities"].numpy()


def classify(classifier, paths, batch_size, skip_bad_images, max_pixels=None):
    """({path: probabilities} of every readable file, [paths that were not]). Each unreadable file is
    an `error:` line as it is met (a `warning:` with --skip_bad_images); the rest are classified."""
    results, bad = {}, []

    def unreadable(path, why):
        bad.append(path)
        advice = "" if skip_bad_images else "; fix it, or pass --skip_bad_images to leave such files out"
        (log.warning if skip_bad_images else log.error)(f"{path}: {why}{advice}")

    batches = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
    for batch in tqdm.tqdm(batches, desc="classifying", unit="batch", disable=None if len(batches) > 1 else True,
                           leave=False, file=sys.stderr):
        contents = {}
        for path in batch:
            try:
                contents[path] = read_file(path, max_pixels)
            except OSError as e:
                unreadable(path, e.strerror or str(e))
        try:
            results.update(zip(contents, classifier(list(contents.values())))) if contents else None
            continue
        except (tf.errors.InvalidArgumentError, ValueError):
            pass
        for path, content in contents.items():  # one bad file spoils its batch: find it
            try:
                results[path] = classifier([content])[0]
            except (tf.errors.InvalidArgumentError, ValueError):
                unreadable(path, "not a readable PNG/JPEG/BMP/GIF image")
    if bad and skip_bad_images:
        log.warning(f"skipped {len(bad)} unreadable files (--skip_bad_images)")
    return results, bad


def report(results, class_names, top_k, output_format, out=sys.stdout):
    rows = []
    for path, probabilities in results.items():
        top = np.argsort(-probabilities, kind="stable")[:top_k]
        rows.append((path, [(class_names[k], float(probabilities[k])) for k in top]))
    if output_format == "json":
        json.dump([{"path": path, "predictions": [{"class": c, "probability": p} for c, p in top]}
                   for path, top in rows], out, indent=1)
        out.write("\n")
    elif output_format == "csv":
        writer = csv.writer(out)
        writer.writerow(["path", "rank", "class", "probability"])
        for path, top in rows:
            writer.writerows([path, rank, c, f"{p:.6f}"] for rank, (c, p) in enumerate(top, start=1))
    else:
        width = max(len(path) for path, _ in rows)
        for path, top in rows:
            print(f"{path:<{width}}  " + "  ".join(f"{c} {p:.4f}" for c, p in top), file=out)


def main(argv):
    opts = options.from_flags(PredictOptions, flags.FLAGS)
    if bool(opts.saved_model) == bool(opts.checkpoint_dir):
        raise UserError("give --checkpoint_dir (a train dir) or --saved_model (an export), one of them")
    paths = image_files(argv[1:]) if len(argv) > 1 else None
    if not paths:
        raise UserError("give the image files or folders to classify after the flags")
    warn_rotated(paths)
    if opts.saved_model and opts.tta != "none":
        raise UserError(f"--tta={opts.tta} applies to --checkpoint_dir; a SavedModel classifies as it was "
                        "exported (export --tta=flip builds the flip into it)")
    if opts.saved_model:
        classifier = SavedModelClassifier(opts.saved_model)
    else:
        classifier = CheckpointClassifier(opts,
                                          options.given_flags(flags.FLAGS, cli.RUN_OVERRIDES), opts.tta)
    results, bad = classify(classifier, paths, opts.batch_size or classifier.batch_size, opts.skip_bad_images, flags.FLAGS.max_image_pixels)
    if results:
        report(results, classifier.class_names, min(opts.top_k, len(classifier.class_names)), opts.format)
    if classifier.note and not bad:
        log.info(classifier.note)
    if bad and not opts.skip_bad_images:  # as `ls` with a missing name: the rest answered, the exit says not all
        sys.exit(exit_codes.USER_ERROR)


def run():
    cli.run(main, "python -m cnn_tf.predict (--checkpoint_dir=DIR | --saved_model=E) [--top_k=3] "
                  "[--format=table|json|csv] [--tta=flip] PATH...",
            list(dataclasses.fields(PredictOptions)) + cli.RUN_OVERRIDES)


if __name__ == "__main__":
    run()
