"""Beam pipeline options per runner: the one place they are assembled.

TFX's Beam components (ExampleGen, StatisticsGen, Transform, Evaluator)
and the monitoring job take their options from `pipeline_args`. The user
names a runner and its cluster with Beam's own flags; this adds the
runner's defaults from finsent.configs and stops on what Beam would
silently ignore or fail on much later: a flag that is not a Beam option
(Beam drops it with a warning), or a runner without its cluster or without
workers that can import the project's code (`user module not found` on the
workers). The remote runners' workers run the pipeline image, which holds
the project (Dockerfile).

  finsent run --runner=DataflowRunner --project=P --region=europe-west1 \\
      --temp_location=gs://B/tmp --sdk_container_image=REGISTRY/finsent:TAG
  finsent run --runner=FlinkRunner --flink_master=HOST:8081 \\
      --environment_type=DOCKER --environment_config=REGISTRY/finsent:TAG
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

from finsent import configs


class BeamArgsError(ValueError):
  """Beam arguments that cannot run: says which and what is missing."""


@dataclasses.dataclass(frozen=True)
class Runner:
  """What a runner needs (Beam option names) and how its workers get the
  pipeline image."""
  required: Tuple[str, ...]
  # The option that names the workers' container image, and the options
  # that set it to the pipeline image.
  image_option: Optional[str] = None
  image_args: Tuple[str, ...] = ()


_PORTABLE_IMAGE = ('--environment_type=DOCKER', '--environment_config={image}')
RUNNERS: Dict[str, Runner] = {
    'DirectRunner': Runner(required=()),
    'DataflowRunner': Runner(
        required=('project', 'region', 'temp_location'),
        image_option='sdk_container_image',
        image_args=('--sdk_container_image={image}',)),
    'FlinkRunner': Runner(required=('flink_master',),
                          image_option='environment_type',
                          image_args=_PORTABLE_IMAGE),
    'SparkRunner': Runner(required=('spark_master_url',),
                          image_option='environment_type',
                          image_args=_PORTABLE_IMAGE),
    'PortableRunner': Runner(required=('job_endpoint',),
                             image_option='environment_type',
                             image_args=_PORTABLE_IMAGE),
}
# Options Beam lets a pipeline give several times: defaults are kept beside
# the user's instead of being replaced.
_REPEATABLE = ('experiments', 'beam_plugins')


def _option_name(arg: str) -> str:
  return arg.split('=', 1)[0].lstrip('-')


def parse_beam_args(beam_args: Sequence[str]) -> Dict[str, object]:
  """Beam's reading of `beam_args` (option name -> value).

  Raises BeamArgsError for an argument that is not `--name=value` or not a
  Beam option: a typo of a flag, most likely.
  """
  from apache_beam.options.pipeline_options import PipelineOptions  # 3 s
  for arg in beam_args:
    if not arg.startswith('--') or '=' not in arg:
      raise BeamArgsError(f'unrecognized argument {arg!r}: Beam options are '
                          'passed as --name=value')
  known = PipelineOptions([]).get_all_options()
  given = PipelineOptions(list(beam_args)).get_all_options(
      drop_default=True, retain_unknown_options=True)
  unknown = sorted(set(given) - set(known))
  if unknown:
    raise BeamArgsError(
        f'unrecognized argument{"s" if len(unknown) > 1 else ""} '
        f'{", ".join("--" + name for name in unknown)}: not a flag of this '
        'command nor a Beam pipeline option')
  return given


def pipeline_args(beam_args: Sequence[str],
                  direct_defaults: Sequence[str] = (
                      configs.DIRECT_RUNNER_ARGS),
                  image: Optional[str] = None) -> List[str]:
  """`beam_args` completed with the defaults of the runner they name.

  DirectRunner (no --runner) gets `direct_defaults`; DataflowRunner gets
  configs.DataflowConfig's machine type, worker limit and experiments.
  With `image` (the pipeline image), the remote runners' workers run it
  unless `beam_args` name their own. A flag in `beam_args` replaces a
  default of the same name (`--experiments` adds to them).
  """
  given = parse_beam_args(beam_args)
  runner_name = str(given.get('runner', 'DirectRunner'))
  runner = RUNNERS.get(runner_name)
  if runner is None:
    raise BeamArgsError(f'--runner={runner_name}: expected one of '
                        f'{", ".join(RUNNERS)}')
  defaults = list(direct_defaults) if runner_name == 'DirectRunner' else []
  if runner_name == 'DataflowRunner':
    dataflow = configs.DataflowConfig()
    defaults += [f'--machine_type={dataflow.machine_type}',
                 f'--max_num_workers={dataflow.max_num_workers}',
                 *(f'--experiments={e}' for e in dataflow.experiments)]
  if image and runner.image_option:
    defaults += [a.format(image=image) for a in runner.image_args]
  given_names = {_option_name(a) for a in beam_args}
  args = [a for a in defaults if _option_name(a) in _REPEATABLE or
          _option_name(a) not in given_names] + list(beam_args)
  missing = [name for name in runner.required if name not in given]
  if runner.image_option and runner.image_option not in (
      given_names | {_option_name(a) for a in args}):
    missing.append(runner.image_option)
  if missing:
    raise BeamArgsError(
        f'--runner={runner_name} needs ' +
        ', '.join(f'--{name}=...' for name in missing) +
        (f' (its workers must run an image holding this project: '
         f'--{runner.image_option})' if runner.image_option in missing
         else ''))
  return args
