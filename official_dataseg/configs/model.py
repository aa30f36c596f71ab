"""Model configs for DaTaSeg: backbone, pixel decoder, transformer decoder, heads.

Defaults are the paper's (DaTaSeg appendix; Mask2Former for the decoder;
ViTDet for the backbone). Experiment configs import these dataclasses and
override fields; code reads every number from here.
"""
import dataclasses
from typing import List

from official.modeling import hyperparams
from official.vision.configs import backbones
from official.vision.configs import common

# ViT sizes by model id: (num_layers, hidden_size, num_heads, global blocks,
# drop_path_rate). Global blocks are ViTDet's (0-based), drop-path rates are
# the ViTDet COCO recipe.
VIT_SIZES = {
    'vit-b': (12, 768, 12, (2, 5, 8, 11), 0.1),
    'vit-l': (24, 1024, 16, (5, 11, 17, 23), 0.4),
}


@dataclasses.dataclass
class ViTDet(hyperparams.Config):
  """ViTDet backbone: plain ViT with windowed attention + simple pyramid.

  The sizes that are built are the explicit fields; a saved config shows them. `model_id` names a
  preset of `VIT_SIZES`: at construction it fills the size fields left unset (0, [] or a negative
  drop-path rate); an override (YAML, `--params_override`) that changes `model_id` brings the
  preset's sizes unless it states them too. A preset whose sizes were changed otherwise is an
  error at build time (set `model_id: ''` to build explicit sizes).

  Attributes:
    model_id: 'vit-b' or 'vit-l' (a preset of `VIT_SIZES`), or '' for explicit sizes only.
    patch_size: patch embedding stride (16).
    num_layers / hidden_size / num_heads: ViT sizes; 0 takes the preset's.
    mlp_ratio: MLP width / hidden size.
    global_attention_indices: 0-based blocks with global attention; [] takes the preset's.
    window_size: side of the square attention windows in the other blocks.
    drop_path_rate: stochastic-depth rate of the last block (linear ramp); negative takes the
      preset's (0 without a preset).
    use_rel_pos: decomposed relative position bias in every block.
    rel_pos_grid_size: grid side at which global blocks store their relative
      position tables (ViTDet: 1024 / 16 = 64); resized to the actual grid.
    use_abs_pos: add the absolute position embedding.
    pretrain_image_size: image size of the pre-trained absolute position
      embedding (224 -> a 14 x 14 grid), interpolated to the input grid.
    pyramid_filters: channels of every simple-feature-pyramid output.
    layer_norm_epsilon: LayerNorm epsilon in the ViT blocks and pyramid.
  """
  model_id: str = 'vit-b'
  patch_size: int = 16
  num_layers: int = 0
  hidden_size: int = 0
  num_heads: int = 0
  mlp_ratio: float = 4.0
  global_attention_indices: List[int] = dataclasses.field(default_factory=list)
  window_size: int = 14
  drop_path_rate: float = -1.0
  use_rel_pos: bool = True
  rel_pos_grid_size: int = 64
  use_abs_pos: bool = True
  pretrain_image_size: int = 224
  pyramid_filters: int = 256
  layer_norm_epsilon: float = 1e-6

  def __post_init__(self, *args, **kwargs):
    super().__post_init__(*args, **kwargs)
    if self.model_id in VIT_SIZES:
      for field, value in zip(_PRESET_FIELDS, VIT_SIZES[self.model_id]):
        if _is_unset(getattr(self, field)):
          setattr(self, field, list(value) if isinstance(value, tuple) else value)
    elif self.drop_path_rate < 0:
      self.drop_path_rate = 0.0

  def _override(self, override_dict, is_strict=True):
    """A new preset `model_id` also sets the preset's sizes that the override leaves out."""
    model_id = override_dict.get('model_id', self.model_id)
    if model_id != self.model_id and model_id in VIT_SIZES:
      preset = {field: list(value) if isinstance(value, tuple) else value
                for field, value in zip(_PRESET_FIELDS, VIT_SIZES[model_id])}
      override_dict = {**preset, **override_dict}
    super()._override(override_dict, is_strict)


_PRESET_FIELDS = ('num_layers', 'hidden_size', 'num_heads', 'global_attention_indices',
                  'drop_path_rate')


def _is_unset(value) -> bool:
  """0, [] or a negative rate: a size field that a `model_id` preset fills."""
  if isinstance(value, (list, tuple)):
    return not value
  return value <= 0 if isinstance(value, int) else value < 0


@dataclasses.dataclass
class Backbone(backbones.Backbone):
  """Model Garden's backbone one-of plus a `vitdet` option."""
  vitdet: ViTDet = dataclasses.field(default_factory=ViTDet)


@dataclasses.dataclass
class PixelDecoder(hyperparams.Config):
  """Plain FPN pixel decoder (Model Garden's `fpn.FPN` over levels 2..5).

  Attributes:
    num_filters: FPN channels.
    mask_embedding_dim: channels of the stride-4 per-pixel embedding map.
  """
  num_filters: int = 256
  mask_embedding_dim: int = 256


@dataclasses.dataclass
class TransformerDecoder(hyperparams.Config):
  """Mask2Former masked-attention decoder (DaTaSeg variant).

  DaTaSeg's changes are built in: the first layer's cross-attention is
  unmasked (the initial queries make no prediction) and every layer has its
  own prediction head.

  Attributes:
    num_layers: decoder layers, cycling over strides 32, 16, 8.
    hidden_size / num_heads / ffn_dim: transformer sizes.
    num_queries: N segment queries.
    dropout_rate: dropout in attention and FFN (Mask2Former: 0).
  """
  num_layers: int = 9
  hidden_size: int = 256
  num_heads: int = 8
  ffn_dim: int = 2048
  num_queries: int = 100
  dropout_rate: float = 0.0


