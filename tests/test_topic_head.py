"""The Trainer's run_fn with topics (issue 24): sentiment records of the
bundled sample and topic records of the Twitter Financial News Topic set,
through Transform on Beam; one model with a topic head beside the
sentiment head learning each from the records that carry its label
(`joint`), or a model per head exported as one (`separate`)."""

import dataclasses
import os

import keras
import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics
import tensorflow as tf
import tensorflow_model_analysis as tfma

from finsent import configs
from finsent.configs import features
from finsent.components import text_example_gen
from finsent.data import loaders
from finsent.models import evaluation
from finsent.models import export
from finsent.models import trainer
from finsent.models import tuner
from tests.conftest import FROM_SCRATCH
from tests.conftest import TWITTER_FN_TOPIC_DIR
from tests.conftest import predict_in_fresh_process
from tests.conftest import trainer_fn_args
from tests.conftest import transform_records

SEQUENCE_LENGTH = 24


@pytest.fixture(scope='module')
def transformed(tmp_path_factory):
  sentiment = list(loaders.read_records(configs.SAMPLE_DATA))
  topics = list(loaders.read_records(
      os.path.join(TWITTER_FN_TOPIC_DIR, 'topic_train.csv')))
  # Every 10th record of the file, which is sorted by topic: all 20.
  return transform_records(
      str(tmp_path_factory.mktemp('topic_head')),
      {'train': sentiment[:800] + topics[::10], 'eval': _eval_records()},
      dataclasses.replace(FROM_SCRATCH.preprocessing,
                          max_tokens=SEQUENCE_LENGTH))


def _fn_args(transformed, tmp_path, architecture='rnn', topic_model='joint',
             **training):
  config = dataclasses.replace(
      FROM_SCRATCH, topic_model=topic_model,
      training=dataclasses.replace(FROM_SCRATCH.training, max_epochs=3,
                                   **training))
  custom_config = config.trainer_custom_config(architecture)
  custom_config['num_topics'] = len(features.TOPICS)
  return trainer_fn_args(transformed, tmp_path, custom_config)


@pytest.fixture(scope='module')
def trained(transformed, tmp_path_factory):
  """run_fn's summary and export dir, the RNN with both heads."""
  out = tmp_path_factory.mktemp('trained')
  return trainer.run_fn(_fn_args(transformed, out)), str(out / 'serving')


@pytest.fixture(scope='module')
def trained_separately(transformed, tmp_path_factory):
  """run_fn's summary and output dir, an RNN per head."""
  out = tmp_path_factory.mktemp('trained_separately')
  return trainer.run_fn(_fn_args(transformed, out, topic_model='separate')), out


def test_each_head_learns_from_its_records_and_the_export_serves_both(
    trained):
  summary, export_dir = trained
  assert summary['num_topics'] == len(features.TOPICS)
  assert summary['topic_model'] == 'joint'
  assert summary['separate_models'] is None
  # Grappler's arithmetic optimizer, off while a two-head model fits
  # (trainer._without_arithmetic_optimization), is back on after.
  assert tf.config.optimizer.get_experimental_options().get(
      'arithmetic_optimization', True)
  calibration = summary['calibration']
  # Each head calibrated on, and reported over, its own labelled records.
  assert calibration['temperature'] > 0
  assert calibration[features.TOPIC_HEAD]['temperature'] > 0
  assert calibration['eval']['examples'] == 400
  assert calibration[features.TOPIC_HEAD]['eval']['examples'] == 400
  _check_serves_both(export_dir)


def _check_serves_both(export_dir):
  """The export answers a sentiment and a topic in a fresh process that
  loads no training code (tests/load_saved_model.py)."""
  answer = predict_in_fresh_process(export_dir, [
      'Fed holds rates steady as inflation cools',
      'Acme shares plunge after profit warning'])
  assert answer['modules'] == []
  assert all(topic in features.TOPICS for topic in answer['topics'])
  assert all(label in features.LABELS for label in answer['labels'])
  assert [len(row) for row in answer['topic_probabilities']] == [20, 20]


