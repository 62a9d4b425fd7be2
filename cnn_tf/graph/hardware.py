"""What the hardware offers a graph: the towers' devices and the precision the layers compute in."""
import tensorflow as tf

from cnn_tf import log
from cnn_tf.errors import UserError

COMPUTE_DTYPES = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16, "mixed_float16": tf.float16}
# cnn_tf's training images/s in mixed_bfloat16 over float32, measured by `make bench` on an Intel Xeon
# with AVX512_BF16 and AMX (README, Performance; resnet: the fast and the best recipe's): what a run
# that falls back to float32 gives up.
BFLOAT16_SPEEDUP = {"lenet": "1.7", "three_conv": "1.7", "resnet": "1.7-2.0"}
BFLOAT16_SPEEDUP_RANGE = "1.7-2.0"  # all of them: what another model may expect


def tower_devices(cfg):
    """The devices of the model's towers: /gpu:0.. or /cpu:0.. (see session_config)."""
    kind = "gpu" if cfg.device == "gpu" else "cpu"
    return [f"/{kind}:{i}" for i in range(cfg.num_towers)]


def check_devices(cfg):
    """The towers' devices; with --device=gpu on a machine with fewer GPUs than towers, a warning naming
    where soft placement runs them (or, without soft placement, an error)."""
    devices = tower_devices(cfg)
    if cfg.device != "gpu":
        return devices
    gpus = len(tf.config.list_physical_devices("GPU"))
    if gpus >= cfg.num_towers:
        return devices
    if not cfg.allow_soft_placement:
        raise UserError(f"--device=gpu --num_towers={cfg.num_towers} needs {cfg.num_towers} GPU(s), this machine has "
                        f"{gpus}; pass --allow_soft_placement, fewer --num_towers or --device=cpu")
    missing = ", ".join(devices[gpus:])
    where = "/cpu:0" if gpus == 0 else "/gpu:0 or /cpu:0"
    log.warning(f"--device=gpu: this machine has {gpus} GPU(s); soft placement runs {missing} on {where}")
    return devices


def cpu_has_bfloat16():
    """AVX512_BF16 or AMX: the CPU instructions that make bfloat16 faster than float32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def effective_precision(cfg):
    """--precision where the hardware runs it fast; else float32, with a warning saying why."""
    if cfg.precision == "float32":
        return "float32"
    has_gpu = cfg.device == "gpu" and bool(tf.config.list_physical_devices("GPU"))
    if has_gpu or (cfg.precision == "mixed_bfloat16" and cpu_has_bfloat16()):
        return cfg.precision
    need = "a GPU" if cfg.precision == "mixed_float16" else "a CPU with AVX512_BF16 or AMX, or a GPU"
    log.warning(f"--precision={cfg.precision} needs {need} (--device={cfg.device} here has none); "
                "computing in float32")
    return "float32"


def fallback_cost(cfg, precision):
    """The start-up summary's words when --precision fell back to `precision`: why, and the price."""
    if precision == cfg.precision:
        return None
    if cfg.precision == "mixed_float16":
        return "--precision=mixed_float16 fell back: no GPU here"
    speedup = BFLOAT16_SPEEDUP.get(cfg.model, BFLOAT16_SPEEDUP_RANGE)
    what = cfg.model if cfg.model in BFLOAT16_SPEEDUP else "the benchmark's models"
    price = f"a CPU with them trains {what} {speedup}x as fast in bfloat16 (make bench)"
    return f"--precision={cfg.precision} fell back: this CPU has no AVX512_BF16 or AMX; {price}"


def session_config(cfg):
    """The ConfigProto of a run; with --deterministic, turns on op determinism (process-wide, read by
    kernels when a session creates them). Towers on the CPU get as many CPU devices."""
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    config = tf.compat.v1.ConfigProto(
        allow_soft_placement=cfg.allow_soft_placement, log_device_placement=cfg.log_device_placement,
        intra_op_parallelism_threads=cfg.intra_op_threads, inter_op_parallelism_threads=cfg.inter_op_threads)
    if cfg.device == "cpu" and cfg.num_towers > 1:
        config.device_count["CPU"] = cfg.num_towers
    return config
