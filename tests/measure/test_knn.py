import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.measure._knn import knn_accuracy, linear_probe_accuracy, stratified_folds


def _clusters(per_class, classes, d, seed, spread=0.05):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d)) * 5
    y = np.repeat(np.arange(classes), per_class)
    x = centres[y] + spread * rng.standard_normal((y.size, d))
    return x, y


def _reference_knn(x, y, k, folds, seed):
    """Slow, loop-based reference of the documented algorithm."""
    c = np.unique(y, return_inverse=True)[1]
    fold_id = stratified_folds(c, folds, seed)
    correct = 0
    for i in range(len(c)):
        tr = np.flatnonzero(fold_id != fold_id[i])
        mu = x[tr].mean(axis=0)
        q = (x[i] - mu) / np.linalg.norm(x[i] - mu)
        sims = []
        for j in tr:
            v = (x[j] - mu) / np.linalg.norm(x[j] - mu)
            sims.append((float(q @ v), c[j]))
        top = sorted(sims, key=lambda s: -s[0])[:k]
        best = max(set(lab for _, lab in top),
                   key=lambda lab: (sum(1 for _, l2 in top if l2 == lab),
                                    sum(s for s, l2 in top if l2 == lab), -lab))
        correct += best == c[i]
    return correct / len(c)


def test_separated_clusters_score_one():
    x, y = _clusters(30, 4, 16, seed=0)
    assert knn_accuracy(x, y) == 1.0
    assert linear_probe_accuracy(x, y) == 1.0


def test_shuffled_labels_are_near_chance():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((900, 32))
    y = rng.permutation(np.repeat(np.arange(3), 300))
    assert abs(knn_accuracy(x, y, seed=0) - 1 / 3) < 0.06
    assert abs(linear_probe_accuracy(x, y, seed=0) - 1 / 3) < 0.06


def test_hand_checkable_mislabelled_point():
    # two tight, opposite clusters along x; one sample inside cluster 0 is labelled 1.
    # With k=3 and 2 folds every sample is classified by its own cluster's
    # majority, so exactly the mislabelled one is wrong: 11/12.
    rng = np.random.default_rng(4)
    c0 = np.array([10.0, 0.0]) + 0.01 * rng.standard_normal((6, 2))
    c1 = np.array([-10.0, 0.0]) + 0.01 * rng.standard_normal((5, 2))
    outlier = np.array([[10.0, 0.005]])
    x = np.concatenate([c0, c1, outlier])
    y = np.array([0] * 6 + [1] * 5 + [1])
    for seed in range(5):
        assert knn_accuracy(x, y, k=3, folds=2, seed=seed) == pytest.approx(11 / 12)


@pytest.mark.parametrize("k,folds,seed", [(1, 5, 0), (5, 5, 1), (10, 3, 2)])
def test_matches_loop_reference(k, folds, seed):
    rng = np.random.default_rng(10 + seed)
    x = rng.standard_normal((60, 6)) + 2.0
    y = (x[:, 0] + 0.7 * rng.standard_normal(60) > 2.0).astype(int) + (x[:, 1] > 2.5)
    fast = knn_accuracy(x, y, k=k, folds=folds, seed=seed)
    smallest = np.bincount(y).min()
    f_eff = max(2, min(folds, smallest))
    k_eff = max(1, min(k, smallest * (f_eff - 1) // f_eff))
    assert fast == pytest.approx(_reference_knn(x, y, k_eff, f_eff, seed))


def test_deterministic_per_seed_and_seed_matters():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 8))
    y = (x[:, 0] + rng.standard_normal(200) > 0).astype(int)
    a = knn_accuracy(x, y, seed=3)
    assert a == knn_accuracy(x, y, seed=3)
    assert linear_probe_accuracy(x, y, seed=3) == linear_probe_accuracy(x, y, seed=3)
    values = {knn_accuracy(x, y, seed=s) for s in range(6)}
    assert len(values) > 1