def test_tfma_measures_and_gates_each_output_on_its_labelled_records(
    trained, tmp_path):
  """The gates' EvalConfig for a model with a topic head, run by TFMA on
  raw eval examples (400 sentiment-only, 400 topic-only records): each
  output's figures are over its own records and equal a count by hand
  from the export's answers; a topic below its minimum fails the
  validation on the topic output alone."""
  _, export_dir = trained
  records = _eval_records()
  examples = [text_example_gen.record_to_example(r).SerializeToString()
              for r in records]
  data = str(tmp_path / 'eval.tfrecord')
  with tf.io.TFRecordWriter(data) as writer:
    for example in examples:
      writer.write(example)
  eval_config = evaluation.create_eval_config(
      min_accuracy=0.0, min_macro_f1=0.0, num_topics=len(features.TOPICS),
      min_topic_accuracy=0.0, min_topic_macro_f1=1.01)
  output = str(tmp_path / 'evaluation')
  tfma.run_model_analysis(
      eval_shared_model=tfma.default_eval_shared_model(
          export_dir, eval_config=eval_config),
      eval_config=eval_config, data_location=data, output_path=output)
  measured = evaluation.overall_metrics(output)
  served = tf.saved_model.load(export_dir).signatures[
      export.EXAMPLES_SIGNATURE](examples=tf.constant(examples))
  for prefix, output_key, field, classes in (
      ('', features.LABEL_OUTPUT, 'label', features.LABELS),
      (evaluation.TOPIC_PREFIX, features.TOPIC_OUTPUT, 'topic',
       features.TOPICS)):
    predicted = [p.decode() for p in served[output_key].numpy()]
    pairs = [(getattr(r, field), p) for r, p in zip(records, predicted)
             if getattr(r, field)]
    assert measured[f'{prefix}example_count'] == 400
    assert measured[f'{prefix}accuracy'] == pytest.approx(
        sum(t == p for t, p in pairs) / len(pairs))
    assert measured[f'{prefix}macro_f1'] == pytest.approx(
        sklearn_metrics.f1_score([t for t, _ in pairs], [p for _, p in pairs],
                                 labels=list(classes), average='macro',
                                 zero_division=0))
  validation = tfma.load_validation_result(output)
  assert not validation.validation_ok
  failed = {(f.metric_key.output_name, f.metric_key.name)
            for failures in validation.metric_validations_per_slice
            for f in failures.failures}
  assert failed == {(features.TOPIC_PROBABILITIES_OUTPUT, 'macro_f1')}


def _eval_records():
  sentiment = list(loaders.read_records(configs.SAMPLE_DATA))[800:]
  topics = list(loaders.read_records(
      os.path.join(TWITTER_FN_TOPIC_DIR, 'topic_valid.csv')))[:400]
  return sentiment + topics


def test_the_head_metrics_skip_records_without_that_label(transformed,
                                                          tmp_path):
  """Keras's per-head metrics over the eval split equal those computed
  by hand over the records labelled for each head."""
  fn_args = _fn_args(transformed, tmp_path)
  inputs = trainer.prepare_training(fn_args, tf.distribute.get_strategy())
  model = trainer.compile_model('rnn', inputs, {'embedding_dim': 8,
                                                'rnn_units': 4}, 1e-3,
                                fn_args.custom_config['training'])
  eval_examples = trainer.model_inputs(trainer.transformed_examples(
      fn_args.eval_files, inputs.feature_spec, inputs.input_keys,
      inputs.num_topics), inputs.input_keys)
  measured = model.evaluate(eval_examples.batch(64), return_dict=True,
                            verbose=0)
  # Early stopping watches a figure Keras reports (a name it lacks would
  # only be warned about).
  for monitor in configs.training.EARLY_STOPPING_MONITORS:
    watched = trainer.early_stopping_monitor(
        {'early_stopping_monitor': monitor}, inputs.num_topics)
    assert watched.removeprefix('val_') in measured, watched
  for head in (features.SENTIMENT_HEAD, features.TOPIC_HEAD):
    probabilities, labels = trainer.predict_probabilities(
        model, eval_examples, head)
    assert len(labels) == 400 and labels.min() >= 0
    assert measured[f'{head}_sparse_categorical_accuracy'] == pytest.approx(
        float((probabilities.argmax(axis=1) == labels).mean()), abs=1e-6)


def test_class_weighting_weighs_each_heads_classes_in_its_loss(transformed,
                                                               tmp_path):
  inputs = trainer.prepare_training(
      _fn_args(transformed, tmp_path, class_weighting='balanced'),
      tf.distribute.get_strategy())
  # Not Keras's class_weight, which weighs one output's classes.
  assert inputs.class_weight is None
  fit = inputs.fit_data.unbatch()
  for head, classes in trainer.HEAD_CLASSES.items():
    weights = inputs.head_class_weights[head]
    counts = np.zeros(len(classes))
    for _, y in fit.as_numpy_iterator():
      if y[head] >= 0:
        counts[y[head]] += 1
    # n / (k * n_c) over the fit share's records labelled for the head.
    np.testing.assert_allclose([weights[i] for i in range(len(classes))],
                               counts.sum() / (len(classes) * counts),
                               rtol=1e-6)
  model = trainer.compile_model('rnn', inputs, dict(
      trainer.configured_hyperparameters(_fn_args(
          transformed, tmp_path).custom_config)), 1e-3,
      _fn_args(transformed, tmp_path).custom_config['training'])
  topic_loss = model.loss[features.TOPIC_HEAD]
  assert topic_loss.class_weights == [
      inputs.head_class_weights[features.TOPIC_HEAD][i]
      for i in range(len(features.TOPICS))]


