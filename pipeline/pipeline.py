"""create_pipeline: the finsent TFX DAG, from data to pushed models.

  TextExampleGen -> StatisticsGen -> ExampleValidator (curated schema from
  ImportSchemaGen) + DistributionValidator (drift from the last accepted
  data) -> DataGate -> Transform
  -> per candidate (RNN, Transformer): Trainer -> Evaluator ->
     ServingValidator -> Pusher
  -> ModelSelector -> Evaluator.production -> ServingValidator.production
     -> Pusher.production (`sentiment`).
With a pretrained encoder as the Transformer (distilling), the RNN is not
trained on the labels; once Evaluator.transformer blesses the teacher:
  [TextExampleGen.unlabelled -> MergeExamples ->] BulkInferrer (the
  teacher's probabilities in each training example) -> per student
  (rnn_student, transformer_student): Trainer -> Evaluator ->
  ServingValidator -> Pusher; and the students join the tournament.
Each Evaluator compares its model with the latest one it blessed before;
each ServingValidator serves the blessed candidate before its Pusher may
push it (TFX's InfraValidator instead, on Kubernetes).

With `second_source`, after every Pusher: TextExampleGen.second_source
-> per architecture Evaluator.second_source.<architecture>, which scores
that architecture's Trainer model on data it was never trained on; no
thresholds, and nothing reads its outputs but the run summary.
"""

import dataclasses
import os
from typing import Dict, List, Optional, Tuple

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.components.distribution_validator.component import (
    DistributionValidator)
from tfx.dsl.components.base import base_node
from tfx.proto import bulk_inferrer_pb2
from tfx.proto import distribution_validator_pb2

from finsent.components.atomic_pusher import AtomicPusher
from finsent.components.data_gate import DataGate
from finsent.components.merge_examples import MergeExamples
from finsent.components.model_selector import ModelSelector
from finsent.components.serving_validator import ServingValidator
from finsent.components.text_example_gen import TextExampleGen
from finsent.components import unlabelled_example_gen
from finsent.data import loaders
from finsent.models import evaluation
from finsent.models.export import BULK_INFERENCE_SIGNATURE
from finsent.models.export import EXAMPLES_SIGNATURE
from finsent import configs
from finsent.configs import features

DATA_GATE = 'DataGate'
BASELINE_STATISTICS_RESOLVER = 'latest_validated_statistics_resolver'
BLESSED_MODEL_RESOLVER = 'latest_blessed_model_resolver'
SERVABILITY_GATE = 'ServingValidator'
PRODUCTION = 'production'
PRODUCTION_EVALUATOR = f'Evaluator.{PRODUCTION}'
PRODUCTION_PUSHER = f'Pusher.{PRODUCTION}'
# The second source: its ExampleGen, its one split, and its Evaluators'
# id prefix (`Evaluator.second_source.<architecture>`).
SECOND_SOURCE = 'second_source'
SECOND_SOURCE_EXAMPLE_GEN = f'TextExampleGen.{SECOND_SOURCE}'
SECOND_SOURCE_EVALUATOR = f'Evaluator.{SECOND_SOURCE}'
# Distillation: the teacher, and the nodes that feed its students.
TEACHER = 'transformer'
UNLABELLED_EXAMPLE_GEN = f'TextExampleGen.{configs.UNLABELLED_SPLIT}'
BULK_INFERRER = 'BulkInferrer'
# Topic data, read beside the sentiment data and joined with it.
TOPIC_EXAMPLE_GEN = 'TextExampleGen.topics'
TOPIC_MERGE = 'MergeExamples.topics'


def create_input_configs(config: configs.PipelineConfig,
                         layout: Optional[loaders.InputLayout] = None):
  """ExampleGen input base and split configs for `config.data` (or
  `layout`): the layout of `config.data_splits`, else the one its files
  show."""
  layout = layout or (
      loaders.InputLayout(config.data, dict(config.data_splits))
      if config.data_splits else loaders.resolve_input(config.data))
  input_config = tfx.proto.Input(splits=[
      tfx.proto.Input.Split(name=name, pattern=pattern)
      for name, pattern in layout.splits.items()])
  output_config = None
  if list(layout.splits) == ['all']:
    train, eval_ = config.split_hash_buckets
    output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(
        splits=[tfx.proto.SplitConfig.Split(name='train', hash_buckets=train),
                tfx.proto.SplitConfig.Split(name='eval', hash_buckets=eval_)]))
  return layout.input_base, input_config, output_config


