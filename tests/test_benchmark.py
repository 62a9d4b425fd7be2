"""The benchmark's smoke test on tiny settings: it runs, measures each framework, and writes its
report. No timing is asserted here (make test is not a benchmark); `make bench` measures."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, cli_env, small_run_flags


@pytest.mark.slow
def test_benchmark_runs_on_tiny_settings_and_writes_its_report(tmp_path):
    result = subprocess.run(
        [sys.executable, "scripts/benchmark.py", "--models=lenet,resnet_fast", "--precisions=float32",
         "--frameworks=cnn_tf,keras,torch", "--steps=3", "--resnet_steps=2", "--warmup=2", "--rounds=1",
         "--eval_images=500", "--towers=2", f"--out={tmp_path}"], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    results = json.load(open(tmp_path / "results.json"))
    run = results["runs"][0]
    assert run["model"] == "lenet" and run["precision"] == "float32"
    assert run["images_per_s"]["cnn_tf"] > 0 and run["images_per_s"]["keras"] > 0
    assert run["ratio_vs_keras"] > 0 and run["eval_images_per_s"] > 0
    assert run["bare_step_images_per_s"] > 0 and run["loop_share_of_bare_step"] > 0
    # LeNet's convolutions and fully connected layers alone are 27.7 MFLOP per image (2 per MAC).
    conv_and_fc = 2 * (28 * 28 * 32 * 25 + 14 * 14 * 64 * 25 * 32 + 7 * 7 * 64 * 1024 + 1024 * 10) / 1e6
    assert conv_and_fc < run["forward_mflops_per_image"] < conv_and_fc * 1.3
    assert 0 < run["train_fraction_of_matmul_peak"] and 0 < run["validation_share_of_epoch"] < 1
    assert results["matmul_peak_gflops"] > 0 and results["machine"]["cores"] >= 1
    table = (tmp_path / "results.md").read_text()
    assert "| `lenet` | float32 |" in table and "matmul peak measured" in table
    towers = results["runs"][1]
    assert towers["num_towers"] == 2 and towers["images_per_s"]["cnn_tf"] > 0 and towers["ratio_vs_one_tower"] > 0
    assert "--num_towers=2 on 2 CPU devices" in table
    resnet = results["runs"][2]  # no towers row: --tower_models is LeNet and three_conv
    assert resnet["model"] == "resnet_fast" and resnet["steps"] == 2 and len(results["runs"]) == 3
    assert resnet["images_per_s"]["keras"] > 0 and resnet["ratio_vs_keras"] > 0
    # the fast recipe's ResNet-14 at 28x28: its 3x3 and 1x1 convs (16, 32, 64 channels on 28, 14, 7 pixels)
    macs = 9 * 16 * 784 + 4 * 9 * 16 * 16 * 784 + sum(9 * c * 2 * c * n * n + 3 * 9 * 4 * c * c * n * n + 2 * c * c * n * n
                                                       for c, n in ((16, 14), (32, 7)))
    assert 2 * macs < resnet["forward_mflops_per_image"] * 1e6 < 2 * macs * 1.1
    assert "| `resnet_fast` (ResNet-14, width 16) | float32 |" in table


@pytest.mark.parametrize("config", ["configs/resnet_fashion_mnist_fast.cfg", "configs/resnet_fashion_mnist.cfg"])
def test_the_benchmarks_keras_resnet_has_the_parameters_of_cnn_tfs(config):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import tensorflow as tf
    from bench_models import keras_model
    from cnn_tf import flagfile
    from cnn_tf.nets import get_network_fn

    hp = flagfile.load_config(os.path.join(ROOT, config))
    with tf.Graph().as_default():
        network_fn = get_network_fn("resnet", 10, use_batch_norm=True, resnet_depth=hp.resnet_depth,
                                    resnet_width=hp.resnet_width)
        _, end_points = network_fn(tf.zeros([1, 28, 28, 1]), is_training=True)
        ours = sum(v.shape.num_elements() for v in tf.compat.v1.trainable_variables())
        last_map = end_points["resnet/stage3"].shape.as_list()[1:]
    keras_net = keras_model(hp, "float32")
    theirs = sum(int(tf.size(w)) for w in keras_net.trainable_weights)
    assert ours == theirs and ours > 150_000
    # The same positions too: a stride elsewhere would change the work, not the parameters.
    pooled = next(layer for layer in keras_net.layers if type(layer).__name__ == "GlobalAveragePooling2D")
    assert list(pooled.input.shape[1:]) == last_map


@pytest.mark.slow
def test_the_streaming_benchmark_runs_on_tiny_settings_and_writes_its_report(tmp_path):
    result = subprocess.run(
        [sys.executable, "scripts/bench_streaming.py", "--sizes=60,120", "--cifar_size=600", "--cifar_test_size=200",
         "--shuffle_buffer=40", f"--out={tmp_path}"],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.load(open(tmp_path / "streaming.json"))
    for entry in [*results["folders"].values(), results["cifar"]]:
        assert entry["convert"]["images_per_s"] > 0
        for source in ("stream", "memory"):
            assert entry[source]["images_per_s"] > 0 and entry[source]["peak_rss_mib"] > 100
    assert results["cifar_stream_share_of_memory"] > 0 and "stream_rss_growth" in results
    assert "| 120 JPEGs 128×128, trained at 32×32 |" in (tmp_path / "streaming.md").read_text()


@pytest.mark.slow
def test_time_to_accuracy_finds_the_first_checkpoint_at_the_target_and_the_readme_keeps_other_rows(tmp_path, data_dir):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import benchmark

    config = tmp_path / "tiny.cfg"
    config.write_text("\n".join(f for f in small_run_flags(data_dir, "-", "--num_epochs=3", "--augment=flip_crop")
                                if not f.startswith("--train_dir")))
    reached = benchmark.time_to_accuracy(str(config), 0.5)
    assert reached["run_epochs"] == 3 and 1 <= reached["epochs"] <= 3, reached
    assert reached["test_accuracy"] >= 0.5 and 0 < reached["seconds"] <= reached["run_seconds"]
    # the first checkpoint at the target: every one before it was evaluated and below
    assert len(reached["accuracies"]) == reached["epochs"] and reached["accuracies"][-1] == reached["test_accuracy"]
    assert all(a < 0.5 for a in reached["accuracies"][:-1])
    row = {"config": "configs/resnet_fashion_mnist_fast.cfg", "precision": "mixed_bfloat16", "target": 0.5,
           "result": reached}
    here = "x (?), 2 cores"
    unmeasured = {"config": "configs/resnet_fashion_mnist_fast.cfg", "precision": "float32@AVX2", "target": 0.5,
                  "result": "not measured: this CPU is AVX2 already (its float32 row)"}
    table = benchmark.time_to_accuracy_markdown({"machine": {"cpu": "x", "cores": 2},
                                                 "time_to_accuracy": [row, unmeasured]})
    old = ("\n| config | precision |\n|---|---|\n"
           "| `configs/three_conv_fashion_mnist.cfg` | float32 | 0.915 | 1.5 min | 5 | 0.9162 | 4.4 min | 15 | y |\n"
           f"| `configs/resnet_fashion_mnist_fast.cfg` | mixed_bfloat16 | 0.93 | 9 min | 8 | 0.93 | 9 min | 8 | {here} |\n"
           "| `configs/resnet_fashion_mnist_fast.cfg` | mixed_bfloat16 | 0.93 | 3.2 min | 8 | 0.93 | 3.3 min | 8 | y |\n"
           "| `configs/resnet_fashion_mnist_fast.cfg` | float32@AVX2 | 0.93 | 8.3 min | 8 | 0.93 | 8.4 min | 8 | y |\n")
    merged = benchmark.merged_rows(old, table).splitlines()
    rows = [line for line in merged if line.startswith("| `")]
    # In TIME_TO_ACCURACY's order; this machine's row replaced, another machine's kept beside it, and a row
    # this CPU could not measure leaves the other machine's figures in place.
    assert rows[0].startswith("| `configs/three_conv_fashion_mnist.cfg` | float32 | 0.915 | 1.5 min |")
    assert rows[1].startswith("| `configs/resnet_fashion_mnist_fast.cfg` | float32@AVX2 | 0.93 | 8.3 min |")
    assert rows[2].startswith("| `configs/resnet_fashion_mnist_fast.cfg` | mixed_bfloat16 | 0.5 | ")
    assert f"| {reached['epochs']} | {reached['test_accuracy']:.4f} |" in rows[2] and rows[2].endswith(f"| {here} |")
    assert rows[3].startswith("| `configs/resnet_fashion_mnist_fast.cfg` | mixed_bfloat16 | 0.93 | 3.2 min |")
    assert len(rows) == 4 and "9 min" not in "\n".join(rows)


def test_results_script_refuses_a_config_that_is_not_there_in_one_line_and_changes_nothing():
    readme = open(os.path.join(ROOT, "README.md")).read()
    result = subprocess.run([sys.executable, "scripts/results.py", "configs/resnet_fashion_mnist_fast.cfg",
                             "configs/nope.cfg"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: configs/nope.cfg: no such config file (give paths like configs/X.cfg, from {ROOT})"]
    assert open(os.path.join(ROOT, "README.md")).read() == readme


def test_time_to_accuracy_reports_a_checkpoint_evaluate_refused_as_one_error_keeping_the_run_time(monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import benchmark

    def run(command, **kwargs):
        if command[2] == "cnn_tf.train":  # a run that wrote one checkpoint
            train_dir = next(c.split("=", 1)[1] for c in command if c.startswith("--train_dir="))
            os.makedirs(os.path.join(train_dir, "checkpoints"))
            open(os.path.join(train_dir, "checkpoints", "model.ckpt-5.index"), "w").close()
            return subprocess.CompletedProcess(command, 0, "test accuracy: 0.9\n", "")
        return subprocess.CompletedProcess(command, 1, "", "note\nerror: flags.cfg: unknown flag --x\n")

    monkeypatch.setattr(benchmark.subprocess, "run", run)
    result = benchmark.time_to_accuracy("configs/resnet_fashion_mnist_fast.cfg", 0.93)
    assert result["error"] == "evaluate model.ckpt-5: error: flags.cfg: unknown flag --x"
    assert result["accuracies"] == [] and result["run_seconds"] >= 0
