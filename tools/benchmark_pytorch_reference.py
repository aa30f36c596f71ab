r"""Times the PyTorch reference of DaTaSeg's train step and inference on CPU.

  python tools/benchmark_pytorch_reference.py                      # ResNet-50, 512x512, batch 2
  python tools/benchmark_pytorch_reference.py --image_size=1024 --batch_size=1
  python tools/benchmark_pytorch_reference.py --image_size=256 --runs=1 --warmup=1 --check_steps=5

The counterpart of `tools/benchmark_train_step.py` (same flags, same synthetic batch, same output
lines), for the side-by-side comparison of docs/performance.md ("PyTorch reference: how it is built
and measured"); `tools/compare_with_pytorch.py` runs both, interleaved. Needs only `torch`,
`transformers` and `scipy` (no TensorFlow): it runs in this project's virtualenv or in a separate one.

The reference is Hugging Face `transformers`' `Mask2FormerForUniversalSegmentation`, built from a
`Mask2FormerConfig` with random weights (ResNet-50 `ResNetConfig` backbone,
`use_pretrained_backbone=False`, 100 queries, `decoder_layers=10` (HF counts the initial query
prediction as a layer: 10 gives 9 masked-attention layers, DaTaSeg's 9), 133 labels,
`encoder_layers=0`, hidden 256, 8 heads, FFN 2048, post-norm, no dropout), with these parts replaced
so that it computes what DaTaSeg computes (official_dataseg/modeling):

* pixel decoder -> a plain FPN over the four ResNet levels (lateral 1x1 conv, top-down nearest
  upsampling + add, 3x3 output conv, norm, activation), whose stride-32/16/8 outputs feed the
  decoder's cross-attention round-robin (through HF's 1x1 `input_projections`,
  `enforce_input_projection=True`, = DaTaSeg's `memory_projection_{5,4,3}`) and whose stride-4
  output goes through a 1x1 conv to the 256-channel mask features (DaTaSeg's `mask_projection`).
  `--fpn_norm=group` (default, the issue's recipe): GroupNorm(32) + ReLU after the 3x3 convs;
  `--fpn_norm=batch`: BatchNorm and no activation, exactly Model Garden's `fpn.FPN`, which DaTaSeg
  uses.
* transformer decoder loop -> DaTaSeg's: HF's 9 `Mask2FormerMaskedAttentionDecoderLayer`s
  (masked cross-attention, self-attention, FFN) unchanged, but the initial queries make no
  prediction (the first layer attends everywhere) and every layer has its own prediction head
  (LayerNorm, 3-layer mask MLP, 3-layer class MLP to a 384-d embedding), instead of HF's one shared
  head that also predicts from the initial queries.
* `class_predictor` (a 256 -> 134 linear layer) -> DaTaSeg's text-embedding classifier: cosine
  similarity of the class embedding with 133 frozen text embeddings (a fixed random buffer here)
  and one learnable background embedding, divided by the temperature 0.07.
* loss -> DaTaSeg's dense losses (official_dataseg/losses, COCO panoptic weights of
  configs/losses.py) instead of HF's point-sampled ones: the last layer is Hungarian-matched
  (scipy) with cost mu_ce * (-log p(class)) + mu_dice * dice over all pixels at 1/4 resolution,
  and that matching supervises every layer: softmax cross-entropy (background weight 0.05,
  normalised by the sum of weights) + lambda_focal 20 * sigmoid focal loss (alpha 0.25, gamma 2,
  mean over all pixels) + lambda_dice 5 * dice, summed over layers, mask terms divided by the number
  of GT masks. Only the real objects are matched (no padded GT slots), and COCO's MERGE of stuff
  proposals, which is DaTaSeg's method rather than its network, is not done.
* optimizer: AdamW (weight decay 0.05, not on biases and norms), gradient clipping at global norm
  0.1, as DaTaSeg's experiment config.

Run settings: float32, training mode (batch statistics), denormals flushed to zero
(`torch.set_flush_denormal(True)`, as TensorFlow's CPU threads run; `--noflush_denormal` to turn it
off), HF's default NCHW layout unless `--channels_last`. PyTorch's OpenMP threads suffer much more
than TensorFlow's thread pool when another process holds one of the cores (on the shared 2-core
machine: 5x slower inference at 2 threads than at 1), so take figures on a quiet machine only.

Printed, like the TF tool: the whole train step (forward + losses + backward + clipping + AdamW
step), then separately timed passes: forward (training mode, autograd recording as in the step),
matching, matching + losses (on fixed logits), forward + losses + backward, optimizer update (on
fixed gradients), the backward part of the step (timed inside the step), inference (`model(x)`
under `torch.no_grad()` in eval mode, batch 1), images/s, GFLOP from
`torch.utils.flop_counter` (matmuls, convolutions and attention only; a multiply-add counts 2) and
the parameter count. Each figure is the median over `--runs` calls after `--warmup`.
"""
import argparse
import json
import math
import os
import statistics
import time