def create_example_gen(
    config: configs.PipelineConfig,
    data_root: Optional[tfx.dsl.experimental.RuntimeParameter] = None
) -> base_node.BaseNode:
  """TextExampleGen over `config.data`, or over the folder `data_root`
  names when given (a runtime parameter on Kubeflow)."""
  input_base, input_config, output_config = create_input_configs(config)
  return TextExampleGen(
      input_base=input_base if data_root is None else data_root,
      input_config=input_config, output_config=output_config)


def create_examples(
    config: configs.PipelineConfig,
    data_root: Optional[tfx.dsl.experimental.RuntimeParameter] = None
) -> Tuple[List[base_node.BaseNode], tfx.types.BaseChannel]:
  """The nodes that read the labelled data, and their examples.

  TextExampleGen over `config.data` (create_example_gen); with
  `config.topic_data`, TextExampleGen.topics over it too, and
  MergeExamples.topics joining the two split by split: one Examples
  artifact whose records carry a sentiment label, a topic or both, which
  the data gate, Transform, the Trainers and the Evaluators read.
  """
  example_gen = create_example_gen(config, data_root)
  if not config.topic_data:
    return [example_gen], example_gen.outputs['examples']
  input_base, input_config, output_config = create_input_configs(
      config, topic_data_layout(config.topic_data))
  topic_example_gen = TextExampleGen(
      input_base=input_base, input_config=input_config,
      output_config=output_config).with_id(TOPIC_EXAMPLE_GEN)
  merge = MergeExamples(
      examples=example_gen.outputs['examples'],
      other_examples=topic_example_gen.outputs['examples'],
      join_same_splits=1).with_id(TOPIC_MERGE)
  return ([example_gen, topic_example_gen, merge],
          merge.outputs['merged_examples'])


def topic_data_layout(path: str) -> loaders.InputLayout:
  """Where TextExampleGen.topics reads `path`: a local file or folder as
  --data's (a train and an eval file, or files hash-split into both); in
  object storage, one file, hash-split (nothing lists a bucket before the
  run). Raises loaders.DataFormatError."""
  if configs.is_uri(path):
    return loaders.single_split_layout(path, 'all', 'topic data')
  return loaders.resolve_input(path)


def second_source_layout(path: str) -> loaders.InputLayout:
  """Where TextExampleGen.second_source reads `path`: one split, named
  SECOND_SOURCE, scored whole (loaders.single_split_layout: which file of
  a train/eval folder is data the models never saw is for the user to
  say). Raises loaders.DataFormatError."""
  return loaders.single_split_layout(path, SECOND_SOURCE, 'a second source')


def create_gate_eval_config(config: configs.PipelineConfig
                            ) -> tfma.EvalConfig:
  """The gates' EvalConfig: `config.thresholds` on each output of the
  models (sentiment, and the topic with topic data), and no more than
  `max_drop_from_baseline` below the baseline."""
  thresholds = config.thresholds
  return evaluation.create_eval_config(
      thresholds.min_accuracy, thresholds.min_macro_f1,
      max_drop=thresholds.max_drop_from_baseline,
      num_topics=config.num_topics,
      min_topic_accuracy=thresholds.min_topic_accuracy,
      min_topic_macro_f1=thresholds.min_topic_macro_f1)


def create_unthresholded_eval_config(config: configs.PipelineConfig
                                     ) -> tfma.EvalConfig:
  """The gates' EvalConfig (same signatures, metrics and slices) without a
  baseline or any threshold: TFX's Evaluator then validates nothing and its
  blessing never carries `blessed`, so no Pusher or resolver can take it.
  """
  return evaluation.create_eval_config(min_accuracy=None, min_macro_f1=None,
                                       num_topics=config.num_topics)