def test_stratified_folds_are_balanced():
    y = np.repeat(np.arange(3), [10, 7, 23])
    fid = stratified_folds(y, 5, seed=0)
    for c in range(3):
        counts = np.bincount(fid[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    sizes = np.bincount(fid, minlength=5)
    assert sizes.max() - sizes.min() <= 1


def test_tiny_classes_reduce_folds_and_singletons_count_as_errors():
    x, y = _clusters(10, 2, 4, seed=5)
    x = np.concatenate([x, [[100.0, 0, 0, 0]]])
    y = np.concatenate([y, [2]])                     # a class with one member
    # clusters are perfectly separated; the singleton can never be predicted
    assert knn_accuracy(x, y) == pytest.approx(20 / 21)
    assert linear_probe_accuracy(x, y) == pytest.approx(20 / 21)


def _ridge_reference(x, y, folds, seed, l2):
    c = np.unique(y, return_inverse=True)[1]
    n_cls = c.max() + 1
    f_eff = max(2, min(folds, np.bincount(c).min()))
    fid = stratified_folds(c, f_eff, seed)
    correct = 0
    for f in range(f_eff):
        tr, te = fid != f, fid == f
        zall = (x - x.mean(0)) / x.std(0)          # documented: global standardisation
        mu = zall[tr].mean(0)
        z = zall[tr] - mu
        t = np.eye(n_cls)[c[tr]]
        w = np.linalg.solve(z.T @ z + l2 * np.eye(x.shape[1]), z.T @ (t - t.mean(0)))
        pred = np.argmax((zall[te] - mu) @ w + t.mean(0), axis=1)
        correct += np.sum(pred == c[te])
    return correct / len(c)


@pytest.mark.parametrize("n,d", [(120, 10), (50, 200), (100, 80)])     # primal and dual paths
def test_linear_probe_matches_ridge_reference(n, d):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, d)) * rng.uniform(0.1, 10, d) + 3.0
    y = np.argmax(x[:, :3] / x[:, :3].std(0) + rng.standard_normal((n, 3)), axis=1)
    for l2 in (0.1, 10.0):
        assert linear_probe_accuracy(x, y, l2=l2, seed=1) == pytest.approx(_ridge_reference(x, y, 5, 1, l2))


def test_constant_features_are_ignored():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((90, 6))
    y = np.argmax(x[:, :3] + 0.3 * rng.standard_normal((90, 3)), axis=1)
    padded = np.hstack([x, np.full((90, 2), 1e5 + 0.1), np.zeros((90, 1))])
    assert linear_probe_accuracy(padded, y) == linear_probe_accuracy(x, y)


def test_linearly_separable_is_one():
    # two classes separated along one axis by a wide margin, noise elsewhere
    rng = np.random.default_rng(6)
    x = rng.standard_normal((300, 5))
    y = np.repeat([0, 1], 150)
    x[:, 0] = np.where(y == 1, 3.0, -3.0) + 0.3 * rng.standard_normal(300)
    assert linear_probe_accuracy(x, y) == 1.0
    # and multi-class clusters in more dimensions than samples (dual path)
    xc, yc = _clusters(8, 5, 100, seed=9, spread=1.0)
    assert linear_probe_accuracy(xc, yc) == 1.0


def test_invalid_inputs_raise():
    x = np.zeros((10, 3))
    with pytest.raises(AdvisorError):
        knn_accuracy(x, np.zeros(10))
    with pytest.raises(AdvisorError):
        knn_accuracy(x, np.arange(9) % 2)
    with pytest.raises(AdvisorError):
        knn_accuracy(x[:3], np.array([0, 1, 0]))
    with pytest.raises(AdvisorError):
        knn_accuracy(x, np.arange(10) % 2, k=0)
    with pytest.raises(AdvisorError):
        linear_probe_accuracy(x, np.arange(10) % 2, folds=1)
    with pytest.raises(AdvisorError):
        linear_probe_accuracy(x, np.arange(10) % 2, l2=0.0)