import numpy as np
from scipy import optimize
import torch
from torch import nn
import torch.nn.functional as F

from cpu_info import cpu_model  # tools/cpu_info.py (this script's folder)

os.environ.setdefault('HF_HUB_OFFLINE', '1')
import transformers  # pylint: disable=g-import-not-at-top
from transformers.models.mask2former import modeling_mask2former as hf_m2f

NUM_CLASSES = 133           # COCO panoptic.
TEXT_EMBEDDING_DIM = 384    # all-MiniLM-L6-v2, DaTaSeg's default text embeddings.
TEMPERATURE = 0.07
MAX_INSTANCES = 100         # dataseg_r50's max_instances (the TF side pads GT to it).
# COCO panoptic row of appendix Table 13 (official_dataseg/configs/losses.py).
MU_CE, MU_FOCAL, MU_DICE = 1.0, 0.0, 1.0
LAMBDA_CE, LAMBDA_FOCAL, LAMBDA_DICE = 1.0, 20.0, 5.0
BACKGROUND_WEIGHT = 0.05
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0
WEIGHT_DECAY = 0.05
GLOBAL_CLIPNORM = 0.1


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--image_size', type=int, default=512,
                      help='Square training / inference input side.')
  parser.add_argument('--batch_size', type=int, default=2, help='Training batch size.')
  parser.add_argument('--num_objects', type=int, default=10, help='Real objects per image.')
  parser.add_argument('--threads', type=int, default=2,
                      help='torch.set_num_threads (0: PyTorch decides).')
  parser.add_argument('--runs', type=int, default=5, help='Timed calls of each function.')
  parser.add_argument('--warmup', type=int, default=2, help='Untimed calls first.')
  parser.add_argument('--parts', dest='parts', action='store_true', default=True,
                      help='Also time forward / matching / losses / backward / update.')
  parser.add_argument('--noparts', dest='parts', action='store_false')
  parser.add_argument('--inference_sizes', default='512,1024',
                      help="Comma-separated square sizes for batch-1 inference ('' to skip).")
  parser.add_argument('--fpn_norm', choices=('group', 'batch'), default='group',
                      help='group: GroupNorm(32) + ReLU; batch: BatchNorm, no activation '
                           '(Model Garden FPN, as DaTaSeg).')
  parser.add_argument('--channels_last', action='store_true', default=False,
                      help='Model and images in channels-last memory format (oneDNN\'s preferred '
                           'convolution layout on CPU; off: HF\'s default NCHW).')
  parser.add_argument('--flush_denormal', dest='flush_denormal', action='store_true',
                      default=True, help='torch.set_flush_denormal(True), as TensorFlow\'s CPU '
                      'threads run (default on).')
  parser.add_argument('--noflush_denormal', dest='flush_denormal', action='store_false')
  parser.add_argument('--learning_rate', type=float, default=1.5e-4,
                      help="AdamW learning rate (dataseg_r50: 3e-5 x COCO's multiplier 5).")
  parser.add_argument('--check_steps', type=int, default=0,
                      help='Before timing, run this many train steps on the fixed batch, '
                           'print the losses and shapes, and fail on a non-finite loss.')
  parser.add_argument('--flops', dest='flops', action='store_true', default=True,
                      help='Count GFLOP with torch.utils.flop_counter (one extra pass).')
  parser.add_argument('--noflops', dest='flops', action='store_false')
  parser.add_argument('--json_output', default='', help='Also write the results here.')
  args = parser.parse_args(argv)
  args.inference_sizes = [int(s) for s in args.inference_sizes.split(',') if s.strip()]
  return args


