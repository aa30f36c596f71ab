"""Bit-packed evaluation masks: packing in TF, unpacking in NumPy, against a hand reference."""
import numpy as np
import pytest

from official_dataseg.ops import mask_bits


def _reference_pack(masks: np.ndarray, num_masks: int) -> np.ndarray:
  """Plane j, bit b <- mask 8j + b, written with explicit integer arithmetic."""
  planes = -(-num_masks // 8)
  packed = np.zeros((planes,) + masks.shape[1:], np.int64)
  for index in range(masks.shape[0]):
    packed[index // 8] += masks[index].astype(np.int64) * 2 ** (index % 8)
  return packed.astype(np.uint8)


@pytest.mark.parametrize('num_objects,num_masks', [(0, 5), (3, 3), (8, 8), (13, 20), (17, 17)])
def test_pack_matches_reference_and_unpack_inverts(num_objects, num_masks):
  rng = np.random.default_rng(num_objects)
  masks = rng.integers(0, 2, (num_objects, 5, 7)).astype(np.uint8)
  packed = mask_bits.pack_masks(masks, num_masks).numpy()
  assert packed.shape == (mask_bits.num_planes(num_masks), 5, 7)
  np.testing.assert_array_equal(packed, _reference_pack(masks, num_masks))
  unpacked = mask_bits.unpack_masks(packed, num_masks)
  np.testing.assert_array_equal(unpacked[:num_objects], masks)
  assert not unpacked[num_objects:].any()


def test_hand_computed_plane():
  masks = np.zeros((9, 1, 2), np.uint8)
  masks[0, 0, 0] = masks[7, 0, 0] = 1  # 1 + 128
  masks[8, 0, 1] = 1                   # second plane, bit 0
  packed = mask_bits.pack_masks(masks, 9).numpy()
  np.testing.assert_array_equal(packed, [[[129, 0]], [[0, 1]]])


def test_unpack_refuses_more_masks_than_bits():
  with pytest.raises(ValueError, match='hold at most 8 masks'):
    mask_bits.unpack_masks(np.zeros((1, 2, 2), np.uint8), 9)
