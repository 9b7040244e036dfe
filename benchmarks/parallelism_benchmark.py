"""How well the RNN and the Transformer use parallel hardware (`finsent
bench`, whose flags are in commands/bench.py).

The question: does a Transformer encoder, which handles every position of
a sequence at once, turn more of a machine's cores (or a GPU) into speed
than a bidirectional LSTM, which steps through the sequence one token after
the other? Measured on the models the pipeline trains (models.rnn's and
models.transformer's builders, with finsent.configs' sizes and the
Trainer's optimiser and loss), on synthetic token batches, over a sweep of
sequence lengths, batch sizes and CPU thread counts:

- training step time (`model.train_on_batch`: forward, backward and the
  Adam update, through the function Keras compiles for `fit`) and inference
  time per batch (`model.predict_on_batch`, the function Keras compiles for
  `predict`), optionally XLA-compiled (`--xla`: `compile(jit_compile=True)`);
- tokens/s, and achieved FLOP/s from FLOPs counted analytically from the
  layer shapes (`forward_flops`), as a fraction of the machine's limit
  measured in the same process: a large matmul's FLOP/s;
- the Transformer/RNN time ratio per cell, from repeats of the models run
  interleaved, and the sequence length where the faster model changes;
- the speed-up of each model from 1 thread to N (CPU only).

Three models: `rnn` and `transformer` at the pipeline's sizes, and
`rnn_matched`, an RNN whose units are chosen so that its forward FLOPs per
token come closest to the Transformer's at --match_length, so that the two
architectures are also compared at equal work per token.

Each thread count runs in its own spawned process, which sets TensorFlow's
intra- and inter-op thread pools and its CPU affinity to N cores before
TensorFlow starts (TensorFlow fixes its thread pools when its runtime
starts); that is also why TensorFlow and Keras are imported only inside
`measure_run`. Inputs are made before the clock starts; warm-up steps
(tracing, first-call allocation) are not timed; every timed call returns
its result to Python as NumPy, so the device has finished when the clock
stops.

--device gpu runs the sweep in one process on the first GPU (no thread
sweep); benchmarks/gpu_parallelism.sh runs it in float32 and mixed_bfloat16.

It writes DIR/results.json (machine, command, settings, every repeat),
DIR/results.md (tables of medians) and DIR/*.png (throughput, fraction of
peak, and, with two or more thread counts, speed-up).
"""

import concurrent.futures
import dataclasses
import datetime
import json
import math
import multiprocessing
import os
import shlex
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from finsent.benchmarks import host

DISPLAY_NAMES = {'rnn': 'RNN', 'transformer': 'Transformer'}
MODES = ('train', 'inference')
DEVICES = ('cpu', 'gpu')
DTYPES = ('float32', 'mixed_bfloat16')
# Each pair is compared as (RNN, Transformer); the ratio is Transformer
# time / RNN time, so above 1 the RNN is faster.
COMPARISONS = {'pipeline sizes': ('rnn', 'transformer'),
               'matched FLOPs': ('rnn_matched', 'transformer')}
# Gates of a Keras recurrent cell: LSTM input, forget, cell, output; GRU
# update, reset, candidate.
RECURRENT_GATES = {'lstm': 4, 'gru': 3}
# The backward pass computes, for every matmul of the forward pass, the
# gradient with respect to its input and to its weights: two matmuls of the
# forward one's size (Kaplan et al. 2020, "Scaling laws", section 2.1).
TRAINING_FLOPS_PER_FORWARD = 3
# A full run and --quick; a flag given explicitly wins.
FULL = {'sequence_lengths': [16, 32, 64, 128, 256, 512],
        'batch_sizes': [32, 128],
        'threads': sorted({1, len(os.sched_getaffinity(0))}),
        'repeats': 5, 'steps': 5, 'warmup_steps': 2}
QUICK = {'sequence_lengths': [16, 64], 'batch_sizes': [8], 'threads': [1],
         'repeats': 1, 'steps': 2, 'warmup_steps': 1}
# Past this much CPU used by other processes during a run, its numbers are
# not this machine's best.
OTHER_CPU_WARNING_CORES = 0.2
PNG_FILES = {'throughput': 'throughput.png',
             'fraction_of_peak': 'fraction_of_peak.png',
             'speedup': 'speedup.png'}


class BenchmarkError(RuntimeError):
  """The benchmark cannot run as asked (e.g. no GPU for --device gpu)."""


# FLOPs, counted from the layer shapes. Only matmuls are counted, at 2 FLOPs
# per multiply-add: they are nearly all of the arithmetic, and what a
# machine's peak is quoted for. Not counted: element-wise work (activations,
# the LSTM's gate products, softmax, layer norm, bias adds, dropout,
# residual adds, mean pooling) and the embeddings, which are gathers.


def dense_flops(input_dim: int, output_dim: int) -> int:
  """FLOPs of one vector [input_dim] times a kernel [input_dim, output_dim]."""
  return 2 * input_dim * output_dim


