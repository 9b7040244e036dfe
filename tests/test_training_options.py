"""Training options of models.trainer: label smoothing and focal weighting
(the loss against a count by hand), rows without a label (the masked loss
of a model with two heads) and the warm-up + cosine learning-rate schedule."""

import math
import types

import keras
import numpy as np
import pytest

from finsent.models import sparse_focal_crossentropy
from finsent.models import trainer

PROBABILITIES = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
LABELS = np.array([0, 1])


def test_label_smoothing_by_hand():
  loss = sparse_focal_crossentropy.SparseFocalCrossentropy(
      3, label_smoothing=0.3, reduction=None)
  # Targets: 0.7 + 0.1 on the label, 0.1 on each other class.
  expected = [-(0.8 * math.log(0.7) + 0.1 * math.log(0.2) +
                0.1 * math.log(0.1)),
              -(0.1 * math.log(0.1) + 0.8 * math.log(0.3) +
                0.1 * math.log(0.6))]
  np.testing.assert_allclose(
      keras.ops.convert_to_numpy(loss(LABELS, PROBABILITIES)), expected,
      rtol=1e-5)


def test_focal_weighting_by_hand():
  loss = sparse_focal_crossentropy.SparseFocalCrossentropy(
      3, focal_gamma=2.0, reduction=None)
  # -(1 - p)^2 log p of the label's probability p: the confident right
  # example (0.7) is weighed down 11 times, the unsure one (0.3) 2 times.
  expected = [-(0.3 ** 2) * math.log(0.7), -(0.7 ** 2) * math.log(0.3)]
  np.testing.assert_allclose(
      keras.ops.convert_to_numpy(loss(LABELS, PROBABILITIES)), expected,
      rtol=1e-5)


def test_focal_weighting_of_smoothed_targets_by_hand():
  loss = sparse_focal_crossentropy.SparseFocalCrossentropy(
      3, label_smoothing=0.3, focal_gamma=1.0, reduction=None)
  terms = [(0.8, 0.7), (0.1, 0.2), (0.1, 0.1)]
  expected = -sum(target * (1 - p) * math.log(p) for target, p in terms)
  assert float(loss(LABELS[:1], PROBABILITIES[:1])[0]) == pytest.approx(
      expected, rel=1e-5)


def test_class_weights_by_hand_and_as_keras_weighs_one_output():
  weights = [2.0, 0.5, 1.0]
  loss = sparse_focal_crossentropy.SparseFocalCrossentropy(
      3, class_weights=weights, reduction=None)
  # Each row's cross-entropy times its label's weight.
  expected = [-2.0 * math.log(0.7), -0.5 * math.log(0.3)]
  np.testing.assert_allclose(
      keras.ops.convert_to_numpy(loss(LABELS, PROBABILITIES)), expected,
      rtol=1e-5)
  # Averaged over the batch, what Keras's class_weight (sample weights)
  # gives the plain loss of a model with one output.
  plain = keras.losses.SparseCategoricalCrossentropy()
  assert float(sparse_focal_crossentropy.SparseFocalCrossentropy(
      3, class_weights=weights)(LABELS, PROBABILITIES)) == pytest.approx(
          float(plain(LABELS, PROBABILITIES,
                      sample_weight=np.take(weights, LABELS))), rel=1e-6)
  # A row without this head's label still adds nothing.
  masked = sparse_focal_crossentropy.SparseFocalCrossentropy(
      3, class_weights=weights, ignore_class=-1)
  assert float(masked(np.array([0, -1]), PROBABILITIES)) == pytest.approx(
      -2.0 * math.log(0.7), rel=1e-5)
  assert keras.losses.deserialize(keras.losses.serialize(loss)).get_config(
  ) == loss.get_config()
  for bad in ([1.0, 1.0], [1.0, 0.0, 1.0]):
    with pytest.raises(ValueError, match='class_weights must be 3 positive'):
      sparse_focal_crossentropy.SparseFocalCrossentropy(3, class_weights=bad)


def test_no_smoothing_is_the_sparse_cross_entropy():
  loss = sparse_focal_crossentropy.SparseFocalCrossentropy(3)
  plain = keras.losses.SparseCategoricalCrossentropy()
  # Labels as Keras passes them from a [batch, 1] feature, too.
  for labels in (LABELS, LABELS[:, None]):
    assert float(loss(labels, PROBABILITIES)) == pytest.approx(
        float(plain(labels, PROBABILITIES)), rel=1e-6)