def create_second_source(config: configs.PipelineConfig,
                         models: Dict[str, tfx.types.BaseChannel],
                         after: List[base_node.BaseNode]
                         ) -> List[base_node.BaseNode]:
  """TextExampleGen.second_source over `config.second_source`, and an
  Evaluator.second_source.<name> scoring each of `models` on it.

  They start after the nodes `after` (every Pusher): nothing of the
  pipeline's waits for them, and a second source that cannot be read (a
  gs:// file gone on a cluster) fails after the pushes, not before.
  The Evaluators read raw examples through each model's serving_examples
  signature, as the gates' do, but with no baseline and no thresholds.
  """
  layout = second_source_layout(config.second_source)
  example_gen = TextExampleGen(
      input_base=layout.input_base,
      input_config=tfx.proto.Input(splits=[
          tfx.proto.Input.Split(name=name, pattern=pattern)
          for name, pattern in layout.splits.items()]),
      # No split_config: the one input split is the output. Without an
      # output_config FileBasedExampleGen would hash a single input split
      # 2:1 into train and eval.
      output_config=tfx.proto.Output()).with_id(SECOND_SOURCE_EXAMPLE_GEN)
  for node in after:
    example_gen.add_upstream_node(node)
  eval_config = create_unthresholded_eval_config(config)
  return [example_gen] + [
      tfx.components.Evaluator(
          examples=example_gen.outputs['examples'], model=model,
          eval_config=eval_config, example_splits=[SECOND_SOURCE],
      ).with_id(f'{SECOND_SOURCE_EVALUATOR}.{name}')
      for name, model in models.items()]


def create_transform(config: configs.PipelineConfig,
                     examples: tfx.types.BaseChannel,
                     schema: tfx.types.BaseChannel) -> base_node.BaseNode:
  """Transform with the project's preprocessing_fn and its settings."""
  return tfx.components.Transform(
      examples=examples, schema=schema,
      preprocessing_fn=configs.PREPROCESSING_FN,
      custom_config=dataclasses.asdict(config.preprocessing))


def create_data_gate(config: configs.PipelineConfig,
                     examples: tfx.types.BaseChannel,
                     schema: tfx.types.BaseChannel
                     ) -> Tuple[List[base_node.BaseNode], base_node.BaseNode]:
  """Statistics, schema and drift checks, and the gate after them.

  Returns the nodes (the gate last) and the gate, which whatever must not
  run on bad data depends on.
  """
  statistics_gen = tfx.components.StatisticsGen(examples=examples)
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'], schema=schema)
  nodes = [statistics_gen, example_validator]
  drift_anomalies = None
  if config.check_drift:
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        statistics=tfx.dsl.Channel(
            type=tfx.types.standard_artifacts.ExampleStatistics,
            producer_component_id=DATA_GATE,
            output_key='validated_statistics'),
    ).with_id(BASELINE_STATISTICS_RESOLVER)
    drift_validator = DistributionValidator(
        statistics=statistics_gen.outputs['statistics'],
        # Optional: the first run has no accepted data to compare with (the
        # validator then passes it, recording that there was no baseline).
        baseline_statistics=baseline.outputs['statistics'].as_optional(),
        config=create_drift_config(config.drift))
    drift_anomalies = drift_validator.outputs['anomalies']
    nodes += [baseline, drift_validator]
  data_gate = DataGate(
      schema_anomalies=example_validator.outputs['anomalies'],
      drift_anomalies=drift_anomalies,
      statistics=statistics_gen.outputs['statistics'],
      # Topic records have no sentiment label; without them the models
      # learn sentiment from every record.
      every_record_labelled=0 if config.num_topics else 1).with_id(DATA_GATE)
  return nodes + [data_gate], data_gate


def create_drift_config(
    thresholds: configs.DriftThresholds
) -> distribution_validator_pb2.DistributionValidatorConfig:
  """L-infinity limits per feature, compared split by split."""
  config = distribution_validator_pb2.DistributionValidatorConfig()
  for feature, limit in dataclasses.asdict(thresholds).items():
    comparator = config.default_slice_config.feature.add()
    comparator.path.step.append(feature)
    comparator.distribution_comparator.infinity_norm.threshold = limit
  return config


