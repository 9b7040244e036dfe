"""Pretrained word vectors as the starting token embedding.

A text file of word vectors (GloVe's format: a word, then its values, one
word per line; word2vec's and fastText's text format, the same after a
`count dimension` header line) gives the models trained from scratch their
first token embedding: each word of Transform's vocabulary that the file
holds starts from its vector, the others (placeholders such as `xxticker`,
words the file lacks, the OOV buckets) from the layer's random
initialisation; training then fine-tunes them all. The embedding's width
is the vectors', their scale the initialisation's.

Read with tf.io.gfile, so the file can be on gs:// too.
"""

from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf


class WordVectorsError(ValueError):
  """A word-vector file that is missing or not in the text format."""


def cluster_problem(path: Optional[str]) -> Optional[str]:
  """Why a cluster's pods could not read `path`, a file of the machine that
  compiles their job; None if they could (or no path)."""
  if not path or '://' in path:
    return None
  return (f"--word_vectors {path}: a file of this machine, which the "
          "cluster's pods cannot read: copy it to gs:// and give that path")


def heads_problem(path: str, width: int, num_heads: int) -> Optional[str]:
  """Why a Transformer of `num_heads` attention heads cannot start from
  `path`'s `width`-wide vectors; None if it can."""
  if not width % num_heads:
    return None
  return (f'{path}: {width}-dimensional word vectors, which the '
          f"Transformer's {num_heads} attention heads do not divide: give "
          'vectors of another width, or another num_heads '
          '(TransformerConfig, or --enable_tuning)')


def _lines(path: str) -> Iterator[Tuple[int, List[str]]]:
  """(line number, space-separated fields) of each line of `path`, decoded
  as UTF-8. Raises WordVectorsError at a line that is not UTF-8."""
  with tf.io.gfile.GFile(path, 'rb') as f:
    for number, line in enumerate(f, start=1):
      try:
        text = line.decode('utf-8')
      except UnicodeDecodeError:
        raise WordVectorsError(
            f'{path}:{number}: not UTF-8 text (word2vec\'s binary format '
            'is not read: save the vectors as text)') from None
      if number == 1:
        text = text.lstrip('\ufeff')  # a byte-order mark
      # fastText's and word2vec's files end each line with a space.
      yield number, text.rstrip('\r\n ').split(' ')


def _header_dimension(fields: List[str]) -> Optional[int]:
  """The dimension of a word2vec/fastText `count dimension` header line,
  None if `fields` is not one."""
  if len(fields) == 2 and all(f.isascii() and f.isdigit() for f in fields):
    return int(fields[1])
  return None


def _vector(fields: List[str], dimension: int, where: str) -> np.ndarray:
  try:
    return np.asarray(fields[-dimension:], dtype=np.float32)
  except ValueError:
    raise WordVectorsError(
        f'{where}: expected a word and {dimension} numbers') from None


def dimension(path: str) -> int:
  """The vectors' width, from the first line of `path` (a header, or the
  first word's vector). Raises WordVectorsError if it is neither."""
  if not tf.io.gfile.exists(path):
    raise WordVectorsError(f'{path}: no such file')
  _, fields = next(_lines(path), (1, ['']))
  header = _header_dimension(fields)
  if header:
    return header
  if len(fields) < 2:
    raise WordVectorsError(
        f'{path}:1: not a word-vector text file: expected a word and its '
        'values separated by spaces, or a "count dimension" header')
  width = len(fields) - 1
  _vector(fields, width, f'{path}:1')
  return width


def read_vectors(path: str, words: Sequence[str]) -> Dict[str, np.ndarray]:
  """The vectors of those of `words` that `path` holds.

  Streams the file, keeping only these words. A line whose width differs
  from the first's raises WordVectorsError naming the file and line, as
  does a file that holds none of `words` (the wrong file, or text the
  vectors were not made for).
  """
  width = dimension(path)
  wanted = set(words)
  vectors = {}
  for number, fields in _lines(path):
    if fields == [''] or number == 1 and _header_dimension(fields):
      continue
    where = f'{path}:{number}'
    if len(fields) < width + 1:
      raise WordVectorsError(
          f'{where}: {len(fields) - 1} values, expected {width}')
    # GloVe's larger sets hold a few "words" with spaces inside.
    word = ' '.join(fields[:-width])
    if word in wanted and word not in vectors:
      vectors[word] = _vector(fields, width, where)
  if not vectors:
    raise WordVectorsError(
        f'{path}: holds a vector for none of the {len(wanted)} words of the '
        'vocabulary')
  return vectors


def embedding_rows(path: str, vocabulary: Sequence[str]
                   ) -> Dict[int, np.ndarray]:
  """The vectors `path` holds for the `vocabulary` words, by embedding row:
  row i + 1 is vocabulary[i] (row 0 is padding, as in
  models.preprocessing)."""
  vectors = read_vectors(path, vocabulary)
  return {index + 1: vectors[word] for index, word in enumerate(vocabulary)
          if word in vectors}


def initialize_embedding(embedding: keras.layers.Embedding,
                         rows: Dict[int, np.ndarray]) -> float:
  """Sets these `rows` of `embedding` (embedding_rows) to their vectors,
  scaled to the spread of the layer's random initialisation; returns the
  scale.

  The scaling keeps the vectors' directions, what they know, and starts
  the rows they cover and those they do not at one magnitude: GloVe's
  values spread about ten times wider than Keras's initialisation, and
  unscaled they made the Transformer worse than a random start
  (docs/results/model_quality.md, "Scaling the vectors").
  """
  table = keras.ops.convert_to_numpy(embedding.embeddings)
  vectors = np.stack(list(rows.values()))
  if table.shape[1] != vectors.shape[1]:
    raise WordVectorsError(
        f'{vectors.shape[1]}-dimensional word vectors for a '
        f'{table.shape[1]}-wide embedding')
  if not vectors.std() > 0:
    raise WordVectorsError(
        f'the {len(rows)} word vectors of the vocabulary are all the same '
        'value: they carry nothing to start from')
  scale = float(table.std() / vectors.std())
  table[list(rows)] = vectors * scale
  embedding.embeddings.assign(table)
  return scale