def recurrent_direction_flops(cell: str, input_dim: int, units: int,
                              sequence_length: int) -> int:
  """Forward FLOPs of one direction of a Keras LSTM/GRU over one sequence.

  At every step each gate multiplies the input [input_dim] by its slice of
  the kernel [input_dim, units] and the previous state [units] by its slice
  of the recurrent kernel [units, units].
  """
  return (RECURRENT_GATES[cell] * dense_flops(input_dim + units, units) *
          sequence_length)


def encoder_layer_flops(sequence_length: int, model_dim: int,
                        intermediate_dim: int) -> int:
  """Forward FLOPs of one keras-hub `TransformerEncoder` over one sequence.

  With L = sequence_length, d = model_dim (= heads x key_dim, as the builder
  requires) and f = intermediate_dim: the query, key, value and output
  projections, 4 x L x 2d^2; the scores Q K^T, [L, d] x [d, L] summed over
  heads, 2 L^2 d; the weighted values A V, [L, L] x [L, d], 2 L^2 d; the
  feed-forward block, L x (2df + 2fd).
  """
  projections = 4 * sequence_length * dense_flops(model_dim, model_dim)
  scores = 2 * sequence_length * sequence_length * model_dim
  weighted_values = 2 * sequence_length * sequence_length * model_dim
  feed_forward = sequence_length * (dense_flops(model_dim, intermediate_dim) +
                                    dense_flops(intermediate_dim, model_dim))
  return projections + scores + weighted_values + feed_forward


def rnn_forward_flops(arguments: Dict, sequence_length: int,
                      num_classes: int) -> int:
  """Forward FLOPs of `build_rnn_classifier(**arguments)` on one sequence:
  the bidirectional layer's two directions over the embeddings, then the
  softmax layer on the two final states concatenated [2 x units]."""
  units = arguments['rnn_units']
  return (2 * recurrent_direction_flops(arguments['cell'],
                                        arguments['embedding_dim'], units,
                                        sequence_length) +
          dense_flops(2 * units, num_classes))


def transformer_forward_flops(arguments: Dict, sequence_length: int,
                              num_classes: int) -> int:
  """Forward FLOPs of `build_transformer_classifier(**arguments)` on one
  sequence: the encoder blocks, then the softmax layer on the mean-pooled
  vector [embedding_dim]."""
  return (arguments['num_layers'] *
          encoder_layer_flops(sequence_length, arguments['embedding_dim'],
                              arguments['intermediate_dim']) +
          dense_flops(arguments['embedding_dim'], num_classes))


FORWARD_FLOPS = {'rnn': rnn_forward_flops,
                 'transformer': transformer_forward_flops}


def forward_flops(variant: Dict, sequence_length: int,
                  num_classes: int) -> int:
  return FORWARD_FLOPS[variant['architecture']](
      variant['arguments'], sequence_length, num_classes)


def matched_rnn_units(rnn_arguments: Dict, transformer_arguments: Dict,
                      sequence_length: int, num_classes: int) -> int:
  """The RNN units whose forward FLOPs per sequence (hence per token) come
  closest to the Transformer's at `sequence_length`."""
  target = transformer_forward_flops(transformer_arguments, sequence_length,
                                     num_classes)

  def distance(units):
    return abs(rnn_forward_flops({**rnn_arguments, 'rnn_units': units},
                                 sequence_length, num_classes) - target)
  # The RNN's FLOPs grow with units squared; 4096 units is far past any
  # Transformer this project builds.
  return min(range(1, 4097), key=distance)


def pipeline_settings(match_length: int) -> Dict[str, object]:
  """What the pipeline builds and trains with: the three models measured
  (builder arguments), the vocabulary and class counts, and the Trainer's
  learning rate and seed."""
  # finsent.configs loads no TensorFlow (.importlinter), so this process
  # never starts TensorFlow's runtime; the measuring processes do.
  from finsent import configs  # pylint: disable=g-import-not-at-top
  preprocessing = configs.PreprocessingConfig()
  training = configs.TrainingConfig()
  num_classes = len(configs.LABELS)
  rnn_arguments = dataclasses.asdict(configs.RnnConfig())
  transformer_arguments = dataclasses.asdict(configs.TransformerConfig())
  units = matched_rnn_units(rnn_arguments, transformer_arguments,
                            match_length, num_classes)
  return {
      # Token ids 1..vocabulary_size + oov_buckets, and 0 for padding: the
      # vocabulary Transform gives the Trainer (models.trainer).
      'vocabulary_size': (preprocessing.vocabulary_size +
                          preprocessing.oov_buckets + 1),
      'num_classes': num_classes,
      'learning_rate': training.learning_rate,
      'seed': training.seed,
      'variants': {
          'rnn': {'architecture': 'rnn', 'arguments': rnn_arguments,
                  'sizes': 'the pipeline\'s (RnnConfig)'},
          'rnn_matched': {
              'architecture': 'rnn',
              'arguments': {**rnn_arguments, 'rnn_units': units},
              'sizes': f'rnn_units={units}: forward FLOPs/token closest to '
                       f'the Transformer\'s at length {match_length}'},
          'transformer': {'architecture': 'transformer',
                          'arguments': transformer_arguments,
                          'sizes': 'the pipeline\'s (TransformerConfig)'},
      }}