# ---------------------------------------------------------------------------------------------
# The model.
# ---------------------------------------------------------------------------------------------
class FPNPixelDecoder(nn.Module):
  """Plain FPN over strides 4..32 in place of HF's deformable-attention pixel decoder."""

  def __init__(self, in_channels, num_filters=256, mask_dim=256, norm='group'):
    super().__init__()
    self.lateral = nn.ModuleList(nn.Conv2d(c, num_filters, 1) for c in in_channels)
    self.output = nn.ModuleList(nn.Conv2d(num_filters, num_filters, 3, padding=1)
                                for _ in in_channels)
    if norm == 'group':
      self.norms = nn.ModuleList(nn.GroupNorm(32, num_filters) for _ in in_channels)
      self.activation = nn.ReLU()
    else:  # Model Garden's FPN: BatchNorm (momentum 0.99 in Keras terms), no activation.
      self.norms = nn.ModuleList(nn.BatchNorm2d(num_filters, eps=1e-3, momentum=0.01)
                                 for _ in in_channels)
      self.activation = nn.Identity()
    self.mask_projection = nn.Conv2d(num_filters, mask_dim, 1)

  def forward(self, features, output_hidden_states=False, **unused_kwargs):
    """features: 4 maps [B, C_l, H/2^l, W/2^l], strides 4, 8, 16, 32."""
    merged = [None] * len(features)
    top_down = self.lateral[-1](features[-1])
    merged[-1] = top_down
    for level in range(len(features) - 2, -1, -1):
      lateral = self.lateral[level](features[level])
      top_down = lateral + F.interpolate(top_down, size=lateral.shape[-2:], mode='nearest')
      merged[level] = top_down
    outputs = [self.activation(norm(conv(x)))
               for x, conv, norm in zip(merged, self.output, self.norms)]
    return hf_m2f.Mask2FormerPixelDecoderOutput(
        mask_features=self.mask_projection(outputs[0]),
        # Attention order: strides 32, 16, 8 (HF's transformer module projects them to hidden).
        multi_scale_features=(outputs[3], outputs[2], outputs[1]),
        attentions=None)


class PredictionHead(nn.Module):
  """One decoder layer's head: LayerNorm, mask MLP (dot with mask features), class MLP."""

  def __init__(self, hidden_size=256, mask_dim=256, text_dim=TEXT_EMBEDDING_DIM, depth=3):
    super().__init__()
    self.norm = nn.LayerNorm(hidden_size)

    def mlp(out_dim):
      layers = []
      for i in range(depth):
        layers.append(nn.Linear(hidden_size, out_dim if i == depth - 1 else hidden_size))
        if i < depth - 1:
          layers.append(nn.ReLU())
      return nn.Sequential(*layers)
    self.mask_mlp = mlp(mask_dim)
    self.class_mlp = mlp(text_dim)

  def forward(self, queries, mask_features):
    """queries [Q, B, C] (HF's layout), mask_features [B, E, h, w].

    Returns mask logits [B, Q, h, w] and class embeddings [Q, B, D].
    """
    normed = self.norm(queries.transpose(0, 1))
    mask_logits = torch.einsum('bqe,behw->bqhw', self.mask_mlp(normed), mask_features)
    return mask_logits, self.class_mlp(normed).transpose(0, 1)


