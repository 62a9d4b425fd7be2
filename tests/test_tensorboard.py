"""What TensorBoard shows of cnn_tf's runs, asked of a real `tensorboard` server on 127.0.0.1 through
its HTTP API: per-epoch images (input, filters) and histograms (parameters, pre-activations, logits),
the evaluation's confusion matrix, misclassified images, precision-recall curves and report, the
flags, and an HParams experiment comparing two runs. And the graph reads like the model: its ops
sit under a few name scopes."""
import collections
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import tensorflow as tf

from cnn_tf.cluster import free_ports
from cnn_tf.config import RunConfig
from cnn_tf.graph import build_graph
from conftest import ROOT, cli_env, run_cli, small_run_flags, tensorboard_steps

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def logdir(data_dir, tmp_path_factory):
    """Two short runs of different hyper-parameters, one of them evaluated, side by side."""
    root = tmp_path_factory.mktemp("runs")
    for name, extra in (("small_lr", ["--initial_learning_rate=0.0005"]), ("large_batch", ["--batch_size=128"])):
        trained = run_cli("train", *small_run_flags(str(data_dir), str(root / name), "--progress=false", *extra))
        assert trained.returncode == 0, trained.stderr
    evaluated = run_cli("evaluate", f"--checkpoint_dir={root / 'small_lr'}")
    assert evaluated.returncode == 0, evaluated.stderr
    return root


