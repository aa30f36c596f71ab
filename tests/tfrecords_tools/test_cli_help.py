"""`--help` of every converter documents every flag."""

import importlib
import re

import pytest

_CONVERTERS = ('ade20k', 'ade20k_panoptic', 'cityscapes_panoptic',
               'coco_instance', 'coco_panoptic', 'coco_semantic',
               'objects365', 'pascal_context', 'voc')
_SHARED_FLAGS = ('--images_dir', '--annotations', '--output_prefix',
                 '--num_shards', '--num_workers', '--strict', '--quiet')


@pytest.mark.parametrize('name', _CONVERTERS)
def test_help_lists_and_explains_every_flag(name, capsys):
  module = importlib.import_module(f'tfrecords_tools.{name}')
  with pytest.raises(SystemExit) as exit_info:
    module.main(['--help'])
  assert exit_info.value.code == 0
  text = capsys.readouterr().out
  flags = re.findall(r'^  (--\w+)', text, flags=re.MULTILINE)
  assert set(_SHARED_FLAGS) <= set(flags)
  # Each flag line (or the next) carries an explanation, not just the name.
  for line_block in re.split(r'\n(?=  --)', text.split('options:')[1])[1:]:
    words = re.sub(r'^\s*--\w+( \w+)?', '', line_block).split()
    assert len(words) >= 2, f'{name}: flag without help: {line_block!r}'
