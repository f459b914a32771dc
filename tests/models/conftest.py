"""Fixtures shared by the advisor.models tests."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def connections(monkeypatch):
    """Every name lookup and outgoing connection attempt, refused as on an offline machine."""
    seen = []

    def refuse(sock, address):
        seen.append(address)
        raise OSError("no network in this test")

    def no_lookup(host, *args, **kwargs):
        seen.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "no name lookups in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    return seen