@pytest.fixture(scope="module")
def server(logdir):
    port = free_ports(1)[0]
    process = subprocess.Popen([sys.executable, "-m", "cnn_tf.tensorboard", f"--logdir={logdir}", "--host=127.0.0.1",
                                f"--port={port}", "--reload_interval=0"], cwd=ROOT, env=cli_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                runs = json.loads(urllib.request.urlopen(base + "/data/runs", timeout=5).read())
                if "small_lr/summaries/eval_test" in runs and "large_batch/summaries/test" in runs:
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "tensorboard did not load the runs"
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def get(base, path, **params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    return urllib.request.urlopen(url, timeout=30).read()


def post(base, path, body):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def image_blobs(base, run, tag):
    """[(step, (height, width))] of every image of `tag` in `run`, each blob decoded as PNG."""
    found = []
    for entry in json.loads(get(base, "/data/plugin/images/images", run=run, tag=tag, sample=0)):
        blob = urllib.request.urlopen(base + "/data/plugin/images/individualImage?" + entry["query"], timeout=30).read()
        found.append((entry["step"], tuple(tf.io.decode_png(blob).shape[:2].as_list())))
    return found


def test_tensorboard_shows_the_epochs_images_and_histograms(server):
    images = json.loads(get(server, "/data/plugin/images/tags"))
    train = "small_lr/summaries/train"
    # 1,000 training images in batches of 64: epochs end at steps 16 and 32.
    assert image_blobs(server, train, "images/image/0") == [(16, (28, 28)), (32, (28, 28))]
    filters = "filters/lenet/conv1/weights/image"  # of one image, TensorFlow names it <tag>/image
    assert filters in images[train]
    # LeNet's first layer: 32 filters of 5x5 on one grey channel, 8 px a weight, framed: one row.
    assert image_blobs(server, train, filters) == [(16, (42, 32 * 42)), (32, (42, 32 * 42))]
    histograms = json.loads(get(server, "/data/plugin/histograms/tags"))[train]
    for tag in ("parameters/lenet/conv1/weights", "parameters/lenet/fc3/weights", "parameters/lenet/fc4/biases",
                "pre_activations/lenet/conv2", "pre_activations/lenet/fc4", "logits", "activations/lenet/conv1"):
        assert tag in histograms, (tag, sorted(histograms))


def test_tensorboard_shows_each_evaluation_with_the_split_in_the_run_name(server):
    pr_curves = json.loads(get(server, "/data/plugin/pr_curves/tags"))
    text = json.loads(get(server, "/data/plugin/text/tags"))
    for run, steps in (("small_lr/summaries/validation", [16, 32]), ("small_lr/summaries/test", [32]),
                       ("small_lr/summaries/eval_test", [32])):
        assert [s for s, _ in image_blobs(server, run, "confusion_matrix")] == steps, run
        assert [s for s, _ in image_blobs(server, run, "misclassified")] == steps, run
        assert set(pr_curves[run]) == {f"pr_curves/{k}_{k}/pr_curves" for k in range(10)}, run
        assert "per_class_report/text_summary" in text[run]
    scalars = json.loads(get(server, "/data/plugin/scalars/tags"))
    assert {"accuracy", "loss"} <= set(scalars["small_lr/summaries/validation"])
    assert "flags/text_summary" in text["small_lr/summaries"]
    flags = json.loads(get(server, "/data/plugin/text/text", run="small_lr/summaries", tag="flags/text_summary"))
    assert "--initial_learning_rate=0.0005" in flags[0]["text"]


def test_the_hparams_dashboard_compares_the_runs(server):
    experiment = post(server, "/data/plugin/hparams/experiment", {"experimentName": ""})
    assert {"model", "batch_size", "initial_learning_rate", "optimizer"} <= {h["name"] for h in experiment["hparamInfos"]}
    assert {(m["name"]["group"], m["name"]["tag"]) for m in experiment["metricInfos"]} >= {
        ("validation", "accuracy"), ("test", "accuracy")}
    groups = post(server, "/data/plugin/hparams/session_groups", {
        "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [], "startIndex": 0, "sliceSize": 10})["sessionGroups"]
    by_run = {group["sessions"][0]["name"]: group for group in groups}
    assert set(by_run) == {"small_lr/summaries", "large_batch/summaries"}
    assert by_run["small_lr/summaries"]["hparams"]["initial_learning_rate"] == 0.0005
    assert by_run["large_batch/summaries"]["hparams"]["batch_size"] == 128
    for group in groups:
        metrics = {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in group["metricValues"]}
        assert 0 < metrics[("test", "accuracy")] <= 1 and 0 < metrics[("validation", "accuracy")] <= 1
        assert group["sessions"][0]["status"] == "STATUS_SUCCESS"


def test_the_graph_reads_like_the_model():
    g = build_graph(RunConfig(model="lenet", num_towers=2), (28, 28, 1), 10, 1000)
    tops = collections.Counter(op.name.split("/")[0] for op in g.graph.get_operations())
    # The named tensors a user looks up, the model's variables, and a scope per part of the run.
    assert set(tops) <= {"input", "image", "label", "mix_weight", "keep_prob", "lenet", "training", "training_1",
                         "training_all_towers", "inference", "logits", "predictions", "loss", "accuracy",
                         "evaluation", "optimizer", "learning_rate", "scaled_learning_rate", "global_step",
                         "beta1_power", "beta2_power", "train_op", "nan_rollback", "nan_guard", "summaries", "save",
                         "initialization", "tower_shares"}, sorted(tops)


def test_a_train_dir_of_the_old_layout_resumes_with_its_validation_run_renamed(digits_run, data_dir, tmp_path):
    import shutil

    train_dir = tmp_path / "run"
    shutil.copytree(digits_run, train_dir)  # one epoch of the digits
    # What cnn_tf wrote before the runs were named after their split: the validation split in
    # summaries/test, no test run, nothing directly in summaries/.
    summaries = train_dir / "summaries"
    shutil.rmtree(summaries / "test")
    os.rename(summaries / "validation", summaries / "test")
    for name in os.listdir(summaries):
        if name.startswith("events."):
            os.remove(summaries / name)
    resumed = run_cli("train", *small_run_flags(str(data_dir), str(train_dir), "--num_epochs=2", "--progress=false"))
    assert resumed.returncode == 0, resumed.stderr
    assert tensorboard_steps(str(summaries / "validation"), "accuracy") == [16, 32]
    assert tensorboard_steps(str(summaries / "test"), "accuracy") == [32]  # now the test split's, once
