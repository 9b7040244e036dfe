"""The end-of-run summary, read back from ML Metadata and the run's artifacts.

Everything here comes from what the run recorded (MLMD executions and
artifacts, TFMA's metrics, the Trainer's training summary), not from the
process that ran it, so it can be made again after the run
(`finsent summary`).
"""

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
import tensorflow_model_analysis as tfma

from finsent.components import atomic_pusher
from finsent.components import model_selector
from finsent.components import serving_validator
from finsent.models import evaluation
from finsent.models import model_run as model_run_lib
from finsent.models import training_profile
from finsent import configs
from finsent.configs import features
from finsent.pipeline import pipeline as pipeline_lib


@dataclasses.dataclass
class ComponentRun:
  node_id: str
  state: str
  started: float  # seconds since the epoch
  seconds: float
  inputs: Dict[str, List[metadata_store_pb2.Artifact]]
  outputs: Dict[str, List[metadata_store_pb2.Artifact]]
  # The execution's properties: TFX records its exec properties there
  # (an ExampleGen's input_base and input_config).
  properties: Dict[str, metadata_store_pb2.Value] = dataclasses.field(
      default_factory=dict)


@dataclasses.dataclass
class ModelSummary:
  """One candidate's model: TFMA metrics, training, cost, push."""
  candidate: str  # configs.CANDIDATES
  architecture: str  # what it is built as (configs.candidate_architecture)
  metrics: Dict[str, float]
  blessed: bool
  # The servability gate's verdict; None when it did not run.
  servable: Optional[bool]
  pushed_to: Optional[str]
  # Blessed, but the same model is already the newest version (a rerun
  # taken from TFX's cache), so it was not pushed again.
  already_pushed: bool
  parameters: Optional[int]
  train_seconds: Optional[float]
  epochs: Optional[int]
  p50_latency_ms: Optional[float]
  tensorboard_logdir: Optional[str]
  # Batched serving_default throughput, measured by the ModelSelector.
  headlines_per_second: Optional[float] = None
  # How it was trained: the tf.distribute strategy and its replicas.
  strategy: Optional[str] = None
  replicas: Optional[int] = None
  # The Trainer's temperature and NLL/ECE before and after it
  # (models.trainer.calibrate); None from a Trainer that wrote none.
  calibration: Optional[Dict[str, Any]] = None
  # The builder's arguments it was trained with and the one-replica
  # learning rate; `tuned` when they came from the Tuner.
  hyperparameters: Optional[Dict[str, Any]] = None
  learning_rate: Optional[float] = None
  tuned: bool = False
  # The keras-hub preset the model was fine-tuned from, if any, and the
  # epochs its head trained alone on the frozen encoder first (LP-FT).
  pretrained_encoder: Optional[str] = None
  head_epochs: Optional[int] = None
  # With topics and --topic_model separate: per head, the model's
  # parameters, epochs and seconds (models.trainer.run_fn); else None.
  separate_models: Optional[Dict[str, Dict[str, Any]]] = None
  # The word vectors its token embedding started from, if any, and how
  # many of the vocabulary's tokens they covered.
  word_vectors: Optional[str] = None
  word_vectors_covered: Optional[int] = None
  # The Trainer's profile (models.training_profile), or why there is none.
  profile: Optional[training_profile.ProfileReport] = None
  profile_problem: Optional[str] = None
  # TFMA's overall metrics of the same model on the second source
  # (Evaluator.second_source.<candidate>), keys as `metrics`; None when
  # the run scored none.
  second_source: Optional[Dict[str, float]] = None
  # A student's: how it learned from the teacher (models.distillation);
  # None for a model trained on the labels alone.
  distillation: Optional[Dict[str, Any]] = None


@dataclasses.dataclass
class ProductionSummary:
  """The tournament's outcome and the production gate's verdict."""
  selected: Optional[str]
  reason: Optional[str]
  blessed: bool
  # Why the production Evaluator refused it (TFMA validation failures).
  failures: List[str]
  servable: Optional[bool]
  # Why the servability gate refused it.
  serving_problems: List[str]
  baseline: bool
  pushed_to: Optional[str]
  already_pushed: bool


