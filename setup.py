"""finsent: a TFX pipeline for financial sentiment monitoring.

One import namespace, `finsent`: each top-level folder of the project is
installed as a subpackage of it (`models/` as `finsent.models`, ...), so
no generic top-level name (`pipeline`, `models`, `kubeflow`, ...) is
installed to shadow another project's.

Dependencies are not declared here on purpose: the stack is installed from
the full lock in requirements/lock.txt (docs/versions.md), because TFX 1.16
declares Python < 3.11 and an unpinned resolve backtracks.
"""
import setuptools

# The folders installed as finsent.<folder>, from the ground floor up
# (docs/architecture.md; the import contract is in .importlinter).
FOLDERS = ('configs', 'data', 'models', 'serving', 'monitoring', 'components',
           'pipeline', 'kubeflow', 'benchmarks', 'commands')


def _packages():
  for folder in FOLDERS:
    yield f'finsent.{folder}'
    for subpackage in setuptools.find_packages(folder):
      yield f'finsent.{folder}.{subpackage}'


setuptools.setup(
    name='finsent',
    version='0.1.0',
    description='TFX pipeline for financial sentiment monitoring',
    license='MIT',
    python_requires='>=3.10',
    packages=list(_packages()),
    package_dir={f'finsent.{folder}': folder for folder in FOLDERS},
    package_data={'finsent.data': ['sample/*.csv', 'schema/*.pbtxt',
                                   'ticker_aliases.csv'],
                  'finsent.monitoring': ['grafana/*.json']},
    entry_points={'console_scripts': ['finsent=finsent.commands.cli:main']},
)
