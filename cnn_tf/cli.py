"""What every CLI of cnn_tf shares: its flags defined when it starts, `--help` grouped and short, a
misspelled flag answered with the nearest one, a UserError as one line and an exit code, and the
aligned start-up summary. A new CLI (`python -m cnn_tf.X`) calls `cli.run(main, usage, fields)`."""
import dataclasses
import difflib
import os
import sys
import typing

from absl import app, flags, logging
import tensorflow as tf

from cnn_tf import best_checkpoints, checkpoints, config, errors, exit_codes, flagfile, log, options
from cnn_tf.errors import UserError
from cnn_tf.manifest import RunManifest, derived_note
from cnn_tf.textfile import check_regular, read_text
from cnn_tf.traindir import CHECKPOINT_NAME, TrainDir
from cnn_tf.options import CHECKPOINT, Options, option

FLAGS = flags.FLAGS
# The flags of a run that a CLI reading its train dir (evaluate, export, predict) may override.
RUN_OVERRIDES = options.fields(config.RunConfig, overridable_only=True)
HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")


@dataclasses.dataclass(frozen=True)
class CheckpointOptions(Options):
    """Which checkpoint a CLI reads (evaluate, export, predict)."""
    checkpoint_dir: typing.Optional[str] = option(None, "A train dir, or its checkpoints/ directory.", CHECKPOINT,
                                                  saved=False)
    checkpoint: typing.Optional[str] = option(None, "Which checkpoint of the train dir: latest, best (the best by "
                                              "the run's --best_metric, in checkpoints/best) or a global step "
                                              "(default: latest for evaluate; for export and predict, best when "
                                              "the run kept one).", CHECKPOINT, saved=False)
    checkpoint_path: typing.Optional[str] = option(None, "One checkpoint, e.g. DIR/checkpoints/model.ckpt-860 "
                                                   "(instead of --checkpoint).", CHECKPOINT, saved=False)
    tta: str = option("none", "Test-time augmentation: flip averages the probabilities of each image and its "
                      "mirror (for clothes and photos, not digits); export builds it into the SavedModel, "
                      "which predict --saved_model then runs as it is.",
                      CHECKPOINT, choices=("none", "flip"), saved=False)


def run(main, usage, fields):
    """absl's app.run of `main` with the flags of `fields` (dataclass fields of cnn_tf.config)."""
    options.define_flags(FLAGS, fields)

    def parse(argv):
        if any(arg in HELP_FLAGS for arg in argv[1:]):
            print(help_text(usage, fields))
            sys.exit(0)
        if any(arg in ("--helpfull", "-helpfull") for arg in argv[1:]):  # every flag, absl's and TF's too
            print(f"usage: {usage}\n\n{FLAGS.get_help()}")
            sys.exit(0)
        # absl's own report of a bad flag is two lines headed FATAL; ours is one, like the others.
        try:
            for arg in argv[1:]:  # absl would block reading a FIFO named as a flagfile
                if arg.startswith("--flagfile="):
                    check_regular(arg.split("=", 1)[1])
            return FLAGS([argv[0], *flagfile.upgrade_flags(FLAGS.read_flags_from_files(argv[1:], force_gnu=False))])
        except flags.UnrecognizedFlagError as e:
            files = [a.split("=", 1)[1] for a in argv if a.startswith("--flagfile=")]
            where = f" (on the command line or in {', '.join(files)})" if files else ""
            message = f"unknown flag --{e.flagname}{where}; {suggestion(e.flagname, fields)}"
        except flags.Error as e:
            message = str(e).removeprefix("ERROR:: ")
        except UnicodeDecodeError as e:  # absl reads a flagfile as UTF-8: name the file and the line
            message = _flagfile_encoding(argv, e)
        except UserError as e:
            message = str(e)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(exit_codes.USER_ERROR)

    def guarded(argv):
        try:
            return main(argv)
        except KeyboardInterrupt:  # before the training loop's handlers are in place: nothing written yet
            print("\ninterrupted", file=sys.stderr)
            sys.exit(exit_codes.INTERRUPTED)
        except (UserError, tf.errors.DataLossError, OSError, tf.errors.OpError) as e:
            if logging.get_verbosity() >= logging.DEBUG:
                raise
            if isinstance(e, tf.errors.DataLossError):  # a file's checksum failed while it was read
                e = UserError(f"corrupt data: {errors.reason(e)}; if it is a TFRecord shard, convert the "
                              "dataset again (loading with --verify_shards names the file)")
            elif not isinstance(e, UserError):
                e = errors.disk_error(e) or _input_error(e)
                if e is None:
                    raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)

    app.run(guarded, flags_parser=parse)