# The measuring process. Everything from here to `measure_run` runs in it.


def _seconds_per_step(step: Callable[[], object], steps: int) -> float:
  started = time.perf_counter()
  for _ in range(steps):
    step()
  return (time.perf_counter() - started) / steps


def _matmul_peak(tf, size: int, dtype: str, repeats: int,
                 device: str) -> Dict:
  """FLOP/s of a [size, size] x [size, size] matmul in `dtype`: the most
  this process's threads (or the GPU) do on dense work."""
  with tf.device(device):
    a = tf.cast(tf.random.uniform((size, size)), dtype)
    b = tf.cast(tf.random.uniform((size, size)), dtype)

  @tf.function
  def product_sum():
    # Summing to a scalar lets the host wait for the product without
    # copying it back.
    return tf.reduce_sum(tf.linalg.matmul(a, b))

  product_sum().numpy()  # traces, and warms the kernel up
  seconds = [_seconds_per_step(lambda: product_sum().numpy(), 1)
             for _ in range(repeats)]
  return {'matrix_size': size, 'dtype': dtype, 'flops': 2 * size ** 3,
          'seconds': seconds}


def _recurrent_layer(keras, model):
  bidirectional = next(layer for layer in model.layers
                       if isinstance(layer, keras.layers.Bidirectional))
  return bidirectional.forward_layer


def _cudnn_arguments_allow(keras, layer) -> bool:
  """Whether Keras 3 (TensorFlow backend) runs this LSTM/GRU on cuDNN when a
  GPU is there: tanh and sigmoid activations, no unrolling, a bias, a GRU's
  reset_after, no recurrent dropout and use_cudnn left on. Input dropout
  does not prevent it: Keras then drops out the inputs before the cuDNN
  call (keras.layers.LSTM.inner_loop)."""
  tanh = (keras.activations.tanh, keras.ops.tanh)
  sigmoid = (keras.activations.sigmoid, keras.ops.sigmoid)
  return (layer.activation in tanh and
          layer.recurrent_activation in sigmoid and not layer.unroll and
          layer.use_bias and getattr(layer, 'reset_after', True) and
          not layer.recurrent_dropout and layer.use_cudnn in ('auto', True))


def _op_types(tf, function, *args) -> set:
  """Op types of a traced function's graph, nested functions included."""
  graph_def = function.get_concrete_function(*args).graph.as_graph_def()
  return ({node.op for node in graph_def.node} |
          {node.op for library_function in graph_def.library.function
           for node in library_function.node_def})


def fresh_keras(keras, dtype: str) -> None:
  """Drops the models built so far and sets the dtype policy, which
  clear_session resets to float32."""
  keras.backend.clear_session()
  keras.mixed_precision.set_global_policy(dtype)


def _cudnn_report(tf, keras, settings: Dict, builders: Dict, inputs: Dict,
                  sequence_length: int, gpu: bool) -> Dict[str, Dict]:
  """Per RNN model: whether its arguments let Keras use cuDNN, and, on a
  GPU, whether the traced training forward pass holds a cuDNN kernel."""
  fresh_keras(keras, settings['dtype'])
  report = {}
  for name, variant in settings['variants'].items():
    if variant['architecture'] != 'rnn':
      continue
    model = builders['rnn'](settings['vocabulary_size'], sequence_length,
                            settings['num_classes'], **variant['arguments'])
    report[name] = {
        'arguments_allow': _cudnn_arguments_allow(
            keras, _recurrent_layer(keras, model)),
        # Without a GPU Keras never tries cuDNN; nothing to look for.
        'kernel_in_graph': any(
            op.startswith('CudnnRNN') for op in _op_types(
                tf, tf.function(lambda x, m=model: m(x, training=True)),
                inputs)) if gpu else None}
  return report


def synthetic_batch(tf, settings: Dict, sequence_length: int,
                     batch_size: int, device: str):
  """Token ids int64 [batch_size, sequence_length], all real tokens (ids
  1..vocabulary-1: no padding to mask), and labels int64 [batch_size], on
  `device`."""
  from finsent.configs import features  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(settings['seed'])
  with tf.device(device):
    tokens = tf.identity(tf.constant(
        rng.integers(1, settings['vocabulary_size'],
                     (batch_size, sequence_length)), tf.int64))
    labels = tf.identity(tf.constant(
        rng.integers(0, settings['num_classes'], batch_size), tf.int64))
  return {features.TOKEN_IDS_KEY: tokens}, labels


def model_builders() -> Dict[str, Callable]:
  """Architecture -> the pipeline's model builder."""
  # pylint: disable=g-import-not-at-top
  from finsent.models import rnn
  from finsent.models import transformer
  # pylint: enable=g-import-not-at-top
  return {'rnn': rnn.build_rnn_classifier,
          'transformer': transformer.build_transformer_classifier}


