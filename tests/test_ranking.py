"""recommend(): hand examples for dot, cosine and raw scores; exclusions; errors."""
import numpy as np
import pytest

from gnnrec_jax.errors import ConfigError, GnnrecError
from gnnrec_jax.evaluation.ranking import recommend

# Item vectors chosen so that dot and cosine rankings differ.
ITEMS = np.array([
    [3.0, 0.0],   # dot 3.0, cos 0.6
    [0.0, 1.0],   # dot 2.0, cos 0.8  (u = [1, 2] / |u| = sqrt 5)
    [1.0, 2.0],   # dot 5.0, cos 1.0
    [-1.0, 0.0],  # dot -1.0
    [0.5, 0.5],   # dot 1.5, cos 0.9487
], np.float32)
USER = np.array([1.0, 2.0], np.float32)


def test_dot_product_with_exclusions():
  items, scores = recommend(USER, ITEMS, exclude_items=[2], k=3)
  np.testing.assert_array_equal(items, [0, 1, 4])
  np.testing.assert_allclose(scores, [3.0, 2.0, 1.5])


def test_cosine():
  items, scores = recommend(USER, ITEMS, exclude_items=[], k=3, cosine=True)
  np.testing.assert_array_equal(items, [2, 4, 1])
  s5 = np.sqrt(5.0)
  np.testing.assert_allclose(scores, [1.0, 1.5 / (s5 * np.sqrt(0.5)), 2.0 / s5], rtol=1e-6)


def test_scores_item_mask_and_ties():
  scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1], np.float32)
  items, top = recommend(scores, exclude_items=[1], k=3, item_mask=[1, 1, 1, 1, 0])
  np.testing.assert_array_equal(items, [3, 0, 2])  # tie 0.5: lower index first
  np.testing.assert_allclose(top, [0.9, 0.5, 0.5])


def test_k_larger_than_rankable_names_both_numbers():
  with pytest.raises(ConfigError, match=r"k=4 .* only 3 of 5"):
    recommend(USER, ITEMS, exclude_items=[0, 1], k=4)
  with pytest.raises(GnnrecError):
    recommend(USER, ITEMS, exclude_items=[9], k=1)
  with pytest.raises(ConfigError, match="cosine"):
    recommend(np.zeros(5), exclude_items=[], k=1, cosine=True)
