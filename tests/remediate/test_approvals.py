"""ActionBook: the compare-and-set approval state machine, on memory and file databases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.rca.model import Action
from bot.remediate.approvals import (
    RESTART_ERROR,
    ActionBook,
    ActionStateError,
    Decision,
    hash_action,
    short_hash,
)
from bot.remediate.audit import records, verify_chain
from bot.store import Store
from policies.engine import Judgement, judge, load_policy
from policies.kubectl import parse_kubectl

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
RESTART = Action(
    "rollout_restart", "shop/Deployment/cart", "kubectl -n shop rollout restart deployment/cart"
)
SCALE = Action(
    "scale",
    "shop/Deployment/cart",
    "kubectl -n shop scale deployment/cart --replicas=6",
    {"replicas": 6, "from_replicas": 2},
)
LEVEL_REQUIRED = {"low": 1, "medium": 1, "high": 2}
LEVEL_APPROVERS = {"low": ["@sre-oncall"], "medium": ["@sre-oncall"], "high": ["@sre-leads"]}


def judged(
    verdict: str = "allowed",
    risk: str = "medium",
    *,
    required: int = 1,
    approvers: tuple[str, ...] = ("@sre-oncall",),
    auto: bool = False,
) -> Judgement:
    return Judgement(
        verdict=verdict,  # type: ignore[arg-type]  # any str, as tests need
        risk=risk,  # type: ignore[arg-type]
        reasons=[f"risk {risk}"],
        action=None,
        approvals_required=required,
        auto_execute=auto,
        approvers=approvers,
        approval_expiry=timedelta(minutes=30),
    )


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.memory()
    yield s
    s.close()


@pytest.fixture
def book(store: Store) -> ActionBook:
    return ActionBook(store, clock=lambda: NOW)


async def approve(
    book: ActionBook,
    action_id: str,
    user: str,
    *,
    now: datetime = NOW + timedelta(minutes=1),
    incident_open: bool = True,
    command_hash: str | None = None,
    authorized: bool = True,
) -> Decision:
    """A click as the handler makes it: the hash the message showed, authz decided."""
    rec = await book.get(action_id)
    assert rec is not None
    return await book.approve(
        action_id,
        user,
        now=now,
        incident_open=incident_open,
        command_hash=command_hash or rec.command_hash,
        authorized=authorized,
    )


async def state_of(book: ActionBook, action_id: str) -> str:
    rec = await book.get(action_id)
    assert rec is not None
    return rec.state


def events(store: Store, action_id: str) -> list[str]:
    return [r.event for r in records(store.conn, action_id=action_id)]


async def test_propose_stores_the_judged_action(book: ActionBook, store: Store) -> None:
    policy = load_policy()
    command = "kubectl -n shop scale deployment/cart --replicas=0"  # to zero: high risk
    judgement = judge(parse_kubectl(command), policy, now=NOW)
    assert judgement.action is not None
    rec = await book.propose("INC_1", judgement.action, judgement, proposed_by="rules", now=NOW)
    assert rec.id.startswith("act_") and len(rec.id) == 16
    assert rec.state == "pending" and rec.risk == "high" and rec.approvals_required == 2
    assert rec.approvers == ("@sre-leads",)
    assert rec.command_hash == hash_action(judgement.action) and len(rec.command_hash) == 64
    assert rec.short_hash == short_hash(rec.command_hash) == rec.command_hash[:10]
    assert rec.expires_at == NOW + timedelta(minutes=30)
    assert rec.action == judgement.action and rec.proposed_by == "rules"
    assert events(store, rec.id) == ["proposed"]
    assert await book.get(rec.id) == rec


async def test_command_hash_covers_params_and_ignores_key_order() -> None:
    a = Action("scale", "shop/Deployment/cart", "k", {"replicas": 3, "from_replicas": 2})
    b = Action("scale", "shop/Deployment/cart", "k", {"from_replicas": 2, "replicas": 3})
    c = Action("scale", "shop/Deployment/cart", "k", {"from_replicas": 2, "replicas": 4})
    assert hash_action(a) == hash_action(b) != hash_action(c)


async def test_propose_is_idempotent_while_live(book: ActionBook) -> None:
    first = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    again = await book.propose("INC_1", RESTART, judged(), proposed_by="claude", now=NOW)
    other = await book.propose("INC_2", RESTART, judged(), proposed_by="rules", now=NOW)
    assert again.id == first.id and other.id != first.id
    await book.reject(first.id, "U0ALICE", "not now", now=NOW, authorized=True)
    fresh = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    assert fresh.id != first.id and fresh.state == "pending"
    # An expired pending duplicate is expired, not handed back.
    later = NOW + timedelta(hours=1)
    newest = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=later)
    assert newest.id != fresh.id
    assert await state_of(book, fresh.id) == "expired"


async def test_one_approval_approves_and_a_double_click_is_not_pending(book: ActionBook) -> None:
    rec = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    first = await approve(book, rec.id, "U0ALICE")
    assert first.outcome == "approved" and first.execute
    assert first.record.state == "approved" and first.record.decided_by == "U0ALICE"
    second = await approve(book, rec.id, "U0ALICE")
    assert second.outcome == "not_pending" and "approved" in second.message
    assert second.record.approvals == ("U0ALICE",)


async def test_concurrent_clicks_approve_exactly_once(book: ActionBook) -> None:
    recs = [
        await book.propose(f"INC_{i}", RESTART, judged(), proposed_by="rules", now=NOW)
        for i in range(10)
    ]
    decisions = await asyncio.gather(
        *(approve(book, r.id, user) for r in recs for user in ("U0ALICE", "U0BOB"))
    )
    for rec in recs:
        outcomes = sorted(d.outcome for d in decisions if d.record.id == rec.id)
        assert outcomes == ["approved", "not_pending"]


async def test_two_processes_on_one_file_approve_and_start_once(tmp_path: Path) -> None:
    path = tmp_path / "incident-bot.db"
    one, two = Store.open(path), Store.open(path)
    try:
        book1, book2 = ActionBook(one), ActionBook(two)
        recs = [
            await book1.propose(f"INC_{i}", RESTART, judged(), proposed_by="rules", now=NOW)
            for i in range(10)
        ]
        decisions = await asyncio.gather(
            *(approve(b, r.id, u) for r in recs for b, u in ((book1, "U0A"), (book2, "U0B")))
        )
        starts = await asyncio.gather(
            *(b.start_execution(r.id) for r in recs for b in (book1, book2, book1, book2))
        )
        for i, rec in enumerate(recs):
            outcomes = sorted(d.outcome for d in decisions if d.record.id == rec.id)
            assert outcomes == ["approved", "not_pending"]
            assert sum(starts[4 * i : 4 * i + 4]) == 1
        assert verify_chain(one.conn).ok
        assert verify_chain(one.conn).records == 10 + 10  # proposed + approval, no duplicates
    finally:
        one.close()
        two.close()


async def test_high_risk_needs_two_distinct_approvers(book: ActionBook, store: Store) -> None:
    rec = await book.propose(
        "INC_1", SCALE, judged(risk="high", required=2), proposed_by="rules", now=NOW
    )
    first = await approve(book, rec.id, "U0ALICE")
    assert first.outcome == "recorded" and "1 of 2" in first.message
    assert first.record.state == "pending"
    same = await approve(book, rec.id, "U0ALICE")
    assert same.outcome == "already_approved" and same.record.approvals == ("U0ALICE",)
    other = await approve(book, rec.id, "U0BOB")
    assert other.outcome == "approved" and other.record.state == "approved"
    assert other.record.approvals == ("U0ALICE", "U0BOB")
    assert events(store, rec.id) == ["proposed", "approval", "approval"]


async def test_unauthorized_click_changes_nothing_but_is_audited(
    book: ActionBook, store: Store
) -> None:
    rec = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    refused = await approve(book, rec.id, "U0MALLORY", authorized=False)
    assert refused.outcome == "unauthorized" and "@sre-oncall" in refused.message
    after = await book.get(rec.id)
    assert after == rec  # same state, approvals and version
    audit = records(store.conn, action_id=rec.id)
    assert audit[-1].event == "unauthorized_click" and audit[-1].actor == "U0MALLORY"


async def test_expired_action_is_marked_expired(book: ActionBook) -> None:
    rec = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    late = await approve(book, rec.id, "U0ALICE", now=NOW + timedelta(minutes=30))
    assert late.outcome == "expired" and late.record.state == "expired"
    assert late.record.approvals == ()


async def test_resolved_incident_cancels_on_click(book: ActionBook) -> None:
    rec = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    decision = await approve(book, rec.id, "U0ALICE", incident_open=False)
    assert decision.outcome == "cancelled" and decision.record.state == "cancelled"


async def test_hash_mismatch_is_refused(book: ActionBook) -> None:
    rec = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    decision = await approve(book, rec.id, "U0ALICE", command_hash=hash_action(SCALE))
    assert decision.outcome == "hash_mismatch" and not decision.execute
    assert (await book.get(rec.id)) == rec


async def test_needs_review_is_never_approvable(book: ActionBook) -> None:
    for verdict in ("denied", "needs_review"):
        rec = await book.propose(
            f"INC_{verdict}", RESTART, judged(verdict), proposed_by="claude", now=NOW
        )
        assert rec.state == "needs_review"
        decision = await approve(book, rec.id, "U0ALICE")
        assert decision.outcome == "needs_review" and decision.record.state == "needs_review"
        assert await book.start_execution(rec.id) is False


async def test_unknown_action(book: ActionBook) -> None:
    decision = await book.approve(
        "act_nope", "U0ALICE", now=NOW, incident_open=True, command_hash="x", authorized=True
    )
    assert decision.outcome == "not_found" and decision.record is None


async def test_second_opinion_raises_risk_and_never_lowers_it(book: ActionBook) -> None:
    rec = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    low = await book.set_second_opinion(
        rec.id,
        {"risk": "low"},
        "low",
        ["looks safe"],
        approvals_required=LEVEL_REQUIRED,
        approvers=LEVEL_APPROVERS,
    )
    assert low.risk == "medium" and low.approvals_required == 1
    assert low.second_opinion == {"risk": "low"}
    high = await book.set_second_opinion(
        rec.id,
        {"risk": "high"},
        "high",
        ["shared cache"],
        approvals_required=LEVEL_REQUIRED,
        approvers=LEVEL_APPROVERS,
    )
    assert high.risk == "high" and high.approvals_required == 2
    assert high.approvers == ("@sre-leads",) and "second opinion: shared cache" in high.reasons
    with pytest.raises(ValueError):
        await book.set_second_opinion(rec.id, {}, "critical", [])


async def test_second_opinion_raise_needs_the_policy_mappings(book: ActionBook) -> None:
    rec = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    with pytest.raises(ValueError):
        await book.set_second_opinion(rec.id, {}, "high", ["x"])
    unchanged = await book.get(rec.id)
    assert unchanged is not None and unchanged.risk == "medium"


async def test_second_opinion_veto_and_raise_on_an_approved_action(book: ActionBook) -> None:
    rec = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    await approve(book, rec.id, "U0ALICE")
    raised = await book.set_second_opinion(
        rec.id,
        {"risk": "high"},
        "high",
        ["x"],
        approvals_required=LEVEL_REQUIRED,
        approvers=LEVEL_APPROVERS,
    )
    assert raised.state == "pending" and raised.approvals == ("U0ALICE",)
    vetoed = await book.set_second_opinion(rec.id, {"veto": True}, None, ["drops traffic"])
    assert vetoed.state == "needs_review"
    assert (await approve(book, rec.id, "U0BOB")).outcome == "needs_review"
    assert await book.start_execution(rec.id) is False


async def test_reject(book: ActionBook, store: Store) -> None:
    rec = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    nope = await book.reject(rec.id, "U0MALLORY", "no", now=NOW, authorized=False)
    assert nope.outcome == "unauthorized" and (await book.get(rec.id)) == rec
    done = await book.reject(rec.id, "U0ALICE", "wrong target", now=NOW, authorized=True)
    assert done.outcome == "rejected" and done.record.reason == "wrong target"
    assert (await approve(book, rec.id, "U0BOB")).outcome == "not_pending"
    assert events(store, rec.id) == ["proposed", "unauthorized_click", "rejected"]


async def test_pending_for_filters_by_approver_and_expiry(book: ActionBook) -> None:
    medium = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    high = await book.propose(
        "INC_1",
        SCALE,
        judged(risk="high", required=2, approvers=("S0LEADS", "U0BOB")),
        proposed_by="rules",
        now=NOW,
    )
    later = NOW + timedelta(minutes=5)
    mine = await book.pending_for("U0ALICE", {"@sre-oncall"}, now=later)
    assert [r.id for r in mine] == [medium.id]
    bob = await book.pending_for("U0BOB", set(), now=later)
    assert [r.id for r in bob] == [high.id]
    await approve(book, high.id, "U0BOB")
    assert await book.pending_for("U0BOB", set(), now=later) == []  # already approved by him
    assert await book.pending_for("U0ALICE", {"@sre-oncall"}, now=NOW + timedelta(hours=1)) == []


async def test_expire_due_and_cancel_for_incident(book: ActionBook, store: Store) -> None:
    a = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    b = await book.propose(
        "INC_2", RESTART, judged(), proposed_by="rules", now=NOW + timedelta(minutes=20)
    )
    c = await book.propose("INC_2", SCALE, judged(), proposed_by="rules", now=NOW)
    await approve(book, c.id, "U0ALICE")
    expired = await book.expire_due(NOW + timedelta(minutes=31))
    assert [r.id for r in expired] == [a.id]
    cancelled = await book.cancel_for_incident("INC_2", "incident resolved")
    assert {r.id for r in cancelled} == {b.id, c.id}
    assert all(r.state == "cancelled" for r in cancelled)
    assert await book.start_execution(c.id) is False
    assert events(store, c.id) == ["proposed", "approval", "cancelled"]


async def test_execution_lifecycle(book: ActionBook, store: Store) -> None:
    rec = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    await book.set_message(rec.id, "C1", "1700000000.000100")
    with pytest.raises(ActionStateError):
        await book.finish(rec.id, "succeeded", {})
    await approve(book, rec.id, "U0ALICE")
    assert await book.start_execution(rec.id) is True
    assert await book.start_execution(rec.id) is False
    await book.store_snapshot(rec.id, {"spec": {"replicas": 2}})
    with pytest.raises(ValueError):
        await book.finish(rec.id, "approved", {})
    done = await book.finish(rec.id, "succeeded", {"duration_s": 1.5})
    assert done.state == "succeeded" and done.result == {"duration_s": 1.5}
    assert done.snapshot == {"spec": {"replicas": 2}}
    assert (done.channel, done.message_ts) == ("C1", "1700000000.000100")
    assert events(store, rec.id) == ["proposed", "approval", "snapshot", "executed"]
    executed = records(store.conn, action_id=rec.id)[-1]
    assert executed.details == {"state": "succeeded", "duration_s": 1.5}
    assert executed.command_hash == rec.command_hash


async def test_auto_execute_is_approved_at_once(book: ActionBook) -> None:
    rec = await book.propose(
        "INC_1", RESTART, judged(risk="low", required=0, auto=True), proposed_by="rules", now=NOW
    )
    assert rec.state == "approved" and rec.decided_by == "policy"
    assert rec.approvals_required == 0
    # Without auto_execute a policy's 0 still means one human.
    other = await book.propose("INC_2", RESTART, judged(required=0), proposed_by="rules", now=NOW)
    assert other.state == "pending" and other.approvals_required == 1


async def test_recover_after_a_crash_runs_once_or_fails(tmp_path: Path) -> None:
    file_store = tmp_path / "incident-bot.db"
    store = Store.open(file_store)
    book = ActionBook(store)
    running = await book.propose("INC_1", RESTART, judged(), proposed_by="rules", now=NOW)
    waiting = await book.propose("INC_1", SCALE, judged(), proposed_by="rules", now=NOW)
    stale = await book.propose(
        "INC_2", RESTART, judged(), proposed_by="rules", now=NOW - timedelta(hours=1)
    )
    for rec in (running, waiting):
        await approve(book, rec.id, "U0ALICE")
    await approve(book, stale.id, "U0ALICE", now=NOW - timedelta(minutes=50))
    assert await book.start_execution(running.id)
    store.close()  # the process dies here

    store = Store.open(file_store)
    book = ActionBook(store)
    try:
        recovered = await book.recover(NOW + timedelta(minutes=2))
        assert [(r.id, r.state) for r in recovered] == [
            (running.id, "failed"),
            (waiting.id, "approved"),
        ]
        assert recovered[0].result is not None and recovered[0].result["error"] == RESTART_ERROR
        assert await state_of(book, stale.id) == "expired"
        starts = await asyncio.gather(*(book.start_execution(waiting.id) for _ in range(3)))
        assert sorted(starts) == [False, False, True]
        assert await book.start_execution(running.id) is False  # never twice
        again = await book.recover(NOW + timedelta(minutes=3))
        assert [(r.id, r.state) for r in again] == [(waiting.id, "failed")]
        assert verify_chain(store.conn).ok
    finally:
        store.close()
