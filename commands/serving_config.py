"""`finsent serving-config`: TF Serving's config files and Kubernetes
manifests for the pushed models.

  finsent serving-config --output_dir serving_config
  finsent serving-config --output_dir serving_config --local
  finsent serve --model_config_file=serving_config/models.config

Writes models.config, batching.config, monitoring.config and
kubernetes.yaml (serving.deploy; docs/serving.md) for the versions now
under --serving_model_dir. Run it again after a push to move the
canary/stable labels.
"""

import argparse
import sys
from typing import List, Optional

from finsent import configs
from finsent.configs import knobs


def build_parser(prog: str = 'finsent serving-config'
                 ) -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog=prog, description='Write TF Serving\'s models.config, '
      'batching.config, monitoring.config and Kubernetes manifests for the '
      'models pushed under --serving_model_dir.')
  parser.add_argument('--output_dir', required=True)
  # PipelineConfig's knob; its help names the pipeline's --output_dir,
  # which is not this command's.
  parser.config_flags = knobs.add_flags(
      parser, configs.PipelineConfig(), only=('serving_model_dir',),
      help={'serving_model_dir': 'push destination root (default: '
            './serving_model)'})
  parser.add_argument('--local', action='store_true',
                      help='base paths on this machine (for finsent serve) '
                      'instead of the container\'s mount path')
  return parser


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent serving-config') -> int:
  parser = build_parser(prog)
  args = parser.parse_args(argv)
  config = parser.config_flags.read(args)
  # Imported once the flags parse: --help and a bad flag answer without
  # loading protobuf and the TF Serving API.
  from finsent.serving.deploy import writer  # pylint: disable=g-import-not-at-top
  try:
    paths = writer.write_serving_files(
        config, args.output_dir,
        config.serving_root if args.local else None)
  except (OSError, ValueError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  for path in paths:
    print(path)
  return 0
