"""finsent: a TFX pipeline for financial sentiment monitoring.

Dependencies are not declared here on purpose: the stack is installed from
the full lock in requirements/lock.txt (see README, "Why these versions"),
because TFX 1.16 declares Python < 3.11 and an unpinned resolve backtracks.
"""
import setuptools

setuptools.setup(
    name='finsent',
    version='0.1.0',
    description='TFX pipeline for financial sentiment monitoring',
    license='MIT',
    python_requires='>=3.10',
    packages=setuptools.find_packages(include=['pipeline', 'pipeline.*', 'components', 'components.*', 'models', 'models.*', 'data', 'data.*', 'kubeflow', 'kubeflow.*', 'serving', 'serving.*', 'monitoring', 'monitoring.*']),
    package_data={'data': ['sample/*.csv', 'schema/*.pbtxt', 'ticker_aliases.csv'], 'monitoring': ['grafana/*.json']},
    entry_points={'console_scripts': ['finsent=pipeline.cli:main']},
)