class DaTaSegDecoder(nn.Module):
  """HF's masked-attention layers driven as DaTaSeg drives them.

  Same forward signature and output type as `Mask2FormerMaskedAttentionDecoder`, so HF's
  `Mask2FormerTransformerModule` and `Mask2FormerForUniversalSegmentation.forward` run unchanged;
  `intermediate_hidden_states` carries each layer's class embedding (HF's `class_predictor`, here
  the text classifier, reads them).
  """

  def __init__(self, hf_decoder, config, text_dim=TEXT_EMBEDDING_DIM):
    super().__init__()
    self.layers = hf_decoder.layers  # config.decoder_layers - 1 HF layers.
    self.num_heads = config.num_attention_heads
    self.num_levels = hf_decoder.num_feature_levels
    self.heads = nn.ModuleList(
        PredictionHead(config.hidden_dim, config.mask_feature_size, text_dim)
        for _ in self.layers)

  def attention_mask(self, mask_logits, size):
    """[B * heads, Q, h * w] bool, True = may NOT attend (nn.MultiheadAttention's convention)."""
    resized = F.interpolate(mask_logits.detach(), size=tuple(size), mode='bilinear',
                            align_corners=False)
    blocked = resized.flatten(2) <= 0.0
    blocked = blocked & ~blocked.all(dim=-1, keepdim=True)  # An empty mask attends everywhere.
    return blocked.repeat_interleave(self.num_heads, dim=0)

  def forward(self, inputs_embeds=None, multi_stage_positional_embeddings=None,
              pixel_embeddings=None, encoder_hidden_states=None, query_position_embeddings=None,
              feature_size_list=None, output_attentions=None, output_hidden_states=None,
              return_dict=None):
    hidden_states = inputs_embeds
    attention_mask = None  # DaTaSeg: the initial queries make no prediction.
    masks, class_embeddings = (), ()
    for index, layer in enumerate(self.layers):
      hidden_states = layer(
          hidden_states, index % self.num_levels, None, multi_stage_positional_embeddings,
          query_position_embeddings, encoder_hidden_states,
          encoder_attention_mask=attention_mask)[0]
      mask_logits, class_embedding = self.heads[index](hidden_states, pixel_embeddings)
      masks += (mask_logits,)
      class_embeddings += (class_embedding,)
      if index + 1 < len(self.layers):
        attention_mask = self.attention_mask(
            mask_logits, feature_size_list[(index + 1) % self.num_levels])
    return hf_m2f.Mask2FormerMaskedAttentionDecoderOutput(
        last_hidden_state=hidden_states.transpose(0, 1), hidden_states=None, attentions=None,
        intermediate_hidden_states=class_embeddings, masks_queries_logits=masks)


class TextEmbeddingClassifier(nn.Module):
  """Cosine similarity with frozen text embeddings + a learnable background, / temperature."""

  def __init__(self, num_classes=NUM_CLASSES, text_dim=TEXT_EMBEDDING_DIM,
               temperature=TEMPERATURE, seed=0):
    super().__init__()
    generator = torch.Generator().manual_seed(seed)
    self.register_buffer('text_embeddings', F.normalize(
        torch.randn(num_classes, text_dim, generator=generator), dim=-1))
    self.background_embedding = nn.Parameter(torch.randn(1, text_dim) * 0.02)
    self.scale = 1.0 / temperature

  def forward(self, embeddings):
    """[B, Q, D] class embeddings -> [B, Q, C + 1] logits, background last."""
    embeddings = F.normalize(embeddings, dim=-1)
    classes = embeddings @ self.text_embeddings.t()
    background = embeddings @ F.normalize(self.background_embedding, dim=-1).t()
    return torch.cat([classes, background], dim=-1) * self.scale


def build_model(fpn_norm='group', num_queries=100, num_decoder_layers=9):
  backbone_config = transformers.ResNetConfig(
      embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3],
      layer_type='bottleneck', hidden_act='relu', downsample_in_bottleneck=False,
      out_features=['stage1', 'stage2', 'stage3', 'stage4'])
  config = transformers.Mask2FormerConfig(
      backbone_config=backbone_config, use_pretrained_backbone=False,
      num_queries=num_queries, decoder_layers=num_decoder_layers + 1, num_labels=NUM_CLASSES,
      encoder_layers=0, feature_size=256, mask_feature_size=256, hidden_dim=256,
      dim_feedforward=2048, num_attention_heads=8, dropout=0.0, pre_norm=False,
      enforce_input_projection=True, use_auxiliary_loss=True, output_auxiliary_logits=True)
  model = transformers.Mask2FormerForUniversalSegmentation(config)
  pixel_level = model.model.pixel_level_module
  pixel_level.decoder = FPNPixelDecoder(pixel_level.encoder.channels, config.feature_size,
                                        config.mask_feature_size, fpn_norm)
  transformer = model.model.transformer_module
  transformer.decoder = DaTaSegDecoder(transformer.decoder, config)
  model.class_predictor = TextEmbeddingClassifier()
  del model.criterion  # HF's point-sampled loss: replaced by `dataseg_losses`.
  return model


