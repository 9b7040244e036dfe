"""The Keras macro-F1 metric (models.macro_f1) against scikit-learn's."""

import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics

from finsent.models import macro_f1


def test_matches_scikit_learn_over_several_batches():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, size=500)
  probabilities = rng.dirichlet([1, 1, 1], size=500)
  metric = macro_f1.SparseMacroF1Score(num_classes=3)
  for start in range(0, 500, 128):
    metric.update_state(labels[start:start + 128, None],
                        probabilities[start:start + 128])
  expected = sklearn_metrics.f1_score(labels, probabilities.argmax(axis=1),
                                      average='macro')
  assert float(metric.result()) == pytest.approx(expected, abs=1e-5)


def test_config_round_trip():
  metric = macro_f1.SparseMacroF1Score(num_classes=3, name='f1')
  copy = macro_f1.SparseMacroF1Score.from_config(metric.get_config())
  assert (copy.name, copy.num_classes) == ('f1', 3)


def test_rows_without_a_label_are_left_out_of_both_metrics():
  """A head's metrics over a batch of both kinds of rows (-1: the row has
  no label for this head) are those of its labelled rows alone."""
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 20, size=400)
  labels[rng.random(400) < 0.6] = -1
  probabilities = rng.dirichlet(np.ones(20), size=400)
  f1 = macro_f1.SparseMacroF1Score(num_classes=20, ignore_class=-1)
  accuracy = macro_f1.SparseAccuracy(ignore_class=-1)
  for start in range(0, 400, 64):
    for metric in (f1, accuracy):
      metric.update_state(labels[start:start + 64],
                          probabilities[start:start + 64])
  kept = labels >= 0
  predicted = probabilities.argmax(axis=1)[kept]
  present = sorted(set(labels[kept]) | set(predicted))
  assert float(f1.result()) == pytest.approx(sklearn_metrics.f1_score(
      labels[kept], predicted, average='macro', labels=present) *
      len(present) / 20, abs=1e-5)
  assert float(accuracy.result()) == pytest.approx(
      sklearn_metrics.accuracy_score(labels[kept], predicted), abs=1e-6)
  copy = macro_f1.SparseAccuracy.from_config(accuracy.get_config())
  assert (copy.name, copy.ignore_class) == ('sparse_categorical_accuracy', -1)
  assert macro_f1.SparseMacroF1Score.from_config(
      f1.get_config()).ignore_class == -1
