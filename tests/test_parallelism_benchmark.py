"""The parallelism benchmark: a tiny sweep reports every cell, its FLOP
counts match a count by hand, and bad flags are argparse errors.

Timings are not asserted (they depend on the machine and what else runs);
only that each number the report quotes was measured and is positive.
"""

import dataclasses
import json
import math
import os
import subprocess

import pytest
import tensorflow as tf

from finsent.benchmarks import parallelism_benchmark as bench
from finsent.commands import bench as bench_command
from finsent import configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_SCRIPT = os.path.join(ROOT, 'benchmarks', 'gpu_parallelism.sh')
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
PIPELINE_RNN = {'embedding_dim': 64, 'rnn_units': 64, 'cell': 'lstm',
                'dropout': 0.3}
PIPELINE_TRANSFORMER = {'embedding_dim': 64, 'num_layers': 2, 'num_heads': 4,
                        'intermediate_dim': 128, 'dropout': 0.3}
no_gpu_here = pytest.mark.skipif(
    bool(tf.config.list_physical_devices('GPU')),
    reason='a GPU is visible: the GPU path would run a real sweep')


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
  """The --quick sweep (lengths 16 and 64, batch 8, one thread, one
  repeat): its output folder and results.json."""
  output = tmp_path_factory.mktemp('parallelism')
  assert bench_command.main(['--quick', '--output', str(output)]) == 0
  with open(output / 'results.json', encoding='utf-8') as f:
    return output, json.load(f)


def test_quick_run_reports_every_cell(quick_run):
  output, results = quick_run
  settings = results['settings']
  assert (settings['sequence_lengths'], settings['batch_sizes'],
          settings['threads'], settings['repeats']) == ([16, 64], [8], [1], 1)
  # The pipeline's own sizes and vocabulary (with OOV buckets and padding).
  preprocessing = configs.PreprocessingConfig()
  assert settings['vocabulary_size'] == (
      preprocessing.vocabulary_size + preprocessing.oov_buckets + 1)
  variants = settings['variants']
  assert set(variants) == {'rnn', 'rnn_matched', 'transformer'}
  assert variants['rnn']['arguments'] == dataclasses.asdict(
      configs.RnnConfig())
  assert variants['transformer']['arguments'] == dataclasses.asdict(
      configs.TransformerConfig())
  assert '--quick' in results['command']
  assert results['machine']['cpu_model'] and results['date']
  [run] = results['runs']
  assert (run['threads'], run['intra_op_threads'],
          run['inter_op_threads']) == (1, 1, 1)
  assert run['peak']['flops_per_s']['median'] > 0
  assert run['other_cpu_cores'] >= 0
  # The pipeline's LSTM has input dropout only, which keeps cuDNN possible;
  # without a GPU nothing is traced.
  assert run['cudnn'] == {
      name: {'arguments_allow': True, 'kernel_in_graph': None}
      for name in ('rnn', 'rnn_matched')}
  assert [(c['sequence_length'], c['batch_size'])
          for c in run['cells']] == [(16, 8), (64, 8)]
  for cell in run['cells']:
    tokens = cell['sequence_length'] * cell['batch_size']
    assert set(cell['models']) == set(settings['variants'])
    for name, measured in cell['models'].items():
      assert measured['parameters'] > 0
      assert measured['dtype_policy'] == 'float32'
      forward = bench.forward_flops(settings['variants'][name],
                                    cell['sequence_length'],
                                    settings['num_classes'])
      assert measured['forward_flops_per_sequence'] == forward > 0
      for mode, flops_per_forward in (('train', 3), ('inference', 1)):
        m = measured[mode]
        seconds = m['seconds_per_step']
        assert len(seconds['repeats']) == 1
        assert 0 < seconds['min'] <= seconds['median'] <= seconds['max']
        assert m['flops_per_step'] == (
            forward * cell['batch_size'] * flops_per_forward)
        assert m['tokens_per_s'] == pytest.approx(tokens / seconds['median'])
        assert m['flops_per_s'] == pytest.approx(
            m['flops_per_step'] / seconds['median'])
        assert 0 < m['fraction_of_peak'] and math.isfinite(
            m['fraction_of_peak'])
    for comparison in bench.COMPARISONS:
      for mode in bench.MODES:
        assert cell['ratios'][comparison][mode]['median'] > 0
  assert {(c['comparison'], c['batch_size'], c['mode'])
          for c in run['crossovers']} == {
              (c, 8, m) for c in bench.COMPARISONS for m in bench.MODES}
  assert all(c['text'] for c in run['crossovers'])
  assert results['speedups'] == []  # one thread count
  markdown = (output / 'results.md').read_text(encoding='utf-8')
  assert markdown.count('| 8 | 16 | rnn_matched |') == len(bench.MODES)
  assert '### Crossovers' in markdown
  assert results['plots'] == ['throughput.png', 'fraction_of_peak.png']
  for name in results['plots']:
    assert (output / name).read_bytes().startswith(PNG_MAGIC)