@dataclasses.dataclass
class RunSummary:
  pipeline_name: str
  run_id: str
  components: List[ComponentRun]
  models: List[ModelSummary]
  production: ProductionSummary
  wall_seconds: Optional[float] = None
  # The file (or folder pattern) TextExampleGen.second_source read; None
  # when the run had no second source.
  second_source: Optional[str] = None

  def to_json(self) -> Dict:
    return {
        'pipeline_name': self.pipeline_name,
        'run_id': self.run_id,
        'wall_seconds': self.wall_seconds,
        'second_source': self.second_source,
        'components': [{'node_id': c.node_id, 'state': c.state,
                        'seconds': c.seconds} for c in self.components],
        'models': [dataclasses.asdict(m) for m in self.models],
        'production': dataclasses.asdict(self.production),
    }


def latest_run_components(store: mlmd.MetadataStore, pipeline_name: str
                           ) -> (str, List[ComponentRun]):
  """Executions of the newest pipeline_run context, with their artifacts."""
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
    events = store.get_events_by_execution_ids([execution.id])
    artifacts = {a.id: a for a in store.get_artifacts_by_id(
        [e.artifact_id for e in events])}
    by_kind = {metadata_store_pb2.Event.INPUT: {},
               metadata_store_pb2.Event.OUTPUT: {}}
    for event in events:
      if event.type in by_kind:
        key = event.path.steps[0].key if event.path.steps else ''
        by_kind[event.type].setdefault(key, []).append(
            artifacts[event.artifact_id])
    components.append(ComponentRun(
        node_id=node.name[len(pipeline_name) + 1:],
        state=state_names(execution.last_known_state),
        started=execution.create_time_since_epoch / 1000,
        seconds=(execution.last_update_time_since_epoch -
                 execution.create_time_since_epoch) / 1000,
        inputs=by_kind[metadata_store_pb2.Event.INPUT],
        outputs=by_kind[metadata_store_pb2.Event.OUTPUT],
        properties=dict(execution.custom_properties)))
  return run.name, components


def _output(components: Dict[str, ComponentRun], node_id: str, key: str
            ) -> Optional[metadata_store_pb2.Artifact]:
  component = components.get(node_id)
  artifacts = component.outputs.get(key) if component else None
  return artifacts[0] if artifacts else None


def _pushed_to(pushed: Optional[metadata_store_pb2.Artifact]
               ) -> Optional[str]:
  props = pushed.custom_properties if pushed else {}
  if 'pushed' in props and props['pushed'].int_value == 1:
    return props['pushed_destination'].string_value
  return None


def _already_pushed(pushed: Optional[metadata_store_pb2.Artifact]) -> bool:
  props = pushed.custom_properties if pushed else {}
  return (atomic_pusher.ALREADY_PUSHED in props and
          props[atomic_pusher.ALREADY_PUSHED].int_value == 1)


def _blessed(blessing: Optional[metadata_store_pb2.Artifact]) -> bool:
  return bool(blessing and 'blessed' in blessing.custom_properties and
              blessing.custom_properties['blessed'].int_value == 1)


def _servability(components: Dict[str, ComponentRun], name: str
                 ) -> Tuple[Optional[bool], List[str]]:
  """(servable, problems) from the servability gate of `name`."""
  blessing = _output(components, f'{pipeline_lib.SERVABILITY_GATE}.{name}',
                     'blessing')
  if blessing is None:
    return None, []
  problems = blessing.custom_properties.get(serving_validator.PROBLEMS)
  return _blessed(blessing), (
      problems.string_value.split('; ') if problems and
      problems.string_value else [])


