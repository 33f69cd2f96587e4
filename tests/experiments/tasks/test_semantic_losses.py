"""MSE, HotDistance, weighted cross-entropy and cross-entropy + Dice losses against numpy transcriptions of their
formulas: zero for a perfect prediction, weight-0 voxels ignored, weight applied once,
gradients that point the right way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dacapo.experiments.tasks.losses import (
    CrossEntropyDiceLoss,
    HotDistanceLoss,
    MSELoss,
    WeightedCrossEntropyLoss,
)

SHAPE = (2, 3, 4, 5, 6)  # B, C, z, y, x


def _rand(shape, seed, low=-1.0, high=1.0) -> torch.Tensor:
    g = np.random.default_rng(seed)
    return torch.tensor(g.uniform(low, high, shape), dtype=torch.float64)


def _weight(shape, seed) -> torch.Tensor:
    w = _rand(shape, seed, 0.0, 3.0)
    w[w < 0.6] = 0.0  # some voxels masked out
    return w


# --- numpy references -------------------------------------------------------------------


def ref_mse(p, t, w) -> float:
    p, t, w = (x.detach().numpy() for x in (p, t, w))
    return float((w * (p - t) ** 2).sum() / p.size)


def ref_bce_logits(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """-(t log σ(x) + (1 - t) log(1 - σ(x)))."""
    s = 1 / (1 + np.exp(-x))
    return -(t * np.log(s) + (1 - t) * np.log(1 - s))


def ref_hot(p, t, w) -> float:
    p, t, w = (x.detach().numpy() for x in (p, t, w))
    c = p.shape[1] // 2
    half = p[:, :c].size
    bce = (w[:, :c] * ref_bce_logits(p[:, :c], t[:, :c])).sum() / half
    mse = (w[:, c:] * (p[:, c:] - t[:, c:]) ** 2).sum() / half
    return float(bce + mse)


def ref_ce(p, t, w) -> float:
    """Σ_v w(v at the true class) · (−log softmax(p)_true) / N voxels."""
    p, t, w = (x.detach().numpy() for x in (p, t, w))
    e = np.exp(p - p.max(axis=1, keepdims=True))
    log_sm = np.log(e / e.sum(axis=1, keepdims=True))
    ce = -(t * log_sm).sum(axis=1)
    wv = (w * t).sum(axis=1)
    return float((wv * ce).sum() / ce.size)


def _one_hot(ids: np.ndarray, c: int) -> torch.Tensor:
    return torch.tensor(np.moveaxis(np.eye(c)[ids], -1, 1))


# --- MSE --------------------------------------------------------------------------------


def test_mse_matches_formula_weight_once_and_ignores_zero_weight():
    p, t, w = _rand(SHAPE, 0), _rand(SHAPE, 1), _weight(SHAPE, 2)
    loss = MSELoss()
    assert loss.compute(p, t, w).item() == pytest.approx(ref_mse(p, t, w), rel=1e-12)
    # weight applied once: doubling it doubles the loss
    assert loss.compute(p, t, 2 * w).item() == pytest.approx(2 * loss.compute(p, t, w).item())
    # voxels of weight 0 do not matter
    p2 = p.clone()
    p2[w == 0] += 100.0
    assert loss.compute(p2, t, w).item() == pytest.approx(loss.compute(p, t, w).item())
    assert loss.compute(t, t, w).item() == 0.0
    assert loss.compute(p, t).item() == pytest.approx(float(((p - t) ** 2).mean()))


def test_mse_gradient_points_towards_target():
    p, t, w = _rand(SHAPE, 3), _rand(SHAPE, 4), _weight(SHAPE, 5)
    p.requires_grad_(True)
    MSELoss().compute(p, t, w).backward()
    expected = 2 * w * (p.detach() - t) / p.numel()
    torch.testing.assert_close(p.grad, expected)
    assert torch.all(p.grad[w == 0] == 0)
    # a small step against the gradient lowers the loss
    with torch.no_grad():
        stepped = p - 0.1 * p.grad / p.grad.abs().max()
    assert MSELoss().compute(stepped, t, w) < MSELoss().compute(p.detach(), t, w)


# --- HotDistance ------------------------------------------------------------------------


def test_hot_distance_loss_matches_formula():
    shape = (2, 4, 5, 6)  # 2D, C = 2 -> 4 channels
    p = _rand(shape, 6, -4, 4)
    t = _rand(shape, 7)
    t[:, :2] = (t[:, :2] > 0).double()
    w = _weight(shape, 8)
    loss = HotDistanceLoss()
    assert loss.compute(p, t, w).item() == pytest.approx(ref_hot(p, t, w), rel=1e-10)
    assert loss.compute(p, t, 2 * w).item() == pytest.approx(2 * loss.compute(p, t, w).item())
    p2 = p.clone()
    p2[w == 0] += 50.0
    assert loss.compute(p2, t, w).item() == pytest.approx(loss.compute(p, t, w).item())


def test_hot_distance_loss_zero_for_perfect_prediction_and_gradient():
    shape = (1, 2, 6, 7)
    t = _rand(shape, 9)
    t[:, :1] = (t[:, :1] > 0).double()
    w = _weight(shape, 10)
    perfect = t.clone()
    perfect[:, :1] = 40.0 * (2 * t[:, :1] - 1)  # logits of ±40 for targets 1 / 0
    assert HotDistanceLoss().compute(perfect, t, w).item() < 1e-12
    p = _rand(shape, 11).requires_grad_(True)
    HotDistanceLoss().compute(p, t, w).backward()
    half = p[:, :1].numel()
    expected = torch.cat(
        [
            w[:, :1] * (torch.sigmoid(p[:, :1].detach()) - t[:, :1]) / half,
            2 * w[:, 1:] * (p[:, 1:].detach() - t[:, 1:]) / half,
        ],
        dim=1,
    )
    torch.testing.assert_close(p.grad, expected)
    # logits of inside voxels are pushed up, outside ones down (where weighted)
    inside = (t[:, :1] == 1) & (w[:, :1] > 0)
    outside = (t[:, :1] == 0) & (w[:, :1] > 0)
    assert torch.all(p.grad[:, :1][inside] < 0) and torch.all(p.grad[:, :1][outside] > 0)


def test_hot_distance_loss_needs_even_channels():
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="even"):
        HotDistanceLoss().compute(x, x, x)


# --- weighted cross-entropy -------------------------------------------------------------


@pytest.mark.parametrize("weight_channels", [3, 1])
def test_cross_entropy_matches_formula(weight_channels):
    rng = np.random.default_rng(12)
    ids = rng.integers(0, 3, (2, 5, 6))
    t = _one_hot(ids, 3)
    p = _rand((2, 3, 5, 6), 13, -3, 3)
    w1 = _weight((2, 1, 5, 6), 14)
    w = w1.expand(2, weight_channels, 5, 6).clone() if weight_channels > 1 else w1
    loss = WeightedCrossEntropyLoss()
    got = loss.compute(p, t, w).item()
    assert got == pytest.approx(ref_ce(p, t, w1.expand_as(p)), rel=1e-10)
    assert loss.compute(p, t, 2 * w).item() == pytest.approx(2 * got)
    # change the logits (not uniformly over classes) where the weight is 0
    p2 = p + (w1 == 0) * torch.tensor([30.0, -5.0, 2.0]).view(1, 3, 1, 1)
    assert loss.compute(p2, t, w).item() == pytest.approx(got)


def test_cross_entropy_perfect_and_gradient():
    rng = np.random.default_rng(15)
    ids = rng.integers(0, 4, (1, 3, 4, 5))
    t = _one_hot(ids, 4)
    w = _weight((1, 4, 3, 4, 5), 16)[:, :1].expand(1, 4, 3, 4, 5).clone()
    perfect = 40.0 * t
    assert WeightedCrossEntropyLoss().compute(perfect, t, w).item() < 1e-12
    p = _rand((1, 4, 3, 4, 5), 17).requires_grad_(True)
    WeightedCrossEntropyLoss().compute(p, t, w).backward()
    n = ids.size
    expected = w[:, :1] * (torch.softmax(p.detach(), dim=1) - t) / n
    torch.testing.assert_close(p.grad, expected)
    # the true class logit is pushed up wherever the voxel counts
    true_grad = (p.grad * t).sum(dim=1)
    assert torch.all(true_grad[w[:, 0] > 0] < 0)


def ref_dice_term(z: np.ndarray, t: np.ndarray, w: np.ndarray, eps: float = 1e-5) -> float:
    """1 - mean_k D_k, looping over voxels: p = softmax(z); a voxel counts for class k when
    its weight at its class(es) is > 0 and it is not in a set (sum t > 1.5) containing k;
    D_k = (2 sum p_k t_k + eps) / (sum p_k + sum t_k + eps) over the counted voxels; classes
    without a counted voxel left out."""
    b, c = z.shape[:2]
    z2, t2, w2 = (a.reshape(b, c, -1) for a in (z, t, w))
    inter, total, seen = np.zeros(c), np.zeros(c), np.zeros(c, bool)
    for i in range(b):
        for v in range(z2.shape[2]):
            e = np.exp(z2[i, :, v] - z2[i, :, v].max())
            p = e / e.sum()
            tv, wv = t2[i, :, v], w2[i, :, v]
            if (wv * tv).sum() <= 0:
                continue
            for k in range(c):
                if tv.sum() > 1.5 and tv[k] > 0:
                    continue
                inter[k] += p[k] * tv[k]
                total[k] += p[k] + tv[k]
                seen[k] = True
    dice = (2 * inter + eps) / (total + eps)
    return float(1 - dice[seen].mean())


def test_cross_entropy_dice_equals_its_formula():
    rng = np.random.default_rng(21)
    z = rng.normal(size=(2, 4, 3, 5)) * 2
    ids = rng.integers(0, 4, (2, 3, 5))
    t = np.moveaxis(np.eye(4)[ids], -1, 1)
    sets = rng.random((2, 3, 5)) < 0.4  # these voxels: one of classes {1, 3}
    t[:, 1] = np.where(sets, 1, t[:, 1])
    t[:, 3] = np.where(sets, 1, t[:, 3])
    t[:, [0, 2]] = np.where(sets[:, None], 0, t[:, [0, 2]])
    w = np.repeat(rng.random((2, 1, 3, 5)) + 0.5, 4, axis=1)
    w[rng.random((2, 4, 3, 5)) < 0.1] = 0  # some voxels weigh 0 at some class
    zt, tt, wt = (torch.from_numpy(a) for a in (z, t, w))
    ce = WeightedCrossEntropyLoss().compute(zt, tt, wt).item()
    for lam in (0.0, 1.0, 2.5):
        got = CrossEntropyDiceLoss(lam).compute(zt, tt, wt).item()
        assert got == pytest.approx(ce + lam * ref_dice_term(z, t, w), rel=1e-10)
    # a perfect prediction: both terms vanish (up to the softmax's tail)
    t1 = np.moveaxis(np.eye(4)[ids], -1, 1)
    perfect = torch.from_numpy(60.0 * t1)
    assert CrossEntropyDiceLoss(1.0).compute(perfect, torch.from_numpy(t1)).item() < 1e-9
    # wrong everywhere: the Dice term is 1, its maximum
    wrong = torch.from_numpy(60.0 * np.roll(t1, 1, axis=1))
    term = CrossEntropyDiceLoss(1.0).compute(wrong, torch.from_numpy(t1)).item() - \
        WeightedCrossEntropyLoss().compute(wrong, torch.from_numpy(t1)).item()
    assert term == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="dice_weight must be >= 0"):
        CrossEntropyDiceLoss(-1.0)


def test_shape_errors_name_the_tensor():
    x = torch.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match="target"):
        MSELoss().compute(x, torch.zeros(1, 2, 4, 5), None)
    with pytest.raises(ValueError, match="weight"):
        MSELoss().compute(x, x, torch.zeros(1, 2, 4, 5))
    with pytest.raises(ValueError, match="weight"):
        WeightedCrossEntropyLoss().compute(x, x, torch.zeros(1, 2, 3, 4))
