import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.measure._entropy import prediction_entropy


@pytest.mark.parametrize("z", [2, 10, 1000])
def test_uniform(z):
    h, hn = prediction_entropy(np.full((5, z), 1.0 / z))
    assert h == pytest.approx(np.log(z), rel=1e-12)
    assert hn == pytest.approx(1.0, rel=1e-12)


def test_one_hot_is_zero():
    h, hn = prediction_entropy(np.eye(4)[[0, 3, 2, 2]])
    assert h == 0.0 and hn == 0.0


def test_mixture_of_rows():
    p = np.array([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    expected = (np.log(2) + 0.0 + np.log(4)) / 3
    h, hn = prediction_entropy(p)
    assert h == pytest.approx(expected, rel=1e-12)
    assert hn == pytest.approx(expected / np.log(4), rel=1e-12)


def test_invalid_inputs_raise():
    with pytest.raises(AdvisorError):
        prediction_entropy(np.ones((3, 1)))
    with pytest.raises(AdvisorError):
        prediction_entropy(np.full((3, 2), 0.7))