def _model_summary(candidate: str, components: Dict[str, ComponentRun],
                   selection: Dict[str, metadata_store_pb2.Value]
                   ) -> ModelSummary:
  evaluation_artifact = _output(components, f'Evaluator.{candidate}',
                                'evaluation')
  model_run = _output(components, f'Trainer.{candidate}', 'model_run')
  pushed = _output(components, f'Pusher.{candidate}', 'pushed_model')
  training = (model_run_lib.read_training_summary(model_run.uri)
              if model_run else {})
  profile, profile_problem = None, None
  if model_run:
    try:
      profile = training_profile.read_profile(model_run.uri)
    except training_profile.ProfileError as e:
      profile_problem = str(e)
  def measured(name: str) -> Optional[float]:
    value = selection.get(f'{candidate}_{name}')
    return value.double_value if value else None
  second_source = _output(
      components, f'{pipeline_lib.SECOND_SOURCE_EVALUATOR}.{candidate}',
      'evaluation')
  return ModelSummary(
      candidate=candidate,
      architecture=configs.candidate_architecture(candidate),
      metrics=(evaluation.overall_metrics(evaluation_artifact.uri)
               if evaluation_artifact else {}),
      blessed=_blessed(_output(components, f'Evaluator.{candidate}',
                               'blessing')),
      servable=_servability(components, candidate)[0],
      pushed_to=_pushed_to(pushed),
      already_pushed=_already_pushed(pushed),
      parameters=training.get('parameters'),
      train_seconds=training.get('train_seconds'),
      epochs=training.get('epochs'),
      p50_latency_ms=measured(model_selector.P50_LATENCY_MS),
      headlines_per_second=measured(model_selector.HEADLINES_PER_SECOND),
      tensorboard_logdir=model_run.uri if model_run else None,
      strategy=training.get('strategy'),
      replicas=training.get('replicas'),
      calibration=training.get('calibration'),
      hyperparameters=training.get('hyperparameters'),
      learning_rate=training.get('base_learning_rate'),
      tuned=training.get('tuned', False),
      pretrained_encoder=training.get('pretrained_encoder'),
      head_epochs=training.get('head_epochs'),
      separate_models=training.get('separate_models'),
      word_vectors=training.get('word_vectors'),
      word_vectors_covered=training.get('word_vectors_covered'),
      profile=profile,
      profile_problem=profile_problem,
      second_source=(evaluation.overall_metrics(second_source.uri)
                     if second_source else None),
      distillation=training.get('distillation'))


def _second_source_path(components: Dict[str, ComponentRun]
                        ) -> Optional[str]:
  """What TextExampleGen.second_source read: its input base joined with
  its one split's pattern, from the exec properties TFX recorded."""
  example_gen = components.get(pipeline_lib.SECOND_SOURCE_EXAMPLE_GEN)
  if example_gen is None:
    return None
  props = example_gen.properties
  if 'input_base' not in props or 'input_config' not in props:
    # It ran, but its execution recorded no exec properties.
    return f'(the input of {pipeline_lib.SECOND_SOURCE_EXAMPLE_GEN})'
  splits = json.loads(props['input_config'].string_value)['splits']
  return os.path.join(props['input_base'].string_value,
                      *(split['pattern'] for split in splits))


def _validation_failures(evaluation_uri: str) -> List[str]:
  """TFMA's reasons for not blessing, one line per failed threshold."""
  lines = []
  for per_slice in tfma.load_validation_result(
      evaluation_uri).metric_validations_per_slice:
    for failure in per_slice.failures:
      threshold = failure.metric_threshold
      # The topic head's metrics are told apart by their output.
      name = (f'topic {failure.metric_key.name}'
              if failure.metric_key.output_name ==
              features.TOPIC_PROBABILITIES_OUTPUT else failure.metric_key.name)
      if not failure.HasField('metric_value'):
        # E.g. "Metric not found": TFMA's own message says it all.
        lines.append(f'{name}: {failure.message}')
        continue
      if failure.metric_key.is_diff:
        what = 'change vs the baseline'
        bound = threshold.change_threshold.absolute.value
      else:
        what = 'value'
        bound = threshold.value_threshold.lower_bound.value
      lines.append(f'{name} {what} '
                   f'{failure.metric_value.double_value.value:+.4f} is below '
                   f'{bound:+.4f}')
  return lines


