"""What holds the Transformer's training step below the machine's matmul
peak on CPU, and what raises it (`finsent bench-peak`, whose flags are in
commands/bench_peak.py).

`finsent bench` finds the pipeline's Transformer training at about an
eighth of a large matmul's FLOP/s. This study takes one cell of that sweep
(length 128, batch 128, all the CPU threads) and changes one thing at a
time (VARIANTS): dropout off, XLA, a larger batch, a wider model, the
mixed_bfloat16 policy, and the changes together.

Per variant, in one fresh process for all of them (the thread count is
fixed when TensorFlow starts; parallelism_benchmark.measure_run):
- the matmul peak in the variant's compute dtype, and the Transformer's
  and the pipeline RNN's training and inference steps, timed as
  `finsent bench` times them (warm-up, repeats of interleaved steps);
- a TensorFlow profile of a few Transformer training steps, read with
  the profile report's framework op statistics: the share of op time
  spent in matmul kernels (MatMul, BatchMatMul and Einsum, oneDNN's forms
  included), the rate the matmul kernels themselves reach (the step's
  counted FLOPs over their time), and the op types with the most time.
  Under XLA a step is one compiled cluster and the split is not visible.

The fraction of peak is given against the variant's own dtype's peak and
against float32's (the first variant's run), so that bfloat16's faster
matmuls count as what they are: more FLOP/s from the same cores.

It writes DIR/results.json (every run as `finsent bench` records it, plus
the profiles' op times), DIR/results.md and DIR/fraction_of_peak.png.
"""

import concurrent.futures
import dataclasses
import multiprocessing
import os
import statistics
import tempfile
import time
from typing import Dict, List, Optional

from finsent.benchmarks import parallelism_benchmark as bench

# A step's op types whose FLOPs the benchmark counts (forward_flops counts
# matmuls only): TensorFlow's and oneDNN's (_Mkl*, _Fused*) matmuls, and the
# Einsums Keras's attention and dense layers run.
MATMUL_OP_MARKERS = ('MatMul', 'Einsum')
TOP_OP_TYPES = 4
FULL = {'sequence_length': 128, 'batch_size': 128,
        'threads': len(os.sched_getaffinity(0)), 'repeats': 5, 'steps': 5,
        'warmup_steps': 2, 'profile_steps': 3, 'peak_matrix_size': 2048}
QUICK = {'sequence_length': 16, 'batch_size': 4, 'threads': 1, 'repeats': 1,
         'steps': 1, 'warmup_steps': 1, 'profile_steps': 1,
         'peak_matrix_size': 256}
PNG_FILE = 'fraction_of_peak.png'


@dataclasses.dataclass(frozen=True)
class Variant:
  """One change (or several) from the pipeline's Transformer cell."""
  name: str
  change: str
  transformer_arguments: Dict[str, object] = dataclasses.field(
      default_factory=dict)
  batch_multiplier: int = 1
  dtype: str = 'float32'
  xla: bool = False


WIDE = {'embedding_dim': 256, 'intermediate_dim': 1024}
# The first is the baseline every other is compared with, in float32.
VARIANTS = (
    Variant('pipeline', 'none: the pipeline\'s Transformer, float32'),
    Variant('no_dropout', 'dropout 0 (no random masks drawn)',
            transformer_arguments={'dropout': 0.0}),
    Variant('xla', 'compile(jit_compile=True)', xla=True),
    Variant('batch_x4', 'four times the batch', batch_multiplier=4),
    Variant('wide', 'width 256 (4 heads of 64), feed-forward 1024',
            transformer_arguments=WIDE),
    Variant('wide_xla', 'width 256, feed-forward 1024; XLA',
            transformer_arguments=WIDE, xla=True),
    Variant('bfloat16', 'the mixed_bfloat16 policy', dtype='mixed_bfloat16'),
    Variant('wide_xla_bfloat16',
            'width 256, feed-forward 1024; XLA; mixed_bfloat16',
            transformer_arguments=WIDE, dtype='mixed_bfloat16', xla=True),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)


