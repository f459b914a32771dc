import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.measure._domain import domain_classifier


def test_same_distribution_is_chance():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((600, 10))
    b = rng.standard_normal((500, 10))
    acc, pad = domain_classifier(a, b)
    assert abs(acc - 0.5) < 0.05
    assert 0.0 <= pad < 0.2
    assert pad == pytest.approx(max(0.0, 2 * (1 - 2 * (1 - acc))))


def test_well_separated_is_perfect():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((300, 10))
    b = rng.standard_normal((400, 10)) + 4.0
    acc, pad = domain_classifier(a, b)
    assert acc == 1.0
    assert pad == 2.0


def test_partial_shift_in_between_and_deterministic():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((400, 4))
    b = rng.standard_normal((400, 4)) + np.array([1.0, 0, 0, 0])
    acc, pad = domain_classifier(a, b, seed=3)
    # Bayes accuracy for a unit mean shift along one axis: Phi(0.5) ~ 0.69
    assert 0.62 < acc < 0.76
    assert pad == pytest.approx(2 * (1 - 2 * (1 - acc)))
    assert domain_classifier(a, b, seed=3) == (acc, pad)


def test_invalid_inputs_raise():
    with pytest.raises(AdvisorError):
        domain_classifier(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(AdvisorError):
        domain_classifier(np.zeros((1, 3)), np.zeros((10, 3)))
    with pytest.raises(AdvisorError):
        domain_classifier(np.zeros((10, 3)), np.zeros((10, 3)), folds=1)