def compiled_model(keras, settings: Dict, builders: Dict, variant: Dict,
                   sequence_length: int):
  """A variant's model, built and compiled with the Trainer's optimiser,
  and its loss at the default (no) label smoothing: the sparse
  cross-entropy."""
  model = builders[variant['architecture']](
      settings['vocabulary_size'], sequence_length, settings['num_classes'],
      **variant['arguments'])
  model.compile(
      optimizer=keras.optimizers.Adam(settings['learning_rate']),
      loss='sparse_categorical_crossentropy',
      metrics=['sparse_categorical_accuracy'],
      jit_compile=settings['xla'])
  return model


def _measure_cell(tf, keras, settings: Dict, builders: Dict,
                  sequence_length: int, batch_size: int,
                  device: str) -> Dict:
  """Times every model on one (sequence length, batch size)."""
  inputs, labels = synthetic_batch(tf, settings, sequence_length,
                                    batch_size, device)
  fresh_keras(keras, settings['dtype'])
  # Seeding clears TensorFlow's kernel cache, which would make a model
  # warmed up before it pay again: seed once, build all, then warm up.
  keras.utils.set_random_seed(settings['seed'])
  models, steps = {}, {}
  for name, variant in settings['variants'].items():
    model = compiled_model(keras, settings, builders, variant,
                           sequence_length)
    models[name] = model
    steps[name] = {
        'train': lambda m=model: m.train_on_batch(inputs, labels),
        'inference': lambda m=model: m.predict_on_batch(inputs)}
  for _ in range(settings['warmup_steps']):
    for name in models:
      for mode in MODES:
        steps[name][mode]()
  seconds = {name: {mode: [] for mode in MODES} for name in models}
  # Repeats interleave the models, so that each ratio compares times taken
  # side by side, under the same conditions.
  for _ in range(settings['repeats']):
    for mode in MODES:
      for name in models:
        seconds[name][mode].append(
            _seconds_per_step(steps[name][mode], settings['steps']))
  cell = {'sequence_length': sequence_length, 'batch_size': batch_size,
          'models': {
              name: {'parameters': model.count_params(),
                     'dtype_policy': model.dtype_policy.name,
                     'jit_compile': bool(model.jit_compile),
                     **{mode: {'seconds_per_step': seconds[name][mode]}
                        for mode in MODES}}
              for name, model in models.items()}}
  return cell


def _where(threads: Optional[int]) -> str:
  return 'gpu' if threads is None else f'{threads} thread(s)'


def _progress_line(threads: Optional[int], cell: Dict) -> str:
  times = '; '.join(
      f'{mode} ' + ', '.join(
          f'{name} '
          f'{statistics.median(m[mode]["seconds_per_step"]) * 1e3:.1f}'
          for name, m in cell['models'].items())
      for mode in MODES)
  return (f'[{_where(threads)}] length {cell["sequence_length"]:4d}, batch '
          f'{cell["batch_size"]:4d}: ms/step {times}')


def measure_run(settings: Dict, threads: Optional[int]) -> Dict:
  """The whole sweep in this (fresh) process, on `threads` CPU threads, or
  on the GPU when `threads` is None.

  Returns the peak, per cell and model every repeat's seconds per step,
  and what TensorFlow ran on.
  """
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  affinity = None
  if threads is not None:
    # Beside TensorFlow's own settings below: whichever pool a thread of
    # this process belongs to, it runs on these `threads` cores only.
    affinity = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, affinity)
  # pylint: disable=g-import-not-at-top
  import keras
  import keras_hub
  import tensorflow as tf
  # pylint: enable=g-import-not-at-top
  if threads is not None:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
  gpus = tf.config.list_physical_devices('GPU')
  if settings['device'] == 'gpu':
    if not gpus:
      raise BenchmarkError(
          f'--device gpu: TensorFlow {tf.__version__} sees no GPU (it needs '
          'an NVIDIA driver and the CUDA libraries of `pip install '
          f'"tensorflow[and-cuda]=={tf.__version__}"`)')
    device = '/GPU:0'
    device_name = tf.config.experimental.get_device_details(gpus[0]).get(
        'device_name', 'GPU')
  else:
    tf.config.set_visible_devices([], 'GPU')
    device, device_name = '/CPU:0', 'CPU'
  machine_cpu, own_cpu = host.machine_cpu_seconds(), time.process_time()
  wall = time.monotonic()
  compute_dtype = keras.mixed_precision.Policy(settings['dtype']).compute_dtype
  peak = _matmul_peak(tf, settings['peak_matrix_size'], compute_dtype,
                      settings['repeats'], device)
  print(f'[{_where(threads)}] peak: '
        f'{peak["flops"] / statistics.median(peak["seconds"]) / 1e9:.1f} '
        f'GFLOP/s ({peak["matrix_size"]}² matmul, {compute_dtype})',
        flush=True)
  builders = model_builders()
  shortest = settings['sequence_lengths'][0]
  cudnn = _cudnn_report(
      tf, keras, settings, builders,
      synthetic_batch(tf, settings, shortest, 1, device)[0], shortest,
      settings['device'] == 'gpu')
  cells = []
  for sequence_length in settings['sequence_lengths']:
    for batch_size in settings['batch_sizes']:
      cell = _measure_cell(tf, keras, settings, builders, sequence_length,
                           batch_size, device)
      print(_progress_line(threads, cell), flush=True)
      cells.append(cell)
  other_cpu = (host.machine_cpu_seconds() - machine_cpu -
               (time.process_time() - own_cpu))
  threading = tf.config.threading
  return {
      'threads': threads,
      'intra_op_threads': threading.get_intra_op_parallelism_threads(),
      'inter_op_threads': threading.get_inter_op_parallelism_threads(),
      'cpu_affinity': affinity,
      # What else ran meanwhile, in cores: a measurement that shared the
      # cores with other work is not this machine's, and this says so.
      'other_cpu_cores': max(0.0, other_cpu / (time.monotonic() - wall)),
      'device': device_name,
      'compute_dtype': compute_dtype,
      # On Ampere and later GPUs TensorFlow runs float32 matmuls in TF32 by
      # default, which sets both the peak and the models' speed.
      'tensor_float_32': (tf.config.experimental
                          .tensor_float_32_execution_enabled()),
      'software': {'tensorflow': tf.__version__, 'keras': keras.__version__,
                   'keras_hub': keras_hub.__version__},
      'peak': peak,
      'cudnn': cudnn,
      'cells': cells,
  }


