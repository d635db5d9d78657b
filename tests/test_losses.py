import jax
import numpy as np
import pytest
from jax.test_util import check_grads

from landmark_jax import losses

N = 5  # landmark classes; label 5 is non-landmark


@pytest.fixture
def batch():
  rng = np.random.default_rng(0)
  # Repeated labels (1, 3), an absent class (0 never appears), non-landmark samples (5).
  labels = np.array([1, 3, 1, 5, 3, 1, 5, 4], np.int32)
  embeddings = rng.standard_normal((8, 6)).astype(np.float32)
  centers = rng.standard_normal((N, 6)).astype(np.float32)
  return embeddings, labels, centers


def numpy_center_loss(x, y, c, reduction):
  total, count = 0.0, 0
  for xi, yi in zip(x.astype(np.float64), y):
    if yi == N:
      continue
    total += 0.5 * np.sum((xi - c[yi]) ** 2)
    count += 1
  return total / max(count, 1) if reduction == "mean" else total


def numpy_update_centers(c, x, y, alpha):
  new = c.astype(np.float64).copy()
  for j in range(len(c)):
    members = [xi for xi, yi in zip(x.astype(np.float64), y) if yi == j]
    delta = sum((c[j] - xi for xi in members), np.zeros(c.shape[1])) / (1 + len(members))
    new[j] = c[j] - alpha * delta
  return new


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("jit", [False, True])
def test_center_loss_equals_numpy(batch, reduction, jit):
  x, y, c = batch

  def fn(x, y, c):
    return losses.center_loss(x, y, c, N, reduction)

  fn = jax.jit(fn) if jit else fn
  np.testing.assert_allclose(fn(x, y, c), numpy_center_loss(x, y, c, reduction), rtol=1e-5)


def test_center_loss_only_non_landmarks_is_zero(batch):
  x, _, c = batch
  assert float(losses.center_loss(x, np.full(8, N), c, N)) == 0.0


@pytest.mark.parametrize("jit", [False, True])
def test_update_centers_equals_numpy(batch, jit):
  x, y, c = batch

  def fn(c, x, y):
    return losses.update_centers(c, x, y, 0.5, N)

  fn = jax.jit(fn) if jit else fn
  new = np.asarray(fn(c, x, y))
  np.testing.assert_allclose(new, numpy_update_centers(c, x, y, 0.5), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(new[0], c[0])  # absent class: unchanged, bit for bit
  np.testing.assert_array_equal(new[2], c[2])


def test_center_loss_gradients(batch):
  x, y, c = batch
  check_grads(
    lambda x: losses.center_loss(x, y, c, N), (x.astype(np.float64),), order=2, modes=["fwd", "rev"]
  )
  grad_x, grad_c = jax.grad(lambda x, c: losses.center_loss(x, y, c, N), argnums=(0, 1))(x, c)
  assert not np.any(grad_c)  # gradients never reach the centers
  # d/dx_i of ½‖x_i − c_y‖² / count is (x_i − c_y) / count; zero for non-landmarks.
  expected = np.where((y == N)[:, None], 0.0, (x - c[np.minimum(y, N - 1)]) / np.sum(y != N))
  np.testing.assert_allclose(grad_x, expected, rtol=1e-5, atol=1e-7)


def test_softmax_cross_entropy_equals_numpy():
  logits = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
  labels = np.array([0, 5, 2, 2])
  log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  np.testing.assert_allclose(
    losses.softmax_cross_entropy(logits, labels), -log_p[np.arange(4), labels].mean(), rtol=1e-5
  )


def test_arcface_logits_equal_formula():
  rng = np.random.default_rng(2)
  x = rng.standard_normal((3, 4)).astype(np.float32)
  w = rng.standard_normal((4, 5)).astype(np.float32)
  labels = np.array([0, 4, 2])
  cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0))
  expected = 30.0 * cos
  for i, label in enumerate(labels):
    expected[i, label] = 30.0 * np.cos(np.arccos(cos[i, label]) + 0.3)
  np.testing.assert_allclose(
    losses.arcface_logits(x, w, labels, 30.0, 0.3), expected, rtol=1e-4, atol=1e-4
  )


def test_contrastive_loss_equals_pair_loop():
  rng = np.random.default_rng(3)
  x = rng.standard_normal((6, 4)).astype(np.float32)
  labels = np.array([0, 0, 1, N, N, 1])
  u = x / np.linalg.norm(x, axis=1, keepdims=True)
  total, pairs = 0.0, 0
  for i in range(6):
    for j in range(6):
      if i == j:
        continue
      d = np.linalg.norm(u[i] - u[j])
      if labels[i] == labels[j] and labels[i] != N:
        total, pairs = total + d**2, pairs + 1
      elif labels[i] != labels[j]:
        total, pairs = total + max(0.5 - d, 0) ** 2, pairs + 1
  np.testing.assert_allclose(losses.contrastive_loss(x, labels, N, 0.5), total / pairs, rtol=1e-4)
