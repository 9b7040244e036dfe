"""The layer contract (.importlinter): kept by the tree, and broken by a
deliberately wrong import, so that it cannot fold back silently."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), 'lint-imports')
CONTRACT = os.path.join(ROOT, '.importlinter')
# The folders installed as finsent.<folder> (setup.py).
FOLDERS = ('configs', 'data', 'serving', 'models', 'monitoring', 'components',
           'pipeline', 'kubeflow', 'benchmarks', 'commands')


def _lint(cwd, pythonpath=None):
  env = dict(os.environ)
  if pythonpath:
    env['PYTHONPATH'] = pythonpath
  return subprocess.run([LINT_IMPORTS, '--no-cache', '--config', CONTRACT],
                        capture_output=True, text=True, cwd=cwd, env=env,
                        timeout=300, check=False)


def test_the_tree_keeps_the_contract():
  result = _lint(ROOT)
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr
  assert 'broken' not in result.stdout.split('Contracts:')[-1].replace(
      '0 broken', '')


@pytest.fixture
def copied_tree(tmp_path):
  """The packages copied as a `finsent` namespace under tmp_path, which
  PYTHONPATH puts before the editable install."""
  for folder in FOLDERS:
    shutil.copytree(os.path.join(ROOT, folder),
                    tmp_path / 'finsent' / folder,
                    ignore=shutil.ignore_patterns('__pycache__', '*.json',
                                                  '*.csv', '*.png'))
  return tmp_path


@pytest.mark.parametrize('module,wrong_import,contract', [
    # The ground floor reaching up (and loading TensorFlow with it).
    ('configs/paths.py', 'from finsent.models import trainer',
     'Layers point one way'),
    # Serving reading training code.
    ('serving/__init__.py', 'from finsent.models import export',
     'Layers point one way'),
    # Monitoring and models are independent of each other.
    ('monitoring/__init__.py', 'from finsent.models import export',
     'Layers point one way'),
    # Configuration loading an ML library directly.
    ('configs/knobs.py', 'import numpy',
     'Configuration loads no ML library'),
])
def test_a_wrong_import_breaks_the_contract(copied_tree, module, wrong_import,
                                            contract):
  # The copy keeps the contract as it is, so what breaks it is the import.
  assert _lint(copied_tree, str(copied_tree)).returncode == 0
  with open(copied_tree / 'finsent' / module, 'a', encoding='utf-8') as f:
    f.write(f'\n{wrong_import}  # deliberately wrong\n')
  result = _lint(copied_tree, str(copied_tree))
  assert result.returncode == 1, result.stdout[-3000:]
  broken = result.stdout.split('Broken contracts')[-1]
  assert contract in broken
  importer = module[:-3].replace('/__init__', '').replace('/', '.')
  assert f'finsent.{importer} ->' in broken