def test_config_round_trip_and_bad_arguments():
  loss = sparse_focal_crossentropy.SparseFocalCrossentropy(
      3, label_smoothing=0.1, ignore_class=-1)
  copy = keras.losses.deserialize(keras.losses.serialize(loss))
  assert (copy.num_classes, copy.label_smoothing, copy.focal_gamma,
          copy.ignore_class) == (3, 0.1, 0.0, -1)
  with pytest.raises(ValueError, match='ignore_class 2 is one of the 3'):
    sparse_focal_crossentropy.SparseFocalCrossentropy(3, ignore_class=2)
  with pytest.raises(ValueError, match='label_smoothing must be in'):
    sparse_focal_crossentropy.SparseFocalCrossentropy(3, 1.0)
  for gamma in (-1.0, float('nan')):
    with pytest.raises(ValueError, match='focal_gamma must be at least 0'):
      sparse_focal_crossentropy.SparseFocalCrossentropy(3, focal_gamma=gamma)
  with pytest.raises(ValueError, match='num_classes must be at least 2'):
    sparse_focal_crossentropy.SparseFocalCrossentropy(1)


def test_ignored_rows_add_nothing_and_the_mean_is_over_the_others():
  probabilities = np.concatenate([PROBABILITIES, [[0.2, 0.5, 0.3]]])
  labels = np.array([0, -1, 2])
  loss = sparse_focal_crossentropy.SparseFocalCrossentropy(3, ignore_class=-1)
  assert float(loss(labels, probabilities)) == pytest.approx(
      -(math.log(0.7) + math.log(0.3)) / 2, rel=1e-6)
  # As Keras's own loss with the same argument, for a [batch, 1] label too.
  plain = keras.losses.SparseCategoricalCrossentropy(ignore_class=-1)
  assert float(loss(labels[:, None], probabilities)) == pytest.approx(
      float(plain(labels, probabilities)), rel=1e-6)
  smoothed = sparse_focal_crossentropy.SparseFocalCrossentropy(
      3, label_smoothing=0.3, focal_gamma=1.0, ignore_class=-1,
      reduction=None)
  per_row = keras.ops.convert_to_numpy(smoothed(labels, probabilities))
  assert per_row[1] == 0.0 and per_row[0] > 0 and per_row[2] > 0
  # A batch without a single label for this head: no loss, no NaN.
  assert float(loss(np.array([-1, -1]), PROBABILITIES)) == 0.0


def _two_heads():
  """A shared layer under a 3-class and a 20-class head, as the encoder
  with a sentiment and a topic head."""
  keras.utils.set_random_seed(0)
  inputs = keras.Input((4,))
  shared = keras.layers.Dense(8, activation='relu', name='shared')(inputs)
  model = keras.Model(inputs, {
      'sentiment': keras.layers.Dense(3, activation='softmax',
                                      name='sentiment')(shared),
      'topic': keras.layers.Dense(20, activation='softmax',
                                  name='topic')(shared)})
  model.compile(keras.optimizers.SGD(0.5), loss={
      head: sparse_focal_crossentropy.SparseFocalCrossentropy(
          classes, ignore_class=-1)
      for head, classes in (('sentiment', 3), ('topic', 20))})
  return model


@pytest.mark.parametrize('labelled,unlabelled', [('sentiment', 'topic'),
                                                  ('topic', 'sentiment')])
def test_a_batch_with_one_kind_of_label_trains_only_that_head(labelled,
                                                              unlabelled):
  model = _two_heads()
  before = {layer: [w.copy() for w in model.get_layer(layer).get_weights()]
            for layer in ('shared', 'sentiment', 'topic')}
  x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
  y = {labelled: np.array([0, 1, 2, 0, 1, 2]), unlabelled: np.full(6, -1)}
  model.train_on_batch(x, y)
  changed = {layer: any(not np.array_equal(a, b) for a, b in zip(
      weights, model.get_layer(layer).get_weights()))
             for layer, weights in before.items()}
  assert changed == {'shared': True, labelled: True, unlabelled: False}


def _schedule(name, epochs=4, batches_per_epoch=10, warmup_epochs=1.0):
  return trainer.learning_rate_schedule(
      {'learning_rate_schedule': name, 'warmup_epochs': warmup_epochs}, 1e-3,
      types.SimpleNamespace(epochs=epochs,
                            batches_per_epoch=batches_per_epoch))


def test_warmup_then_cosine_decay():
  schedule = _schedule('warmup_cosine')
  rate = lambda step: float(schedule(step))
  # 40 steps: up over the first 10, then half a cosine over 30.
  assert rate(0) == 0.0
  assert rate(5) == pytest.approx(5e-4)
  assert rate(10) == pytest.approx(1e-3)
  assert rate(25) == pytest.approx(5e-4)
  assert rate(40) == pytest.approx(0.0, abs=1e-9)
  assert _schedule('constant') == 1e-3


def test_warmup_longer_than_training_leaves_one_decay_step():
  schedule = _schedule('warmup_cosine', epochs=1, batches_per_epoch=1,
                       warmup_epochs=5.0)
  assert float(schedule(0)) == pytest.approx(1e-3)
  with pytest.raises(ValueError, match='learning_rate_schedule must be one'):
    _schedule('cyclic')
