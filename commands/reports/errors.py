"""Where each exported model errs, on labelled data (`finsent errors`).

Calls each SavedModel's raw-text signature (`serving_default`, what TF
Serving and the monitoring job call) on every record and summarises, per
model: accuracy, macro-F1 and top-label ECE; the confusion matrix; accuracy
by text length and by whether the text has a $cashtag, a number or a URL;
the most confident mistakes. Written as Markdown, JSON and two PNGs.
"""

import dataclasses
import json
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from sklearn import metrics as sklearn_metrics

from finsent.data import loaders
from finsent.models import calibration
from finsent.configs import features
from finsent.monitoring import entities
from finsent import configs

PREDICT_BATCH_SIZE = 256
# Named slices: a function of the text giving its value.
SLICES: Dict[str, Callable[[str], str]] = {
    'words': features.length_bucket,
    'cashtag': lambda text: 'yes' if entities.CASHTAG.search(text) else 'no',
    'number': lambda text: 'yes' if re.search(r'\d', text) else 'no',
    'url': lambda text: 'yes' if re.search(r'https?://|www\.', text) else 'no',
}


class ErrorReportError(ValueError):
  """Arguments or models the report cannot use; says which."""


@dataclasses.dataclass
class ModelErrors:
  """One model's predictions on the data, summarised."""
  name: str
  saved_model: str
  accuracy: float
  macro_f1: float
  expected_calibration_error: float
  # confusion[i][j]: examples labelled LABELS[i], predicted LABELS[j].
  confusion: List[List[int]]
  # slice name -> value -> {'count', 'accuracy'}
  by_slice: Dict[str, Dict[str, Dict[str, float]]]
  # The wrong predictions with the highest probability, highest first.
  confident_mistakes: List[Dict[str, Any]]