@dataclasses.dataclass
class ClassifierHead(hyperparams.Config):
  """Per-layer prediction heads and the text-embedding classifier.

  Attributes:
    text_embedding_dim: D, the width of the frozen text embeddings (384 for
      all-MiniLM-L6-v2; 512/768 for CLIP).
    num_mask_mlp_layers: depth of the mask-embedding MLP (Mask2Former: 3).
    num_class_mlp_layers: depth of the class-embedding MLP (interpretation:
      3, as the mask MLP).
    temperature: cosine-similarity temperature; logits = cos / temperature.
    learnable_temperature: learn log(1 / temperature), initialised from
      `temperature` (interpretation; default fixed, see modeling/heads/prediction_heads.py).
    max_logit_scale: clip of 1 / temperature when learnable (CLIP's 100).
    invalid_class_logit: logit given to vocabulary padding entries.
  """
  text_embedding_dim: int = 384
  num_mask_mlp_layers: int = 3
  num_class_mlp_layers: int = 3
  temperature: float = 0.07
  learnable_temperature: bool = False
  max_logit_scale: float = 100.0
  invalid_class_logit: float = -1e9


@dataclasses.dataclass
class DatasetSpecificModules(hyperparams.Config):
  """Ablation-only dataset-specific modules (appendix E); default off.

  Attributes:
    num_queries_per_dataset: K extra queries per dataset that join self- and
      cross-attention but make no prediction (0 = off).
    class_head: a separate class-embedding MLP per dataset.
    background: a separate learnable background embedding per dataset.
  """
  num_queries_per_dataset: int = 0
  class_head: bool = False
  background: bool = False


@dataclasses.dataclass
class DataSegModel(hyperparams.Config):
  """The whole DaTaSeg network.

  Attributes:
    input_size: [height, width, 3]; height and width multiples of 32.
    backbone: Model Garden backbone one-of (+ vitdet); default ResNet-50.
    norm_activation: BN / activation settings of ResNet and the FPN.
    pixel_decoder / transformer_decoder / classifier_head: see above.
    dataset_specific: appendix-E ablation modules.
  """
  input_size: List[int] = dataclasses.field(
      default_factory=lambda: [1024, 1024, 3])
  backbone: Backbone = dataclasses.field(
      default_factory=lambda: Backbone(
          type='resnet', resnet=backbones.ResNet(model_id=50)))
  norm_activation: common.NormActivation = dataclasses.field(
      default_factory=lambda: common.NormActivation(
          activation='relu', use_sync_bn=True))
  pixel_decoder: PixelDecoder = dataclasses.field(default_factory=PixelDecoder)
  transformer_decoder: TransformerDecoder = dataclasses.field(
      default_factory=TransformerDecoder)
  classifier_head: ClassifierHead = dataclasses.field(
      default_factory=ClassifierHead)
  dataset_specific: DatasetSpecificModules = dataclasses.field(
      default_factory=DatasetSpecificModules)


def resolve_vit_sizes(config: ViTDet) -> dict:
  """Returns the ViT sizes a `ViTDet` config builds (its explicit fields).

  Args:
    config: a `ViTDet` config.

  Returns:
    dict with num_layers, hidden_size, num_heads, global_attention_indices,
    drop_path_rate.

  Raises:
    ValueError: unknown `model_id`, a size left unset, or a preset `model_id` whose sizes were
      changed after construction (e.g. `model_id` overridden alone: the sizes would be stale).
  """
  if config.model_id and config.model_id not in VIT_SIZES:
    raise ValueError(
        f'ViTDet.model_id: expected one of {sorted(VIT_SIZES)} or \'\', '
        f'got {config.model_id!r}.')
  sizes = dict(num_layers=config.num_layers, hidden_size=config.hidden_size,
               num_heads=config.num_heads,
               global_attention_indices=list(config.global_attention_indices),
               drop_path_rate=max(config.drop_path_rate, 0.0))
  if config.model_id:
    preset = dict(zip(_PRESET_FIELDS[:4], VIT_SIZES[config.model_id]))
    preset['global_attention_indices'] = list(preset['global_attention_indices'])
    stale = {k: sizes[k] for k, v in preset.items() if sizes[k] != v}
    if stale:
      raise ValueError(
          f'ViTDet.model_id={config.model_id!r} is {preset}, but the config says {stale}: '
          'set the sizes with the model_id, or model_id=\'\' to build explicit sizes.')
  for name in ('num_layers', 'hidden_size', 'num_heads'):
    if sizes[name] <= 0:
      raise ValueError(f'ViTDet.{name} must be > 0 (or come from a model_id), got '
                       f'{sizes[name]}.')
  return sizes


def tiny_model_config() -> DataSegModel:
  """A small model for CPU demos and tests (not a paper setting).

  ResNet-18, FPN 64, hidden 64, 4 heads, FFN 256, 6 layers, 16 queries,
  mask embeddings 64, 128 x 128 input, plain (non-sync) batch norm.
  """
  return DataSegModel(
      input_size=[128, 128, 3],
      backbone=Backbone(type='resnet', resnet=backbones.ResNet(model_id=18)),
      norm_activation=common.NormActivation(activation='relu',
                                            use_sync_bn=False),
      pixel_decoder=PixelDecoder(num_filters=64, mask_embedding_dim=64),
      transformer_decoder=TransformerDecoder(
          num_layers=6, hidden_size=64, num_heads=4, ffn_dim=256,
          num_queries=16))
