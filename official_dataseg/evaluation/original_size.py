"""Maps per-pixel outputs at the model's resolution back to the original image.

At evaluation the image was resized (aspect kept) by `image_info[2]`, shifted
by `image_info[3]` (0 at evaluation), padded to S x S, and the model predicts
at h x w = S / stride. Original pixel i (centre i + 0.5) therefore sits at
input coordinate (i + 0.5) * scale - offset and at output-grid coordinate

    f(i) = ((i + 0.5) * scale - offset) / stride - 0.5

(pixel centres at integers). One `tf.image.crop_and_resize` samples exactly
these points, so the padding is dropped and the resize done in one step,
without first upsampling every channel to S x S. A one-pixel edge-replicating
border makes samples within half a pixel of the border clamp to the edge, as
`tf.image.resize` does.

Works eagerly per image on the host and in-graph (tf.function / SavedModel)
for one image with a dynamic original size.
"""

import tensorflow as tf


def resize_to_original(maps: tf.Tensor, image_info: tf.Tensor,
                       stride: int = 4, method: str = 'bilinear') -> tf.Tensor:
  """Resamples maps on the model's output grid to the original image size.

  Args:
    maps: [h, w, K] (float logits/probabilities, or integer labels with
      method='nearest'), on the grid of the padded input divided by `stride`.
    image_info: [4, 2] float32: original hw, scaled hw, scale yx, offset yx.
    stride: input pixels per output pixel (4 for the mask logits).
    method: 'bilinear' (logits, probabilities, scores) or 'nearest' (labels).

  Returns:
    [H0, W0, K] where (H0, W0) = image_info[0]; float32 for bilinear, the
    input dtype for nearest.
  """
  if method not in ('bilinear', 'nearest'):
    raise ValueError(f"resize_to_original: method must be 'bilinear' or "
                     f"'nearest', got {method!r}.")
  maps = tf.convert_to_tensor(maps)
  image_info = tf.cast(image_info, tf.float32)
  input_dtype = maps.dtype
  if not maps.dtype.is_floating:
    maps = tf.cast(maps, tf.float32)
  padded = tf.pad(maps, [[1, 1], [1, 1], [0, 0]], mode='SYMMETRIC')
  padded_hw = tf.cast(tf.shape(padded)[:2], tf.float32)
  original_hw = image_info[0]
  original_size = tf.cast(tf.round(original_hw), tf.int32)
  scale, offset = image_info[2], image_info[3]
  # Grid coordinate (in the padded map) of the first original pixel centre,
  # and the step between consecutive original pixels.
  first = (0.5 * scale - offset) / stride - 0.5 + 1.0
  step = scale / stride
  last = first + step * (tf.cast(original_size, tf.float32) - 1.0)
  box = tf.concat([first / (padded_hw - 1.0), last / (padded_hw - 1.0)], 0)
  resized = tf.image.crop_and_resize(
      padded[None], box[None], box_indices=[0], crop_size=original_size,
      method=method)[0]
  if method == 'nearest' and not input_dtype.is_floating:
    resized = tf.cast(tf.round(resized), input_dtype)
  return resized


def mask_logits_to_original(mask_logits: tf.Tensor, image_info: tf.Tensor,
                            stride: int = 4) -> tf.Tensor:
  """[N, h, w] float32 mask logits -> [N, H0, W0] float32 (bilinear)."""
  resized = resize_to_original(tf.transpose(mask_logits, [1, 2, 0]),
                               image_info, stride, 'bilinear')
  return tf.transpose(resized, [2, 0, 1])


def label_map_to_original(label_map: tf.Tensor, image_info: tf.Tensor,
                          stride: int = 4) -> tf.Tensor:
  """[h, w] integer labels -> [H0, W0] same dtype (nearest neighbour)."""
  return resize_to_original(label_map[..., None], image_info, stride,
                            'nearest')[..., 0]
