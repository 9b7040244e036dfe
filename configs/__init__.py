"""finsent's configuration: the ground floor every package may import.

Each knob is a dataclass field declared once, with its type, default and
help (configs.knobs); the commands' flags, `--config` files and the Tuner
read that declaration. This package imports nothing else of finsent, and
nothing that loads TensorFlow. docs/configuration.md lists the sections.
"""

from finsent.configs.features import ARCHITECTURES
from finsent.configs.features import CANDIDATES
from finsent.configs.features import candidate_architecture
from finsent.configs.features import STUDENT_SUFFIX
from finsent.configs.features import TEACHER_PROBABILITIES_KEY
from finsent.configs.features import TEACHER_TOPIC_PROBABILITIES_KEY
from finsent.configs.features import UNLABELLED_SPLIT
from finsent.configs.features import LABELS
from finsent.configs.features import TOPICS
from finsent.configs.gates import BlessingThresholds
from finsent.configs.gates import DriftThresholds
from finsent.configs.gates import SelectionConfig
from finsent.configs.kubeflow import ContainerResources
from finsent.configs.kubeflow import DATA_ROOT_PARAMETER
from finsent.configs.kubeflow import KubeflowConfig
from finsent.configs.monitoring import MonitorConfig
from finsent.configs.monitoring import MonitorRun
from finsent.configs.monitoring import ReplayConfig
from finsent.configs.monitoring import ShockConfig
from finsent.configs.monitoring import TICKER_ALIASES
from finsent.configs.paths import absolute_path
from finsent.configs.paths import DATA_DIR
from finsent.configs.paths import is_uri
from finsent.configs.paths import SAMPLE_DATA
from finsent.configs.paths import SCHEMA_FILE
from finsent.configs.pipeline import DataflowConfig
from finsent.configs.pipeline import DIRECT_RUNNER_ARGS
from finsent.configs.pipeline import EXPORT_SIGNATURES_VERSION
from finsent.configs.pipeline import PIPELINE_NAME
from finsent.configs.pipeline import PipelineConfig
from finsent.configs.pipeline import PREPROCESSING_FN
from finsent.configs.pipeline import RUN_FN
from finsent.configs.pipeline import TUNER_FN
from finsent.configs.serving import BatchingConfig
from finsent.configs.serving import PRODUCTION_MODEL_NAME
from finsent.configs.serving import ServingConfig
from finsent.configs.training import DEFAULT_ENCODER
from finsent.configs.training import DistillationConfig
from finsent.configs.training import FineTuningConfig
from finsent.configs.training import NO_ENCODER
from finsent.configs.training import PreprocessingConfig
from finsent.configs.training import RnnConfig
from finsent.configs.training import TrainingConfig
from finsent.configs.training import TransformerConfig
from finsent.configs.training import TuningConfig