# Analysis and reports, in the parent process.


def _stats(values: Sequence[float]) -> Dict[str, float]:
  return {'min': min(values), 'median': statistics.median(values),
          'max': max(values)}


def analyse_run(run: Dict, settings: Dict) -> None:
  """Adds to a measured run (in place) the peak's FLOP/s and, per cell,
  model and mode: FLOPs per step, time statistics, tokens/s, FLOP/s and
  fraction of peak; and per cell the Transformer/RNN ratios."""
  peak = run['peak']
  peak['flops_per_s'] = _stats([peak['flops'] / s for s in peak['seconds']])
  peak_median = peak['flops_per_s']['median']
  for cell in run['cells']:
    tokens = cell['sequence_length'] * cell['batch_size']
    for name, measured in cell['models'].items():
      forward = forward_flops(settings['variants'][name],
                              cell['sequence_length'],
                              settings['num_classes'])
      measured['forward_flops_per_sequence'] = forward
      for mode in MODES:
        entry = measured[mode]
        repeats = entry['seconds_per_step']
        median = statistics.median(repeats)
        flops = forward * cell['batch_size'] * (
            TRAINING_FLOPS_PER_FORWARD if mode == 'train' else 1)
        entry.update(
            seconds_per_step={'repeats': repeats, **_stats(repeats)},
            flops_per_step=flops, tokens_per_s=tokens / median,
            flops_per_s=flops / median,
            fraction_of_peak=flops / median / peak_median)
    cell['ratios'] = {}
    for comparison, (rnn_name, transformer_name) in COMPARISONS.items():
      if not {rnn_name, transformer_name} <= set(cell['models']):
        continue
      cell['ratios'][comparison] = {}
      for mode in MODES:
        per_repeat = [t / r for t, r in zip(
            cell['models'][transformer_name][mode]['seconds_per_step'][
                'repeats'],
            cell['models'][rnn_name][mode]['seconds_per_step']['repeats'])]
        cell['ratios'][comparison][mode] = {'repeats': per_repeat,
                                            **_stats(per_repeat)}


def crossovers(lengths: Sequence[int], ratios: Sequence[float]) -> List[Dict]:
  """Where the faster model changes along the sweep.

  Args:
    lengths: sequence lengths, ascending.
    ratios: Transformer/RNN time at each length (above 1: RNN faster).

  Returns:
    One entry per change: the two lengths around it, which model is faster
    below it, and the length where the ratio crosses 1, interpolated with
    log ratio linear in log length.
  """
  changes = []
  for (a, ratio_a), (b, ratio_b) in zip(zip(lengths, ratios),
                                        zip(lengths[1:], ratios[1:])):
    if (ratio_a > 1) != (ratio_b > 1):
      share = math.log(ratio_a) / (math.log(ratio_a) - math.log(ratio_b))
      changes.append({
          'between': [a, b],
          'faster_below': 'rnn' if ratio_a > 1 else 'transformer',
          'estimated_length': round(a * (b / a) ** share)})
  return changes


def describe_crossovers(changes: List[Dict], ratios: Sequence[float]) -> str:
  """`crossovers`' answer in words; `ratios` as given to it."""
  if not changes:
    faster = DISPLAY_NAMES['rnn' if ratios[0] > 1 else 'transformer']
    return f'none in the sweep ({faster} faster at every length)'
  return '; '.join(
      f'{DISPLAY_NAMES[c["faster_below"]]} faster below about '
      f'{c["estimated_length"]} (between {c["between"][0]} and '
      f'{c["between"][1]})' for c in changes)


