"""components.atomic_pusher: versions appear whole or not at all."""

import os

import pytest

from finsent.components import atomic_pusher


@pytest.fixture
def model_dir(tmp_path):
  model = tmp_path / 'model'
  (model / 'variables').mkdir(parents=True)
  (model / 'saved_model.pb').write_bytes(b'graph')
  (model / 'variables' / 'variables.index').write_bytes(b'index')
  return str(model)


def _tree(path):
  return sorted(os.path.relpath(os.path.join(d, f), path)
                for d, _, files in os.walk(path) for f in files)


def test_versions_increase_within_one_second(model_dir, tmp_path):
  base = str(tmp_path / 'serving' / 'sentiment_rnn')
  versions = [atomic_pusher.publish_model(model_dir, base) for _ in range(3)]
  assert [int(v) for v in versions] == sorted(int(v) for v in versions)
  assert len(set(versions)) == 3
  assert sorted(os.listdir(base)) == sorted(versions)
  for version in versions:
    assert _tree(os.path.join(base, version)) == _tree(model_dir)


def test_next_version_ignores_other_names(tmp_path):
  for name in ('17', '.18.incomplete', 'notes', '5'):
    (tmp_path / name).mkdir()
  assert atomic_pusher.next_version(str(tmp_path), now=3) == 18
  assert atomic_pusher.next_version(str(tmp_path), now=100) == 100


def test_failed_copy_exposes_no_version(model_dir, tmp_path, monkeypatch):
  """A copy that dies half-way leaves neither a version nor the staging dir."""
  base = str(tmp_path / 'serving')
  first = atomic_pusher.publish_model(model_dir, base)

  def copy_half_then_fail(src, dst, **_):
    os.makedirs(os.path.join(dst, 'variables'))
    with open(os.path.join(dst, 'variables', 'variables.index'), 'wb') as f:
      f.write(b'partial')
    raise OSError('disk full')

  monkeypatch.setattr(atomic_pusher.io_utils, 'copy_dir', copy_half_then_fail)
  with pytest.raises(OSError, match='disk full'):
    atomic_pusher.publish_model(model_dir, base)
  assert os.listdir(base) == [first]


def test_the_same_model_is_not_the_newest_version_twice(model_dir, tmp_path):
  base = str(tmp_path / 'serving' / 'sentiment')
  assert not atomic_pusher.is_newest_version(model_dir, base)
  atomic_pusher.publish_model(model_dir, base)
  assert atomic_pusher.is_newest_version(model_dir, base)
  with open(os.path.join(model_dir, 'variables', 'variables.index'),
            'wb') as f:
    f.write(b'retrained')
  assert not atomic_pusher.is_newest_version(model_dir, base)
