"""Where a model run's training steps went, from its TensorBoard profile.

Reads the TensorBoard profile a Trainer captured (models.profiling) with
the converters TensorBoard's profile plugin uses (TensorFlow's
`xspace_to_tools_data`: the overview page, framework op stats and trace
viewer tools) and prints, per model run: the average step time; its split
into compute, input and other (host idle, Python and framework overhead);
the utilisation of the device, or of TensorFlow's CPU compute threads; the
ops with the most self time; and whether the run is input-bound. `finsent profile-report` prints and
draws these reports; the run summary quotes `summary_line`.
"""

import collections
import dataclasses
import glob
import json
import os
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

from tensorboard_plugin_profile.convert import raw_to_tool_data
from tensorboard_plugin_profile.protobuf import input_pipeline_pb2
from tensorboard_plugin_profile.protobuf import overview_page_pb2
from tensorboard_plugin_profile.protobuf import tf_stats_pb2
from tensorflow.python.profiler.internal import _pywrap_profiler  # pylint: disable=g-direct-tensorflow-import
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from finsent.models import model_run as model_run_lib

TOP_OPS = 8
TOP_OP_TYPES = 5
INPUT_PIPELINE_OP_TYPE = 'Dataset'
# The name scope of the ops in a tf.while_loop's body.
WHILE_LOOP_SCOPE = '/while/'
# TensorFlow's executor threads on a CPU host; the trace shows them as
# tf_Compute/<id>. Intra-op (Eigen) work runs inside their op events.
CPU_COMPUTE_THREAD_PREFIX = 'tf_Compute'
# The profiler's input_classification values (input_pipeline_analysis):
# input share of step time >= 20 %, >= 5 %, below.
INPUT_BOUND = {'host': 'highly', 'both': 'moderately', 'device': 'no'}


class ProfileError(ValueError):
  """A model run has no readable profile; says where."""


@dataclasses.dataclass
class TopOp:
  op_type: str
  op_name: str
  self_ms_per_step: float
  self_time_share: float  # of all ops' self time


@dataclasses.dataclass
class ProfileReport:
  """One model run's profile, summarised."""
  model_run: str
  # The candidate it trained (`rnn_student`); runs from before candidates
  # name their architecture.
  name: str
  strategy: Optional[str]
  replicas: Optional[int]
  device_type: str  # CPU, GPU or TPU
  steps: int
  step_ms: float
  compute_share: float
  input_share: float
  other_share: float  # host idle, Python and framework overhead
  utilisation: float  # 0..1
  utilisation_of: str  # what `utilisation` measures
  # CPU runs: the share of the compute threads' time spent inside op
  # kernels (the rest of `utilisation` is the executor scheduling them).
  op_kernel_share: Optional[float]
  input_bound: str  # no, moderately or highly
  input_statement: str
  top_ops: List[TopOp]
  # (op type, share of all ops' self time), most first.
  top_op_types: List[Tuple[str, float]]
  # Share of all ops' self time spent in ops inside a tf.while_loop: on a
  # CPU, an RNN's recurrence (cuDNN's fused RNN kernel on a GPU is one op
  # outside any loop).
  loop_share: float

  def to_json(self) -> Dict:
    return dataclasses.asdict(self)


def find_profile(model_run: str) -> List[str]:
  """The xplane files of the newest profile under `model_run` (one per host)."""
  sessions = sorted(glob.glob(
      os.path.join(model_run, '**', 'plugins', 'profile', '*'),
      recursive=True))
  sessions = [s for s in sessions if glob.glob(os.path.join(s, '*.xplane.pb'))]
  if not sessions:
    raise ProfileError(
        f'{model_run}: no profile (plugins/profile/*/*.xplane.pb); the '
        'Trainer writes one when training runs past its first profile step '
        '(TrainingConfig.profile_steps)')
  newest = max(sessions, key=os.path.basename)  # named by UTC timestamp
  return sorted(glob.glob(os.path.join(newest, '*.xplane.pb')))


