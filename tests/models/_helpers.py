"""Shared helpers for the advisor.models tests."""

from __future__ import annotations

import contextlib

import pytest
import torch

from advisor.errors import AdvisorError

SIDE = 64  # small inputs keep the suite fast on 2 CPU cores


def batch(seed: int = 0, n: int = 2, side: int = SIDE) -> torch.Tensor:
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


def run_cut(blocks, head, x):
    with torch.no_grad():
        for b in blocks:
            x = b(x)
        return head(x)


@contextlib.contextmanager
def raises_one_line(*fragments: str):
    """Expect an AdvisorError whose message is one line containing every fragment."""
    with pytest.raises(AdvisorError) as info:
        yield info
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg, msg
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"


def assert_params_partitioned(model: torch.nn.Module, blocks, head) -> None:
    """Every parameter of ``model`` is in exactly one block or the head, and nothing else is."""
    owners: dict[int, int] = {}
    for i, b in enumerate(list(blocks) + [head]):
        for p in b.parameters():
            assert id(p) not in owners, f"parameter shared between parts {owners[id(p)]} and {i}"
            owners[id(p)] = i
    assert set(owners) == {id(p) for p in model.parameters()}
