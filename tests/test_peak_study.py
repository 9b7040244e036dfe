"""`finsent bench-peak`: a tiny study runs the baseline and one variant
through the benchmark's timing and a real profile; the figures derived
from a run are checked by hand; bad flags are argparse errors.

No timing is asserted, only that what the report quotes was measured."""

import json
import os

import pytest

from finsent.benchmarks import parallelism_benchmark as bench
from finsent.benchmarks import peak_study
from finsent.commands import bench_peak

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def quick_study(tmp_path_factory):
  """--quick with the baseline only (each variant costs its models'
  tracing; the variants' own settings are checked without TensorFlow)."""
  output = tmp_path_factory.mktemp('peak_study')
  assert bench_peak.main(['--quick', '--variants', 'pipeline', '--output',
                          str(output)]) == 0
  with open(output / 'results.json', encoding='utf-8') as f:
    return output, json.load(f)


def test_quick_study_measures_and_profiles_the_baseline(quick_study):
  output, results = quick_study
  [baseline] = results['variants']
  [run] = results['runs']
  assert baseline['name'] == 'pipeline'
  assert run['compute_dtype'] == 'float32'
  assert set(results['peaks']) == {'float32'}
  [cell] = run['cells']
  assert set(cell['models']) == {'rnn', 'transformer'}
  assert (cell['sequence_length'], cell['batch_size']) == (16, 4)
  # A real profile of the training steps: matmuls among the op types.
  assert any(peak_study.is_matmul(t) for t in run['op_type_self_ms'])
  assert 0 < baseline['matmul_share_of_op_time'] < 1
  assert baseline['matmul_kernel_fraction_of_peak'] > 0
  assert baseline['train_ms'] > 0 and baseline['rnn_train_ms'] > 0
  assert baseline['top_op_types']
  # A float32 variant's two fractions are the same one.
  assert baseline['fraction_of_peak'] == baseline[
      'fraction_of_float32_peak'] > 0
  markdown = (output / 'results.md').read_text(encoding='utf-8')
  assert '| pipeline |' in markdown
  assert (output / peak_study.PNG_FILE).read_bytes().startswith(PNG_MAGIC)


def test_each_variant_changes_what_it_says_and_nothing_else():
  study = {**peak_study.QUICK, 'output': 'unused'}
  pipeline = bench.pipeline_settings(study['sequence_length'])
  by_name = {v.name: peak_study.variant_settings(study, pipeline, v)
             for v in peak_study.VARIANTS}
  baseline = by_name['pipeline']
  assert baseline['variants']['transformer']['arguments'] == (
      pipeline['variants']['transformer']['arguments'])
  assert (baseline['dtype'], baseline['xla'], baseline['batch_sizes'],
          baseline['sequence_lengths'], baseline['threads']) == (
              'float32', False, [4], [16], [1])
  changes = {
      'no_dropout': {'dropout': 0.0},
      'wide': {'embedding_dim': 256, 'intermediate_dim': 1024},
      'wide_xla': {'embedding_dim': 256, 'intermediate_dim': 1024},
      'wide_xla_bfloat16': {'embedding_dim': 256, 'intermediate_dim': 1024}}
  for name, settings in by_name.items():
    # The RNN is the pipeline's in every run.
    assert settings['variants']['rnn'] == pipeline['variants']['rnn']
    assert settings['variants']['transformer']['arguments'] == {
        **pipeline['variants']['transformer']['arguments'],
        **changes.get(name, {})}
    assert settings['xla'] == ('xla' in name)
    assert settings['dtype'] == ('mixed_bfloat16' if 'bfloat16' in name
                                 else 'float32')
    assert settings['batch_sizes'] == [16 if name == 'batch_x4' else 4]


def _run(compute_dtype, peak_seconds, train_seconds, op_ms, steps=2):
  """A run as measure_variants records it, reduced to what the analysis
  reads, with the benchmark's own analysis fields filled in by hand."""
  flops = 3_000_000_000
  return {
      'compute_dtype': compute_dtype,
      'peak': {'flops': 1_000_000_000, 'seconds': peak_seconds},
      'op_type_self_ms': op_ms, 'profile_steps': steps,
      'cells': [{
          'batch_size': 128,
          'models': {
              'transformer': {
                  'parameters': 1000,
                  'train': {'flops_per_step': flops,
                            'seconds_per_step': {'median': train_seconds},
                            'flops_per_s': flops / train_seconds},
                  'inference': {'seconds_per_step': {'median': 0.01}}},
              'rnn': {'train': {'seconds_per_step': {'median': 0.1}}}},
          'ratios': {'pipeline sizes': {'train': {'median': 3.0}}}}]}


def test_figures_by_hand():
  float32_runs = [_run('float32', [0.01, 0.02, 0.04], 0.3,
                       {'_MklBatchMatMulV2': 150.0, 'Mul': 90.0,
                        '_MklMatMul': 60.0}),
                  _run('bfloat16', [0.004], 0.1, {'Einsum': 10.0})]
  peaks = peak_study.pooled_peaks(float32_runs)
  # Medians of 1e9 FLOPs / (0.01, 0.02, 0.04) s and of 1e9 / 0.004 s.
  assert peaks == {'float32': 5e10, 'bfloat16': 2.5e11}
  figures = peak_study.analyse_variant(float32_runs[0], {'xla': False},
                                       peaks)
  # 3e9 FLOPs in 0.3 s = 1e10 FLOP/s, a fifth of the float32 peak.
  assert figures['fraction_of_peak'] == pytest.approx(0.2)
  assert figures['fraction_of_float32_peak'] == pytest.approx(0.2)
  # Matmuls: 210 of 300 ms of op time over 2 steps, so 105 ms a step;
  # 3e9 FLOPs in 0.105 s = 2.857e10 FLOP/s = 0.571 of the peak.
  assert figures['matmul_share_of_op_time'] == pytest.approx(0.7)
  assert figures['matmul_kernel_fraction_of_peak'] == pytest.approx(
      3e9 / 0.105 / 5e10)
  assert figures['op_ms_per_step'] == pytest.approx(150.0)
  assert figures['top_op_types'][0] == ('_MklBatchMatMulV2', 0.5)
  bf16 = peak_study.analyse_variant(float32_runs[1], {'xla': True}, peaks)
  # 3e10 FLOP/s against bfloat16's 2.5e11 and float32's 5e10.
  assert bf16['fraction_of_peak'] == pytest.approx(0.12)
  assert bf16['fraction_of_float32_peak'] == pytest.approx(0.6)
  assert bf16['matmul_share_of_op_time'] is None


@pytest.mark.parametrize('flags, message', [
    (['--variants', 'fused_attention'], 'invalid choice'),
    (['--variants'], 'expected at least one argument'),
    (['--batch_size', '0'], 'must be at least 1, got 0'),
    (['--threads', str(len(os.sched_getaffinity(0)) + 1)], 'may use'),
])
def test_bad_flags_are_argparse_errors(flags, message, tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    bench_peak.main(['--output', str(tmp_path), *flags])
  assert exit_info.value.code == 2
  error = capsys.readouterr().err
  assert 'finsent bench-peak: error:' in error and message in error, error
  assert not any(tmp_path.iterdir())
