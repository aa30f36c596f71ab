"""MAE (PyTorch, timm ViT naming) encoder weights -> the ViTDet trunk.

MAE releases ImageNet-1k pre-trained ViTs as PyTorch files whose 'model' entry
is a timm `VisionTransformer` state_dict. `vitdet.ViTDet` keeps MAE's layout
(absolute position embedding with the class-token slot), so every trunk
tensor maps one-to-one, up to a transpose:

  MAE key                              ViTDet variable             transform
  patch_embed.proj.weight [C,3,P,P]    patch_embed/kernel [P,P,3,C]  OIHW->HWIO
  patch_embed.proj.bias   [C]          patch_embed/bias             -
  pos_embed               [1,1+G*G,C]  abs_pos/position_embedding   -
  blocks.i.norm{1,2}.weight / .bias    block_i/norm{1,2}/gamma/beta -
  blocks.i.attn.qkv.weight [3C,C]      block_i/attention/qkv/kernel  [out,in]->[in,out]
  blocks.i.attn.proj.weight [C,C]      block_i/attention/proj/kernel [out,in]->[in,out]
  blocks.i.mlp.fc{1,2}.weight          block_i/mlp_fc{1,2}/kernel    [out,in]->[in,out]
  (biases of the Linear layers map as they are)

The q/k/v split needs no reordering: both timm and `RelativePositionAttention`
read the qkv output as [3, heads, head_dim]. Not in MAE: the relative position
tables (set to zero, ViTDet's initialisation, so each block starts as MAE's
plain attention) and the simple pyramid (left at its fresh initialisation).
Ignored MAE keys: the class token, the final norm (ViTDet does not use them),
and the decoder of a full pre-training checkpoint (`decoder_*`, `mask_token`).
"""
import dataclasses
import re
from typing import Callable, Dict, List, Tuple

import numpy as np
import tensorflow as tf, tf_keras

from official.vision.modeling.backbones import factory as backbone_factory
from official_dataseg.modeling.backbones import vitdet

# MAE keys ViTDet has no use for.
IGNORED_KEYS = ('cls_token', 'norm.weight', 'norm.bias')
IGNORED_PREFIXES = ('decoder_', 'mask_token')

_TRUNK_LAYER = re.compile(r'^(patch_embed|abs_pos|block_\d+)$')
_PYRAMID_PREFIX = 'pyramid_'


class MaeCheckpointError(ValueError):
  """The MAE state_dict does not fit the ViTDet backbone."""


@dataclasses.dataclass(frozen=True)
class Assignment:
  """One value for one backbone variable.

  Attributes:
    variable: the ViTDet variable.
    value: its new value, already in TF layout and the variable's dtype.
    source: the MAE key it comes from; '' for a table set to zero.
  """
  variable: tf.Variable
  value: np.ndarray
  source: str


@dataclasses.dataclass(frozen=True)
class ConversionSummary:
  """What a conversion did.

  Attributes:
    converted: MAE keys copied into the backbone.
    ignored: MAE keys left out on purpose (class token, final norm, decoder).
    zeroed: variables without an MAE source set to zero (relative position
      tables).
    kept: variables left at their fresh initialisation (the pyramid).
  """
  converted: List[str]
  ignored: List[str]
  zeroed: List[str]
  kept: List[str]

  def describe(self) -> str:
    """A few human-readable lines."""
    ignored = ', '.join(self.ignored) if len(self.ignored) <= 6 else (
        f'{", ".join(self.ignored[:6])}, ... ({len(self.ignored)} keys)')
    return '\n'.join([
        f'converted {len(self.converted)} MAE tensors into the ViTDet trunk',
        f'ignored {len(self.ignored)} MAE keys: {ignored or "none"}',
        f'set to zero (not in MAE): {len(self.zeroed)} relative position '
        f'tables',
        f'left at fresh initialisation (not in MAE): {len(self.kept)} '
        f'pyramid variables'])


def _identity(value: np.ndarray) -> np.ndarray:
  return value


def _linear(value: np.ndarray) -> np.ndarray:
  return value.T  # PyTorch Linear [out, in] -> Keras Dense [in, out].


def _conv(value: np.ndarray) -> np.ndarray:
  return value.transpose(2, 3, 1, 0)  # OIHW -> HWIO.


# The inverse permutations give the MAE shape a variable expects.
_INVERSE_SHAPE = {
    _identity: lambda shape: tuple(shape),
    _linear: lambda shape: tuple(shape[::-1]),
    _conv: lambda shape: (shape[3], shape[2], shape[0], shape[1]),
}


