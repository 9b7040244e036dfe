"""create_pipeline: the finsent TFX DAG, from data to pushed models.

TextExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform
-> for each architecture (RNN, Transformer): Trainer -> Evaluator -> Pusher.
"""

import dataclasses

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components.atomic_pusher import AtomicPusher
from components.text_example_gen import TextExampleGen
from data import loaders
from models import export
from models import features
from pipeline import configs

ACCURACY_METRIC = 'sparse_categorical_accuracy'
F1_METRIC = 'f1_score'


def _overall_lower_bound(value: float):
  """A threshold checked on the overall slice only (not per class or slice)."""
  return [tfma.PerSliceMetricThreshold(
      slicing_specs=[tfma.SlicingSpec()],
      threshold=tfma.MetricThreshold(
          value_threshold=tfma.GenericValueThreshold(
              lower_bound={'value': value})))]


def create_eval_config(thresholds: configs.BlessingThresholds
                       ) -> tfma.EvalConfig:
  """TFMA config: accuracy, macro-F1, per-class metrics, confusion matrix.

  The blessing thresholds apply to the overall accuracy and macro-F1 only.
  """
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(
          signature_name=export.EXAMPLES_SIGNATURE,
          preprocessing_function_names=[export.TRANSFORM_SIGNATURE],
          label_key=features.LABEL_ID_KEY,
          prediction_key='probabilities')],
      slicing_specs=[tfma.SlicingSpec()],
      metrics_specs=[
          tfma.MetricsSpec(metrics=[
              tfma.MetricConfig(class_name='ExampleCount'),
              tfma.MetricConfig(
                  class_name='SparseCategoricalAccuracy',
                  per_slice_thresholds=_overall_lower_bound(
                      thresholds.min_accuracy)),
              tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot'),
          ]),
          # Macro-F1 alone (the threshold must not apply per class).
          tfma.MetricsSpec(
              metrics=[tfma.MetricConfig(
                  class_name='F1Score',
                  per_slice_thresholds=_overall_lower_bound(
                      thresholds.min_macro_f1))],
              aggregate=tfma.AggregationOptions(
                  macro_average=True, class_weights=dict.fromkeys(
                      range(len(features.LABELS)), 1.0))),
          # Per-class precision, recall and F1, reported, not gated.
          tfma.MetricsSpec(
              metrics=[tfma.MetricConfig(class_name=name)
                       for name in ('Precision', 'Recall', 'F1Score')],
              binarize=tfma.BinarizationOptions(
                  class_ids={'values': list(range(len(features.LABELS)))})),
      ])


def create_input_configs(config: configs.PipelineConfig):
  """ExampleGen input base and split configs for `config.data`."""
  layout = loaders.resolve_input(config.data)
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


def create_pipeline(config: configs.PipelineConfig) -> tfx.dsl.Pipeline:
  """The finsent pipeline for `config`."""
  input_base, input_config, output_config = create_input_configs(config)
  example_gen = TextExampleGen(input_base=input_base,
                               input_config=input_config,
                               output_config=output_config)
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs['examples'])
  schema_gen = tfx.components.SchemaGen(
      statistics=statistics_gen.outputs['statistics'],
      infer_feature_shape=True)
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'],
      schema=schema_gen.outputs['schema'])
  transform = tfx.components.Transform(
      examples=example_gen.outputs['examples'],
      schema=schema_gen.outputs['schema'],
      preprocessing_fn=configs.PREPROCESSING_FN,
      custom_config=dataclasses.asdict(config.preprocessing))
  components = [example_gen, statistics_gen, schema_gen, example_validator,
                transform]

  eval_config = create_eval_config(config.thresholds)
  for architecture in configs.ARCHITECTURES:
    trainer = tfx.components.Trainer(
        run_fn=configs.RUN_FN,
        examples=transform.outputs['transformed_examples'],
        transform_graph=transform.outputs['transform_graph'],
        schema=schema_gen.outputs['schema'],
        custom_config=config.trainer_custom_config(architecture),
    ).with_id(f'Trainer.{architecture}')
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs['examples'],
        model=trainer.outputs['model'],
        eval_config=eval_config,
    ).with_id(f'Evaluator.{architecture}')
    pusher = AtomicPusher(
        model=trainer.outputs['model'],
        model_blessing=evaluator.outputs['blessing'],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=f'{config.serving_root}/'
                f'{config.serving_model_name(architecture)}')),
    ).with_id(f'Pusher.{architecture}')
    components += [trainer, evaluator, pusher]

  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=components,
      enable_cache=config.enable_cache,
      metadata_connection_config=(
          tfx.orchestration.metadata.sqlite_metadata_connection_config(
              config.metadata_path)),
      beam_pipeline_args=list(config.beam_pipeline_args))
