"""`finsent errors`: where each exported model errs, on labelled data.

  finsent errors --data PATH --output DIR [--saved_model NAME=DIR ...]
                 [--serving_model_dir DIR] [--top N] [--ensemble]

Calls each SavedModel's raw-text signature (`serving_default`, what TF
Serving and the monitoring job call) on every record of PATH, and writes:

* DIR/errors.md: per model, accuracy, macro-F1 and top-label ECE; the
  confusion matrix; accuracy by text length and by whether the text has a
  $cashtag, a number or a URL; the N most confident mistakes;
* DIR/confusion.png: the confusion matrices side by side, rows normalised;
* DIR/accuracy_by_slice.png: accuracy per slice value, per model;
* DIR/errors.json: all of it, for scripts.

PATH is a data file, or a data folder (the eval file of a train/eval folder
such as Twitter-FNS). Without --saved_model, the newest pushed version of
each architecture under --serving_model_dir is read. --ensemble also
reports the mean of the models' probabilities, as a model named
`ensemble`: what averaging them would buy, before building it.
"""

import argparse
import os
import sys
from typing import List, Optional, Tuple

from finsent import configs
from finsent.configs import flag_types

ENSEMBLE_NAME = 'ensemble'


def _named_saved_model(value: str) -> Tuple[str, str]:
  name, sep, path = value.partition('=')
  if not sep or not name or not path:
    raise argparse.ArgumentTypeError(f'expected NAME=DIR, got {value!r}')
  if not os.path.isfile(os.path.join(path, 'saved_model.pb')):
    raise argparse.ArgumentTypeError(f'{path} holds no saved_model.pb')
  return name, path


def build_parser(prog: str) -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog=prog, description=__doc__.split('\n\n', 2)[2],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data', required=True,
                      help='labelled data: a file, or a folder (its eval '
                      'file)')
  parser.add_argument('--output', required=True,
                      help='folder for errors.md, errors.json and the PNGs')
  parser.add_argument('--saved_model', type=_named_saved_model,
                      action='append', metavar='NAME=DIR',
                      help='a model to report on (repeatable)')
  parser.add_argument('--serving_model_dir',
                      default=configs.PipelineConfig().serving_root,
                      help='without --saved_model: the newest pushed version '
                      'of each architecture here (default: %(default)s)')
  parser.add_argument('--top', type=flag_types.positive_int, default=10,
                      help='confident mistakes listed per model (default: '
                      '%(default)s)')
  parser.add_argument('--ensemble', action='store_true',
                      help=f'also report the mean of the models\' '
                      f'probabilities, as "{ENSEMBLE_NAME}"')
  return parser


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent errors') -> int:
  args = build_parser(prog).parse_args(argv)
  # After parsing: `--help` loads no TensorFlow.
  import numpy as np
  from finsent.commands.reports import errors as report
  from finsent.data import loaders
  try:
    saved_models = (dict(args.saved_model) if args.saved_model
                    else report.latest_pushed_models(args.serving_model_dir))
    if args.saved_model and len(saved_models) != len(args.saved_model):
      raise report.ErrorReportError('each --saved_model NAME must be different')
    if args.ensemble and (len(saved_models) < 2 or
                          ENSEMBLE_NAME in saved_models):
      raise report.ErrorReportError(
          f'--ensemble needs two models or more, none named '
          f'{ENSEMBLE_NAME!r}; got {", ".join(saved_models)}')
    data, records, caveat = report.evaluation_records(args.data)
  except (report.ErrorReportError, loaders.DataFormatError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  if caveat:
    print(f'{prog}: note: the examples are {caveat}', file=sys.stderr)
  texts = [r.text for r in records]
  models, probabilities_by_model = [], []
  for name, path in saved_models.items():
    print(f'{name}: predicting {len(texts):,} texts with {path}',
          file=sys.stderr)
    try:
      probabilities = report.predict(path, texts)
    except report.ErrorReportError as e:
      print(f'{prog}: error: {e}', file=sys.stderr)
      return 2
    models.append(report.summarise(name, path, records, probabilities, args.top))
    probabilities_by_model.append(probabilities)
  if args.ensemble:
    models.append(report.summarise(
        ENSEMBLE_NAME, ' + '.join(saved_models.values()), records,
        np.mean(probabilities_by_model, axis=0), args.top))
  markdown = report.write_report(args.output, data, len(records), models,
                                  caveat)
  for m in models:
    print(f'{m.name:<12} accuracy {m.accuracy:.4f}  macro-F1 '
          f'{m.macro_f1:.4f}  ECE {m.expected_calibration_error:.4f}')
  print(f'Report: {markdown}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