def variant_settings(study: Dict, pipeline: Dict, variant: Variant) -> Dict:
  """parallelism_benchmark's settings for one variant: one cell, the
  variant's Transformer and the pipeline's RNN."""
  transformer = pipeline['variants']['transformer']
  return {
      **pipeline,
      'variants': {
          'rnn': pipeline['variants']['rnn'],
          'transformer': {
              **transformer,
              'arguments': {**transformer['arguments'],
                            **variant.transformer_arguments},
              'sizes': variant.change}},
      'sequence_lengths': [study['sequence_length']],
      'batch_sizes': [study['batch_size'] * variant.batch_multiplier],
      'threads': [study['threads']],
      'device': 'cpu', 'dtype': variant.dtype, 'xla': variant.xla,
      **{key: study[key] for key in ('repeats', 'steps', 'warmup_steps',
                                     'peak_matrix_size')}}


# The measuring process.


def _profile_training(settings: Dict, steps: int, logdir: str
                      ) -> Dict[str, float]:
  """Self ms per op type over `steps` profiled Transformer training steps
  (after the warm-up ones)."""
  # pylint: disable=g-import-not-at-top
  import keras
  import tensorflow as tf
  from finsent.models import training_profile
  # pylint: enable=g-import-not-at-top
  length = settings['sequence_lengths'][0]
  inputs, labels = bench.synthetic_batch(tf, settings, length,
                                         settings['batch_sizes'][0],
                                         '/CPU:0')
  bench.fresh_keras(keras, settings['dtype'])
  keras.utils.set_random_seed(settings['seed'])
  model = bench.compiled_model(keras, settings, bench.model_builders(),
                               settings['variants']['transformer'], length)
  for _ in range(settings['warmup_steps']):
    model.train_on_batch(inputs, labels)
  tf.profiler.experimental.start(logdir)
  try:
    for step in range(steps):
      with tf.profiler.experimental.Trace('train', step_num=step, _r=1):
        model.train_on_batch(inputs, labels)
  finally:
    tf.profiler.experimental.stop()
  return training_profile.op_type_self_ms(training_profile.find_profile(logdir))


def measure_variants(variants: List[Variant], all_settings: List[Dict],
                     threads: int, profile_steps: int) -> List[Dict]:
  """Every variant's run (measure_run's record) with its profile's op
  times, in this fresh process."""
  runs = []
  with tempfile.TemporaryDirectory(prefix='finsent-bench-peak-') as scratch:
    for index, (variant, settings) in enumerate(zip(variants, all_settings)):
      print(f'== {variant.name}: {variant.change}', flush=True)
      run = bench.measure_run(settings, threads)
      run['op_type_self_ms'] = _profile_training(
          settings, profile_steps, os.path.join(scratch, str(index)))
      run['profile_steps'] = profile_steps
      runs.append(run)
  return runs


# Analysis and report, in the parent process.


def is_matmul(op_type: str) -> bool:
  return any(marker in op_type for marker in MATMUL_OP_MARKERS)


def analyse_variant(run: Dict, settings: Dict, peaks: Dict[str, float]
                    ) -> Dict:
  """The Transformer's training figures for one variant's run (which
  parallelism_benchmark.analyse_run has analysed); `peaks`: matmul FLOP/s
  per compute dtype."""
  [cell] = run['cells']
  transformer = cell['models']['transformer']
  train = transformer['train']
  op_ms = run['op_type_self_ms']
  total_ms = sum(op_ms.values())
  matmul_ms = sum(ms for op_type, ms in op_ms.items() if is_matmul(op_type))
  # Under XLA the profile shows the compiled step as one op.
  visible = total_ms > 0 and not settings['xla']
  peak = peaks[run['compute_dtype']]
  return {
      'parameters': transformer['parameters'],
      'batch_size': cell['batch_size'],
      'compute_dtype': run['compute_dtype'],
      'train_flops_per_step': train['flops_per_step'],
      'train_ms': train['seconds_per_step']['median'] * 1e3,
      'inference_ms': (transformer['inference']['seconds_per_step']['median']
                       * 1e3),
      'flops_per_s': train['flops_per_s'],
      'fraction_of_peak': train['flops_per_s'] / peak,
      'fraction_of_float32_peak': train['flops_per_s'] / peaks['float32'],
      'op_ms_per_step': total_ms / run['profile_steps'],
      'matmul_share_of_op_time': matmul_ms / total_ms if visible else None,
      # How fast the matmuls ran inside their kernels, against the peak.
      'matmul_kernel_fraction_of_peak': (
          train['flops_per_step'] * run['profile_steps'] / (matmul_ms / 1e3)
          / peak if visible and matmul_ms else None),
      'top_op_types': [(op_type, ms / total_ms) for op_type, ms in
                       list(op_ms.items())[:TOP_OP_TYPES]] if total_ms else [],
      'rnn_train_ms': (cell['models']['rnn']['train']['seconds_per_step']
                       ['median'] * 1e3),
      'transformer_over_rnn_train': (
          cell['ratios']['pipeline sizes']['train']['median']),
  }


