"""The CNN path is bit-identical to the code before the one-engine change (issue 20, section 1).

``reference_before.json`` was written by ``record_reference.py`` on the code before the change (twice,
identical). This recomputes the same things with today's code -- the Profile of analyze, the activation
cache's keys and contents, and the trained state of linear_probe, last_k and full_finetune -- and
compares every value exactly: floats by their shortest round-trip text (so by their bits), arrays and
state dicts by sha256. Any change in what the CNN path computes, however small, fails here.

The bits of float32 kernels follow the CPU's vector unit (``torch.backends.cpu.get_cpu_capability()``):
``reference_before.json`` was recorded on the CI machine of 2026-12-04, ``reference_before-AVX2.json`` on
an AVX2 machine on 2026-12-05, both on the code before the change (commit fc37673, with this recorder).
Today's values must equal one of them bit for bit; on an AVX2 machine, that one. On a CPU kind with no
reference of its own the hashes cannot be compared, and every float must agree with the first reference
to float32 accumulation error (relative 1e-4: the two recorded kinds differ by at most 1.7e-5 relative);
record one there to make it exact (a worktree at fc37673 with this recorder).

Since issue 22 a CNN's convolution weights are stored channels-last (``advisor.models.registry.CHANNELS_LAST``):
the same computation in another memory order, so its bits differ. Frozen passes also fold BatchNorm into the
convolutions (``advisor.models.engine.FOLD_BN``): the same function, other roundoff. The bit-for-bit comparison
runs with both off (the computation is unchanged); the tests below run each on this machine and require the
measured values, and the cache's contents, to agree to float32 roundoff.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.engine.record_reference import record

HERE = Path(__file__).parent
REFERENCES = [HERE / "reference_before.json", HERE / "reference_before-AVX2.json"]

#: Fields added to what is recorded after the reference was written (not changes of a recorded value):
#: the Profile's ``shift_measure`` (which shift measure ran; issue 20, section 4) and ``family`` (the
#: network family, which picks the fine-tuning recipe), and ``task_transfer`` (the multi-task measure, issue
#: 21: empty for the recorded single-task Profile). Every recorded value must still be there and equal;
#: anything else new fails.
ADDED_SINCE = ("/profile/shift_measure/", "/profile/family", "/profile/task_transfer")


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


def _differ(want: dict, got: dict) -> list[str]:
    new = {k for k in got.keys() - want.keys() if k.startswith(ADDED_SINCE)}
    return sorted(k for k in want.keys() | (got.keys() - new) if want.get(k) != got.get(k))


def test_cnn_path_matches_the_values_recorded_before_the_engine(one_torch_thread, monkeypatch):
    import torch

    from advisor.models import engine, registry

    monkeypatch.setattr(registry, "CHANNELS_LAST", False)  # the memory order of the recording
    monkeypatch.setattr(engine, "FOLD_BN", False)  # and its computation: BatchNorm as its own layer
    # through JSON like the recorder, so tuples/lists and ints/floats compare as they were written
    raw = json.loads(json.dumps(record(), sort_keys=True))
    got = _leaves(raw)
    assert got["/profile/shift_measure/measure"] == "str:'bn_stats'"  # the recorded shift is the BN one
    assert got["/profile/family"] == "str:'cnn'"
    assert got["/profile/task_transfer#len"] == "0"  # one final task: no cross-task measure
    wants = {p.name: _leaves(json.loads(p.read_text())) for p in REFERENCES}
    diffs = {name: _differ(want, got) for name, want in wants.items()}
    if any(not d for d in diffs.values()):
        return  # bit for bit equal to one recorded reference
    own = HERE / f"reference_before-{torch.backends.cpu.get_cpu_capability()}.json"
    if own.is_file():
        d = diffs[own.name]
        assert not d, [(k, wants[own.name].get(k), got.get(k)) for k in d[:10]]
    # a CPU kind without a reference (AVX512 on the machine of 2026-12-06): no hash can match; the values must, to
    # float32 accumulation error, but for a trained run's accuracy, which may differ by one validation image (a
    # near-tie image flips under any roundoff, as between the two recorded CPU kinds: 0.425 and 0.45 for last_k)
    want = json.loads(REFERENCES[0].read_text())
    one_image = 1.0 / want["profile"]["size"]["split"]["val"]
    bad = [m for m in _close_mismatches(want, raw)
           if not (m[0].startswith("/runs/") and m[0].endswith("accuracy") and len(m) == 3
                   and abs(_number(m[1]) - _number(m[2])) <= one_image + 1e-12)]
    assert not bad, bad[:10]


def _number(v) -> float:
    """A recorded float (stored as ``float.hex`` text, or as a number); NaN for anything else."""
    try:
        return float.fromhex(v) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        return float("nan")


def _close_mismatches(want, got, path="") -> list:
    """Leaves of ``want`` that ``got`` lacks or differs in: floats beyond relative 1e-4 (absolute 1e-6 near
    zero), other values exactly; the sha256 digests (``*_sha``, ``*sha256``) are left out."""
    if isinstance(want, dict):
        out = []
        for k, v in want.items():
            if isinstance(v, str) and (k.endswith("_sha") or "sha256" in k):
                continue
            out += _close_mismatches(v, got.get(k) if isinstance(got, dict) else None, f"{path}/{k}")
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [(path, "length")]
        return [m for i, (a, b) in enumerate(zip(want, got)) for m in _close_mismatches(a, b, f"{path}[{i}]")]
    if isinstance(want, float) and isinstance(got, float):
        ok = (math.isnan(want) and math.isnan(got)) or math.isclose(want, got, rel_tol=1e-4, abs_tol=1e-6)
        return [] if ok else [(path, want, got)]
    return [] if want == got else [(path, want, got)]


def test_channels_last_measures_the_same_values_to_float32_roundoff(one_torch_thread, monkeypatch):
    """The Profile analyze measures (every block's metrics, the shift, the source's) in the channels-last order
    equals the contiguous order's to float32 accumulation error (relative 1e-4, as between CPU kinds above); the
    trained runs' accuracies are left out (a fine-tune of a random network on 40 validation images can flip one
    near-tie image under any roundoff, as the two recorded CPU kinds do), and so are the digests."""
    from advisor.models import engine, registry

    monkeypatch.setattr(engine, "FOLD_BN", False)
    monkeypatch.setattr(registry, "CHANNELS_LAST", False)
    plain = json.loads(json.dumps(record(), sort_keys=True))
    monkeypatch.setattr(registry, "CHANNELS_LAST", True)
    last = json.loads(json.dumps(record(), sort_keys=True))
    assert plain["profile"]["blocks"] and len(plain["profile"]["blocks"]) == len(last["profile"]["blocks"])
    bad = _close_mismatches(plain["profile"], last["profile"], "/profile")
    assert not bad, bad[:10]
    # the two orders did run differently: the stored activations' digests differ (else this test proves nothing)
    assert plain["cache"]["boundary_sha"] != last["cache"]["boundary_sha"]
