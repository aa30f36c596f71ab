"""MAE -> ViTDet conversion: the converted trunk computes MAE's ViT forward (a NumPy reference
written here), bad state_dicts fail naming the keys, and the CLI's output loads through
`DataSegTask.initialize`."""
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import special
import tensorflow as tf, tf_keras
import torch

from official_dataseg.modeling.backbones import mae_checkpoint
from official_dataseg.tasks import dataseg_task
from official_dataseg.utils import experiment as experiment_lib

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_HIDDEN, _HEADS, _BLOCKS, _PATCH = 64, 2, 2, 16
_PRETRAIN_GRID = 2  # pretrain_image_size 32 / patch 16; the 64 x 64 input gives a 4 x 4 grid.
# Global attention in every block: MAE's ViT has no windows.
_TINY = ("{task: {model: {backbone: {vitdet: {model_id: '', num_layers: 2, hidden_size: 64, "
         "num_heads: 2, global_attention_indices: [0, 1], window_size: 2, rel_pos_grid_size: 4, "
         "pretrain_image_size: 32, pyramid_filters: 16}}}, train_data: {output_size: [64, 64]}}}")


def _tiny_params():
  return experiment_lib.parse_experiment('dataseg_vitdet_b', params_override=_TINY)


def _mae_state_dict(seed=0, extra_ignored=True):
  """A random MAE-named encoder state_dict (float32), optionally with keys ViTDet ignores."""
  rng = np.random.RandomState(seed)
  normal = lambda *shape, scale=0.1: (scale * rng.randn(*shape)).astype(np.float32)
  c = _HIDDEN
  state = {
      'cls_token': normal(1, 1, c),
      'pos_embed': normal(1, 1 + _PRETRAIN_GRID ** 2, c, scale=0.5),
      'patch_embed.proj.weight': normal(c, 3, _PATCH, _PATCH, scale=0.05),
      'patch_embed.proj.bias': normal(c),
      'norm.weight': 1 + normal(c), 'norm.bias': normal(c),
  }
  for i in range(_BLOCKS):
    p = f'blocks.{i}'
    state.update({
        f'{p}.norm1.weight': 1 + normal(c), f'{p}.norm1.bias': normal(c),
        f'{p}.attn.qkv.weight': normal(3 * c, c, scale=0.3), f'{p}.attn.qkv.bias': normal(3 * c),
        f'{p}.attn.proj.weight': normal(c, c), f'{p}.attn.proj.bias': normal(c),
        f'{p}.norm2.weight': 1 + normal(c), f'{p}.norm2.bias': normal(c),
        f'{p}.mlp.fc1.weight': normal(4 * c, c), f'{p}.mlp.fc1.bias': normal(4 * c),
        f'{p}.mlp.fc2.weight': normal(c, 4 * c), f'{p}.mlp.fc2.bias': normal(c),
    })
  if extra_ignored:
    state['mask_token'] = normal(1, 1, 32)
    state['decoder_embed.weight'] = normal(32, c)
  return state


def _layer_norm(x, weight, bias, eps=1e-6):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * weight + bias