def pooled_peaks(runs: List[Dict]) -> Dict[str, float]:
  """Matmul FLOP/s per compute dtype: the median over every run's repeats
  in that dtype (each variant's process measures its own dtype's)."""
  per_dtype = {}
  for run in runs:
    per_dtype.setdefault(run['compute_dtype'], []).extend(
        run['peak']['flops'] / s for s in run['peak']['seconds'])
  return {dtype: statistics.median(values)
          for dtype, values in per_dtype.items()}


def analyse(results: Dict) -> None:
  """Adds to `results`, in place, the pooled peaks and each variant's
  analysed figures."""
  for run, settings in zip(results['runs'], results['variant_settings']):
    bench.analyse_run(run, settings)
  results['peaks'] = pooled_peaks(results['runs'])
  results['variants'] = [
      {**variant, **analyse_variant(run, settings, results['peaks'])}
      for variant, run, settings in zip(
          results['variants'], results['runs'], results['variant_settings'])]


def _percent(value: Optional[float]) -> str:
  return '-' if value is None else f'{100 * value:.1f}'


def markdown(results: Dict) -> str:
  study, machine_info = results['settings'], results['machine']
  first = results['runs'][0]
  lines = [
      '# Transformer training on CPU: what limits the fraction of peak', '',
      f'`{results["command"]}`, {results["date"]}, on '
      f'{machine_info["cpu_model"]} ({machine_info["logical_cpus"]} logical '
      f'CPUs), {study["threads"]} thread(s); TensorFlow '
      f'{first["software"]["tensorflow"]}, Keras '
      f'{first["software"]["keras"]}.', '',
      f'One cell: length {study["sequence_length"]}, batch '
      f'{study["batch_size"]} (unless the variant changes it). Per variant: '
      f'{study["warmup_steps"]} warm-up step(s), then {study["repeats"]} '
      f'repeat(s) of {study["steps"]} step(s) of the Transformer and the '
      'pipeline RNN interleaved (medians); then a profile of '
      f'{study["profile_steps"]} Transformer training step(s). FLOPs: '
      'matmuls only, counted from the layer shapes (training = 3 × '
      'forward). Peak: a '
      f'{study["peak_matrix_size"]}² matmul, measured in each variant\'s '
      'process in its compute dtype; the median over the runs per dtype: ' +
      ', '.join(f'{dtype} {flops / 1e9:,.1f} GFLOP/s'
                for dtype, flops in results['peaks'].items()) + '. '
      '"Matmul kernels": the counted FLOPs over the self time of the '
      'profile\'s matmul ops (MatMul, BatchMatMul, Einsum), i.e. how fast '
      'the matmuls themselves ran; "-" under XLA, whose compiled step the '
      'profile shows as one op.', '',
      '| variant | change | parameters | batch | train ms | GFLOP/s | % of '
      'float32 peak | % of own dtype\'s peak | matmul share of op time | '
      'matmul kernels, % of peak | op time per step, ms | most op time | '
      'RNN train ms | Transformer / RNN |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|']
  for v in results['variants']:
    top = ', '.join(f'{op_type} {share:.0%}'
                    for op_type, share in v['top_op_types'])
    lines.append(
        f'| {v["name"]} | {v["change"]} | {v["parameters"]:,} | '
        f'{v["batch_size"]} | {v["train_ms"]:,.1f} | '
        f'{v["flops_per_s"] / 1e9:,.1f} | '
        f'{_percent(v["fraction_of_float32_peak"])} | '
        f'{_percent(v["fraction_of_peak"])} | '
        f'{_percent(v["matmul_share_of_op_time"])} | '
        f'{_percent(v["matmul_kernel_fraction_of_peak"])} | '
        f'{v["op_ms_per_step"]:,.1f} | {top} | {v["rnn_train_ms"]:,.1f} | '
        f'{v["transformer_over_rnn_train"]:.2f} |')
  lines += ['', '| variant | peak GFLOP/s in its process | other processes '
            '(cores) |', '|---|---:|---:|']
  lines += [f'| {v["name"]} | '
            f'{run["peak"]["flops_per_s"]["median"] / 1e9:,.1f} '
            f'({run["compute_dtype"]}) | {run["other_cpu_cores"]:.2f} |'
            for v, run in zip(results['variants'], results['runs'])]
  lines.append('')
  return '\n'.join(lines)


