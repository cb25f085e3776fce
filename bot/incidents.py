"""Turning alert notifications into incidents, idempotently.

:meth:`IncidentEngine.apply` runs on the store's thread inside one transaction: it records
each alert's state event (``fingerprint|startsAt|status``; an event seen before changes
nothing), attaches firing alerts to an open incident with the same grouping key or opens a
new one, resolves alerts and incidents, tracks flapping, queues the Slack messages in the
outbox and marks the inbox row done — all or nothing.

Flapping: each time a resolved incident fires again within the flap window it is reopened
(not duplicated). When it has already fired ``flap_cycles`` times within the window before
this re-fire, it is *flapping*: one notice goes to the thread and further fire/resolve
replies are held back (the parent message still shows the current state) until a re-fire
finds fewer cycles in the window, which posts a "notifications resumed" reply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot import messages
from bot.config import Settings
from bot.silence_store import active_silence, ensure_schema
from bot.store import Store
from bot.targets import ObjectRef, group_key
from bot.webhook import AlertPayload, WebhookPayload, alert_fingerprint


@dataclass
class Applied:
    """What one notification changed."""

    new_incidents: list[str] = field(default_factory=list)
    resolved_incidents: list[str] = field(default_factory=list)
    duplicates: int = 0
    processed: int = 0
    queued_messages: int = 0


# Alerts joining an open incident are announced in one reply per notification, naming at
# most JOIN_NAMES_SHOWN of them, and not at all once the incident holds JOIN_REPLY_LIMIT
# alerts (a cluster-wide failure must not turn into a thousand replies).
JOIN_NAMES_SHOWN = 5
JOIN_REPLY_LIMIT = 20


class IncidentEngine:
    """Applies notifications to the store. All methods run on the store's thread."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        ensure_schema(store.conn)  # parent messages show the incident's silence
        # per apply(): incident id -> {"joined"|"cleared": alert subjects}
        self._changes: dict[str, dict[str, list[str]]] = {}

    def apply(
        self,
        inbox_id: int,
        payload: WebhookPayload,
        objects: dict[str, ObjectRef | None],
        received_at: float,
    ) -> Applied:
        """Apply one stored notification and mark it done, in one transaction.

        Args:
            inbox_id: The inbox row this notification came from.
            payload: The parsed notification.
            objects: fingerprint → resolved object (from :class:`WorkloadResolver`).
            received_at: When the webhook arrived (epoch seconds).
        """
        result = Applied()
        touched: dict[str, str] = {}  # incident id -> reason for a parent update
        self._changes = {}
        with self.store.transaction():
            for alert in payload.alerts:
                fp = alert_fingerprint(alert)
                key = f"{fp}|{alert.startsAt.isoformat()}|{alert.status}"
                if self.store.seen_event(key, fp, inbox_id, received_at):
                    result.duplicates += 1
                    continue
                result.processed += 1
                if alert.status == "firing":
                    self._fire(alert, fp, objects.get(fp), payload, received_at, result, touched)
                else:
                    self._resolve(alert, fp, received_at, result, touched)
            for incident_id, changes in self._changes.items():
                self._queue_changes(incident_id, changes, received_at, result)
            # Parents go out once per notification with every alert that joined them.
            for incident_id in result.new_incidents:
                self._queue_parent(incident_id, "parent", received_at, result)
            for incident_id in touched:
                if incident_id not in result.new_incidents:
                    self._queue_parent(incident_id, "update", received_at, result)
            self.store.inbox_finish(inbox_id, "done", None, received_at)
        return result

    # -- firing --------------------------------------------------------------------------

    def _fire(
        self,
        alert: AlertPayload,
        fp: str,
        obj: ObjectRef | None,
        payload: WebhookPayload,
        now: float,
        result: Applied,
        touched: dict[str, str],
    ) -> None:
        existing = self.store.get_alert(fp)
        if existing and existing["status"] == "firing":
            incident = self.store.get_incident(existing["incident_id"])
            if incident and incident["status"] == "firing":
                # Still firing (a re-notification with new annotations): refresh quietly.
                self._put_alert(alert, fp, incident["id"], now)
                return
        alertname = alert.labels.get("alertname", "unnamed")
        namespace = alert.labels.get("namespace", "")
        gkey = group_key(alertname, namespace, obj)
        latest = self.store.latest_incident(gkey)
        if latest and latest["status"] == "firing":
            self._join(latest, alert, fp, now, result)
            touched[latest["id"]] = "joined"
        elif latest and self._within_window(latest, alert):
            self._reopen(latest, alert, fp, now, result)
            touched[latest["id"]] = "reopened"
        else:
            result.new_incidents.append(self._open(alert, fp, obj, gkey, payload, now))

    def _open(
        self,
        alert: AlertPayload,
        fp: str,
        obj: ObjectRef | None,
        gkey: str,
        payload: WebhookPayload,
        now: float,
    ) -> str:
        day = alert.startsAt.strftime("%Y%m%d")
        incident_id = self.store.next_incident_id(day)
        self.store.insert_incident(
            {
                "id": incident_id,
                "group_key": gkey,
                "alertname": alert.labels.get("alertname", "unnamed"),
                "namespace": alert.labels.get("namespace", ""),
                "object": str(obj) if obj else None,
                "severity": alert.labels.get("severity", ""),
                "status": "firing",
                "channel": self.settings.channel_for(alert.labels),
                "summary": alert.annotations.get("summary", ""),
                "external_url": payload.externalURL,
                "opened_at": alert.startsAt.isoformat(),
                "resolved_at": None,
                "reopen_times": json.dumps([alert.startsAt.isoformat()]),
                "flapping": 0,
                "evidence_state": "pending",
                "received_at": now,
            }
        )
        self._put_alert(alert, fp, incident_id, now)
        return incident_id

    def _join(
        self, incident: dict[str, Any], alert: AlertPayload, fp: str, now: float, result: Applied
    ) -> None:
        known = self.store.get_alert(fp)
        self._put_alert(alert, fp, incident["id"], now)
        if _rank(alert.labels.get("severity", "")) > _rank(incident["severity"]):
            self.store.update_incident(incident["id"], {"severity": alert.labels["severity"]})
        if (
            incident["flapping"]
            or incident["id"] in result.new_incidents
            or (known and known["incident_id"] == incident["id"])
        ):
            return
        self._note(incident["id"], "joined", alert)

    def _note(self, incident_id: str, change: str, alert: AlertPayload) -> None:
        by_kind = self._changes.setdefault(incident_id, {})
        by_kind.setdefault(change, []).append(_alert_subject(alert))

    def _queue_changes(
        self, incident_id: str, changes: dict[str, list[str]], now: float, result: Applied
    ) -> None:
        """One reply per notification for alerts that joined or cleared an open incident."""
        incident = self.store.get_incident(incident_id)
        assert incident is not None
        if incident["status"] != "firing" or incident["flapping"]:
            return
        total, firing = self.store.alert_counts(incident_id)
        if total - len(changes.get("joined", [])) >= JOIN_REPLY_LIMIT:
            return  # a big incident: the parent's alert count says enough
        lines = []
        for change, emoji, label in (
            ("joined", ":heavy_plus_sign:", "Also firing"),
            ("cleared", ":heavy_minus_sign:", "Resolved"),
        ):
            subjects = changes.get(change)
            if not subjects:
                continue
            shown = ", ".join(f"`{messages.escape(s)}`" for s in subjects[:JOIN_NAMES_SHOWN])
            more = len(subjects) - JOIN_NAMES_SHOWN
            lines.append(f"{emoji} {label}: {shown}" + (f" (+{more} more)" if more > 0 else ""))
        text = "\n".join(lines) + f"\n{firing} of {total} alerts in this incident firing."
        self._queue(incident, "reply", messages.reply(text), now, result)

    def _reopen(
        self, incident: dict[str, Any], alert: AlertPayload, fp: str, now: float, result: Applied
    ) -> None:
        fired_at = alert.startsAt
        window = timedelta(seconds=self.settings.flap_window)
        times = [datetime.fromisoformat(t) for t in json.loads(incident["reopen_times"])]
        recent = [t for t in times if t >= fired_at - window]
        flapping = len(recent) >= self.settings.flap_cycles
        self.store.update_incident(
            incident["id"],
            {
                "status": "firing",
                "resolved_at": None,
                "flapping": int(flapping),
                "reopen_times": json.dumps([t.isoformat() for t in [*recent, fired_at]]),
            },
        )
        self._put_alert(alert, fp, incident["id"], now)
        minutes = int(self.settings.flap_window // 60)
        if flapping and not incident["flapping"]:
            text = (
                f":warning: *Flapping*: {len(recent)} fire/resolve cycles in {minutes} min. "
                "Notifications for this incident are paused until it settles; "
                "the message above keeps showing the current state."
            )
            self._queue(incident, "reply", messages.reply(text), now, result)
        elif not flapping:
            prefix = (
                ":arrow_forward: Stopped flapping, notifications resumed. "
                if incident["flapping"]
                else ""
            )
            text = f"{prefix}:repeat: Firing again (cycle {len(recent) + 1} in {minutes} min)."
            self._queue(incident, "reply", messages.reply(text), now, result)

    # -- resolving -----------------------------------------------------------------------

    def _resolve(
        self, alert: AlertPayload, fp: str, now: float, result: Applied, touched: dict[str, str]
    ) -> None:
        existing = self.store.get_alert(fp)
        if existing is None or existing["status"] == "resolved":
            return  # never saw it fire, or already resolved: nothing to say
        incident = self.store.get_incident(existing["incident_id"])
        self._put_alert(alert, fp, existing["incident_id"], now)
        if incident is None or incident["status"] == "resolved":
            return
        count, firing = self.store.alert_counts(incident["id"])
        if firing:
            self._note(incident["id"], "cleared", alert)
            return
        ended = alert.endsAt or datetime.fromtimestamp(now, UTC)
        self.store.update_incident(
            incident["id"], {"status": "resolved", "resolved_at": ended.isoformat()}
        )
        touched[incident["id"]] = "resolved"
        result.resolved_incidents.append(incident["id"])
        if not incident["flapping"]:
            fired = datetime.fromisoformat(json.loads(incident["reopen_times"])[-1])
            took = messages.human_duration((ended - fired).total_seconds())
            text = f":white_check_mark: *Resolved* after {took}" + (
                f" — all {count} alerts cleared." if count > 1 else "."
            )
            self._queue(incident, "reply", messages.reply(text), now, result)

    # -- helpers -------------------------------------------------------------------------

    def _within_window(self, incident: dict[str, Any], alert: AlertPayload) -> bool:
        if not incident["resolved_at"]:
            return False
        resolved = datetime.fromisoformat(incident["resolved_at"])
        return alert.startsAt - resolved <= timedelta(seconds=self.settings.flap_window)

    def _queue_parent(self, incident_id: str, kind: str, now: float, result: Applied) -> None:
        incident = self.store.get_incident(incident_id)
        assert incident is not None
        payload = parent_payload(self.store, incident_id, datetime.fromtimestamp(now, UTC))
        self._queue(incident, kind, payload, now, result)

    def _queue(
        self,
        incident: dict[str, Any],
        kind: str,
        payload: messages.Payload,
        now: float,
        result: Applied,
    ) -> None:
        self.store.enqueue(incident["id"], incident["channel"], kind, payload, now)
        result.queued_messages += 1

    def _put_alert(self, alert: AlertPayload, fp: str, incident_id: str, now: float) -> None:
        self.store.put_alert(
            {
                "fingerprint": fp,
                "incident_id": incident_id,
                "alertname": alert.labels.get("alertname", "unnamed"),
                "status": alert.status,
                "labels": json.dumps(alert.labels, sort_keys=True),
                "annotations": json.dumps(alert.annotations, sort_keys=True),
                "starts_at": alert.startsAt.isoformat(),
                "ends_at": alert.endsAt.isoformat() if alert.endsAt else None,
                "generator_url": alert.generatorURL,
                "updated_at": now,
            }
        )


def parent_payload(store: Store, incident_id: str, now: datetime) -> messages.Payload:
    """The incident's parent message as of ``now`` (on the store's thread).

    Shows the silence in force at ``now``, if any; used for the first post and every update.
    """
    incident = store.get_incident(incident_id)
    first = store.first_alert(incident_id)
    assert incident is not None and first is not None
    count, _ = store.alert_counts(incident_id)
    silence = active_silence(store, incident_id, now)
    return messages.parent_message(incident, first, count, silence)


def _rank(severity: str) -> int:
    return messages.SEVERITY_RANK.get(severity.lower(), 0)


def _alert_subject(alert: AlertPayload) -> str:
    labels = alert.labels
    for key in ("pod", "deployment", "statefulset", "daemonset", "job_name", "node", "instance"):
        if labels.get(key):
            return f"{key}={labels[key]}"
    return labels.get("alertname", "alert")