def stacked_predictions(outputs):
  """-> mask logits [L, B, N, h, w], class logits [L, B, N, C + 1] (deep supervision)."""
  aux = outputs.auxiliary_logits or []
  masks = [a['masks_queries_logits'] for a in aux] + [outputs.masks_queries_logits]
  classes = [a['class_queries_logits'] for a in aux] + [outputs.class_queries_logits]
  return torch.stack(masks), torch.stack(classes)


# ---------------------------------------------------------------------------------------------
# Dense matching and losses (DaTaSeg's, COCO panoptic weights, no MERGE).
# ---------------------------------------------------------------------------------------------
def pairwise_dice(probs, gt):
  """[N, K] x [M, K] -> [N, M]: 1 - (2 p.t + 1) / (sum p + sum t + 1)."""
  intersection = probs @ gt.t()
  return 1.0 - (2.0 * intersection + 1.0) / (
      probs.sum(-1)[:, None] + gt.sum(-1)[None, :] + 1.0)


def pairwise_focal(logits, gt):
  """[N, K] logits x [M, K] 0/1 -> [N, M] mean sigmoid focal loss over the K pixels."""
  probs = logits.sigmoid()
  positive = FOCAL_ALPHA * (1 - probs) ** FOCAL_GAMMA * F.softplus(-logits)
  negative = (1 - FOCAL_ALPHA) * probs ** FOCAL_GAMMA * F.softplus(logits)
  return (positive @ gt.t() + negative @ (1 - gt).t()) / logits.shape[-1]


def match(mask_logits, class_logits, targets):
  """Hungarian matching of one layer's predictions: list of (query indices, GT indices)."""
  matches = []
  with torch.no_grad():
    for b, (gt_masks, gt_classes) in enumerate(targets):
      cost = -MU_CE * class_logits[b].log_softmax(-1)[:, gt_classes]
      flat_logits = mask_logits[b].flatten(1)
      flat_gt = gt_masks.flatten(1)
      if MU_DICE:
        cost = cost + MU_DICE * pairwise_dice(flat_logits.sigmoid(), flat_gt)
      if MU_FOCAL:
        cost = cost + MU_FOCAL * pairwise_focal(flat_logits, flat_gt)
      rows, cols = optimize.linear_sum_assignment(cost.numpy())
      matches.append((torch.as_tensor(rows, dtype=torch.long),
                      torch.as_tensor(cols, dtype=torch.long)))
  return matches


def sigmoid_focal(logits, gt):
  """Aligned [..., K] -> [...] mean focal loss over pixels."""
  probs = logits.sigmoid()
  ce = F.binary_cross_entropy_with_logits(logits, gt, reduction='none')
  prob_of_target = probs * gt + (1 - probs) * (1 - gt)
  alpha_t = FOCAL_ALPHA * gt + (1 - FOCAL_ALPHA) * (1 - gt)
  return (alpha_t * (1 - prob_of_target) ** FOCAL_GAMMA * ce).mean(-1)


def dice(probs, gt):
  """Aligned [..., K] -> [...]."""
  return 1.0 - (2.0 * (probs * gt).sum(-1) + 1.0) / (probs.sum(-1) + gt.sum(-1) + 1.0)