def _input_error(error):
    """A UserError for a record the input pipeline could not decode (a shard's image that is none, or
    one over --max_image_pixels), else None."""
    message = getattr(error, "message", "") or str(error)
    if not isinstance(error, tf.errors.InvalidArgumentError) or "IteratorGetNext" not in message:
        return None
    data_dir = getattr(flags.FLAGS, "data_dir", None) if flags.FLAGS.is_parsed() else None
    return UserError(f"a record of {data_dir or 'the input'}'s shards cannot be used: {errors.reason(error)}")


def _flagfile_encoding(argv, error):
    for arg in argv:
        if arg.startswith("--flagfile="):
            try:
                read_text(arg.split("=", 1)[1])
            except UserError as e:
                return str(e)
            except (OSError, tf.errors.OpError):
                continue
    return f"a flagfile is not UTF-8 ({error}); save it as UTF-8"


def suggestion(name, fields):
    names = [f.name for f in fields] + [f"no{f.name}" for f in fields if options.flag_kind(f) is bool]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.7)
    return f"did you mean --{close[0]}? (--help lists the flags)" if close else "--help lists the flags"


def _default(field):
    value = field.default
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "-"
    return ",".join(value) if isinstance(value, tuple) else str(value)


def help_text(usage, fields):
    """The CLI's own flags by group, one line each: name, default, what it does (and its choices)."""
    lines = [f"usage: {usage}", ""]
    groups = dict.fromkeys(f.metadata["group"] for f in fields)  # the CLI's own group first, then
    later = [g for g in options.LATER_GROUPS if g in groups]   # what most runs set before the rest
    for group in [g for g in groups if g not in later] + later:
        members = [f for f in fields if f.metadata["group"] == group]
        if not members:
            continue
        lines.append(f"{group}:")
        for f in members:
            name = f"--[no]{f.name}" if options.flag_kind(f) is bool else f"--{f.name}"
            choices = f" ({'|'.join(f.metadata['choices'])})" if f.metadata["choices"] else ""
            lines.append(f"  {name:<30} {_default(f):<14} {f.metadata['help']}{choices}")
        lines.append("")
    lines.append("--flagfile=FILE reads flags from a file (a config); --helpfull lists absl's and TensorFlow's "
                 "flags too.")
    return "\n".join(lines)


