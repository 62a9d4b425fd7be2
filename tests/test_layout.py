"""The code's shape, as the README's "How it is built" promises it: the option schema and RunConfig
are a leaf (they import neither the data layer nor the nets), modules and functions stay small, and
test modules share helpers through conftest, not through each other."""
import ast
import os
import pathlib
import subprocess
import sys

from conftest import ROOT, cli_env

PACKAGE = pathlib.Path(ROOT) / "cnn_tf"
TESTS = pathlib.Path(ROOT) / "tests"


def test_the_configuration_imports_neither_the_data_layer_nor_the_nets():
    probe = ("import sys, cnn_tf.config, cnn_tf.options, cnn_tf.flagfile; "
             "print(sorted(m for m in sys.modules if m.startswith(('cnn_tf.data', 'cnn_tf.nets', 'cnn_tf.graph'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=cli_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_model_or_dataset_name_is_checked_against_what_registered_itself():
    from cnn_tf.config import RunConfig
    from cnn_tf.errors import UserError
    from cnn_tf.registry import DATASETS, MODELS

    assert {"lenet", "three_conv", "four_conv", "vgg", "vgg16", "resnet"} <= set(MODELS)
    assert {"mnist", "fashion_mnist", "cifar10", "image_folder", "tfrecord"} <= set(DATASETS)
    try:
        RunConfig(model="lenet5")
    except UserError as e:
        assert str(e).startswith("--model=lenet5: must be one of four_conv, lenet, mobilenet_v1, mobilenet_v2, resnet, resnet_v1_50")
    else:
        raise AssertionError("an unknown model was accepted")


def _sources(root):
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_over_300_lines_and_no_function_over_60():
    long_modules = {str(p.relative_to(ROOT)): n for p in _sources(PACKAGE)
                    if (n := len(p.read_text().splitlines())) > 300}
    long_functions = {}
    for p in _sources(PACKAGE):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long_functions[f"{p.relative_to(ROOT)}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert long_modules == {} and long_functions == {}


def test_no_test_module_imports_another():
    modules = {p.stem for p in _sources(TESTS)} - {"conftest"}
    offenders = {}
    for p in _sources(TESTS):
        for node in ast.walk(ast.parse(p.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            found = [n for n in names if n.split(".")[0] in modules]
            if found:
                offenders.setdefault(os.path.relpath(p, ROOT), []).extend(found)
    assert offenders == {}


def test_the_twins_implement_their_declared_interfaces(tmp_path):
    from cnn_tf.data import load_dataset
    from cnn_tf.data.convert import convert
    from cnn_tf.data.protocols import DataSource, Pipeline
    from cnn_tf.data.record_pipeline import RecordPipeline
    from cnn_tf.data.pipeline import InputPipeline
    from cnn_tf.distributed import ClusterSession
    from cnn_tf.loop import LocalSession, TrainingSession
    from cnn_tf.config import RunConfig
    from conftest import write_dataset
    import tensorflow as tf

    write_dataset(str(tmp_path / "idx"), num_train=60, num_test=20)
    arrays = load_dataset("mnist", data_dir=str(tmp_path / "idx"), validation_size=10)
    convert(RunConfig(dataset="mnist", data_dir=str(tmp_path / "idx"), validation_size=10), str(tmp_path / "rec"),
            num_shards=1)
    shards = load_dataset("tfrecord", data_dir=str(tmp_path / "rec"))
    for dataset in (arrays, shards):
        assert isinstance(dataset, DataSource), type(dataset)
        with tf.Graph().as_default():
            pipeline = dataset.pipeline(dataset.image_shape)
        assert isinstance(pipeline, Pipeline) and isinstance(pipeline, (InputPipeline, RecordPipeline))
    for session_class in (LocalSession, ClusterSession):
        assert all(callable(getattr(session_class, name)) for name in ("create", "recover", "close"))
    assert isinstance(LocalSession(), TrainingSession)


MYNET = '''
from cnn_tf.nets.layers import conv2d, conv_arg_scope, max_pool2d, model_scope, squeeze_logits
from cnn_tf.options import model_option, positive
from cnn_tf.registry import register_model


def mynet(images, num_classes=10, is_training=True, keep_prob=0.5, scope="mynet", mynet_channels=8):
    with model_scope(scope, "mynet", images, is_training) as (sc, end_points):
        net = max_pool2d(conv2d(images, mynet_channels, 3, scope="conv1"), 2, 2, scope="pool1")
        net = conv2d(net, num_classes, 14, padding="VALID", activation_fn=None, use_batch_norm=False, scope="logits")
        return squeeze_logits(net, sc, end_points, "logits")


mynet.default_image_size = 28
mynet_arg_scope = conv_arg_scope
register_model("mynet", mynet, mynet_arg_scope, options=[
    model_option("mynet_channels", int, 8, "Channels of mynet's conv layer.", check=positive, must_match=True)])
'''

MYDATA = '''
import numpy as np

from cnn_tf.data.dataset import Dataset, register_dataset


def load(data_dir=None, validation_size=5000, download_mirror=None):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    images = rng.integers(0, 60, (300, 28, 28, 1)).astype(np.uint8)
    images[labels == 1, 10:18, 10:18] = 250  # class 1: a bright square
    splits = {"train": (images[:200], labels[:200]), "validation": (images[200:250], labels[200:250]),
              "test": (images[250:], labels[250:])}
    return Dataset("mydata", splits, ["dark", "square"], source="generated")


register_dataset("mydata", load)
'''


def test_a_new_model_and_a_new_dataset_are_one_file_each_as_the_readme_says(tmp_path):
    import shutil

    import tensorflow as tf

    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "cnn_tf", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "cnn_tf" / "nets" / "mynet.py").write_text(MYNET)  # nothing else for a model
    (copy / "cnn_tf" / "data" / "mydata.py").write_text(MYDATA)
    init = copy / "cnn_tf" / "data" / "__init__.py"  # a dataset: its one import line
    init.write_text(init.read_text().replace("from cnn_tf.data import cifar10,",
                                             "from cnn_tf.data import mydata  # noqa: F401\nfrom cnn_tf.data import cifar10,"))
    result = subprocess.run(
        [sys.executable, "-m", "cnn_tf.train", "--model=mynet", "--dataset=mydata", f"--train_dir={tmp_path / 'run'}",
         "--num_epochs=2", "--batch_size=50", "--progress=false", "--mynet_channels=6"],
        capture_output=True, text=True, cwd=copy, env=cli_env(PYTHONPATH=str(copy)), timeout=600)
    assert result.returncode == 0, result.stderr
    accuracy = [line for line in result.stdout.splitlines() if line.startswith("test accuracy: ")]
    assert accuracy and float(accuracy[0].split(": ")[1]) >= 0.9, result.stdout
    assert "mynet" in result.stdout and "mydata" in result.stdout
    assert "--mynet_channels=6" in (tmp_path / "run" / "flags.cfg").read_text().splitlines()  # the model's flag
    weights = [shape for name, shape in tf.train.list_variables(str(tmp_path / "run" / "checkpoints"))
               if name == "mynet/conv1/weights"]
    assert weights == [[3, 3, 1, 6]]
    again = subprocess.run(  # a resume must give the same value of a flag that fixes the variables
        [sys.executable, "-m", "cnn_tf.train", "--model=mynet", "--dataset=mydata", f"--train_dir={tmp_path / 'run'}",
         "--num_epochs=3", "--batch_size=50", "--mynet_channels=4"], capture_output=True, text=True, cwd=copy,
        env=cli_env(PYTHONPATH=str(copy)), timeout=600)
    assert again.returncode == 2 and "was trained with --mynet_channels=6" in again.stderr, again.stderr


def test_every_file_the_readme_names_exists():
    import re

    readme = (pathlib.Path(ROOT) / "README.md").read_text()
    named = set(re.findall(r"`(cnn_tf/[\w/]+\.py)`", readme)) | set(re.findall(r"`(cnn_tf/[\w/]+/)`", readme))
    examples = {"cnn_tf/nets/mynet.py", "cnn_tf/data/mydata.py"}  # the how-tos' new files
    assert named and [n for n in sorted(named - examples) if not (pathlib.Path(ROOT) / n).exists()] == []