def analyse(results: Dict) -> None:
  """Adds crossovers (per run, comparison, batch size and mode) and
  speed-ups (per thread count against the fewest, per cell, model and
  mode) to `results`, in place."""
  settings = results['settings']
  lengths = settings['sequence_lengths']
  for run in results['runs']:
    analyse_run(run, settings)
    run['crossovers'] = []
    for comparison in COMPARISONS:
      for batch_size in settings['batch_sizes']:
        for mode in MODES:
          ratios = [cell['ratios'][comparison][mode]['median']
                    for cell in run['cells']
                    if cell['batch_size'] == batch_size]
          changes = crossovers(lengths, ratios)
          run['crossovers'].append({
              'comparison': comparison, 'batch_size': batch_size,
              'mode': mode, 'changes': changes,
              'text': describe_crossovers(changes, ratios)})
  base, *others = results['runs']
  results['speedups'] = [
      {'threads': run['threads'], 'base_threads': base['threads'],
       'sequence_length': cell['sequence_length'],
       'batch_size': cell['batch_size'], 'model': name, 'mode': mode,
       'speedup': (
           base_cell['models'][name][mode]['seconds_per_step']['median'] /
           cell['models'][name][mode]['seconds_per_step']['median'])}
      for run in others
      for base_cell, cell in zip(base['cells'], run['cells'])
      for name in cell['models'] for mode in MODES]


def _number(value: float, digits: int = 3) -> str:
  return f'{value:.{digits}g}' if abs(value) < 10 ** digits else f'{value:,.0f}'


def _run_title(run: Dict) -> str:
  return (run['device'] if run['threads'] is None else
          f'{run["threads"]} thread(s) (intra-op {run["intra_op_threads"]}, '
          f'inter-op {run["inter_op_threads"]})')


def markdown(results: Dict) -> str:
  """The report: settings, models, peaks, then per run the medians."""
  settings, machine_info = results['settings'], results['machine']
  variants = settings['variants']
  lengths = settings['sequence_lengths']
  first_run = results['runs'][0]
  lines = [
      '# RNN vs Transformer: parallelism benchmark', '',
      f'`{results["command"]}`, {results["date"]}, on '
      f'{machine_info["cpu_model"]} ({machine_info["logical_cpus"]} logical '
      f'CPUs, {machine_info["physical_cores"]} physical cores), device: '
      f'{first_run["device"]}; TensorFlow '
      f'{first_run["software"]["tensorflow"]}, Keras '
      f'{first_run["software"]["keras"]}, keras-hub '
      f'{first_run["software"]["keras_hub"]}.', '',
      f'Policy {settings["dtype"]} (compute {first_run["compute_dtype"]}), '
      f'XLA {"on" if settings["xla"] else "off"}' +
      (f', TF32 for float32 matmuls '
       f'{"on" if first_run["tensor_float_32"] else "off"}'
       if settings['device'] == 'gpu' else '') + '. Per cell: '
      f'{settings["warmup_steps"]} warm-up step(s) per model and mode, then '
      f'{settings["repeats"]} repeat(s) of {settings["steps"]} step(s), the '
      'models interleaved within each repeat; tables show medians over the '
      'repeats (min and max are in results.json). Training: '
      '`train_on_batch` (forward, backward, Adam); inference: '
      '`predict_on_batch`. Inputs: random token ids, no padding, made '
      'before timing. FLOPs: matmuls only, counted from the layer shapes '
      f'(training = {TRAINING_FLOPS_PER_FORWARD} × forward); peak: a '
      f'{first_run["peak"]["matrix_size"]}² matmul in '
      f'{first_run["peak"]["dtype"]} in the same process.', '',
      '## Models', '',
      f'Vocabulary {settings["vocabulary_size"]:,}, '
      f'{settings["num_classes"]} classes.', '',
      '| model | sizes | builder arguments | forward FLOPs/token at length '
      f'{settings["match_length"]} | ' +
      ' | '.join(f'parameters, length {n}' for n in lengths) + ' |',
      '|---|---|---|---:|' + '---:|' * len(lengths)]
  for name, variant in variants.items():
    parameters = {cell['sequence_length']: cell['models'][name]['parameters']
                  for cell in first_run['cells']}
    per_token = forward_flops(variant, settings['match_length'],
                              settings['num_classes']) / settings[
                                  'match_length']
    arguments = ', '.join(f'{k}={v}' for k, v in variant['arguments'].items())
    lines.append(f'| {name} | {variant["sizes"]} | {arguments} | '
                 f'{per_token:,.0f} | ' +
                 ' | '.join(f'{parameters[n]:,}' for n in lengths) + ' |')
  in_graph = {True: 'a cuDNN kernel in its traced training graph',
              False: 'no cuDNN kernel in its traced training graph',
              None: 'not traced (no GPU)'}
  lines += ['', 'cuDNN, for the RNNs on a GPU: ' + '; '.join(
      f'{name}: arguments {"allow" if c["arguments_allow"] else "prevent"} '
      f'it, {in_graph[c["kernel_in_graph"]]}'
      for name, c in first_run['cudnn'].items()) + '. '
      'In effect (Keras): ' + '; '.join(
          f'{name} {m["dtype_policy"]}, jit_compile {m["jit_compile"]}'
          for name, m in first_run['cells'][0]['models'].items()) + '.', '',
      '## Peak (matmul FLOP/s, medians)', '',
      'Other processes: the cores they used during the run (/proc/stat '
      'less this run\'s own CPU time); above '
      f'{OTHER_CPU_WARNING_CORES} the numbers are not this machine\'s '
      'best.', '',
      '| run | GFLOP/s | other processes (cores) |', '|---|---:|---:|']
  for run in results['runs']:
    lines.append(f'| {_run_title(run)} | '
                 f'{_number(run["peak"]["flops_per_s"]["median"] / 1e9)} | '
                 f'{run["other_cpu_cores"]:.2f} |')
  for run in results['runs']:
    lines += ['', f'## {_run_title(run)}', '']
    for mode in MODES:
      lines += [f'### {mode}: per model', '',
                '| batch | length | model | ms/step | tokens/s | GFLOP/step '
                '| GFLOP/s | % of peak |',
                '|---:|---:|---|---:|---:|---:|---:|---:|']
      for cell in run['cells']:
        for name, measured in cell['models'].items():
          m = measured[mode]
          lines.append(
              f'| {cell["batch_size"]} | {cell["sequence_length"]} | {name} '
              f'| {_number(m["seconds_per_step"]["median"] * 1e3)} | '
              f'{m["tokens_per_s"]:,.0f} | '
              f'{_number(m["flops_per_step"] / 1e9)} | '
              f'{_number(m["flops_per_s"] / 1e9)} | '
              f'{_number(100 * m["fraction_of_peak"])} |')
      lines += ['', f'### {mode}: Transformer/RNN time (above 1: RNN '
                'faster)', '',
                '| batch | length | ' + ' | '.join(COMPARISONS) + ' |',
                '|---:|---:|' + '---:|' * len(COMPARISONS)]
      for cell in run['cells']:
        lines.append(
            f'| {cell["batch_size"]} | {cell["sequence_length"]} | ' +
            ' | '.join(_number(cell['ratios'][c][mode]['median'], 2)
                       for c in COMPARISONS) + ' |')
      lines.append('')
    lines += ['### Crossovers', '']
    lines += [f'- {c["comparison"]}, batch {c["batch_size"]}, {c["mode"]}: '
              f'{c["text"]}' for c in run['crossovers']]
  lines += ['', '## Speed-up with threads', '']
  if results['speedups']:
    lines += ['Time with the fewest threads / time with N, medians.', '',
              '| N | batch | length | model | train | inference |',
              '|---:|---:|---:|---|---:|---:|']
    by_key = {(s['threads'], s['batch_size'], s['sequence_length'],
               s['model'], s['mode']): s['speedup']
              for s in results['speedups']}
    for threads, batch, length, name in dict.fromkeys(k[:4] for k in by_key):
      lines.append(f'| {threads} | {batch} | {length} | {name} | ' + ' | '.join(
          _number(by_key[(threads, batch, length, name, mode)], 2)
          for mode in MODES) + ' |')
  else:
    lines.append('Not measured: one run only (one thread count, or the '
                 'GPU).')
  lines.append('')
  return '\n'.join(lines)