def _production_summary(components: Dict[str, ComponentRun]
                        ) -> ProductionSummary:
  selected = _output(components, 'ModelSelector', 'model')
  props = selected.custom_properties if selected else {}
  evaluation_artifact = _output(
      components, pipeline_lib.PRODUCTION_EVALUATOR, 'evaluation')
  evaluator = components.get(pipeline_lib.PRODUCTION_EVALUATOR)
  pushed = _output(components, pipeline_lib.PRODUCTION_PUSHER, 'pushed_model')
  servable, serving_problems = _servability(components,
                                            pipeline_lib.PRODUCTION)
  return ProductionSummary(
      selected=(props[model_selector.SELECTED_ARCHITECTURE].string_value
                if selected else None),
      reason=(props[model_selector.SELECTION_REASON].string_value
              if selected else None),
      blessed=_blessed(_output(components, pipeline_lib.PRODUCTION_EVALUATOR,
                               'blessing')),
      failures=(_validation_failures(evaluation_artifact.uri)
                if evaluation_artifact else []),
      servable=servable,
      serving_problems=serving_problems,
      baseline=bool(evaluator and evaluator.inputs.get('baseline_model')),
      pushed_to=_pushed_to(pushed),
      already_pushed=_already_pushed(pushed))


def open_metadata_store(config: configs.PipelineConfig) -> mlmd.MetadataStore:
  """The pipeline's ML Metadata store, read-only."""
  connection = metadata_store_pb2.ConnectionConfig()
  connection.sqlite.filename_uri = config.metadata_path
  connection.sqlite.connection_mode = (
      metadata_store_pb2.SqliteMetadataSourceConfig.READONLY)
  return mlmd.MetadataStore(connection)


def summarize_latest_run(config: configs.PipelineConfig) -> RunSummary:
  """Reads the newest run of `config`'s pipeline from its MLMD store."""
  store = open_metadata_store(config)
  run_id, components = latest_run_components(store, config.pipeline_name)
  by_node = {c.node_id: c for c in components}
  selected = _output(by_node, 'ModelSelector', 'model')
  selection = dict(selected.custom_properties) if selected else {}
  return RunSummary(
      pipeline_name=config.pipeline_name, run_id=run_id,
      components=components,
      # The run's candidates, and any other whose Trainer ran in it.
      models=[_model_summary(c, by_node, selection)
              for c in configs.CANDIDATES
              if c in config.candidates or f'Trainer.{c}' in by_node],
      production=_production_summary(by_node),
      second_source=_second_source_path(by_node))


def _fmt(value, spec: str) -> str:
  return '-' if value is None else format(value, spec)


_NOT_PUSHED = {False: '(not pushed)', True: '(already the newest)'}
_SERVABLE = {True: 'yes', False: 'NO', None: '-'}


def _state_note(component: ComponentRun) -> str:
  if component.state == 'COMPLETE':
    return ''
  if (component.node_id == pipeline_lib.BASELINE_STATISTICS_RESOLVER and
      component.state == 'FAILED'):
    # TFX marks a resolver that finds nothing as failed: the first run.
    return ' (no accepted data yet)'
  return f' ({component.state})'


