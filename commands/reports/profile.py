"""The profile report's text and chart (`finsent profile-report`)."""

from typing import Sequence

from finsent.models.training_profile import ProfileReport


def _short(op_name: str, width: int = 60) -> str:
  return op_name if len(op_name) <= width else '...' + op_name[-(width - 3):]


def format_reports(reports: Sequence[ProfileReport]) -> str:
  """The reports as text: the figures side by side, then each run's top ops."""
  rows = [
      ('device', lambda r: r.device_type),
      ('strategy', lambda r: f'{r.strategy or "?"} x{r.replicas or "?"}'),
      ('steps profiled', lambda r: str(r.steps)),
      ('step time', lambda r: f'{r.step_ms:.1f} ms'),
      ('compute', lambda r: f'{r.compute_share:.0%}'),
      ('input', lambda r: f'{r.input_share:.0%}'),
      ('other (idle, overhead)', lambda r: f'{r.other_share:.0%}'),
      ('utilisation', lambda r: f'{r.utilisation:.0%}'),
      ('  in op kernels', lambda r: '-' if r.op_kernel_share is None else
       f'{r.op_kernel_share:.0%}'),
      ('op time in while loops', lambda r: f'{r.loop_share:.0%}'),
      ('input-bound', lambda r: r.input_bound),
  ]
  table = [('', [r.name for r in reports])] + [
      (label, [value(r) for r in reports]) for label, value in rows]
  width = 2 + max(len(cell) for _, cells in table for cell in cells)
  lines = [f'{label:<24}' + ''.join(f'{cell:>{width}}' for cell in cells)
           for label, cells in table]
  for r in reports:
    lines += ['', f'{r.name}: {r.model_run}',
              f'  utilisation: {r.utilisation_of}', f'  {r.input_statement}',
              '  self time by op type: ' + ', '.join(
                  f'{op_type} {share:.0%}' for op_type, share in r.top_op_types),
              '  top ops by self time (ms per step, share):']
    lines += [f'    {op.self_ms_per_step:8.2f}  {op.self_time_share:5.1%}  '
              f'{op.op_type:<16} {_short(op.op_name)}' for op in r.top_ops]
  return '\n'.join(lines)


def write_chart(reports: Sequence[ProfileReport], path: str) -> None:
  """Step time split into compute / input / other, one bar per run."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure, axes = pyplot.subplots(figsize=(7, 1.6 + 0.7 * len(reports)))
  names = [r.name for r in reports]
  left = [0.0] * len(reports)
  for label, share, colour in (('compute', 'compute_share', '#4c72b0'),
                               ('input', 'input_share', '#dd8452'),
                               ('other (idle, overhead)', 'other_share',
                                '#bbbbbb')):
    widths = [r.step_ms * getattr(r, share) for r in reports]
    axes.barh(names, widths, left=left, label=label, color=colour)
    left = [l + w for l, w in zip(left, widths)]
  for i, r in enumerate(reports):
    axes.text(left[i], i, f' {r.step_ms:.1f} ms, {r.utilisation:.0%} util.',
              va='center', fontsize=9)
  axes.set_xlim(0, max(left) * 1.35)
  axes.set_xlabel('training step time (ms)')
  axes.set_title('Where each training step went (TensorBoard profile)')
  axes.legend(loc='upper center', bbox_to_anchor=(0.5, -0.45 / len(reports)),
              ncol=3, fontsize=8, frameon=False)
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  pyplot.close(figure)