def summary(results: Dict) -> str:
  """A few lines for the terminal: peaks, crossovers of the run with the
  most threads, speed-ups at the longest sequence and largest batch."""
  last = results['runs'][-1]
  lines = ['Peak: ' + ', '.join(
      f'{_run_title(run)} {run["peak"]["flops_per_s"]["median"] / 1e9:.1f} '
      'GFLOP/s' for run in results['runs'])]
  lines += [f'{_run_title(last)}, {c["comparison"]}, batch '
            f'{c["batch_size"]}, {c["mode"]}: crossover {c["text"]}'
            for c in last['crossovers']]
  settings = results['settings']
  longest = max(settings['sequence_lengths'])
  largest = max(settings['batch_sizes'])
  lines += [f'Speed-up {s["base_threads"]} -> {s["threads"]} threads, '
            f'length {longest}, batch {largest}, {s["model"]} {s["mode"]}: '
            f'{s["speedup"]:.2f}x' for s in results['speedups']
            if s['sequence_length'] == longest and s['batch_size'] == largest]
  return '\n'.join(lines)


def _colours(pyplot, settings: Dict) -> Dict[str, str]:
  """One colour per model, the same in every plot."""
  cycle = pyplot.rcParams['axes.prop_cycle'].by_key()['color']
  return dict(zip(settings['variants'], cycle))