def format_summary(summary: RunSummary) -> str:
  """The summary as the text `finsent run` prints: the side-by-side table."""
  lines = [f'Pipeline {summary.pipeline_name}, run {summary.run_id}'
           + (f', {summary.wall_seconds:.0f} s' if summary.wall_seconds
              else '')]
  lines.append('  components: ' + ', '.join(
      f'{c.node_id} {c.seconds:.0f}s' + _state_note(c)
      for c in summary.components))
  lines.append('')
  # The second source's columns sit beside the eval split's accuracy and
  # macro-F1, only in a run that had one.
  second = summary.second_source is not None
  # The topic head's columns, only in a run with topic data.
  topic = evaluation.TOPIC_PREFIX
  topics = any(f'{topic}accuracy' in m.metrics for m in summary.models)
  width = max([len('model')] + [len(m.candidate) for m in summary.models])
  lines.append(f'  {"model":<{width}} {"accuracy":>8} {"macro-F1":>8} '
               + (f'{"topic acc":>9} {"topic F1":>8} ' if topics else '')
               + (f'{"2nd acc":>8} {"2nd F1":>8} ' if second else '') +
               f'{"neg.rec":>7} {"Brier":>6} {"ECE":>6} {"params":>10} '
               f'{"train s":>7} {"epochs":>6} {"p50 ms":>6} {"texts/s":>7}  '
               'blessed  servable  pushed to')
  for m in summary.models:
    metric = m.metrics.get
    scored = (m.second_source or {}).get
    lines.append(
        f'  {m.candidate:<{width}} {_fmt(metric("accuracy"), ".4f"):>8} '
        f'{_fmt(metric("macro_f1"), ".4f"):>8} '
        + (f'{_fmt(metric(f"{topic}accuracy"), ".4f"):>9} '
           f'{_fmt(metric(f"{topic}macro_f1"), ".4f"):>8} ' if topics else '')
        + (f'{_fmt(scored("accuracy"), ".4f"):>8} '
           f'{_fmt(scored("macro_f1"), ".4f"):>8} ' if second else '') +
        f'{_fmt(metric("recall_negative"), ".4f"):>7} '
        f'{_fmt(metric(evaluation.BRIER), ".3f"):>6} '
        f'{_fmt(metric(evaluation.ECE), ".3f"):>6} '
        f'{_fmt(m.parameters, ","):>10} '
        f'{_fmt(m.train_seconds, ".0f"):>7} {_fmt(m.epochs, "d"):>6} '
        f'{_fmt(m.p50_latency_ms, ".2f"):>6} '
        f'{_fmt(m.headlines_per_second, ".0f"):>7}  '
        f'{"yes" if m.blessed else "NO":<7}  '
        f'{_SERVABLE[m.servable]:<8}  '
        f'{m.pushed_to or _NOT_PUSHED[m.already_pushed]}')
  eval_examples = {m.metrics.get('example_count') for m in summary.models}
  topic_examples = {m.metrics.get(f'{topic}example_count')
                    for m in summary.models}
  lines.append(
      '  (TFMA on the eval split, '
      f'{"/".join(_fmt(n, ".0f") for n in eval_examples)} examples'
      + (f' with a sentiment label and '
         f'{"/".join(_fmt(n, ".0f") for n in topic_examples)} with a topic'
         if topics else '') + '; neg.rec: '
      'recall of negative; ECE: top-label expected calibration error; '
      'p50 ms: batch-1 serving_default latency here; texts/s: its '
      'throughput in batches here; servable: the local '
      'model server loaded it and answered with it)')
  if second:
    second_examples = {(m.second_source or {}).get('example_count')
                       for m in summary.models}
    lines.append(
        f'  (2nd acc, 2nd F1: TFMA on the second source '
        f'{summary.second_source}, '
        f'{"/".join(_fmt(n, ".0f") for n in second_examples)} examples, '
        'never trained on; no thresholds: it blesses and blocks nothing)')

  trained_with = {f'{m.strategy} x{m.replicas}' for m in summary.models
                  if m.strategy}
  if trained_with:
    lines.append(f'  trained with: {", ".join(sorted(trained_with))} '
                 '(tf.distribute strategy x replicas)')
  calibrated = [m for m in summary.models if m.calibration]
  if calibrated:
    lines.append('  calibration (eval split ECE before -> after the '
                 'temperature T): ' + ', '.join(
                     f'{m.candidate} T={m.calibration["temperature"]:.2f} '
                     f'{m.calibration["eval"]["ece_before"]:.3f} -> '
                     f'{m.calibration["eval"]["ece_after"]:.3f}'
                     for m in calibrated))
  lines.extend(
      f'  {m.candidate}: the pretrained encoder {m.pretrained_encoder}, '
      f'fine-tuned at learning rate {_fmt(m.learning_rate, ".2g")}'
      + (f' after {m.head_epochs} epochs of its head alone (LP-FT)'
         if m.head_epochs else '')
      for m in summary.models if m.pretrained_encoder)
  lines.extend(
      f'  {m.candidate}: a model per head (--topic_model separate), served '
      'as one: ' + ', '.join(
          f'{head} {_fmt(each["parameters"], ",d")} parameters, '
          f'{each["epochs"]} epochs in {_fmt(each["train_seconds"], ".0f")} s'
          for head, each in m.separate_models.items())
      for m in summary.models if m.separate_models)
  # A student's Trainer waits for its teacher's blessing.
  lines.extend(f'  {m.candidate}: not trained in this run'
               + (f' ({pipeline_lib.TEACHER} was not blessed)'
                  if m.candidate.endswith(configs.STUDENT_SUFFIX) else '')
               for m in summary.models if m.tensorboard_logdir is None)
  lines.extend(
      f'  {m.candidate}: learned from {pipeline_lib.TEACHER} (T='
      f'{m.distillation["temperature"]:g}, alpha {m.distillation["alpha"]:g})'
      f' on {m.distillation["fit_labelled"]} labelled + '
      f'{m.distillation["fit_unlabelled"]} unlabelled texts'
      + (", reading the teacher's pieces"
         if m.distillation.get('tokens') == 'teacher_pieces' else '')
      + '; its top class '
      f'is the teacher\'s on {m.distillation["eval_teacher_agreement"]:.1%} '
      + (f'(its topic on '
         f'{m.distillation["eval_topic_teacher_agreement"]:.1%}) '
         if m.distillation.get('eval_topic_teacher_agreement') is not None
         else '')
      + 'of the eval split'
      for m in summary.models if m.distillation)
  lines.extend(
      f'  {m.candidate}: token embedding from the word vectors '
      f'{m.word_vectors} ({m.word_vectors_covered} tokens of its vocabulary)'
      for m in summary.models if m.word_vectors)
  lines.extend(
      f'  tuned {m.candidate} (Tuner.{m.candidate}): ' + ', '.join(
          f'{name}={value}' for name, value in m.hyperparameters.items())
      + f', learning_rate={_fmt(m.learning_rate, ".2g")}'
      for m in summary.models if m.tuned)
  profiles = [m.profile for m in summary.models if m.profile]
  if profiles:
    lines.append('  training profile: ' + training_profile.summary_line(profiles))
    lines.append('    details and chart: finsent profile-report ' + ' '.join(
        p.model_run for p in profiles) + ' --chart profile.png')
  lines.extend(f'  no training profile for {m.candidate}: '
               f'{m.profile_problem}'
               for m in summary.models if m.profile_problem)

  production = summary.production
  lines.append('')
  if production.selected is None:
    lines.append('  Production: no model selected (the run stopped before '
                 'the ModelSelector)')
  else:
    lines.append(f'  Production ({configs.PRODUCTION_MODEL_NAME}): selected '
                 f'{production.reason}')
    compared = ('vs the latest blessed production model' if production.baseline
                else 'no earlier production model to compare with')
    if production.pushed_to:
      lines.append(f'    blessed ({compared}); pushed to '
                   f'{production.pushed_to}')
    elif production.already_pushed:
      lines.append('    it is the production model already (this run took '
                   'it from the cache): nothing pushed')
    elif production.blessed and production.servable is False:
      lines.append(f'    blessed ({compared}), but NOT servable, not '
                   'pushed:')
      lines.extend(f'      {problem}' for problem in production.serving_problems)
    else:
      lines.append(f'    NOT blessed ({compared}), not pushed:')
      lines.extend(f'      {failure}' for failure in production.failures)

  logdirs = [f'{m.candidate}:{m.tensorboard_logdir}'
             for m in summary.models if m.tensorboard_logdir]
  if logdirs:
    lines.append('')
    lines.append('  TensorBoard (training curves and profiles):')
    lines.append(f'    tensorboard --logdir_spec {",".join(logdirs)}')
  return '\n'.join(lines)
