"""Every scenario with ``expected`` through the real investigation: category and object."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.investigate import investigate_scenario
from sandbox.scenario import load_scenario

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
async def test_rules_name_the_expected_cause(path: Path) -> None:
    scenario = load_scenario(path)
    if not scenario.expected:
        pytest.skip("no expected outcome in this scenario")
    # A scenario's metrics are loaded into a real Prometheus on loopback when the binaries
    # exist (CI installs them), exactly as `investigate --scenario` does.
    report = await investigate_scenario(scenario, Settings())
    expected = scenario.expected
    assert (report["category"], report["incident"]["object"]) == (
        expected["category"],
        expected["object"],
    ), report["summary"]
    assert report["analyzer"] == "rules"
