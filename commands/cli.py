"""`finsent`: the command line (USAGE), one module per command.

A command's module is imported only when that command runs, and imports
its library code only once its flags parse: `finsent COMMAND --help`
loads no TensorFlow, TFX or Beam (docs/results/cli.md).
"""

import importlib
import os
import sys
from typing import List, Optional

# Before TensorFlow loads, here and (inherited) in Beam worker processes:
# google-api-core's Python-version and google-cloud-aiplatform's
# dependency-version notices are noise.
_IGNORED_WARNINGS = ('You are using a Python version',
                     'grpcio < 1.83.0 does not support Post-Quantum',
                     'Support for google-cloud-storage < 3.0.0')
os.environ.setdefault('PYTHONWARNINGS', ','.join(
    f'ignore:{w}:FutureWarning' for w in _IGNORED_WARNINGS))
import warnings  # noqa: E402  (after the environment it reads)
for _warning in _IGNORED_WARNINGS:
  warnings.filterwarnings('ignore', _warning, FutureWarning)

USAGE = """usage: finsent COMMAND [flags]   (finsent COMMAND --help for its flags)

  run [--data PATH] [flags] [Beam flags]   the TFX pipeline
  summary                                  the last run's summary
  compile-kubeflow [--output FILE] [flags] the pipeline as a Kubeflow
                                           Pipelines v2 / Vertex AI spec
  serving-config --output_dir DIR          TF Serving's config files and
                                           Kubernetes manifests
  serve [tensorflow_model_server flags]    serve the pushed models
  predict "headline" ...                   ask a served model
  train-worker --architecture A [flags]    one worker of a multi-worker
                                           Trainer (TF_CONFIG)
  render-tfjob --workers N [flags]         those workers on Kubernetes: a
                                           Training Operator TFJob
  profile-report MODEL_RUN ...             where training steps went, from
                                           the Trainers' profiles
  errors --data PATH --output DIR          where the pushed models err:
                                           confusion, slices, confident
                                           mistakes (Markdown + PNG)
  bench --output DIR [--quick]             RNN vs Transformer: speed, FLOP/s
                                           and thread scaling here
  bench-peak --output DIR [--quick]        what holds the Transformer's
                                           training below the matmul peak
  monitor --input PATH --output DIR        score a headline stream, window
          (--saved_model DIR|--model_url)  it per ticker, alert on shocks
  replay --data PATH --output FILE         labelled data -> a timestamped
                                           stream with an injected shock
  monitor-report DIR                       timelines and an HTML page of a
                                           monitor run"""

# command -> module whose main(argv, prog) runs it. run and summary share
# the pipeline's parser, which takes the command itself.
_PIPELINE_COMMANDS = ('run', 'summary')
_COMMANDS = {
    'run': 'finsent.commands.run',
    'summary': 'finsent.commands.run',
    'compile-kubeflow': 'finsent.commands.compile_kubeflow',
    'serving-config': 'finsent.commands.serving_config',
    'serve': 'finsent.commands.serve',
    'predict': 'finsent.commands.predict',
    'train-worker': 'finsent.commands.train_worker',
    'render-tfjob': 'finsent.commands.render_tfjob',
    'profile-report': 'finsent.commands.profile_report',
    'errors': 'finsent.commands.errors',
    'bench': 'finsent.commands.bench',
    'bench-peak': 'finsent.commands.bench_peak',
    'monitor': 'finsent.commands.monitor',
    'replay': 'finsent.commands.replay',
    'monitor-report': 'finsent.commands.monitor_report',
}


def _verbose(argv: List[str]) -> bool:
  """Whether argv asks for --verbosity info or debug."""
  for i, arg in enumerate(argv):
    value = (arg.split('=', 1)[1] if arg.startswith('--verbosity=') else
             argv[i + 1] if arg == '--verbosity' and i + 1 < len(argv) else
             None)
    if value in ('info', 'debug'):
      return True
  return False


def main(argv: Optional[List[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if argv[:1] in (['-h'], ['--help']):
    print(USAGE)
    return 0
  if not argv or argv[0] not in _COMMANDS:
    print(USAGE, file=sys.stderr)
    print(f'finsent: error: {"unknown command " + repr(argv[0]) if argv else "a command is required"}',
          file=sys.stderr)
    return 2
  command = argv[0]
  # Before the command's module loads TensorFlow (here, and inherited by
  # Beam workers): TF's C++ log level. 2 drops its INFO and WARNING lines;
  # 3 also the ERROR lines TF prints as it loads on a machine without a GPU
  # ("Unable to register cuDNN factory", "oneDNN supports DT_INT64 only on
  # platforms with AVX-512"), which C++ writes straight to stderr, past any
  # Python filter. A run keeps them for --verbosity info and debug.
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2' if (
      command not in _PIPELINE_COMMANDS or _verbose(argv)) else '3')
  module = importlib.import_module(_COMMANDS[command])
  if command in _PIPELINE_COMMANDS:
    return module.main(argv)
  return module.main(argv[1:], prog=f'finsent {command}')


if __name__ == '__main__':
  sys.exit(main())