def test_training_batches_mix_both_kinds_and_every_topic(transformed,
                                                         tmp_path):
  # The records arrive grouped, as in the pipeline: the sentiment records,
  # then the topic set's, sorted by topic.
  def first_batches(**training):
    inputs = trainer.prepare_training(
        _fn_args(transformed, tmp_path, **training),
        tf.distribute.get_strategy())
    return [y for _, y in inputs.fit_data.take(10).as_numpy_iterator()]

  def kinds_and_topics(batches):
    kinds = [{head for head in trainer.HEAD_CLASSES if (y[head] >= 0).any()}
             for y in batches]
    topics = {t for y in batches for t in y[features.TOPIC_HEAD] if t >= 0}
    return kinds, topics

  # By default the buffer holds the whole fit share: from the first batch
  # on, each holds both kinds, and ten of them most of the topics.
  kinds, topics = kinds_and_topics(first_batches())
  assert all(k == set(trainer.HEAD_CLASSES) for k in kinds), kinds
  assert len(topics) >= 15, sorted(topics)
  # A buffer shorter than the grouping (as the fixed 10,000 was for the
  # pipeline's 26,533 records) gives batches of one kind, then of a few
  # topics at a time.
  kinds, topics = kinds_and_topics(first_batches(shuffle_buffer_size=100))
  assert kinds[0] == {features.SENTIMENT_HEAD}
  assert len(topics) <= 2, sorted(topics)


def test_a_topic_head_needs_data_with_topics(transformed_sample, tmp_path):
  fn_args = _fn_args(transformed_sample, tmp_path)
  with pytest.raises(ValueError, match='lacks: its data has no topics'):
    trainer.prepare_training(fn_args, tf.distribute.get_strategy())


def test_a_topic_head_answers_every_topic(transformed, tmp_path):
  fn_args = _fn_args(transformed, tmp_path)
  fn_args.custom_config['num_topics'] = 5
  with pytest.raises(ValueError, match=r"num_topics'\] is 5: a topic head "
                     'answers the 20 topics'):
    trainer.prepare_training(fn_args, tf.distribute.get_strategy())


def test_the_arithmetic_optimizer_is_off_only_inside_the_fit():
  options = tf.config.optimizer.get_experimental_options
  with trainer._without_arithmetic_optimization():  # pylint: disable=protected-access
    assert options()['arithmetic_optimization'] is False
  assert options().get('arithmetic_optimization', True) is True


def test_a_model_of_one_head_reads_only_the_records_labelled_for_it(
    transformed, tmp_path):
  """prepare_training for one head of separate models: the fit and
  held-out shares are the joint model's records labelled for that head,
  with that head's label as their one target."""
  fn_args = _fn_args(transformed, tmp_path, topic_model='separate')
  strategy = tf.distribute.get_strategy()
  joint = trainer.prepare_training(fn_args, strategy)
  joint_fit = [y for _, y in joint.fit_data.unbatch().as_numpy_iterator()]
  joint_held_out = [y for _, y in joint.held_out.as_numpy_iterator()]
  for head, classes in trainer.HEAD_CLASSES.items():
    inputs = trainer.prepare_training(fn_args, strategy, head)
    assert (inputs.head, inputs.num_topics) == (head, 0)
    fit = [int(y) for _, y in inputs.fit_data.unbatch().as_numpy_iterator()]
    held_out = [int(y) for _, y in inputs.held_out.as_numpy_iterator()]
    assert sorted(fit) == sorted(int(y[head]) for y in joint_fit
                                 if y[head] >= 0)
    assert sorted(held_out) == sorted(int(y[head]) for y in joint_held_out
                                      if y[head] >= 0)
    assert min(fit) >= 0 and max(fit) == len(classes) - 1
    model = trainer.compile_model(
        'rnn', inputs, trainer.configured_hyperparameters(
            fn_args.custom_config), 1e-3, fn_args.custom_config['training'])
    assert model.output.shape[-1] == len(classes)


