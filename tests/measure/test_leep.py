import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.measure._leep import leep


def test_hand_computed_two_samples():
    theta = np.array([[0.8, 0.2], [0.3, 0.7]])
    y = np.array([0, 1])
    # P(y,z) = [[.4,.1],[.15,.35]], P(z) = [.55,.45]
    # sample 1: .8*(.4/.55) + .2*(.1/.45) = 62/99 ; sample 2: .3*(.15/.55) + .7*(.35/.45) = 62/99
    assert leep(theta, y) == pytest.approx(np.log(62 / 99), rel=1e-12)


def test_hand_computed_asymmetric():
    theta = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    y = np.array([0, 0, 1])
    joint = np.array([[1.5, 0.5], [0.0, 1.0]]) / 3
    cond = joint / joint.sum(axis=0)
    expected = np.mean(np.log([0.5 * cond[0, 0] + 0.5 * cond[0, 1], cond[0, 0], cond[1, 1]]))
    assert leep(theta, y) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(np.mean(np.log([2 / 3, 1.0, 2 / 3])))


def test_one_hot_identity_is_zero():
    z = np.array([0, 1, 2, 1, 0, 2, 2])
    theta = np.eye(3)[z]
    assert leep(theta, z) == pytest.approx(0.0, abs=1e-12)


def test_bounded_above_by_zero():
    rng = np.random.default_rng(0)
    for _ in range(5):
        logits = rng.standard_normal((200, 7)) * 3
        theta = np.exp(logits)
        theta /= theta.sum(axis=1, keepdims=True)
        y = rng.integers(0, 4, 200)
        value = leep(theta, y)
        assert value <= 0.0
        assert value < -0.5          # uninformative source: well below 0


def test_invalid_inputs_raise():
    theta = np.full((4, 2), 0.5)
    with pytest.raises(AdvisorError):
        leep(theta, np.array([0, 1, 0]))
    with pytest.raises(AdvisorError):
        leep(theta, np.zeros(4))
    with pytest.raises(AdvisorError):
        leep(np.full((4, 2), 0.4), np.array([0, 1, 0, 1]))   # rows do not sum to 1
