"""atomic_write: the final file appears whole or not at all; no temporary file stays behind."""
import os

import pytest

from official_dataseg.utils import atomic_write


def test_writes_text_and_bytes_and_creates_the_folder(tmp_path):
  path = str(tmp_path / 'new' / 'a.json')
  with atomic_write.atomic_write(path) as f:
    f.write('{"a": 1}\n')
  with atomic_write.atomic_write(str(tmp_path / 'b.bin'), 'wb') as f:
    f.write(b'\x00\x01')
  assert open(path).read() == '{"a": 1}\n'
  assert (tmp_path / 'b.bin').read_bytes() == b'\x00\x01'
  assert sorted(os.listdir(tmp_path / 'new')) == ['a.json']


def test_failure_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
  path = tmp_path / 'a.json'
  path.write_text('old')
  with pytest.raises(RuntimeError, match='interrupted'):
    with atomic_write.atomic_write(str(path)) as f:
      f.write('half of the new')
      raise RuntimeError('interrupted')
  assert path.read_text() == 'old'
  assert os.listdir(tmp_path) == ['a.json']