def _without_loop_iterations(xplane_paths: List[str], scratch: str
                             ) -> List[str]:
  """Copies of the profiles with while-loop iteration stats removed.

  The profiler groups a step's events by TF while-loop iterations when it
  sees any (made for TPUEstimator's training loops), ahead of our step
  markers: an RNN's recurrent while loop then hides every step. Without
  `iter_num` the markers define the steps, for the RNN as for the rest.
  """
  copies = []
  for path in xplane_paths:
    space = xplane_pb2.XSpace()
    with open(path, 'rb') as f:
      space.ParseFromString(f.read())
    for plane in space.planes:
      loop_stats = {i for i, m in plane.stat_metadata.items()
                    if m.name == 'iter_num'}
      for line in plane.lines:
        for event in line.events:
          if any(s.metadata_id in loop_stats for s in event.stats):
            kept = [s for s in event.stats if s.metadata_id not in loop_stats]
            del event.stats[:]
            event.stats.extend(kept)
    copy = os.path.join(scratch, os.path.basename(path))
    with open(copy, 'wb') as f:
      f.write(space.SerializeToString())
    copies.append(copy)
  return copies


def _tool(xplane_paths: List[str], tool: str) -> bytes:
  data, ok = _pywrap_profiler.xspace_to_tools_data(xplane_paths, tool)
  if not ok:
    raise ProfileError(f'{xplane_paths[0]}: the profiler could not convert it '
                       f'to {tool}: {data[:200]!r}')
  return data


def _step_breakdown(overview: overview_page_pb2.OverviewPage
                    ) -> Tuple[int, float, float, float]:
  """(steps, average step ms, compute ms, input ms) from the input analysis."""
  analysis = overview.input_analysis
  breakdown = input_pipeline_pb2.GenericStepTimeBreakdown()
  analysis.step_time_breakdown.Unpack(breakdown)
  average = lambda name: getattr(breakdown, f'{name}_ms_summary').average
  compute = sum(average(n) for n in (
      'host_compute', 'host_prepare', 'host_compile', 'device_compute',
      'device_to_device', 'device_collectives'))
  input_ms = average('host_wait_input') + average('host_to_device')
  return (len(analysis.step_details), analysis.step_time_summary.average,
          compute, input_ms)


def _busy_share_of_cpu_threads(xplane_paths: List[str]) -> Tuple[float, int]:
  """(share of the profiled steps' time TF's compute threads ran ops,
  number of those threads), from the trace viewer's events."""
  trace = json.loads(raw_to_tool_data.process_raw_trace(
      _tool(xplane_paths, 'trace_viewer')))
  events = trace['traceEvents']
  threads = {(e['pid'], e['tid']) for e in events
             if e.get('ph') == 'M' and e.get('name') == 'thread_name' and
             e['args']['name'].startswith(CPU_COMPUTE_THREAD_PREFIX)}
  steps = [(e['ts'], e['ts'] + e['dur']) for e in events
           if e.get('ph') == 'X' and 'step_num' in e.get('args', {}) and
           e['name'] == e['args'].get('step_name')]
  if not threads or not steps:
    return 0.0, len(threads)
  spans = {t: [] for t in threads}
  for e in events:
    if e.get('ph') == 'X' and (e.get('pid'), e.get('tid')) in spans:
      spans[(e['pid'], e['tid'])].append((e['ts'], e['ts'] + e['dur']))
  busy = 0.0
  for intervals in spans.values():
    intervals.sort()
    merged: List[List[float]] = []
    for start, end in intervals:
      if merged and start <= merged[-1][1]:
        merged[-1][1] = max(merged[-1][1], end)
      else:
        merged.append([start, end])
    busy += sum(max(0.0, min(end, s_end) - max(start, s_start))
                for start, end in merged for s_start, s_end in steps)
  window = sum(end - start for start, end in steps)
  return busy / (window * len(threads)), len(threads)


def _op_records(xplane_paths: List[str]) -> List[tf_stats_pb2.TfStatsRecord]:
  """The framework op stats' records, most self time first, without the
  input pipeline's."""
  stats = tf_stats_pb2.TfStatsDatabase()
  stats.ParseFromString(_tool(xplane_paths, 'framework_op_stats'))
  # tf.data's iterators show as `Dataset` ops, timed on the input
  # pipeline's own threads while the step runs: the input share covers them.
  return sorted((r for r in stats.without_idle.tf_stats_record
                 if r.op_type != INPUT_PIPELINE_OP_TYPE),
                key=lambda r: r.total_self_time_in_us, reverse=True)


