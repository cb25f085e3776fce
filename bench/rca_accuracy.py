"""RCA accuracy over every scenario with ``expected``: category, object, fact recall.

Prints numbers, asserts nothing. Run: ``.venv/bin/python bench/rca_accuracy.py [DIR ...]``.
Each scenario goes through the real ``investigate`` path (sandbox API server, real client,
the analyzer chosen by config — rules without an Anthropic key).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.investigate import investigate_scenario  # noqa: E402
from sandbox.scenario import Scenario, load_scenario  # noqa: E402


def report_text(report: dict[str, Any]) -> str:
    """Everything an engineer reads in the RCA, for fact matching."""
    parts = [
        report.get("summary") or "",
        report.get("root_cause") or "",
        report.get("trigger") or "",
    ]
    parts += [e.get("text", "") for e in report.get("evidence", [])]
    parts += [a.get("kubectl", "") for a in report.get("actions", [])]
    return "\n".join(parts).lower()


async def score(scenario: Scenario, settings: Settings) -> dict[str, Any]:
    expected = scenario.expected or {}
    report = await investigate_scenario(scenario, settings)
    text = report_text(report)
    facts = [str(f) for f in expected.get("facts") or []]
    found = [f for f in facts if f.lower() in text]
    return {
        "name": scenario.name,
        "expected_category": expected.get("category"),
        "category": report["category"],
        "expected_object": expected.get("object"),
        "object": report["incident"]["object"],
        "facts": len(facts),
        "facts_found": len(found),
        "missing_facts": [f for f in facts if f not in found],
    }


async def main(dirs: list[Path], as_json: bool) -> None:
    settings = Settings.from_env({})
    scenarios = [load_scenario(p) for d in dirs for p in sorted(d.glob("*.yaml"))]
    scenarios = [s for s in scenarios if s.expected]
    results = [await score(s, settings) for s in scenarios]
    if as_json:
        print(json.dumps(results, indent=1))
        return
    per: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        per[str(r["expected_category"])].append(r)
    print(f"{'category':28}{'n':>4}{'category ok':>13}{'object ok':>11}{'facts':>9}")
    for category in sorted(per):
        rows = per[category]
        cat_ok = sum(r["category"] == r["expected_category"] for r in rows)
        obj_ok = sum(r["object"] == r["expected_object"] for r in rows)
        facts = sum(r["facts"] for r in rows)
        found = sum(r["facts_found"] for r in rows)
        print(
            f"{category:28}{len(rows):>4}{cat_ok:>8}/{len(rows):<4}{obj_ok:>6}/{len(rows):<4}"
            f"{(found / facts if facts else 1):>9.0%}"
        )
    n = len(results)
    cat = sum(r["category"] == r["expected_category"] for r in results)
    obj = sum(r["object"] == r["expected_object"] for r in results)
    both = sum(
        r["category"] == r["expected_category"] and r["object"] == r["expected_object"]
        for r in results
    )
    facts = sum(r["facts"] for r in results)
    found = sum(r["facts_found"] for r in results)
    print(
        f"\noverall: {n} scenarios, category {cat / n:.1%}, object {obj / n:.1%}, "
        f"both {both / n:.1%}, fact recall {found / facts if facts else 1:.1%}"
    )
    wrong = [
        r
        for r in results
        if r["category"] != r["expected_category"] or r["object"] != r["expected_object"]
    ]
    for r in wrong:
        print(
            f"  MISS {r['name']}: got {r['category']} {r['object']}, "
            f"want {r['expected_category']} {r['expected_object']}"
        )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dirs", nargs="*", type=Path, default=[ROOT / "scenarios"])
    parser.add_argument("--json", action="store_true", help="print per-scenario results as JSON")
    args = parser.parse_args()
    asyncio.run(main(args.dirs, args.json))


if __name__ == "__main__":
    cli()
