"""The CNN path is bit-identical to the code before the one-engine change (issue 20, section 1).

``reference_before.json`` was written by ``record_reference.py`` on the code before the change (twice,
identical). This recomputes the same things with today's code -- the Profile of analyze, the activation
cache's keys and contents, and the trained state of linear_probe, last_k and full_finetune -- and
compares every value exactly: floats by their shortest round-trip text (so by their bits), arrays and
state dicts by sha256. Any change in what the CNN path computes, however small, fails here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.engine.record_reference import record

REFERENCE = Path(__file__).with_name("reference_before.json")

#: Fields added to what is recorded after the reference was written (not changes of a recorded value):
#: the Profile's ``shift_measure`` (which shift measure ran; issue 20, section 4). Every recorded value
#: must still be there and equal; anything else new fails.
ADDED_SINCE = ("/profile/shift_measure/",)


def _leaves(d, path=""):
    """``{path: exact text}`` of every leaf; floats by ``float.hex`` (NaN equals NaN, -0.0 differs from 0.0)."""
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_leaves(v, f"{path}/{k}"))
        return out
    if isinstance(d, list):
        out = {f"{path}#len": str(len(d))}
        for i, v in enumerate(d):
            out.update(_leaves(v, f"{path}[{i}]"))
        return out
    if isinstance(d, float):
        return {path: "nan" if math.isnan(d) else d.hex()}
    return {path: f"{type(d).__name__}:{d!r}"}


def test_leaves_tell_apart_what_must_differ():
    # the comparison itself: the last bit of a float, -0.0, an int for a float and a missing item all differ
    assert _leaves({"a": 0.1}) != _leaves({"a": 0.1 + 2**-56 * 4})
    assert _leaves({"a": 0.0}) != _leaves({"a": -0.0})
    assert _leaves({"a": 1}) != _leaves({"a": 1.0})
    assert _leaves({"a": [1, 2]}) != _leaves({"a": [1]})
    assert _leaves({"a": float("nan")}) == _leaves({"a": float("nan")})


def test_cnn_path_matches_the_values_recorded_before_the_engine(one_torch_thread):
    want = _leaves(json.loads(REFERENCE.read_text()))
    # through JSON like the recorder, so tuples/lists and ints/floats compare as they were written
    got = _leaves(json.loads(json.dumps(record(), sort_keys=True)))
    new = {k for k in got.keys() - want.keys() if k.startswith(ADDED_SINCE)}
    assert got["/profile/shift_measure/measure"] == "str:'bn_stats'"  # the recorded shift is the BN one
    differ = sorted(k for k in want.keys() | (got.keys() - new) if want.get(k) != got.get(k))
    assert not differ, [(k, want.get(k), got.get(k)) for k in differ[:10]]