def dataseg_losses(mask_logits, class_logits, targets, matches=None):
  """Deep-supervised DaTaSeg losses with the last layer's matching reused for every layer.

  Args:
    mask_logits: [L, B, N, h, w]; class_logits: [L, B, N, C + 1], background last.
    targets: per image (GT masks float [M_b, h, w], GT classes long [M_b]).
    matches: precomputed `match` of the last layer, or None to compute it.

  Returns:
    dict of scalar tensors: ce, focal, dice, total.
  """
  num_layers, _, num_queries, num_columns = class_logits.shape
  if matches is None:
    matches = match(mask_logits[-1], class_logits[-1], targets)
  background = num_columns - 1
  target_classes = torch.full(class_logits.shape[1:3], background, dtype=torch.long)
  for b, ((rows, cols), (_, gt_classes)) in enumerate(zip(matches, targets)):
    target_classes[b, rows] = gt_classes[cols]
  class_weights = torch.ones(num_columns)
  class_weights[background] = BACKGROUND_WEIGHT
  # Mean over entries weighted by their class weight, per layer (DaTaSeg's normalisation).
  ce = sum(F.cross_entropy(class_logits[l].reshape(-1, num_columns),
                           target_classes.reshape(-1), weight=class_weights)
           for l in range(num_layers))

  batch_index = torch.cat([torch.full_like(rows, b) for b, (rows, _) in enumerate(matches)])
  query_index = torch.cat([rows for rows, _ in matches])
  gt = torch.cat([gt_masks[cols] for (_, cols), (gt_masks, _) in zip(matches, targets)])
  num_masks = max(sum(len(gt_classes) for _, gt_classes in targets), 1)
  pred = mask_logits[:, batch_index, query_index].flatten(2)   # [L, K, h*w]
  gt = gt.flatten(1)[None]                                       # [1, K, h*w]
  focal = sigmoid_focal(pred, gt.expand_as(pred)).sum() / num_masks
  dice_loss = dice(pred.sigmoid(), gt).sum() / num_masks
  losses = {'ce': LAMBDA_CE * ce, 'focal': LAMBDA_FOCAL * focal, 'dice': LAMBDA_DICE * dice_loss}
  losses['total'] = losses['ce'] + losses['focal'] + losses['dice']
  return losses


