"""Matching-cost and loss weights of DaTaSeg, one set per training dataset.

The mu (`matching_*`) weights build the Hungarian matching cost, the lambda
weights (`ce`, `focal`, `dice`, `projection`) the training loss (paper Eqns. 4
and 5). The factory functions return the values of appendix Table 13; the
class defaults are the COCO panoptic row.
"""
import dataclasses

from official.modeling import hyperparams


@dataclasses.dataclass
class LossWeights(hyperparams.Config):
  """Weights of the matching cost (mu) and of the loss (lambda) terms.

  Attributes:
    matching_ce: mu_ce, class cross-entropy cost.
    matching_focal: mu_focal, sigmoid focal mask cost.
    matching_dice: mu_dice, dice mask cost.
    matching_projection: mu_proj, BoxInst projection cost.
    ce: lambda_ce, class cross-entropy loss.
    focal: lambda_focal, sigmoid focal mask loss.
    dice: lambda_dice, dice mask loss.
    projection: lambda_proj, BoxInst projection loss.
    background_weight: weight of the background ("no object") class in the
      cross-entropy (Mask2Former's `empty_weight`).
    focal_alpha: alpha of the sigmoid focal loss.
    focal_gamma: gamma of the sigmoid focal loss.
  """
  matching_ce: float = 1.0
  matching_focal: float = 0.0
  matching_dice: float = 1.0
  matching_projection: float = 0.0
  ce: float = 1.0
  focal: float = 20.0
  dice: float = 5.0
  projection: float = 0.0
  background_weight: float = 0.05
  focal_alpha: float = 0.25
  focal_gamma: float = 2.0


def ade_semantic_loss_weights() -> LossWeights:
  """ADE20K semantic (appendix Table 13): mu = lambda = (1, 20, 5, 0)."""
  return LossWeights(
      matching_ce=1.0, matching_focal=20.0, matching_dice=5.0,
      matching_projection=0.0,
      ce=1.0, focal=20.0, dice=5.0, projection=0.0)


def coco_panoptic_loss_weights() -> LossWeights:
  """COCO panoptic (Table 13): mu = (1, 0, 1, 0), lambda = (1, 20, 5, 0)."""
  return LossWeights(
      matching_ce=1.0, matching_focal=0.0, matching_dice=1.0,
      matching_projection=0.0,
      ce=1.0, focal=20.0, dice=5.0, projection=0.0)


def o365_box_loss_weights() -> LossWeights:
  """Objects365 boxes (Tables 9, 13): mu (1, 0, 0, .5), lambda (1, 0, 0, 2)."""
  return LossWeights(
      matching_ce=1.0, matching_focal=0.0, matching_dice=0.0,
      matching_projection=0.5,
      ce=1.0, focal=0.0, dice=0.0, projection=2.0)