def _mae_trunk_reference(state, images):
  """timm/MAE ViT encoder without class token, float64: [B, H, W, 3] -> [B, H/16, W/16, C]."""
  s = {k: v.astype(np.float64) for k, v in state.items()}
  batch, height, width, _ = images.shape
  h, w, c, d = height // _PATCH, width // _PATCH, _HIDDEN, _HIDDEN // _HEADS
  patches = images.astype(np.float64).reshape(batch, h, _PATCH, w, _PATCH, 3)
  tokens = np.einsum('bipjqc,ocpq->bijo', patches, s['patch_embed.proj.weight'])
  tokens += s['patch_embed.proj.bias']
  # ViTDet's get_abs_pos: drop the class slot, bicubic-resize the grid with torch.
  grid = torch.from_numpy(s['pos_embed'][0, 1:].reshape(
      1, _PRETRAIN_GRID, _PRETRAIN_GRID, c).transpose(0, 3, 1, 2))
  pos = torch.nn.functional.interpolate(grid, size=(h, w), mode='bicubic', align_corners=False)
  tokens = (tokens + pos.numpy().transpose(0, 2, 3, 1)).reshape(batch, h * w, c)
  for i in range(_BLOCKS):
    p = f'blocks.{i}'
    x = _layer_norm(tokens, s[f'{p}.norm1.weight'], s[f'{p}.norm1.bias'])
    qkv = x @ s[f'{p}.attn.qkv.weight'].T + s[f'{p}.attn.qkv.bias']
    q, k, v = qkv.reshape(batch, h * w, 3, _HEADS, d).transpose(2, 0, 3, 1, 4)
    logits = q @ k.transpose(0, 1, 3, 2) * d ** -0.5
    attn = np.exp(logits - logits.max(-1, keepdims=True))
    attn /= attn.sum(-1, keepdims=True)
    attended = (attn @ v).transpose(0, 2, 1, 3).reshape(batch, h * w, c)
    tokens = tokens + attended @ s[f'{p}.attn.proj.weight'].T + s[f'{p}.attn.proj.bias']
    x = _layer_norm(tokens, s[f'{p}.norm2.weight'], s[f'{p}.norm2.bias'])
    x = x @ s[f'{p}.mlp.fc1.weight'].T + s[f'{p}.mlp.fc1.bias']
    x = 0.5 * x * (1 + special.erf(x / np.sqrt(2)))  # exact GELU
    tokens = tokens + x @ s[f'{p}.mlp.fc2.weight'].T + s[f'{p}.mlp.fc2.bias']
  return tokens.reshape(batch, h, w, c)


def test_converted_trunk_equals_mae_vit_forward():
  backbone = mae_checkpoint.build_backbone(_tiny_params().task)
  pyramid_before = {v.name: v.numpy() for v in backbone.weights if 'pyramid_' in v.name}
  tables = [v for v in backbone.weights if 'rel_pos_' in v.name]
  assert len(tables) == 2 * _BLOCKS
  for table in tables:  # Non-zero beforehand: the converter itself must zero them.
    table.assign(tf.ones_like(table))
  state = _mae_state_dict()

  summary = mae_checkpoint.load_mae_weights(state, backbone)

  assert len(summary.converted) == 3 + 12 * _BLOCKS  # patch conv (2), pos_embed, blocks
  assert summary.ignored == ['cls_token', 'decoder_embed.weight', 'mask_token', 'norm.bias',
                             'norm.weight']
  assert len(summary.zeroed) == 2 * _BLOCKS and not any(np.any(t.numpy()) for t in tables)
  for name, value in pyramid_before.items():
    np.testing.assert_array_equal(
        [v for v in backbone.weights if v.name == name][0].numpy(), value)
  trunk = tf_keras.Model(backbone.inputs, backbone.get_layer(f'block_{_BLOCKS - 1}').output)
  images = np.random.RandomState(1).randn(2, 64, 64, 3).astype(np.float32)
  np.testing.assert_allclose(trunk(images).numpy(), _mae_trunk_reference(state, images),
                             atol=1e-4, rtol=0)