# ---------------------------------------------------------------------------------------------
# Data, optimizer, timing.
# ---------------------------------------------------------------------------------------------
def synthetic_batch(batch_size, image_size, num_objects, num_classes=NUM_CLASSES,
                    max_instances=MAX_INSTANCES, seed=0):
  """The TF tool's batch, value for value: `num_objects` disjoint rectangles per image.

  Same draws from the same seeded numpy generator as `benchmark_train_step.synthetic_batch`;
  the GT stays unpadded here (a list of the real masks per image).
  """
  rng = np.random.default_rng(seed)
  side = image_size // 4
  grid = int(np.ceil(np.sqrt(num_objects)))
  cell = side // grid
  targets = []
  for _ in range(batch_size):
    count = min(num_objects, max_instances)
    masks = np.zeros([count, side, side], np.float32)
    classes = np.zeros([count], np.int64)
    for k in range(count):
      row, col = divmod(k, grid)
      top = row * cell + rng.integers(0, cell // 4 + 1)
      left = col * cell + rng.integers(0, cell // 4 + 1)
      bottom = row * cell + cell - rng.integers(0, cell // 4 + 1)
      right = col * cell + cell - rng.integers(0, cell // 4 + 1)
      masks[k, top:bottom, left:right] = 1
      classes[k] = rng.integers(0, num_classes)
    targets.append((torch.from_numpy(masks), torch.from_numpy(classes)))
  images = rng.normal(size=[batch_size, image_size, image_size, 3]).astype(np.float32)
  return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), targets


def build_optimizer(model, learning_rate):
  decay, no_decay = [], []
  for name, parameter in model.named_parameters():
    if not parameter.requires_grad:
      continue
    is_norm_or_bias = parameter.ndim <= 1 or 'norm' in name.lower()
    (no_decay if is_norm_or_bias else decay).append(parameter)
  return torch.optim.AdamW([{'params': decay, 'weight_decay': WEIGHT_DECAY},
                            {'params': no_decay, 'weight_decay': 0.0}], lr=learning_rate)


def median_seconds(function, runs, warmup):
  for _ in range(warmup):
    function()
  timings = []
  for _ in range(runs):
    start = time.perf_counter()
    function()
    timings.append(time.perf_counter() - start)
  return statistics.median(timings), timings


def matmul_peak_gflops(size=2048, runs=5):
  a, b = torch.randn(size, size), torch.randn(size, size)
  seconds, _ = median_seconds(lambda: torch.mm(a, b), runs, 2)
  return 2 * size ** 3 / seconds / 1e9


def count_gflops(function):
  from torch.utils import flop_counter  # pylint: disable=g-import-not-at-top
  counter = flop_counter.FlopCounterMode(display=False)
  with counter:
    function()
  return counter.get_total_flops() / 1e9


def parameter_counts(model):
  count = lambda module: sum(p.numel() for p in module.parameters())
  buffers = lambda module: sum(b.numel() for name, b in module.named_buffers()
                               if 'running' in name)  # BatchNorm statistics, as TF weights.
  m2f = model.model
  transformer = m2f.transformer_module
  heads = count(transformer.decoder.heads)
  rows = [
      ('backbone', count(m2f.pixel_level_module.encoder),
       buffers(m2f.pixel_level_module.encoder)),
      ('pixel_decoder (FPN + 1x1 projections)', count(m2f.pixel_level_module.decoder)
       + count(transformer.input_projections), buffers(m2f.pixel_level_module.decoder)),
      ('transformer_decoder (w/o heads)', count(transformer) - heads
       - count(transformer.input_projections), 0),
      (f'prediction heads ({len(transformer.decoder.heads)})', heads, 0),
      ('classifier', count(model.class_predictor), 0),
  ]
  total = count(model)
  assert total == sum(r[1] for r in rows), (total, rows)
  rows.append(('total', total, sum(r[2] for r in rows)))
  return rows


def main(argv=None):
  args = parse_args(argv)
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.set_flush_denormal(args.flush_denormal)
  torch.manual_seed(0)
  model = build_model(args.fpn_norm)
  images, targets = synthetic_batch(args.batch_size, args.image_size, args.num_objects)
  memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
  model = model.to(memory_format=memory_format)
  images = images.contiguous(memory_format=memory_format)
  optimizer = build_optimizer(model, args.learning_rate)
  parameters = [p for p in model.parameters() if p.requires_grad]

  print(f'CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, '
        f'torch {torch.__version__}, transformers {transformers.__version__}')
  peak = matmul_peak_gflops()
  print(f'float32 2048^3 matmul: {peak:.1f} GFLOP/s')
  print(f'pytorch_reference (HF Mask2Former as DaTaSeg, FPN {args.fpn_norm} norm, dense losses, '
        f'{"channels_last" if args.channels_last else "NCHW"}, flush_denormal='
        f'{args.flush_denormal}): {args.image_size}x{args.image_size}, batch {args.batch_size}, '
        f'{args.num_objects} objects/image, {NUM_CLASSES} classes')
  rows = parameter_counts(model)
  for name, trainable, stats in rows:
    print(f'  params {name:37s} {trainable:11,d} trainable'
          + (f' (+ {stats:,d} BatchNorm statistics)' if stats else ''))
  result = {'tool': 'benchmark_pytorch_reference', 'cpu': cpu_model(),
            'cores': os.cpu_count(), 'threads': torch.get_num_threads(),
            'torch': torch.__version__, 'transformers': transformers.__version__,
            'matmul_gflops': peak, 'image_size': args.image_size,
            'batch_size': args.batch_size, 'num_objects': args.num_objects,
            'fpn_norm': args.fpn_norm, 'channels_last': args.channels_last,
            'flush_denormal': args.flush_denormal, 'runs': args.runs, 'warmup': args.warmup,
            'params': {name: trainable for name, trainable, _ in rows},
            'params_with_batchnorm_statistics': rows[-1][1] + rows[-1][2],
            'timings': {}, 'inference': {}}

  phase = {}

  def train_step():
    optimizer.zero_grad(set_to_none=True)
    start = time.perf_counter()
    outputs = model(images)
    mask_logits, class_logits = stacked_predictions(outputs)
    loss = dataseg_losses(mask_logits, class_logits, targets)['total']
    middle = time.perf_counter()
    loss.backward()
    phase['backward'] = time.perf_counter() - middle
    phase['forward + losses'] = middle - start
    torch.nn.utils.clip_grad_norm_(parameters, GLOBAL_CLIPNORM)
    optimizer.step()
    return loss.item()

  model.train()
  if args.check_steps:
    outputs = model(images)
    mask_logits, class_logits = stacked_predictions(outputs)
    print(f'  check: mask logits {tuple(mask_logits.shape)} [L, B, N, h, w], class logits '
          f'{tuple(class_logits.shape)} [L, B, N, C + 1]')
    losses = []
    for step in range(args.check_steps):
      losses.append(train_step())
      print(f'  check: step {step} loss {losses[-1]:.4f}')
      if not math.isfinite(losses[-1]):
        raise FloatingPointError(f'non-finite loss at step {step}: {losses[-1]}')
    result['check_losses'] = losses

  timings = {}
  step_phases = []

  def timed_step():
    train_step()
    step_phases.append(dict(phase))
  timings['train_step'] = median_seconds(timed_step, args.runs, args.warmup)
  step_phases = step_phases[args.warmup:]

  def forward_backward():
    optimizer.zero_grad(set_to_none=True)
    outputs = model(images)
    dataseg_losses(*stacked_predictions(outputs), targets)['total'].backward()
  step_gflops = count_gflops(forward_backward) if args.flops else None

  if args.parts:
    def forward():
      return stacked_predictions(model(images))
    timings['forward'] = median_seconds(forward, args.runs, 1)
    mask_logits, class_logits = (t.detach() for t in forward())
    timings['matching'] = median_seconds(
        lambda: match(mask_logits[-1], class_logits[-1], targets), args.runs, 1)
    with torch.no_grad():
      timings['matching + losses'] = median_seconds(
          lambda: dataseg_losses(mask_logits, class_logits, targets)['total'].item(),
          args.runs, 1)
    timings['forward + losses + backward'] = median_seconds(forward_backward, args.runs, 1)
    gradients = [p.grad.clone() for p in parameters]

    def update():
      for p, g in zip(parameters, gradients):
        p.grad = g
      torch.nn.utils.clip_grad_norm_(parameters, GLOBAL_CLIPNORM)
      optimizer.step()
    timings['optimizer update'] = median_seconds(update, args.runs, 1)
    for name in ('forward + losses', 'backward'):
      values = [p[name] for p in step_phases]
      timings[f'{name} (inside the step)'] = (statistics.median(values), values)

  step_seconds = timings['train_step'][0]
  for name, (seconds, runs) in timings.items():
    print(f'  {name:30s} {seconds:8.3f} s   (runs: {", ".join(f"{t:.3f}" for t in runs)})')
    result['timings'][name] = {'median_s': seconds, 'runs_s': runs}
  flops_text = ''
  if step_gflops is not None:
    flops_text = (f', {step_gflops:.1f} GFLOP/step, {step_gflops / step_seconds:.1f} GFLOP/s '
                  f'= {100 * step_gflops / step_seconds / peak:.0f}% of matmul peak')
  print(f'  train step: {args.batch_size / step_seconds:.3f} images/s{flops_text}')
  result['train_images_per_s'] = args.batch_size / step_seconds
  result['train_step_gflops'] = step_gflops

  model.eval()
  for size in args.inference_sizes:
    image = torch.randn(1, 3, size, size).contiguous(memory_format=memory_format)

    def infer():
      with torch.no_grad():
        outputs = model(image)
      return outputs.masks_queries_logits.shape, outputs.class_queries_logits.shape
    seconds, runs = median_seconds(infer, args.runs, args.warmup)
    gflops = count_gflops(infer) if args.flops else None
    flops_text = (f', {gflops:.1f} GFLOP, {gflops / seconds:.1f} GFLOP/s = '
                  f'{100 * gflops / seconds / peak:.0f}% of peak') if gflops else ''
    print(f'  inference {size}x{size} batch 1     {seconds:8.3f} s   (runs: '
          f'{", ".join(f"{t:.3f}" for t in runs)}){flops_text}')
    result['inference'][str(size)] = {'median_s': seconds, 'runs_s': runs, 'gflops': gflops}

  if args.json_output:
    with open(args.json_output, 'w') as f:
      json.dump(result, f, indent=1)
  return result


if __name__ == '__main__':
  main()