def test_a_model_of_one_head_is_refused_where_it_has_no_meaning(
    transformed, transformed_sample, tmp_path):
  strategy = tf.distribute.get_strategy()
  fn_args = _fn_args(transformed, tmp_path, topic_model='separate')
  with pytest.raises(ValueError, match="one head \\('mood'\\)"):
    trainer.prepare_training(fn_args, strategy, 'mood')
  fn_args.custom_config['distillation'] = {'tokens': 'words'}
  with pytest.raises(ValueError, match='not a student'):
    trainer.prepare_training(fn_args, strategy, features.TOPIC_HEAD)
  # Data without topics has nothing for a topic model to learn.
  with pytest.raises(ValueError, match='lacks: its data has no topics'):
    trainer.prepare_training(_fn_args(transformed_sample, tmp_path),
                             strategy, features.TOPIC_HEAD)


def test_trained_heads_are_a_model_per_head_only_for_separate_topics():
  heads = list(trainer.HEAD_CLASSES)
  for config, expected in (
      ({'num_topics': 20, 'topic_model': 'separate'}, heads),
      ({'num_topics': 20, 'topic_model': 'joint'}, [None]),
      # A student has both heads, whatever the teacher's models are.
      ({'num_topics': 20, 'topic_model': 'separate',
        'distillation': {'alpha': 1.0}}, [None]),
      ({'num_topics': 0, 'topic_model': 'separate'}, [None]),
      # A custom_config from before the knob: one model.
      ({'num_topics': 20}, [None])):
    assert trainer.trained_heads(config) == expected, config
  with pytest.raises(ValueError, match="topic_model must be one of .*'both'"):
    trainer.trained_heads({'num_topics': 20, 'topic_model': 'both'})


def test_the_combined_model_answers_each_head_with_its_own_model():
  def rnn(head, num_topics=0):
    return trainer.build_model(
        'rnn', vocabulary_size=50, sequence_length=6,
        hyperparameters={'embedding_dim': 8, 'rnn_units': 4}, head=head,
        num_topics=num_topics)
  keras.utils.set_random_seed(1)
  models = {head: rnn(head) for head in trainer.HEAD_CLASSES}
  combined = trainer.combined_model(models)
  x = {features.TOKEN_IDS_KEY: np.array([[3, 4, 5, 0, 0, 0],
                                         [7, 1, 0, 0, 0, 0]])}
  answer = combined(x, training=False)
  assert set(answer) == set(trainer.HEAD_CLASSES)
  for head, model in models.items():
    np.testing.assert_allclose(answer[head], model(x, training=False),
                               rtol=1e-6)
  assert combined.count_params() == sum(m.count_params()
                                        for m in models.values())
  with pytest.raises(ValueError, match='several outputs'):
    trainer.combined_model({features.SENTIMENT_HEAD: rnn(
        features.SENTIMENT_HEAD, num_topics=len(features.TOPICS))})
  with pytest.raises(ValueError, match='a topic head goes beside the '
                     'sentiment head'):
    rnn(features.TOPIC_HEAD, num_topics=len(features.TOPICS))


def test_separate_models_learn_their_heads_and_are_served_as_one(
    trained_separately):
  summary, out = trained_separately
  assert summary['topic_model'] == 'separate'
  models = summary['separate_models']
  assert set(models) == set(trainer.HEAD_CLASSES)
  assert summary['parameters'] == sum(m['parameters']
                                      for m in models.values())
  assert summary['epochs'] == sum(m['epochs'] for m in models.values())
  assert all(1 <= m['epochs'] <= 3 for m in models.values())
  # Each calibrated on, and reported over, its own head's records.
  calibration = summary['calibration']
  assert calibration['eval']['examples'] == 400
  assert calibration[features.TOPIC_HEAD]['eval']['examples'] == 400
  # A TensorBoard run per model.
  for head in trainer.HEAD_CLASSES:
    assert tf.io.gfile.glob(str(out / 'model_run' / head / 'train' /
                                '*.tfevents.*')), head
  _check_serves_both(str(out / 'serving'))


def test_a_tuner_searches_on_the_sentiment_model_of_separate_models(
    transformed, tmp_path):
  fn_args = _fn_args(transformed, tmp_path, topic_model='separate')
  fn_args.working_dir = str(tmp_path / 'tuner')
  result = tuner.tuner_fn(fn_args)
  _, labels = next(iter(result.fit_kwargs['x']))
  # One target, the sentiment's, from sentiment records only.
  assert labels.shape.rank == 1
  assert 0 <= int(tf.reduce_min(labels)) and int(tf.reduce_max(labels)) < 3
  # Watched as a model with one output is.
  assert result.fit_kwargs['callbacks'][0].monitor == (
      trainer.early_stopping_monitor(fn_args.custom_config['training']))
