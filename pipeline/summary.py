"""The end-of-run summary, read back from ML Metadata and the run's artifacts.

Everything here comes from what the run recorded (MLMD executions and
artifacts, TFMA's metrics, the Trainer's training summary), not from the
process that ran it, so it can be made again after the run
(`finsent summary`).
"""

import dataclasses
import json
import os
from typing import Dict, List, Optional, Tuple

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
import tensorflow as tf
import tensorflow_model_analysis as tfma

from models import features
from models import trainer
from pipeline import configs
from pipeline import pipeline as pipeline_lib


@dataclasses.dataclass
class ComponentRun:
  node_id: str
  state: str
  seconds: float
  outputs: Dict[str, List[metadata_store_pb2.Artifact]]


@dataclasses.dataclass
class ModelSummary:
  architecture: str
  accuracy: Optional[float]
  macro_f1: Optional[float]
  recall_by_class: Dict[str, float]
  eval_examples: Optional[int]
  blessed: bool
  pushed_to: Optional[str]
  parameters: Optional[int]
  train_seconds: Optional[float]
  epochs: Optional[int]
  tensorboard_logdir: Optional[str]


@dataclasses.dataclass
class RunSummary:
  pipeline_name: str
  run_id: str
  components: List[ComponentRun]
  models: List[ModelSummary]
  wall_seconds: Optional[float] = None

  def to_json(self) -> Dict:
    return {
        'pipeline_name': self.pipeline_name,
        'run_id': self.run_id,
        'wall_seconds': self.wall_seconds,
        'components': [{'node_id': c.node_id, 'state': c.state,
                        'seconds': c.seconds} for c in self.components],
        'models': [dataclasses.asdict(m) for m in self.models],
    }


def _latest_run_components(store: mlmd.MetadataStore, pipeline_name: str
                           ) -> (str, List[ComponentRun]):
  """Executions of the newest pipeline_run context, with their outputs."""
  runs = store.get_contexts_by_type('pipeline_run')
  if not runs:
    raise ValueError('no pipeline run recorded in ML Metadata')
  run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
  node_type_id = store.get_context_type('node').id
  state_names = metadata_store_pb2.Execution.State.Name
  components = []
  executions = sorted(store.get_executions_by_context(run.id),
                      key=lambda e: e.create_time_since_epoch)
  for execution in executions:
    node = next(c for c in store.get_contexts_by_execution(execution.id)
                if c.type_id == node_type_id)
    outputs: Dict[str, List[metadata_store_pb2.Artifact]] = {}
    events = [e for e in store.get_events_by_execution_ids([execution.id])
              if e.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id(
        [e.artifact_id for e in events])}
    for event in events:
      key = event.path.steps[0].key if event.path.steps else ''
      outputs.setdefault(key, []).append(artifacts[event.artifact_id])
    components.append(ComponentRun(
        node_id=node.name[len(pipeline_name) + 1:],
        state=state_names(execution.last_known_state),
        seconds=(execution.last_update_time_since_epoch -
                 execution.create_time_since_epoch) / 1000,
        outputs=outputs))
  return run.name, components


def _overall_metrics(evaluation_uri: str
                     ) -> Tuple[Dict[str, float], Dict[str, float]]:
  """Accuracy, macro-F1 and example count; recall by class. Overall slice."""
  metrics, recall_by_class = {}, {}
  for metrics_for_slice in tfma.load_metrics(evaluation_uri):
    if metrics_for_slice.slice_key.single_slice_keys:
      continue
    for kv in metrics_for_slice.metric_keys_and_values:
      value = kv.value.double_value.value
      if kv.key.name == pipeline_lib.F1_METRIC and (
          kv.key.aggregation_type.macro_average):
        metrics['macro_f1'] = value
      elif kv.key.name == 'recall' and kv.key.sub_key.HasField('class_id'):
        recall_by_class[features.LABELS[kv.key.sub_key.class_id.value]] = value
      elif kv.key.name in (pipeline_lib.ACCURACY_METRIC, 'example_count') and (
          not kv.key.HasField('sub_key')):
        metrics[kv.key.name] = value
  return metrics, recall_by_class


def _output(components: Dict[str, ComponentRun], node_id: str, key: str
            ) -> Optional[metadata_store_pb2.Artifact]:
  component = components.get(node_id)
  artifacts = component.outputs.get(key) if component else None
  return artifacts[0] if artifacts else None