def _self_ms_by_type(records: Sequence[tf_stats_pb2.TfStatsRecord]
                     ) -> collections.Counter:
  by_type = collections.Counter()
  for r in records:
    by_type[r.op_type] += r.total_self_time_in_us / 1e3
  return by_type


def op_type_self_ms(xplane_paths: List[str]) -> Dict[str, float]:
  """Self time in ms per op type over the whole profile, most first (input
  pipeline ops left out)."""
  return dict(_self_ms_by_type(_op_records(xplane_paths)).most_common())


def _op_stats(xplane_paths: List[str], steps: int
              ) -> Tuple[List[TopOp], List[Tuple[str, float]], float, float]:
  """(the ops and op types with the most self time, all ops' self time
  in ms, the share of it inside while loops)."""
  records = _op_records(xplane_paths)
  total_ms = sum(r.total_self_time_in_us for r in records) / 1e3 or 1e-3
  loop_ms = sum(r.total_self_time_in_us for r in records
                if WHILE_LOOP_SCOPE in r.op_name) / 1e3
  top = [TopOp(r.op_type, r.op_name,
               r.total_self_time_in_us / 1e3 / max(steps, 1),
               r.total_self_time_in_us / 1e3 / total_ms)
         for r in records[:TOP_OPS]]
  top_types = [(op_type, ms / total_ms) for op_type, ms in
               _self_ms_by_type(records).most_common(TOP_OP_TYPES)]
  return top, top_types, total_ms, loop_ms / total_ms


def read_profile(model_run: str) -> ProfileReport:
  """Summarises the newest profile of a Trainer's model_run dir."""
  xplane_paths = find_profile(model_run)
  training = model_run_lib.read_training_summary(model_run)
  with tempfile.TemporaryDirectory() as scratch:
    paths = _without_loop_iterations(xplane_paths, scratch)
    overview = overview_page_pb2.OverviewPage()
    overview.ParseFromString(_tool(paths, 'overview_page'))
    steps, step_ms, compute_ms, input_ms = _step_breakdown(overview)
    if not steps or step_ms <= 0:
      raise ProfileError(f'{xplane_paths[0]}: the profile has no training '
                         'steps (no root `train` step markers)')
    top_ops, top_op_types, op_ms, loop_share = _op_stats(paths, steps)
    device_type = overview.run_environment.device_type or 'CPU'
    if device_type == 'CPU':
      utilisation, threads = _busy_share_of_cpu_threads(paths)
      utilisation_of = f'{threads} TF CPU compute threads busy'
      op_kernel_share = min(1.0, op_ms / (steps * step_ms * max(threads, 1)))
    else:
      utilisation = overview.analysis.device_duty_cycle_percent / 100
      utilisation_of = f'{device_type} duty cycle'
      op_kernel_share = None
  bottleneck = input_pipeline_pb2.BottleneckAnalysis()
  overview.input_analysis.recommendation.bottleneck_analysis.Unpack(bottleneck)
  compute_share = min(1.0, compute_ms / step_ms)
  input_share = min(1.0 - compute_share, input_ms / step_ms)
  return ProfileReport(
      model_run=model_run,
      name=(training.get('candidate') or training.get('architecture') or
            os.path.basename(os.path.normpath(model_run))),
      strategy=training.get('strategy'),
      replicas=training.get('replicas'),
      device_type=device_type,
      steps=steps,
      step_ms=step_ms,
      compute_share=compute_share,
      input_share=input_share,
      other_share=1.0 - compute_share - input_share,
      utilisation=utilisation,
      utilisation_of=utilisation_of,
      op_kernel_share=op_kernel_share,
      input_bound=INPUT_BOUND.get(bottleneck.input_classification, 'unknown'),
      input_statement=bottleneck.input_statement,
      top_ops=top_ops,
      loop_share=loop_share,
      top_op_types=top_op_types)


def summary_line(reports: Sequence[ProfileReport]) -> str:
  """One line comparing the runs, for the pipeline's end-of-run summary."""
  return ' | '.join(
      f'{r.name} {r.step_ms:.1f} ms/step (compute '
      f'{r.compute_share:.0%}, input {r.input_share:.0%}, other '
      f'{r.other_share:.0%}; utilisation {r.utilisation:.0%})'
      for r in reports)
