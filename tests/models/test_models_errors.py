"""Every bad input is an AdvisorError with a one-line message naming problem and fix."""

from __future__ import annotations

import os
import socket
import threading

import pytest
import torch
from torchvision.models import get_model

import advisor.models._weights as weights_mod
from advisor.models import create_backbone
from tests.models._helpers import raises_one_line


def test_unknown_model():
    with raises_one_line("unknown model 'foo'", "mobilenet_v2", "resnet18", "timm:NAME"):
        create_backbone("foo", weights="random")


def test_unknown_timm_model():
    with raises_one_line("unknown timm model 'not_a_real_net'", "timm:resnet18"):
        create_backbone("timm:not_a_real_net", weights="random")


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # restored by monkeypatch afterwards
    return os.path.join(str(home), "hub", "checkpoints")


@pytest.fixture
def downloads(monkeypatch):
    """URLs torch.hub (torchvision's weights) tried to download; none is fetched."""
    seen = []

    def record(url, *args, **kwargs):
        seen.append(url)
        raise OSError("no downloads in this test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", record)
    return seen


def test_missing_pretrained_file_offline(empty_torch_home, monkeypatch, connections, downloads):
    """No cached file and no network: a fast, clear error naming the file and the folder."""
    monkeypatch.setattr(weights_mod, "host_reachable", lambda *a, **k: False)
    with raises_one_line("pretrained weights for resnet18 not found", "resnet18-", empty_torch_home, "--weights PATH"):
        create_backbone("resnet18")
    assert connections == [] and downloads == []  # fast: it never waited on the network


def test_missing_pretrained_file_real_connectivity_check(empty_torch_home, monkeypatch, downloads):
    """Without patching: on this offline machine the real check must fail fast (skipped when online)."""
    if weights_mod.host_reachable("download.pytorch.org"):
        pytest.skip("network reachable: torchvision would download instead")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the user allows downloads (advisor/offline.py)
    checks = []
    real = weights_mod.host_reachable
    monkeypatch.setattr(weights_mod, "host_reachable", lambda *a, **k: checks.append(a) or real(*a, **k))
    with raises_one_line("resnet18-", empty_torch_home):
        create_backbone("resnet18")
    # fast: one bounded connectivity check (see the next test), then no download attempt
    assert checks == [("download.pytorch.org",)] and downloads == []


def test_missing_pretrained_file_by_default_asks_nothing_of_the_network(empty_torch_home, monkeypatch, connections,
                                                                         downloads):
    """advisor's default (HF_HUB_OFFLINE=1, advisor/offline.py): no connectivity check, no download; the error
    says how to allow one. HF_HUB_OFFLINE=0 brings the check back."""
    checks = []
    monkeypatch.setattr(weights_mod, "host_reachable", lambda *a, **k: checks.append(a) or False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with raises_one_line("pretrained weights for resnet18 not found", empty_torch_home, "HF_HUB_OFFLINE=0"):
        create_backbone("resnet18")
    assert checks == [] and connections == [] and downloads == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with raises_one_line("pretrained weights for resnet18 not found", "unreachable"):
        create_backbone("resnet18")
    assert checks == [("download.pytorch.org",)] and connections == [] and downloads == []


def test_connectivity_check_does_not_wait_for_a_hanging_connection(monkeypatch):
    """A black-holed network (a connection attempt that never answers) does not block the check."""
    release, ended = threading.Event(), threading.Event()

    def hang(*args, **kwargs):
        release.wait(30)
        ended.set()
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    try:
        assert weights_mod.host_reachable("download.pytorch.org", timeout=0.05) is False
        assert not ended.is_set()  # it answered while the attempt still hung: bounded by its timeout
    finally:
        release.set()


def test_missing_timm_pretrained(tmp_path, monkeypatch, connections):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(weights_mod, "host_reachable", lambda *a, **k: False)
    with raises_one_line("pretrained weights for timm:resnet18 not found", "--weights PATH"):
        create_backbone("timm:resnet18")
    assert connections == []  # fast: the Hugging Face cache was asked offline, the network never
    assert constants.HF_HUB_OFFLINE is False or os.environ.get("HF_HUB_OFFLINE")


def test_missing_weights_path(tmp_path):
    missing = str(tmp_path / "nope.pth")
    with raises_one_line(f"weights file {missing} not found", "--weights"):
        create_backbone("resnet18", weights=missing)


def test_garbage_weights_file(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint\n" * 10)
    with raises_one_line(f"cannot read weights file {path}", "state_dict"):
        create_backbone("resnet18", weights=str(path))


def test_weights_file_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with raises_one_line("not a state dict"):
        create_backbone("resnet18", weights=str(path))
    path2 = tmp_path / "mixed.pth"
    torch.save({"a": torch.zeros(1), "b": "text"}, path2)
    with raises_one_line("not a state dict"):
        create_backbone("resnet18", weights=str(path2))


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    with raises_one_line(f"cannot read weights file {path}"):
        create_backbone("resnet18", weights=str(path))


def test_mismatched_state_dict(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(get_model("resnet18", weights=None).state_dict(), path)
    with raises_one_line("does not fit resnet34", "keys mismatched", "missing layer"):
        create_backbone("resnet34", weights=str(path))


def test_state_dict_with_extra_and_reshaped_keys(tmp_path):
    sd = get_model("resnet18", weights=None).state_dict()
    sd["extra.weight"] = torch.zeros(3)
    sd["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / "odd.pth"
    torch.save(sd, path)
    with raises_one_line("2 keys mismatched", "unexpected extra.weight", "conv1.weight"):
        create_backbone("resnet18", weights=str(path))


def test_cuda_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with raises_one_line("CUDA is not available", "--device cpu"):
        create_backbone("resnet18", weights="random", device="cuda")
    bb = create_backbone("mobilenet_v3_small", weights="random", device="auto")
    assert bb.device.type == "cpu"


def test_unknown_device():
    with raises_one_line("device 'tpu'", "cpu, cuda"):
        create_backbone("resnet18", weights="random", device="tpu")


def test_unknown_block_name():
    bb = create_backbone("mobilenet_v3_small", weights="random")
    assert bb.block_index("ir3") == 3
    with raises_one_line("unknown block 'layer9'", "stem", "conv_last"):
        bb.block_index("layer9")