def predict(saved_model_dir: str, texts: Sequence[str]) -> np.ndarray:
  """Probabilities [N, len(LABELS)] from the SavedModel's raw-text signature."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_text  # noqa: F401  pylint: disable=unused-import,g-import-not-at-top
  try:
    serve = tf.saved_model.load(saved_model_dir).signatures['serving_default']
  except (OSError, ValueError, KeyError, tf.errors.OpError) as e:
    raise ErrorReportError(
        f'{saved_model_dir}: not a SavedModel with a serving_default '
        f'signature: {type(e).__name__}: {e}') from None
  try:
    batches = [
        serve(text=tf.constant(list(texts[i:i + PREDICT_BATCH_SIZE])))[
            'probabilities'].numpy()
        for i in range(0, len(texts), PREDICT_BATCH_SIZE)]
  except (TypeError, ValueError, KeyError, tf.errors.OpError) as e:
    raise ErrorReportError(
        f'{saved_model_dir}: serving_default does not map text to '
        f'probabilities: {type(e).__name__}: {e}') from None
  return np.concatenate(batches)


def summarise(name: str, saved_model: str, records: Sequence[loaders.Record],
              probabilities: np.ndarray, top: int) -> ModelErrors:
  """The report's numbers for one model's `probabilities` on `records`."""
  labels = np.array([features.LABELS.index(r.label) for r in records])
  predicted = probabilities.argmax(axis=1)
  correct = predicted == labels
  classes = list(range(len(features.LABELS)))
  by_slice = {}
  for slice_name, value_of in SLICES.items():
    values = np.array([value_of(r.text) for r in records])
    by_slice[slice_name] = {
        value: {'count': int((values == value).sum()),
                'accuracy': round(float(correct[values == value].mean()), 4)}
        for value in sorted(set(values.tolist()), key=_slice_order)}
  confidence = probabilities.max(axis=1)
  mistakes = np.flatnonzero(~correct)
  mistakes = mistakes[np.argsort(-confidence[mistakes], kind='stable')][:top]
  return ModelErrors(
      name=name,
      saved_model=saved_model,
      accuracy=round(float(correct.mean()), 4),
      macro_f1=round(float(sklearn_metrics.f1_score(
          labels, predicted, labels=classes, average='macro',
          zero_division=0)), 4),
      expected_calibration_error=round(
          calibration.expected_calibration_error(probabilities, labels), 4),
      confusion=sklearn_metrics.confusion_matrix(
          labels, predicted, labels=classes).tolist(),
      by_slice=by_slice,
      confident_mistakes=[{
          'text': records[i].text,
          'label': records[i].label,
          'predicted': features.LABELS[predicted[i]],
          'probability': round(float(confidence[i]), 4),
      } for i in mistakes])


def _slice_order(value: str) -> Tuple[int, str]:
  """Length buckets by their lower bound ('9-16' after '1-8'), then names."""
  number = re.match(r'\d+', value)
  return (int(number.group()) if number else -1, value)


def format_markdown(data: str, count: int, models: List[ModelErrors],
                    caveat: Optional[str] = None) -> str:
  lines = [f'# Where the models err: {data} ({count:,} examples)', '',
           'Each model is called through its SavedModel\'s raw-text '
           'signature (`serving_default`).', '']
  if caveat:
    lines += [f'**The examples are {caveat}.**', '']
  lines += ['| model | accuracy | macro-F1 | ECE |', '|---|---|---|---|']
  lines += [f'| {m.name} | {m.accuracy:.4f} | {m.macro_f1:.4f} | '
            f'{m.expected_calibration_error:.4f} |' for m in models]
  lines += ['', '![confusion matrices](confusion.png)', '',
            '![accuracy by slice](accuracy_by_slice.png)']
  for m in models:
    lines += ['', f'## {m.name}', '', f'SavedModel: `{m.saved_model}`', '',
              '### Confusion matrix (rows: label, columns: predicted)', '',
              '| label | ' + ' | '.join(features.LABELS) + ' |',
              '|---' * (len(features.LABELS) + 1) + '|']
    lines += [f'| {label} | ' + ' | '.join(str(n) for n in row) + ' |'
              for label, row in zip(features.LABELS, m.confusion)]
    lines += ['', '### Accuracy by slice', '',
              '| slice | value | examples | accuracy |', '|---|---|---|---|']
    lines += [f'| {name} | {value} | {cell["count"]:,} | '
              f'{cell["accuracy"]:.4f} |'
              for name, values in m.by_slice.items()
              for value, cell in values.items()]
    lines += ['', f'### The {len(m.confident_mistakes)} most confident '
              'mistakes', '', '| probability | predicted | label | text |',
              '|---|---|---|---|']
    lines += [f'| {x["probability"]:.3f} | {x["predicted"]} | {x["label"]} | '
              f'{_markdown_cell(x["text"])} |' for x in m.confident_mistakes]
  return '\n'.join(lines) + '\n'


def _markdown_cell(text: str) -> str:
  return text.replace('\\', '\\\\').replace('|', '\\|').replace('\n', ' ')


def write_charts(models: List[ModelErrors], output_dir: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure, axes = pyplot.subplots(1, len(models),
                                 figsize=(3.8 * len(models), 3.6),
                                 squeeze=False)
  for axis, m in zip(axes[0], models):
    counts = np.array(m.confusion, dtype=np.float64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    axis.imshow(shares, cmap='Blues', vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(counts):
      axis.text(j, i, f'{int(n)}\n{shares[i, j]:.0%}', ha='center',
                va='center', fontsize=8,
                color='white' if shares[i, j] > 0.6 else 'black')
    axis.set_xticks(range(len(features.LABELS)), features.LABELS)
    axis.set_yticks(range(len(features.LABELS)), features.LABELS)
    axis.set_xlabel('predicted')
    axis.set_ylabel('label')
    axis.set_title(f'{m.name}: accuracy {m.accuracy:.3f}')
  figure.tight_layout()
  figure.savefig(os.path.join(output_dir, 'confusion.png'), dpi=120)
  pyplot.close(figure)

  cells = [(name, value) for name, values in models[0].by_slice.items()
           for value in values]
  figure, axis = pyplot.subplots(figsize=(max(7, 0.95 * len(cells)), 3.8))
  width = 0.8 / len(models)
  for k, m in enumerate(models):
    axis.bar([i + k * width for i in range(len(cells))],
             [m.by_slice[name][value]['accuracy'] for name, value in cells],
             width, label=m.name)
  axis.set_xticks([i + width * (len(models) - 1) / 2
                   for i in range(len(cells))],
                  [f'{name}: {value}\nn={models[0].by_slice[name][value]["count"]:,}'
                   for name, value in cells], fontsize=7)
  axis.set_ylim(0, 1)
  axis.set_ylabel('accuracy')
  axis.set_title('Accuracy by slice (words: text length)')
  axis.legend(fontsize=8, loc='lower right', framealpha=0.9)
  figure.tight_layout()
  figure.savefig(os.path.join(output_dir, 'accuracy_by_slice.png'), dpi=120)
  pyplot.close(figure)


def latest_pushed_models(serving_model_dir: str) -> Dict[str, str]:
  """Candidate -> its newest pushed version (the highest number)."""
  models = {}
  for candidate in features.CANDIDATES:
    base = os.path.join(serving_model_dir,
                        configs.PipelineConfig().serving_model_name(candidate))
    versions = [int(v) for v in (os.listdir(base) if os.path.isdir(base)
                                 else []) if v.isdigit()]
    if versions:
      models[candidate] = os.path.join(base, str(max(versions)))
  if not models:
    raise ErrorReportError(
        f'no pushed model under {serving_model_dir}: run the pipeline first, '
        'or name models with --saved_model NAME=DIR')
  return models


# Said in the report when the data has no eval split of its own.
ALL_RECORDS_CAVEAT = (
    'every record of the data, which has no eval split of its own: if the '
    'models were trained on it, their training examples are among them and '
    'the figures are optimistic')


def evaluation_records(path: str
                       ) -> Tuple[str, List[loaders.Record], Optional[str]]:
  """The records to report on: a data folder's eval split, or every record
  of a file or of a folder without one (with ALL_RECORDS_CAVEAT)."""
  layout = loaders.resolve_input(path)
  split = 'eval' if 'eval' in layout.splits else 'all'
  files = layout.files[split]
  if not files:
    raise ErrorReportError(f'{path}: no data files')
  records = [record for f in files for record in loaders.read_records(f)]
  loaders.require_sentiment_labels(
      path, len(records), sum(record.label is None for record in records))
  return (', '.join(files), records,
          ALL_RECORDS_CAVEAT if split == 'all' else None)


def write_report(output_dir: str, data: str, count: int,
                 models: List[ModelErrors], caveat: Optional[str]) -> str:
  """errors.md, errors.json and the charts in `output_dir`; returns the
  Markdown file's path."""
  os.makedirs(output_dir, exist_ok=True)
  markdown = os.path.join(output_dir, 'errors.md')
  with open(markdown, 'w') as f:
    f.write(format_markdown(data, count, models, caveat))
  with open(os.path.join(output_dir, 'errors.json'), 'w') as f:
    json.dump({'data': data, 'examples': count, 'caveat': caveat,
               'models': [dataclasses.asdict(m) for m in models]}, f, indent=2)
  write_charts(models, output_dir)
  return markdown
