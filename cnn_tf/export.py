"""Export a checkpoint as a SavedModel: `python -m cnn_tf.export --checkpoint_dir=DIR --export_dir=E`.

Writes E/<global step>/ (TF Serving's layout) through a staging folder renamed into place, never over
an existing version. Signatures: `serving_default` takes encoded image files (tf.string [N]) and
`predict_images` uint8 [N, H, W, C]; both return `probabilities` float32 [N, C], `classes` int64 [N]
and `class_names` string [N]; with `--tta=flip` the probabilities are the mean of each image's and
its mirror's (as `evaluate --tta=flip` measures). The class names and the run's flags.cfg go in as assets. It loads with
`tf.saved_model.load` in TensorFlow 2, in a program that knows nothing of cnn_tf.
"""
import dataclasses
import errno
import os
import shutil
import tempfile
import typing

import tensorflow as tf
from absl import flags

from cnn_tf import checkpoints, cli, errors, options
from cnn_tf.errors import UserError
from cnn_tf.inference import build_inference_graph, restore
from cnn_tf.options import EXPORT, option


@dataclasses.dataclass(frozen=True)
class ExportOptions(cli.CheckpointOptions):
    export_dir: typing.Optional[str] = option(None, "Where the SavedModel goes, as EXPORT_DIR/<global step>/ "
                                              "(TF Serving's layout).", EXPORT, saved=False)


def export(cfg, run_dir, record, checkpoint_path, export_dir, tta="none"):
    """Writes the SavedModel of `checkpoint_path` of the run `record` describes (its
    cnn_tf.manifest.RunManifest: classes, shape, mean); returns its folder."""
    step = checkpoints.step_of(checkpoint_path)
    final = os.path.join(os.path.abspath(export_dir), str(step))
    if os.path.exists(final):
        raise UserError(f"{final} already exists: a version is never overwritten; delete it or pass another "
                        "--export_dir")
    g = build_inference_graph(cfg, record.image_shape, record.class_names, record.mean_to_subtract(), tta=tta)
    made = not os.path.exists(os.path.dirname(final))
    try:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{step}-", dir=os.path.dirname(final))
    except OSError as e:
        raise UserError(f"cannot write to --export_dir={export_dir}: {e.strerror}") from e
    try:
        return _write(cfg, run_dir, record, checkpoint_path, tta, g, staging, final)
    except BaseException:
        if made:  # the export dir this call created, if nothing is in it (_write removed its staging folder)
            try:
                os.rmdir(os.path.dirname(final))
            except OSError:
                pass
        raise


def _write(cfg, run_dir, record, checkpoint_path, tta, g, staging, final):
    """The SavedModel of `g` restored from `checkpoint_path`, built in `staging`, renamed to `final`."""
    try:
        with tempfile.TemporaryDirectory() as assets, g.graph.as_default(), tf.compat.v1.Session() as sess:
            restore(sess, g, checkpoint_path)
            with open(os.path.join(assets, "class_names.txt"), "w") as f:
                f.write("".join(name + "\n" for name in record.class_names))
            shutil.copy(run_dir.flags_cfg, os.path.join(assets, "flags.cfg"))
            for name in ("class_names.txt", "flags.cfg"):
                tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS,
                                               tf.constant(os.path.join(assets, name), name=f"asset_{name[:-4]}"))
            signature = tf.compat.v1.saved_model.predict_signature_def
            os.rmdir(staging)  # the builder wants to create it
            builder = tf.compat.v1.saved_model.Builder(staging)
            builder.add_meta_graph_and_variables(
                sess, [tf.saved_model.SERVING],
                signature_def_map={"serving_default": signature({"images": g.encoded}, g.from_files),
                                   "predict_images": signature({"images": g.images}, g.from_arrays)},
                assets_collection=tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS),
                strip_default_attrs=True)
            builder.save()
        try:
            os.rename(staging, final)  # fails when another export put the same version there meanwhile
        except OSError as e:
            if os.path.exists(final):
                raise UserError(f"{final} already exists (another export of the same checkpoint finished first): "
                                "a version is never overwritten") from e
            raise
    except OSError as e:
        raise UserError(f"cannot write the SavedModel to {os.path.dirname(final)}: {e.strerror or e}"
                        f"{' (is the disk full?)' if e.errno in (errno.ENOSPC, errno.EDQUOT) else ''}; nothing "
                        "was left there") from e
    except tf.errors.OpError as e:
        raise UserError(f"cannot write the SavedModel to {os.path.dirname(final)}: {errors.reason(e)}; nothing "
                        "was left there") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def main(argv):
    cli.no_arguments(argv)
    opts = options.from_flags(ExportOptions, flags.FLAGS)
    if not opts.export_dir:
        raise UserError("--export_dir is required: where the SavedModel's versions go")
    run_dir, cfg = cli.load_run(opts.checkpoint_dir, options.given_flags(flags.FLAGS, cli.RUN_OVERRIDES))
    record = cli.run_record(run_dir, cfg)
    final, path = cli.with_checkpoint(run_dir, opts, lambda path: export(cfg, run_dir, record, path, opts.export_dir,
                                                                         opts.tta), default="best")
    tta = "" if opts.tta == "none" else f"; test-time augmentation: {opts.tta}"
    print(f"exported {path} to {final} (signatures serving_default: image files, predict_images: uint8 "
          f"arrays{tta})")


def run():
    cli.run(main, "python -m cnn_tf.export --checkpoint_dir=DIR [--checkpoint=best|latest|STEP] --export_dir=E [--tta=flip]",
            list(dataclasses.fields(ExportOptions)) + cli.RUN_OVERRIDES)


if __name__ == "__main__":
    run()