def create_baseline_resolver(name: str, producer_id: str
                             ) -> base_node.BaseNode:
  """The latest model of the node `producer_id` that Evaluator.<name>
  blessed: the baseline each served name is compared with, its own past.
  A resolver reads ML Metadata only, so it needs no condition (the
  Kubeflow V2 compiler gives a resolver none)."""
  return tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model,
                            producer_component_id=producer_id,
                            output_key='model'),
      model_blessing=tfx.dsl.Channel(
          type=tfx.types.standard_artifacts.ModelBlessing,
          producer_component_id=f'Evaluator.{name}', output_key='blessing'),
  ).with_id(f'{BLESSED_MODEL_RESOLVER}.{name}')


def create_model_gate(name: str, examples: tfx.types.BaseChannel,
                      producer: base_node.BaseNode,
                      eval_config: tfma.EvalConfig, push_base_directory: str,
                      serving: configs.ServingConfig,
                      baseline: Optional[base_node.BaseNode] = None
                      ) -> List[base_node.BaseNode]:
  """Resolver, Evaluator, servability gate and Pusher for one served model,
  ids `<kind>.<name>` (`baseline`: the resolver, made beforehand, else
  made here).

  The baseline is the latest model of `producer` that this same Evaluator
  blessed, so each served name is compared only with its own past; the
  first time there is none and the value thresholds alone decide. The
  Pusher takes only a model both blessed and shown servable.
  """
  evaluator_id = f'Evaluator.{name}'
  baseline = baseline or create_baseline_resolver(name, producer.id)
  evaluator = tfx.components.Evaluator(
      examples=examples,
      model=producer.outputs['model'],
      baseline_model=baseline.outputs['model'],
      eval_config=eval_config,
  ).with_id(evaluator_id)
  servability = create_servability_gate(
      serving, producer.outputs['model'], examples,
      evaluator.outputs['blessing']).with_id(f'{SERVABILITY_GATE}.{name}')
  pusher = AtomicPusher(
      model=producer.outputs['model'],
      model_blessing=evaluator.outputs['blessing'],
      infra_blessing=servability.outputs['blessing'],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(
              base_directory=push_base_directory)),
  ).with_id(f'Pusher.{name}')
  return [baseline, evaluator, servability, pusher]


def create_servability_gate(serving: configs.ServingConfig,
                            model: tfx.types.BaseChannel,
                            examples: tfx.types.BaseChannel,
                            model_blessing: tfx.types.BaseChannel
                            ) -> base_node.BaseNode:
  """What shows a candidate servable (ServingConfig.validation).

  `local`: ServingValidator, the local TF-Serving-compatible server in a
  subprocess. `kubernetes` (Kubeflow): TFX's InfraValidator, running the
  TF Serving image of ServingConfig.image in a pod beside the pipeline's
  and sending it predictions on serialized examples.
  """
  if serving.validation == 'local':
    return ServingValidator(model=model, examples=examples,
                            model_blessing=model_blessing,
                            num_examples=serving.validation_requests)
  image, tag = serving.image.rsplit(':', 1)
  return tfx.components.InfraValidator(
      model=model, examples=examples,
      serving_spec=tfx.proto.ServingSpec(
          tensorflow_serving=tfx.proto.TensorFlowServing(
              image_name=image, tags=[tag]),
          kubernetes=tfx.proto.KubernetesConfig()),
      request_spec=tfx.proto.RequestSpec(
          tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
              signature_names=[EXAMPLES_SIGNATURE]),
          num_examples=serving.validation_requests))


def create_candidate_gate(config: configs.PipelineConfig, candidate: str,
                          trainer: base_node.BaseNode,
                          examples: tfx.types.BaseChannel,
                          eval_config: tfma.EvalConfig,
                          baseline: Optional[base_node.BaseNode] = None
                          ) -> List[base_node.BaseNode]:
  """create_model_gate for a candidate's Trainer, pushing to its own
  served name."""
  return create_model_gate(
      candidate, examples, trainer, eval_config,
      os.path.join(config.serving_root, config.serving_model_name(candidate)),
      config.serving, baseline)


def _candidate_channels(trainer: base_node.BaseNode,
                        gate: List[base_node.BaseNode]
                        ) -> Dict[str, tfx.types.BaseChannel]:
  """What the ModelSelector weighs of a candidate (gate: create_model_gate's
  nodes, its Evaluator second)."""
  evaluator = gate[1]
  return {'model': trainer.outputs['model'],
          'evaluation': evaluator.outputs['evaluation'],
          'blessing': evaluator.outputs['blessing']}