def read_state_dict(path: str) -> Dict[str, np.ndarray]:
  """Reads an MAE checkpoint as {name: float32 array}.

  `.pth`/`.pt`: a PyTorch file (torch is imported only here), either the
  released {'model': state_dict} or a bare state_dict; loaded with
  `weights_only=True`, so it never runs pickled code. `.npz`: a NumPy archive
  with the same key names (e.g. written elsewhere by
  `np.savez(f, **{k: v.numpy() for k, v in state_dict.items()})`), which
  needs no torch.

  Args:
    path: local or `tf.io.gfile` path.

  Returns:
    {MAE key: np.ndarray float32}.

  Raises:
    MaeCheckpointError: unknown extension or unreadable content.
  """
  if path.endswith('.npz'):
    with tf.io.gfile.GFile(path, 'rb') as file:
      with np.load(file, allow_pickle=False) as archive:
        return {name: np.asarray(archive[name], np.float32)
                for name in archive.files}
  if not path.endswith(('.pth', '.pt')):
    raise MaeCheckpointError(
        f'{path}: expected a .pth/.pt (PyTorch) or .npz MAE checkpoint.')
  import torch  # pylint: disable=g-import-not-at-top  (only .pth needs it)
  with tf.io.gfile.GFile(path, 'rb') as file:
    try:
      checkpoint = torch.load(file, map_location='cpu', weights_only=True)
    except Exception as e:  # pylint: disable=broad-except
      raise MaeCheckpointError(
          f'{path}: torch.load(weights_only=True) failed ({e}). Expected '
          f'{{"model": state_dict}} or a state_dict of tensors; re-save '
          f'just the state_dict, or convert it to .npz.') from e
  state_dict = checkpoint
  if isinstance(checkpoint, dict) and isinstance(checkpoint.get('model'), dict):
    state_dict = checkpoint['model']
  if not isinstance(state_dict, dict) or not all(
      torch.is_tensor(v) for v in state_dict.values()):
    raise MaeCheckpointError(
        f'{path}: expected {{"model": state_dict}} or a state_dict of '
        f'tensors, got {type(checkpoint).__name__} with keys '
        f'{sorted(checkpoint)[:10] if isinstance(checkpoint, dict) else []}.')
  return {name: tensor.detach().float().numpy()
          for name, tensor in state_dict.items()}


def build_backbone(task_config) -> vitdet.ViTDet:
  """Builds the backbone of a DaTaSeg task config as `Task.build_model` does.

  Same factory, config and input size (`train_data.output_size`) as training,
  so the checkpoint written from it matches the training model's backbone.

  Args:
    task_config: a `configs.dataseg.DataSegTask`.

  Returns:
    The ViTDet backbone (built, freshly initialised).

  Raises:
    MaeCheckpointError: the config's backbone is not ViTDet.
  """
  model_config = task_config.model
  if model_config.backbone.type != 'vitdet':
    raise MaeCheckpointError(
        f'task.model.backbone.type: MAE weights need a vitdet backbone, got '
        f'{model_config.backbone.type!r}.')
  height, width = task_config.train_data.output_size
  return backbone_factory.build_backbone(
      input_specs=tf_keras.layers.InputSpec(shape=[None, height, width, 3]),
      backbone_config=model_config.backbone,
      norm_activation_config=model_config.norm_activation)


def _mae_sources(backbone: vitdet.ViTDet
                 ) -> Dict[str, Tuple[tf.Variable, Callable]]:
  """{MAE key: (ViTDet variable, MAE -> TF transform)} of the trunk."""
  sources = {}

  def add_dense(prefix, layer):
    sources[f'{prefix}.weight'] = (layer.kernel, _linear)
    sources[f'{prefix}.bias'] = (layer.bias, _identity)

  def add_norm(prefix, layer):
    sources[f'{prefix}.weight'] = (layer.gamma, _identity)
    sources[f'{prefix}.bias'] = (layer.beta, _identity)

  patch_embed = backbone.get_layer('patch_embed')
  sources['patch_embed.proj.weight'] = (patch_embed.kernel, _conv)
  sources['patch_embed.proj.bias'] = (patch_embed.bias, _identity)
  layer_names = {layer.name for layer in backbone.layers}
  if 'abs_pos' in layer_names:
    sources['pos_embed'] = (
        backbone.get_layer('abs_pos').position_embedding, _identity)
  index = 0
  while f'block_{index}' in layer_names:
    block = backbone.get_layer(f'block_{index}')
    prefix = f'blocks.{index}'
    add_norm(f'{prefix}.norm1', block.norm1)
    add_dense(f'{prefix}.attn.qkv', block.attention.qkv)
    add_dense(f'{prefix}.attn.proj', block.attention.proj)
    add_norm(f'{prefix}.norm2', block.norm2)
    add_dense(f'{prefix}.mlp.fc1', block.mlp_fc1)
    add_dense(f'{prefix}.mlp.fc2', block.mlp_fc2)
    index += 1
  return sources


