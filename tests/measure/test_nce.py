import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.measure._nce import nce


def test_function_of_source_label_is_zero():
    z = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 5])
    y = np.array([0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2, 2])   # y = z // 2
    assert nce(z, y) == pytest.approx(0.0, abs=1e-15)


def test_independent_balanced_is_minus_log_classes():
    # product table: every (z, y) pair appears exactly twice
    zs, ys = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    z = np.repeat(zs.ravel(), 2)
    y = np.repeat(ys.ravel(), 2)
    assert nce(z, y) == pytest.approx(-np.log(4), rel=1e-12)


def test_hand_computed_mixed_table():
    # z=0: y in {0,0,1}; z=1: y in {1}
    z = np.array([0, 0, 0, 1])
    y = np.array([0, 0, 1, 1])
    expected = 0.25 * np.log(1 / 3) + 0.5 * np.log(2 / 3)
    assert nce(z, y) == pytest.approx(expected, rel=1e-12)
    assert nce(z, y) < 0


def test_single_source_label_is_minus_label_entropy():
    y = np.array([0, 1, 1, 2, 2, 2])
    p = np.array([1, 2, 3]) / 6
    assert nce(np.zeros(6), y) == pytest.approx(np.sum(p * np.log(p)), rel=1e-12)


def test_invalid_inputs_raise():
    with pytest.raises(AdvisorError):
        nce(np.array([0, 1, 2]), np.array([0, 1]))
    with pytest.raises(AdvisorError):
        nce(np.array([0, 1, 2]), np.array([1, 1, 1]))