def create_bulk_inferrer(examples: tfx.types.BaseChannel,
                         teacher: Dict[str, tfx.types.BaseChannel],
                         splits: List[str],
                         num_topics: int = 0) -> base_node.BaseNode:
  """TFX's BulkInferrer: the blessed teacher's probabilities, in LABELS
  order, as the float feature TEACHER_PROBABILITIES_KEY of every example
  of `splits`; with `num_topics`, its topic probabilities too, in TOPICS
  order, as TEACHER_TOPIC_PROBABILITIES_KEY.

  Through the export's float-only `bulk_inference` signature (serialized
  examples in; models.export says why not another).
  """
  columns = [bulk_inferrer_pb2.PredictOutputCol(
      output_key=features.PROBABILITIES_OUTPUT,
      output_column=configs.TEACHER_PROBABILITIES_KEY)]
  if num_topics:
    columns.append(bulk_inferrer_pb2.PredictOutputCol(
        output_key=features.TOPIC_PROBABILITIES_OUTPUT,
        output_column=configs.TEACHER_TOPIC_PROBABILITIES_KEY))
  return tfx.components.BulkInferrer(
      examples=examples, model=teacher['model'],
      model_blessing=teacher['blessing'],
      data_spec=tfx.proto.DataSpec(example_splits=splits),
      model_spec=bulk_inferrer_pb2.ModelSpec(
          model_signature_name=[BULK_INFERENCE_SIGNATURE]),
      output_example_spec=bulk_inferrer_pb2.OutputExampleSpec(
          output_columns_spec=[bulk_inferrer_pb2.OutputColumnsSpec(
              predict_output=bulk_inferrer_pb2.PredictOutput(
                  output_columns=columns))]),
  ).with_id(BULK_INFERRER)


def create_distillation(
    config: configs.PipelineConfig, examples: tfx.types.BaseChannel,
    transform: base_node.BaseNode, schema: tfx.types.BaseChannel,
    teacher: Dict[str, tfx.types.BaseChannel], eval_config: tfma.EvalConfig
) -> Tuple[List[base_node.BaseNode],
           Dict[str, Tuple[base_node.BaseNode, List[base_node.BaseNode]]]]:
  """The teacher's students: BulkInferrer over the labelled splits (and
  `config.unlabelled`'s texts), then a Trainer and gate per student.

  The students read the raw examples with the teacher's probabilities and
  apply the teacher's Transform graph themselves (models.distillation):
  unlabelled texts have no label for a second Transform, and the
  students' exports then take raw text like every other model's.
  Returns the nodes and, per student, (its Trainer, its gate's nodes).
  """
  nodes, labelled = [], examples
  splits = ['train', 'eval']
  if config.unlabelled:
    input_base, input_config, output_config = (
        unlabelled_example_gen.unlabelled_layout(config.unlabelled))
    unlabelled = unlabelled_example_gen.UnlabelledTextExampleGen(
        input_base=input_base, input_config=input_config,
        output_config=output_config).with_id(UNLABELLED_EXAMPLE_GEN)
    # One Examples artifact: the Kubeflow V2 compiler refuses a union of
    # channels as an input.
    merge = MergeExamples(examples=examples,
                          other_examples=unlabelled.outputs['examples'])
    nodes += [unlabelled, merge]
    examples = merge.outputs['merged_examples']
    splits.append(configs.UNLABELLED_SPLIT)
  students = {}
  names = [c for c in config.candidates if c not in configs.ARCHITECTURES]
  baselines = {name: create_baseline_resolver(name, f'Trainer.{name}')
               for name in names}
  nodes += baselines.values()
  # BulkInferrer on an unblessed teacher writes an artifact without splits
  # and succeeds, and the students would then fail: they wait for the
  # blessing instead (a triggerPolicy condition on Kubeflow).
  with tfx.dsl.Cond(teacher['blessing'].future()[0]
                    .custom_property('blessed') == 1):
    bulk_inferrer = create_bulk_inferrer(examples, teacher, splits,
                                         config.num_topics)
    nodes.append(bulk_inferrer)
    for student in names:
      trainer = tfx.components.Trainer(
          run_fn=configs.RUN_FN,
          examples=bulk_inferrer.outputs['output_examples'],
          transform_graph=transform.outputs['transform_graph'],
          schema=schema,
          train_args=tfx.proto.TrainArgs(
              splits=[s for s in splits if s != 'eval'],
              num_steps=config.training.train_steps or 0),
          eval_args=tfx.proto.EvalArgs(splits=['eval']),
          custom_config=config.trainer_custom_config(student),
      ).with_id(f'Trainer.{student}')
      gate = create_candidate_gate(config, student, trainer, labelled,
                                   eval_config, baselines[student])
      nodes += [trainer, *gate[1:]]
      students[student] = (trainer, gate)
  return nodes, students


