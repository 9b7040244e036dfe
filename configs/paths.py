"""Where finsent's bundled files are, and what kind of path a path is."""

import os

# data/ beside configs/, in this checkout and in an installed package.
DATA_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
SAMPLE_DATA = os.path.join(DATA_DIR, 'sample', 'financial_headlines.csv')
# The curated data contract ImportSchemaGen loads (reviewed by hand).
SCHEMA_FILE = os.path.join(DATA_DIR, 'schema', 'schema.pbtxt')


def is_uri(path: str) -> bool:
  """Object storage (gs://, s3://) rather than a local path."""
  return '://' in path


def absolute_path(path: str) -> str:
  """A local path made absolute; a URI as it is."""
  return path if is_uri(path) else os.path.abspath(path)
