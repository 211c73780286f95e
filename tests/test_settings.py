"""Settings: environment variables win over the file; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from callwarden.settings import Settings


def test_defaults_are_the_embedded_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLWARDEN_CONFIG", raising=False)
    s = Settings()
    assert s.database_url.startswith("sqlite:///") and s.counters_url == "memory://"


def test_a_toml_file_sets_values_and_the_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "callwarden.toml"
    config.write_text('port = 9000\ncounters_url = "redis://127.0.0.1:6379/1"\n')
    monkeypatch.setenv("CALLWARDEN_CONFIG", str(config))
    monkeypatch.setenv("CALLWARDEN_PORT", "9100")
    s = Settings()
    assert s.port == 9100 and s.counters_url == "redis://127.0.0.1:6379/1"


def test_an_unknown_key_in_the_file_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "callwarden.toml"
    config.write_text("prot = 9000\n")
    monkeypatch.setenv("CALLWARDEN_CONFIG", str(config))
    with pytest.raises(ValidationError, match="prot"):
        Settings()


def test_a_bad_value_is_an_error_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLWARDEN_CONFIG", raising=False)
    monkeypatch.setenv("CALLWARDEN_PORT", "eighty")
    with pytest.raises(ValidationError, match="port"):
        Settings()
