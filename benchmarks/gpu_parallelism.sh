#!/usr/bin/env bash
# The RNN-vs-Transformer parallelism benchmark
# (benchmarks/parallelism_benchmark.py) on the first NVIDIA GPU, in float32
# and in mixed_bfloat16, in under 8 minutes.
#
#   bash benchmarks/gpu_parallelism.sh [DIR]              # on a GPU machine
#   bash benchmarks/gpu_parallelism.sh --cpu-dry-run DIR  # the same steps, a
#                                                         # tiny sweep on CPU
#
# It runs in the project root (wherever it is started from), with the
# project's .venv (or $PYTHON). Results go to DIR/float32/ and
# DIR/mixed_bfloat16/ (results.json, results.md, PNGs); DIR defaults to
# $OUT, else docs/results/gpu_parallelism.
#
# TensorFlow 2.16 sees a GPU only with an NVIDIA driver and the CUDA libraries
# of `pip install "tensorflow[and-cuda]==2.16.*"`; without one this stops at
# once and says so. XLA is off: on a GPU, Keras's LSTM runs cuDNN kernels,
# which XLA cannot compile (with --xla Keras falls back for the RNN only).

set -euo pipefail

dry_run=false
if [[ "${1:-}" == "--cpu-dry-run" ]]; then
  [[ $# -eq 2 ]] || { echo "usage: $0 --cpu-dry-run DIR" >&2; exit 2; }
  dry_run=true
  shift
fi
root=$(cd "$(dirname "$0")/.." && pwd)
# DIR is taken from where the script was started, before moving to the root.
output=$(realpath -m "${1:-${OUT:-$root/docs/results/gpu_parallelism}}")
cd "$root"
python=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

if $dry_run; then
  sweep=(--device cpu --quick --sequence_lengths 16)
  # A dry run is seconds per dtype; the limit only guards against a hang.
  seconds_per_run=300
else
  gpus=$("$python" -c 'import tensorflow as tf
print(len(tf.config.list_physical_devices("GPU")))')
  if [[ "$gpus" == 0 ]]; then
    echo "error: TensorFlow sees no GPU here (it needs an NVIDIA driver" \
         "and the CUDA libraries of:" \
         "pip install \"tensorflow[and-cuda]==2.16.*\")" >&2
    exit 1
  fi
  # The CPU default sweep (lengths 16..512, batches 32 and 128), with more
  # steps per repeat, as a GPU step takes milliseconds. Most of a run is
  # building and tracing 3 models per cell (on 2 CPU cores about 10 s a
  # cell); not yet timed on a GPU machine, hence the limit per run.
  sweep=(--device gpu --sequence_lengths 16 32 64 128 256 512
         --batch_sizes 32 128 --repeats 5 --steps 10 --warmup_steps 3
         --peak_matrix_size 8192)
  # Two runs within 8 minutes, whatever happens.
  seconds_per_run=225
fi

status=0
for dtype in float32 mixed_bfloat16; do
  echo "== $dtype -> $output/$dtype"
  timeout "$seconds_per_run" "$python" -m finsent.commands.cli bench \
    "${sweep[@]}" --dtype "$dtype" --output "$output/$dtype" || {
      code=$?
      [[ $code -eq 124 ]] && echo "error: $dtype run stopped after" \
        "${seconds_per_run} s" >&2
      status=1
    }
done
exit "$status"