def _model_summary(architecture: str,
                   components: Dict[str, ComponentRun]) -> ModelSummary:
  evaluation = _output(components, f'Evaluator.{architecture}', 'evaluation')
  blessing = _output(components, f'Evaluator.{architecture}', 'blessing')
  model_run = _output(components, f'Trainer.{architecture}', 'model_run')
  pushed = _output(components, f'Pusher.{architecture}', 'pushed_model')
  metrics, recall_by_class = (_overall_metrics(evaluation.uri)
                              if evaluation else ({}, {}))
  training = {}
  if model_run:
    path = os.path.join(model_run.uri, trainer.TRAINING_SUMMARY_FILE)
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        training = json.load(f)
  props = pushed.custom_properties if pushed else {}
  was_pushed = 'pushed' in props and props['pushed'].int_value == 1
  blessed = bool(blessing and 'blessed' in blessing.custom_properties and
                 blessing.custom_properties['blessed'].int_value == 1)
  example_count = metrics.get('example_count')
  return ModelSummary(
      architecture=architecture,
      accuracy=metrics.get(pipeline_lib.ACCURACY_METRIC),
      macro_f1=metrics.get('macro_f1'),
      recall_by_class=recall_by_class,
      eval_examples=int(example_count) if example_count is not None else None,
      blessed=blessed,
      pushed_to=(props['pushed_destination'].string_value
                 if was_pushed else None),
      parameters=training.get('parameters'),
      train_seconds=training.get('train_seconds'),
      epochs=training.get('epochs'),
      tensorboard_logdir=model_run.uri if model_run else None)


def summarize_latest_run(config: configs.PipelineConfig) -> RunSummary:
  """Reads the newest run of `config`'s pipeline from its MLMD store."""
  connection = metadata_store_pb2.ConnectionConfig()
  connection.sqlite.filename_uri = config.metadata_path
  connection.sqlite.connection_mode = (
      metadata_store_pb2.SqliteMetadataSourceConfig.READONLY)
  store = mlmd.MetadataStore(connection)
  run_id, components = _latest_run_components(store, config.pipeline_name)
  by_node = {c.node_id: c for c in components}
  return RunSummary(
      pipeline_name=config.pipeline_name, run_id=run_id,
      components=components,
      models=[_model_summary(a, by_node) for a in configs.ARCHITECTURES])


def _fmt(value, spec: str) -> str:
  return '-' if value is None else format(value, spec)


def format_summary(summary: RunSummary) -> str:
  """The summary as the text `finsent run` prints."""
  lines = [f'Pipeline {summary.pipeline_name}, run {summary.run_id}'
           + (f', {summary.wall_seconds:.0f} s' if summary.wall_seconds
              else '')]
  lines.append('  components: ' + ', '.join(
      f'{c.node_id} {c.seconds:.0f}s' + ('' if c.state == 'COMPLETE'
                                         else f' ({c.state})')
      for c in summary.components))
  lines.append('')
  lines.append(f'  {"model":<12} {"accuracy":>8} {"macro-F1":>8} '
               f'{"neg.rec":>7} {"params":>9} {"train s":>7} {"epochs":>6}  '
               'blessed  pushed to')
  for m in summary.models:
    lines.append(
        f'  {m.architecture:<12} {_fmt(m.accuracy, ".4f"):>8} '
        f'{_fmt(m.macro_f1, ".4f"):>8} '
        f'{_fmt(m.recall_by_class.get("negative"), ".4f"):>7} '
        f'{_fmt(m.parameters, ","):>9} '
        f'{_fmt(m.train_seconds, ".0f"):>7} {_fmt(m.epochs, "d"):>6}  '
        f'{"yes" if m.blessed else "NO":<7}  {m.pushed_to or "(not pushed)"}')
  eval_examples = {m.eval_examples for m in summary.models}
  lines.append(f'  (accuracy, macro-F1 and negative-class recall by TFMA on the '
               f'eval split, '
               f'{"/".join(_fmt(n, "d") for n in eval_examples)} examples)')
  logdirs = [f'{m.architecture}:{m.tensorboard_logdir}'
             for m in summary.models if m.tensorboard_logdir]
  if logdirs:
    lines.append('')
    lines.append('  TensorBoard (training curves and profiles):')
    lines.append(f'    tensorboard --logdir_spec {",".join(logdirs)}')
  return '\n'.join(lines)