def test_flop_counts_match_a_count_by_hand():
  # One LSTM direction, 64 inputs, 64 units, 40 steps: per step 4 gates,
  # each [64] x [64, 64] (input) + [64] x [64, 64] (state), 2 FLOPs per
  # multiply-add.
  lstm_direction = 2 * 4 * (64 * 64 + 64 * 64) * 40
  assert lstm_direction == 2_621_440
  assert bench.recurrent_direction_flops('lstm', 64, 64, 40) == lstm_direction
  # A GRU has 3 gates.
  assert bench.recurrent_direction_flops('gru', 32, 16, 10) == (
      2 * 3 * (32 * 16 + 16 * 16) * 10)
  # One encoder layer, length 40, width 64 (4 heads of 16), feed-forward 128.
  projections = 4 * 2 * 40 * 64 * 64  # Q, K, V, output: [40, 64] x [64, 64]
  scores = 4 * 2 * 40 * 40 * 16  # per head Q K^T: [40, 16] x [16, 40]
  weighted_values = 4 * 2 * 40 * 40 * 16  # per head A V: [40, 40] x [40, 16]
  feed_forward = 2 * 40 * 64 * 128 + 2 * 40 * 128 * 64
  encoder_layer = projections + scores + weighted_values + feed_forward
  assert encoder_layer == 3_031_040
  assert bench.encoder_layer_flops(40, 64, 128) == encoder_layer
  # The whole models: two directions, or two layers, and the softmax layer
  # on [2 x 64] or [64] features for 3 classes.
  assert bench.rnn_forward_flops(PIPELINE_RNN, 40, 3) == (
      2 * lstm_direction + 2 * 128 * 3)
  assert bench.transformer_forward_flops(PIPELINE_TRANSFORMER, 40, 3) == (
      2 * encoder_layer + 2 * 64 * 3)


def test_matched_rnn_units_equalise_flops_per_token():
  # At length 128 the Transformer does 2 x (8 x 64^2 + 4 x 128 x 64 +
  # 4 x 64 x 128) = 196,608 FLOPs per token; the bidirectional LSTM
  # 16 x (64 + u) x u, which is closest at u = 83 (195,216; 84: 198,912).
  assert bench.matched_rnn_units(PIPELINE_RNN, PIPELINE_TRANSFORMER, 128,
                                 3) == 83


def test_crossovers_are_interpolated_in_log_length():
  # Transformer/RNN time above 1 (RNN faster) up to 32, below from 64: the
  # log ratio crosses 0 at log(1.5) / log(3) = 0.369 of the way from 32 to
  # 64 in log length, 32 x 2^0.369 = 41.
  assert bench.crossovers([16, 32, 64, 128], [2.0, 1.5, 0.5, 0.25]) == [
      {'between': [32, 64], 'faster_below': 'rnn', 'estimated_length': 41}]
  assert bench.crossovers([16, 32], [0.5, 0.7]) == []
  assert bench.describe_crossovers([], [0.5, 0.7]) == (
      'none in the sweep (Transformer faster at every length)')


@pytest.mark.parametrize('flags, message', [
    (['--dtype', 'float16'], 'invalid choice'),
    (['--device', 'tpu'], 'invalid choice'),
    (['--sequence_lengths'], 'expected at least one argument'),
    (['--batch_sizes', '32', '0'], 'must be at least 1, got 0'),
    (['--repeats', '-1'], 'must be at least 1, got -1'),
    (['--steps', 'two'], "expected a whole number, got 'two'"),
    (['--threads', '0'], 'must be at least 1, got 0'),
    (['--threads', str(len(os.sched_getaffinity(0)) + 1)], 'may use'),
    (['--device', 'gpu', '--threads', '1'], 'does not apply'),
])
def test_bad_flags_are_argparse_errors(flags, message, tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    bench_command.main(['--output', str(tmp_path), *flags])
  assert exit_info.value.code == 2
  error = capsys.readouterr().err
  assert 'finsent bench: error:' in error and message in error, error


@no_gpu_here
def test_gpu_device_without_a_gpu_says_so(tmp_path, capsys):
  assert bench_command.main(['--device', 'gpu', '--quick', '--output',
                     str(tmp_path)]) == 1
  assert 'sees no GPU' in capsys.readouterr().err


@no_gpu_here
def test_gpu_script_without_a_gpu_says_so(tmp_path):
  result = subprocess.run(['bash', GPU_SCRIPT, str(tmp_path)],
                          capture_output=True, text=True, timeout=300,
                          check=False)
  assert result.returncode == 1
  assert 'sees no GPU' in result.stderr
  assert not any(tmp_path.iterdir())