def create_pipeline(
    config: configs.PipelineConfig,
    data_root: Optional[tfx.dsl.experimental.RuntimeParameter] = None
) -> tfx.dsl.Pipeline:
  """The finsent pipeline for `config`; with `data_root`, ExampleGen reads
  the folder that runtime parameter names (Kubeflow) instead."""
  example_nodes, examples = create_examples(config, data_root)
  schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema_file)
  schema = schema_gen.outputs['schema']
  data_gate_nodes, data_gate = create_data_gate(config, examples, schema)
  transform = create_transform(config, examples, schema)
  # Nothing is transformed, trained or pushed unless the data passed.
  transform.add_upstream_node(data_gate)
  components = [*example_nodes, schema_gen, *data_gate_nodes, transform]

  eval_config = create_gate_eval_config(config)
  candidates, pushers = {}, []
  trained_on_labels = [c for c in config.candidates
                       if c in configs.ARCHITECTURES]
  for candidate in trained_on_labels:
    # The Tuner fits on what the Trainer fits on, with the same settings.
    training_inputs = dict(
        examples=transform.outputs['transformed_examples'],
        transform_graph=transform.outputs['transform_graph'],
        schema=schema,
        train_args=tfx.proto.TrainArgs(
            num_steps=config.training.train_steps or 0),
        custom_config=config.trainer_custom_config(candidate))
    best_hyperparameters = None
    if config.tuning.enabled:
      tuner = tfx.components.Tuner(
          tuner_fn=configs.TUNER_FN,
          eval_args=tfx.proto.EvalArgs(num_steps=0),
          **training_inputs).with_id(f'Tuner.{candidate}')
      components.append(tuner)
      best_hyperparameters = tuner.outputs['best_hyperparameters']
    trainer = tfx.components.Trainer(
        run_fn=configs.RUN_FN, hyperparameters=best_hyperparameters,
        **training_inputs).with_id(f'Trainer.{candidate}')
    gate = create_candidate_gate(config, candidate, trainer, examples,
                                 eval_config)
    components += [trainer, *gate]
    pushers.append(gate[-1])
    candidates[candidate] = _candidate_channels(trainer, gate)

  if config.distilling:
    nodes, students = create_distillation(
        config, examples, transform, schema,
        teacher=candidates[TEACHER], eval_config=eval_config)
    components += nodes
    for student, (trainer, gate) in students.items():
      pushers.append(gate[-1])
      candidates[student] = _candidate_channels(trainer, gate)

  model_selector = ModelSelector(
      examples=examples, candidates=candidates,
      **dataclasses.asdict(config.selection))
  production_gate = create_model_gate(
      PRODUCTION, examples, model_selector,
      eval_config, os.path.join(config.serving_root,
                                configs.PRODUCTION_MODEL_NAME),
      config.serving)
  components += [model_selector, *production_gate]
  pushers.append(production_gate[-1])

  if config.second_source:
    # The Trainers' models only: the production candidate is a copy of one
    # of them (ModelSelector), whose figures that architecture's row shows.
    components += create_second_source(
        config, {a: c['model'] for a, c in candidates.items()},
        after=pushers)

  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=components,
      enable_cache=config.enable_cache,
      # Beside local outputs, ML Metadata in SQLite; with outputs in object
      # storage (Kubeflow, Vertex AI), the orchestrator's own store.
      metadata_connection_config=(
          None if configs.is_uri(config.output_dir) else
          tfx.orchestration.metadata.sqlite_metadata_connection_config(
              config.metadata_path)),
      beam_pipeline_args=list(config.beam_pipeline_args))