def write_plot(path: str, results: Dict) -> None:
  """Per variant: the Transformer's training FLOP/s as % of the float32
  peak and of its own dtype's peak."""
  # pylint: disable=g-import-not-at-top
  import matplotlib
  matplotlib.use('Agg')
  from matplotlib import pyplot
  # pylint: enable=g-import-not-at-top
  variants = results['variants']
  positions = range(len(variants))
  figure, axes = pyplot.subplots(figsize=(8, 0.55 * len(variants) + 1.6))
  height = 0.38
  axes.barh([p - height / 2 for p in positions],
            [100 * v['fraction_of_float32_peak'] for v in variants], height,
            label='% of float32 matmul peak')
  axes.barh([p + height / 2 for p in positions],
            [100 * v['fraction_of_peak'] for v in variants], height,
            label='% of its own dtype\'s matmul peak')
  for position, v in zip(positions, variants):
    axes.annotate(f'{v["train_ms"]:,.0f} ms/step',
                  (100 * max(v['fraction_of_float32_peak'],
                             v['fraction_of_peak']), position),
                  xytext=(4, 0), textcoords='offset points', va='center',
                  fontsize=8)
  axes.set_yticks(list(positions), [v['name'] for v in variants])
  axes.invert_yaxis()
  axes.set_xlabel('Transformer training step: counted FLOP/s, % of peak')
  study = results['settings']
  axes.set_title(f'Length {study["sequence_length"]}, batch '
                 f'{study["batch_size"]}, {study["threads"]} thread(s)')
  axes.legend(loc='upper right', fontsize=8)
  axes.margins(x=0.25)
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  pyplot.close(figure)


def summary(results: Dict) -> str:
  return '\n'.join(
      f'{v["name"]:>20}: {v["train_ms"]:8.1f} ms/step, '
      f'{100 * v["fraction_of_float32_peak"]:5.1f} % of float32 peak, '
      f'{100 * v["fraction_of_peak"]:5.1f} % of own dtype\'s; '
      f'Transformer/RNN {v["transformer_over_rnn_train"]:.2f}'
      for v in results['variants'])


def run(study: Dict, prog: str, argv: List[str]) -> int:
  """Runs the study `study` (commands.bench_peak.parse_settings) in one
  fresh process and writes its results under study['output'], with the
  command `prog argv`."""
  pipeline = bench.pipeline_settings(study['sequence_length'])
  variants = [v for v in VARIANTS if v.name in study['variants']]
  all_settings = [variant_settings(study, pipeline, v) for v in variants]
  started = time.monotonic()
  print(f'{len(variants)} variants at length {study["sequence_length"]}, '
        f'batch {study["batch_size"]}, {study["threads"]} thread(s)',
        flush=True)
  # One fresh process: TensorFlow takes the thread count when it starts.
  with concurrent.futures.ProcessPoolExecutor(
      max_workers=1, mp_context=multiprocessing.get_context('spawn')) as pool:
    runs = pool.submit(measure_variants, variants, all_settings,
                       study['threads'], study['profile_steps']).result()
  results = {
      **bench.results_header(prog, argv),
      'settings': study,
      'variants': [dataclasses.asdict(v) for v in variants],
      'variant_settings': all_settings,
      'runs': runs,
      'wall_seconds': time.monotonic() - started,
  }
  analyse(results)
  output = study['output']
  os.makedirs(output, exist_ok=True)
  write_plot(os.path.join(output, PNG_FILE), results)
  results['plots'] = [PNG_FILE]
  bench.write_results(output, results, markdown(results), summary(results))
  return 0
