"""`callwarden surveillance`: detector policies and the action policy from the shell, stored
and audited like through the API; a bad parameter exits 2 naming the field."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from callwarden.adapters.cli.main import app
from callwarden.core.admission.policy import RuleMode
from callwarden.core.detectors.base import Severity, SuggestedAction
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import AuditQuery, PageRequest
from callwarden.settings import Settings

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_policies_are_set_shown_and_dropped_from_the_shell(sqlite_url: str) -> None:
    db = ["--database-url", sqlite_url]
    listed = run("surveillance", "detectors", *db)
    assert "irsf [FRD-1, FRD-2] observe: high_cost_per_minute=0.1" in listed
    shown = run(
        "surveillance",
        "set",
        "irsf",
        "--mode",
        "enforce",
        "--param",
        "fast_score=4.5",
        "--allow-destination",
        "44909",
        *db,
    )
    assert json.loads(shown)["params"]["fast_score"] == 4.5
    assert json.loads(run("surveillance", "show", *db))["irsf"]["mode"] == "enforce"
    run(
        "surveillance",
        "action-policy",
        "--set",
        '{"by_severity": {"high": "throttle"}, "throttle": {"attempts_per_second": 2}}',
        *db,
    )
    platform = Platform.build(Settings(database_url=sqlite_url))
    try:
        config = platform.surveillance.config
        (policy,) = config.policies(SYSTEM, "default").values()
        assert policy.mode is RuleMode.ENFORCE and policy.allow_destinations == ("44909",)
        actions = config.action_policy(SYSTEM)
        assert actions.by_severity == {Severity.HIGH: SuggestedAction.THROTTLE}
        assert actions.throttle.attempts_per_second == 2
        audit = platform.audit.list(SYSTEM, AuditQuery(), PageRequest(limit=50))
        assert {"detector_policy.set", "action_policy.set"} <= {e.action for e in audit.items}
    finally:
        platform.close()
    assert "policy dropped" in run("surveillance", "unset", "irsf", *db)
    assert json.loads(run("surveillance", "show", *db)) == {}


def test_bad_input_exits_2_naming_the_field(sqlite_url: str) -> None:
    db = ["--database-url", sqlite_url]
    bad = run("surveillance", "set", "irsf", "--param", "fast_score=-1", *db, code=2)
    assert "params.fast_score" in bad
    assert "detector" in run("surveillance", "set", "nope", *db, code=2)
    assert "tenant_id" in run(
        "surveillance", "show", "--tenant", "tn_0000000000000000", *db, code=2
    )
    assert "threshold" in run(
        "surveillance", "action-policy", "--set", '{"threshold": "severe"}', *db, code=2
    )