def _is_ignored(name: str) -> bool:
  return name in IGNORED_KEYS or name.startswith(IGNORED_PREFIXES)


def _shape(shape) -> str:
  return '[' + ', '.join(str(d) for d in shape) + ']'


def plan_assignments(state_dict: Dict[str, np.ndarray],
                     backbone: vitdet.ViTDet
                     ) -> Tuple[List[Assignment], ConversionSummary]:
  """Maps an MAE state_dict onto a built ViTDet, checking everything first.

  Pure: the backbone is only read. Every MAE encoder key must have a
  destination and every ViT-trunk variable a source (or be a relative
  position table, set to zero); every shape must match.

  Args:
    state_dict: {MAE key: array} as `read_state_dict` returns.
    backbone: a built `vitdet.ViTDet`.

  Returns:
    (assignments, summary).

  Raises:
    MaeCheckpointError: missing or unused keys, shape mismatches, or trunk
      variables with no source (each listed by name).
  """
  if not isinstance(backbone, vitdet.ViTDet):
    raise MaeCheckpointError(
        f'expected a vitdet.ViTDet backbone, got {type(backbone).__name__}.')
  sources = _mae_sources(backbone)
  ignored = sorted(name for name in state_dict if _is_ignored(name))
  missing = sorted(set(sources) - set(state_dict))
  unused = sorted(set(state_dict) - set(sources) - set(ignored))
  problems = []
  if missing:
    problems.append(f'{len(missing)} MAE keys needed by the ViTDet trunk '
                    f'but absent: {", ".join(missing)}')
  if unused:
    problems.append(f'{len(unused)} MAE keys with no ViTDet destination '
                    f'(wrong model size or not an MAE ViT encoder?): '
                    f'{", ".join(unused)}')
  mismatched = []
  for name, (variable, transform) in sources.items():
    if name not in state_dict:
      continue
    expected = _INVERSE_SHAPE[transform](variable.shape.as_list())
    got = tuple(np.shape(state_dict[name]))
    if got != expected:
      mismatched.append(
          f'{name}: expected shape {_shape(expected)} (for '
          f'{variable.name} {_shape(variable.shape)}), got {_shape(got)}')
  if mismatched:
    problems.append('shape mismatches: ' + '; '.join(mismatched))
  if problems:
    raise MaeCheckpointError(
        f'MAE checkpoint does not fit this ViTDet '
        f'({len(sources)} trunk tensors expected): ' + '. '.join(problems))

  assignments = [
      Assignment(variable,
                 np.asarray(transform(state_dict[name]),
                            variable.dtype.as_numpy_dtype), name)
      for name, (variable, transform) in sources.items()]
  covered = {variable.ref() for variable, _ in sources.values()}
  zeroed, kept, unsourced = [], [], []
  for layer in backbone.layers:
    if not layer.weights:
      continue
    if layer.name.startswith(_PYRAMID_PREFIX):
      kept.extend(v.name for v in layer.weights)
      continue
    for variable in layer.weights:
      if variable.ref() in covered:
        continue
      # Relative position tables: ViTDet starts them at zero.
      if _TRUNK_LAYER.match(layer.name) and re.search(
          r'/rel_pos_[hw]:', variable.name):
        assignments.append(Assignment(
            variable, np.zeros(variable.shape, variable.dtype.as_numpy_dtype),
            ''))
        zeroed.append(variable.name)
      else:
        unsourced.append(variable.name)
  if unsourced:
    raise MaeCheckpointError(
        f'ViTDet trunk variables with no MAE source: {", ".join(unsourced)}')
  summary = ConversionSummary(
      converted=[a.source for a in assignments if a.source],
      ignored=ignored, zeroed=zeroed, kept=kept)
  return assignments, summary


def load_mae_weights(state_dict: Dict[str, np.ndarray],
                     backbone: vitdet.ViTDet) -> ConversionSummary:
  """Checks (`plan_assignments`), then assigns the MAE weights.

  Args:
    state_dict: {MAE key: array}.
    backbone: a built `vitdet.ViTDet`; changed only if every check passes.

  Returns:
    The conversion summary.
  """
  assignments, summary = plan_assignments(state_dict, backbone)
  for assignment in assignments:
    assignment.variable.assign(assignment.value)
  return summary