def _plot_per_length(path: str, results: Dict, value: Callable[[Dict], float],
                     ylabel: str, title: str) -> None:
  """One panel per (mode, batch size): `value` of each model's mode entry
  against sequence length, for the run with the most threads (or the
  GPU)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  settings, run = results['settings'], results['runs'][-1]
  batch_sizes = settings['batch_sizes']
  figure, axes = pyplot.subplots(
      len(MODES), len(batch_sizes), squeeze=False,
      figsize=(4.5 * len(batch_sizes), 3.2 * len(MODES)))
  for row, mode in enumerate(MODES):
    for column, batch_size in enumerate(batch_sizes):
      panel = axes[row][column]
      cells = [c for c in run['cells'] if c['batch_size'] == batch_size]
      for name, colour in _colours(pyplot, settings).items():
        panel.plot([c['sequence_length'] for c in cells],
                   [value(c['models'][name][mode]) for c in cells],
                   marker='o', color=colour, label=name)
      panel.set_xscale('log', base=2)
      panel.set_yscale('log')
      panel.set_title(f'{mode}, batch {batch_size}', fontsize=10)
      panel.set_xlabel('sequence length')
      panel.set_ylabel(ylabel)
  axes[0][0].legend(fontsize=8)
  figure.suptitle(f'{title}: {_run_title(run)}', fontsize=11)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  pyplot.close(figure)


def _plot_speedup(path: str, results: Dict) -> None:
  """Speed-up against threads, per mode, at the largest batch, for the
  shortest and longest sequence; the dashed line is linear speed-up."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  settings = results['settings']
  largest = max(settings['batch_sizes'])
  ends = sorted({min(settings['sequence_lengths']),
                 max(settings['sequence_lengths'])})
  threads = [run['threads'] for run in results['runs']]
  figure, axes = pyplot.subplots(1, len(MODES), figsize=(10, 3.8))
  for panel, mode in zip(axes, MODES):
    panel.plot(threads, [t / threads[0] for t in threads], 'k--', lw=1,
               label='linear')
    for name, colour in _colours(pyplot, settings).items():
      for length, style in zip(ends, ('-', ':')):
        panel.plot(threads, [1.0] + [
            s['speedup'] for s in results['speedups']
            if (s['model'], s['mode'], s['sequence_length'],
                s['batch_size']) == (name, mode, length, largest)],
                   style, marker='o', color=colour,
                   label=f'{name}, length {length}')
    panel.set_xticks(threads)
    panel.set_title(f'{mode}, batch {largest}', fontsize=10)
    panel.set_xlabel('threads')
    panel.set_ylabel(f'speed-up over {threads[0]} thread(s)')
  axes[0].legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  pyplot.close(figure)


def write_plots(output: str, results: Dict) -> List[str]:
  """Writes the PNGs; returns their file names."""
  _plot_per_length(os.path.join(output, PNG_FILES['throughput']), results,
                   lambda m: m['tokens_per_s'], 'tokens/s',
                   'Throughput (medians)')
  _plot_per_length(os.path.join(output, PNG_FILES['fraction_of_peak']),
                   results, lambda m: 100 * m['fraction_of_peak'],
                   '% of matmul peak', 'Achieved FLOP/s as % of peak')
  written = [PNG_FILES['throughput'], PNG_FILES['fraction_of_peak']]
  if results['speedups']:
    _plot_speedup(os.path.join(output, PNG_FILES['speedup']), results)
    written.append(PNG_FILES['speedup'])
  return written


def results_header(prog: str, argv: List[str]) -> Dict:
  """When, by what command and on what machine a benchmark ran."""
  return {'date': datetime.datetime.now(datetime.timezone.utc).strftime(
              '%Y-%m-%d %H:%M UTC'),
          'command': f'{prog} {shlex.join(argv)}',
          'machine': host.machine()}


def write_results(output: str, results: Dict, report: str,
                  summary_text: str) -> None:
  """Writes results.json and results.md (`report`) to `output`, which
  holds the plots in results['plots'] already; prints the summary, a
  warning when other processes shared the cores, and what it wrote."""
  with open(os.path.join(output, 'results.json'), 'w', encoding='utf-8') as f:
    json.dump(results, f, indent=2)
  with open(os.path.join(output, 'results.md'), 'w', encoding='utf-8') as f:
    f.write(report)
  print(summary_text)
  busiest = max(run['other_cpu_cores'] for run in results['runs'])
  if busiest > OTHER_CPU_WARNING_CORES:
    print(f'WARNING: other processes used up to {busiest:.2f} cores during '
          'the measurements: rerun on a quiet machine.')
  print(f'Wrote results.json, results.md and {", ".join(results["plots"])} '
        f'to {output} ({results["wall_seconds"]:.0f} s)')


def run(settings: Dict, prog: str, argv: List[str]) -> int:
  """Measures the sweep `settings` (commands.bench.parse_settings), one
  fresh process per thread count, and writes the results under
  settings['output'], with the command `prog argv`. 1 if it cannot run as
  asked."""
  settings = {**settings, **pipeline_settings(settings['match_length'])}
  started = time.monotonic()
  runs = []
  context = multiprocessing.get_context('spawn')
  try:
    for threads in settings['threads']:
      # A fresh process per thread count: TensorFlow sizes its thread pools
      # once, when its runtime starts.
      with concurrent.futures.ProcessPoolExecutor(
          max_workers=1, mp_context=context) as pool:
        runs.append(pool.submit(measure_run, settings, threads).result())
  except BenchmarkError as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 1
  results = {
      **results_header(prog, argv),
      'settings': settings,
      'runs': runs,
      'wall_seconds': time.monotonic() - started,
  }
  analyse(results)
  output = settings['output']
  os.makedirs(output, exist_ok=True)
  results['plots'] = write_plots(output, results)
  write_results(output, results, markdown(results), summary(results))
  return 0