def test_bad_state_dicts_are_refused_naming_keys():
  backbone = mae_checkpoint.build_backbone(_tiny_params().task)
  before = [v.numpy() for v in backbone.weights]

  wrong_shape = _mae_state_dict()
  wrong_shape['blocks.1.attn.qkv.weight'] = np.zeros([3 * _HIDDEN, 32], np.float32)
  with pytest.raises(mae_checkpoint.MaeCheckpointError,
                     match=r'blocks\.1\.attn\.qkv\.weight: expected shape \[192, 64\].*'
                           r'got \[192, 32\]'):
    mae_checkpoint.load_mae_weights(wrong_shape, backbone)

  missing = _mae_state_dict()
  del missing['blocks.0.mlp.fc2.bias'], missing['pos_embed']
  with pytest.raises(mae_checkpoint.MaeCheckpointError,
                     match=r'absent: blocks\.0\.mlp\.fc2\.bias, pos_embed'):
    mae_checkpoint.load_mae_weights(missing, backbone)

  # A deeper model (ViT-L into ViT-B) or a fine-tuned classifier head: unused keys.
  unused = _mae_state_dict()
  unused['blocks.2.norm1.weight'] = np.ones([_HIDDEN], np.float32)
  unused['head.weight'] = np.ones([10, _HIDDEN], np.float32)
  with pytest.raises(mae_checkpoint.MaeCheckpointError,
                     match=r'no ViTDet destination.*blocks\.2\.norm1\.weight, head\.weight'):
    mae_checkpoint.load_mae_weights(unused, backbone)

  for value, variable in zip(before, backbone.weights):  # Nothing assigned on failure.
    np.testing.assert_array_equal(variable.numpy(), value)


def test_read_state_dict_npz_and_unknown_extension(tmp_path):
  state = _mae_state_dict(extra_ignored=False)
  np.savez(tmp_path / 'mae.npz', **state)  # The torch-free route.
  read = mae_checkpoint.read_state_dict(str(tmp_path / 'mae.npz'))
  assert sorted(read) == sorted(state)
  for name, value in state.items():
    np.testing.assert_array_equal(read[name], value)
  with pytest.raises(mae_checkpoint.MaeCheckpointError, match=r'model\.bin.*\.pth'):
    mae_checkpoint.read_state_dict(str(tmp_path / 'model.bin'))


@pytest.mark.slow
def test_pth_through_cli_loads_with_task_initialize(tmp_path):
  state = _mae_state_dict(seed=3)
  pth = tmp_path / 'mae_pretrain_tiny.pth'
  torch.save({'model': {k: torch.from_numpy(v) for k, v in state.items()}}, str(pth))
  output = str(tmp_path / 'converted' / 'mae_tiny')

  result = subprocess.run(
      [sys.executable, os.path.join(_REPO_ROOT, 'tools', 'convert_mae_checkpoint.py'),
       f'--mae_checkpoint={pth}', '--experiment=dataseg_vitdet_b', f'--params_override={_TINY}',
       f'--output={output}'],
      capture_output=True, text=True, cwd=str(tmp_path), check=False)
  assert result.returncode == 0, result.stderr
  assert 'converted 27 MAE tensors' in result.stdout
  assert sorted(os.listdir(tmp_path / 'converted')) == [
      'mae_tiny.data-00000-of-00001', 'mae_tiny.index']  # no temporary files left

  params = _tiny_params()
  params.task.init_checkpoint = output
  params.task.init_checkpoint_modules = 'backbone'
  task = dataseg_task.DataSegTask(params.task)
  model = task.build_model()
  task.initialize(model)  # read(...).assert_existing_objects_matched() inside.
  variables = {v.name: v.numpy() for v in model.backbone.weights}
  np.testing.assert_array_equal(variables['block_1/attention/qkv/kernel:0'],
                                state['blocks.1.attn.qkv.weight'].T)
  np.testing.assert_array_equal(variables['patch_embed/kernel:0'],
                                state['patch_embed.proj.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(variables['abs_pos/position_embedding:0'], state['pos_embed'])

  bad = subprocess.run(
      [sys.executable, os.path.join(_REPO_ROOT, 'tools', 'convert_mae_checkpoint.py'),
       f'--mae_checkpoint={pth}', '--experiment=dataseg_vitdet_b',
       '--params_override=' + _TINY.replace('hidden_size: 64', 'hidden_size: 128'),
       f'--output={tmp_path / "bad"}'],
      capture_output=True, text=True, cwd=str(tmp_path), check=False)
  assert bad.returncode == 2 and 'blocks.0.attn.qkv.weight: expected shape [384, 128]' in (
      bad.stderr)
  assert not list(tmp_path.glob('bad*'))