def no_arguments(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {' '.join(argv[1:])}; flags take the form --name=value")


def load_run(checkpoint_dir, overrides=None):
    """The train dir `checkpoint_dir` names (it or its checkpoints/) and its saved RunConfig, with
    `overrides` (runtime flags) laid over it; one tower: readers run the inference tower only."""
    if not checkpoint_dir:
        raise UserError("--checkpoint_dir is required: the --train_dir of a training run")
    run_dir = TrainDir.find(checkpoint_dir)
    cfg = flagfile.load_config(run_dir.flags_cfg).replace(**{**(overrides or {}), "num_towers": 1})
    return run_dir, cfg.resolved()


def run_record(run_dir, cfg):
    """The train dir's run manifest (cnn_tf.manifest): its class names, image shape and pixel mean.
    A train dir written before manifests has it derived from the data, as it is now, and not saved
    (readers write nothing; the next resume records it)."""
    record = RunManifest.read(run_dir.run_json)
    if record is None:
        from cnn_tf.data import load_dataset_for

        derived_note(run_dir.path, "reading the data for its class names, shape and mean")
        record = RunManifest.of(cfg, load_dataset_for(cfg))
    return record


def checkpoint_to_read(run_dir, checkpoint_path=None, choice=None, default="latest"):
    """--checkpoint_path (a checkpoint's prefix DIR/checkpoints/model.ckpt-N or any of its files), or
    the checkpoint --checkpoint (`choice`, else `default`) names: the latest complete one, the best
    (`default="best"` falls back to the latest when the run kept none) or the one at a global step."""
    if checkpoint_path and choice:
        raise UserError(f"give --checkpoint={choice} or --checkpoint_path={checkpoint_path}, not both")
    if checkpoint_path:
        path = checkpoints.prefix_of(checkpoint_path)
        checkpoints.step_of(path)  # a name without -N is not one of ours: one line
        if not checkpoints.is_complete(path):
            found = "its index or a data file is missing" if tf.io.gfile.exists(os.path.dirname(path)) else \
                "its folder does not exist"
            raise UserError(f"--checkpoint_path={checkpoint_path}: no complete checkpoint {path} ({found}); give one "
                            f"such as {run_dir.checkpoints}/model.ckpt-N")
        return path
    which = choice or default
    if which == "best":
        record = best_checkpoints.read(run_dir.best)
        path = best_checkpoints.best_path(run_dir.best, record)[0] if record else None
        if path:
            return path
        if choice:
            raise UserError(f"--checkpoint=best: {run_dir.path} kept no best checkpoint ({run_dir.best} has no "
                            f"{best_checkpoints.BEST_JSON}: trained with --keep_best=0, without a validation split, "
                            "or before cnn_tf kept one); use --checkpoint=latest")
    elif which.isdigit():
        for directory in (run_dir.checkpoints, run_dir.best):
            path = os.path.join(directory, f"{CHECKPOINT_NAME}-{int(which)}")
            if checkpoints.is_complete(path):
                return path
        steps = sorted({checkpoints.step_of(p) for d in (run_dir.checkpoints, run_dir.best) for p in checkpoints.on_disk(d)})
        raise UserError(f"--checkpoint={which}: {run_dir.path} has no checkpoint at global step {int(which)} (it has "
                        f"{', '.join(map(str, steps)) or 'none'})")
    elif which != "latest":
        raise UserError(f"--checkpoint={which}: give latest, best or a global step such as 860")
    path = checkpoints.latest(run_dir.checkpoints)
    if not path:
        raise UserError(f"no checkpoint in {run_dir.checkpoints}; train first, or pass --checkpoint_path")
    return path


def best_note(run_dir, path):
    """"the best checkpoint: PATH (epoch E, metric V)" when `path` is the run's best checkpoint, else None."""
    record = best_checkpoints.read(run_dir.best)
    entry = best_checkpoints.best_path(run_dir.best, record)[1] if record else None
    if entry and path == best_checkpoints.path_of(run_dir.best, entry["step"]):
        return f"the best checkpoint: {path} (epoch {entry['epoch']}, {record['metric']} {entry['value']:.4f})"
    return None


def with_checkpoint(run_dir, opts, use, default="latest", attempts=5, announce=True):
    """`use(path)` of the checkpoint CheckpointOptions `opts` name (checkpoint_to_read); returns (its
    result, path). A latest or best checkpoint that a running training deletes while it is read
    (--max_num_checkpoint, --keep_best) is no error: the new one is read instead. Says on stderr
    when it has read the best checkpoint (after: an error stays one line), unless not `announce`."""
    explicit = opts.checkpoint_path or (opts.checkpoint or "").isdigit()
    for attempt in range(attempts):
        path = checkpoint_to_read(run_dir, opts.checkpoint_path, opts.checkpoint, default)
        try:
            result = use(path)
        except (UserError, tf.errors.OpError):
            if explicit or checkpoints.is_complete(path) or attempt == attempts - 1:
                raise
            continue
        note = best_note(run_dir, path) if announce and not opts.checkpoint_path else None
        if note:
            log.info(note)
        return result, path
