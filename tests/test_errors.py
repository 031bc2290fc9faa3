"""Bad input is exit 2 with one message; anything else is a failure (exit 1), never bad input."""

from __future__ import annotations

import pytest

from labelloop import labelers
from labelloop.errors import InputError


def test_a_missing_model_or_endpoint_is_bad_input(make_project, cli, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    project = make_project()
    assert cli("prelabel", "--model", "gpt-4o-mini", "-p", project.path) == 2
    assert "needs an endpoint" in capsys.readouterr().err
    assert cli("prelabel", "--model", project.path / "missing.gguf", "-p", project.path) == 2
    assert "GGUF model file not found" in capsys.readouterr().err


def test_a_labeler_that_fails_to_start_is_not_bad_input(make_project, cli, capsys, monkeypatch):
    """Only the options are the user's to fix: an error inside a backend is labelloop's."""

    def broken(*args, **kwargs):
        raise ValueError("a backend's own mistake")

    monkeypatch.setattr(labelers, "get_labeler", broken)
    project = make_project()
    with pytest.raises(ValueError, match="backend's own mistake") as raised:
        project.prelabel(model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1")
    assert not isinstance(raised.value, InputError)
    capsys.readouterr()
    assert (
        cli("prelabel", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "-p", project.path)
        == 1
    )
    assert "ValueError" in capsys.readouterr().err
