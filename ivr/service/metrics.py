"""``GET /metrics``: Prometheus text format (prometheus_client), read from the database at scrape
time, so every counter is exactly what the tables hold (across restarts, and whichever process
dialed) and a scrape after a campaign matches its report.

Series (labels in braces):

* ``ivr_calls_in_flight`` attempts not ended; ``ivr_live_calls`` survey calls in progress
* ``ivr_attempts_total{campaign,outcome,sip_code,q850_cause}``
* ``ivr_contacts{campaign,state}``, ``ivr_dialer_queue_depth{campaign}`` (due now)
* ``ivr_campaign_answer_rate{campaign}``, ``ivr_campaign_completion_rate{campaign}``
* ``ivr_turn_latency_seconds`` histogram: caller's end of speech -> next prompt (voice turns)
* ``ivr_asr_turns_total{result}``, ``ivr_asr_confidence{result}`` histogram (accepted,
  confirmed, rejected, no_input, dtmf)
* ``ivr_callerid_health_score{number,pool,state}``, ``ivr_callerid_in_rotation{number}``
* ``ivr_webhook_deliveries{event,state}``, ``ivr_webhook_backlog`` (queued + delivering)
* ``ivr_outbox_messages{state}``, ``ivr_events_total{type,decision}``, ``ivr_dnc_numbers``
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import sqlite_utils
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ivr.store import iso

LATENCY_BUCKETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
ASR_RESULTS = ("accepted", "confirmed", "rejected", "no_input", "dtmf")


def _histogram(name: str, doc: str, values: Sequence[float], buckets: Sequence[float],
               labels: dict[str, str] | None = None) -> HistogramMetricFamily:
    counts = [0] * len(buckets)
    for v in values:
        for i, b in enumerate(buckets):
            if v <= b:
                counts[i] += 1
    fam = HistogramMetricFamily(name, doc, labels=list(labels or {}))
    bucket_pairs = [(f"{b:g}", float(c)) for b, c in zip(buckets, counts, strict=True)]
    bucket_pairs.append(("+Inf", float(len(values))))
    fam.add_metric(list((labels or {}).values()), bucket_pairs, sum_value=float(sum(values)))
    return fam


class DatabaseCollector(Collector):
    def __init__(self, db_factory: object) -> None:
        # a callable returning the connection of the scraping thread
        self.db_factory = db_factory

    def collect(self) -> Iterator[Metric]:
        db: sqlite_utils.Database = self.db_factory()  # type: ignore[operator]
        tables = set(db.table_names())
        yield from self._calls(db)
        yield from self._campaigns(db)
        if "turns" in tables:
            yield from self._turns(db)
        if "numbers" in tables:
            yield from self._numbers(db)
        if "webhooks" in tables:
            yield from self._webhooks(db)
        if "outbox" in tables:
            g = GaugeMetricFamily("ivr_outbox_messages", "Follow-up messages by state",
                                  labels=["state"])
            for state, n in db.execute("SELECT state, count(*) FROM outbox GROUP BY 1"):
                g.add_metric([str(state)], float(n))
            yield g
        if "events" in tables:
            c = CounterMetricFamily("ivr_events", "Platform events received, by decision",
                                    labels=["type", "decision"])
            for t, d, n in db.execute("SELECT type, decision, count(*) FROM events "
                                      "GROUP BY 1, 2"):
                c.add_metric([str(t), str(d)], float(n))
            yield c
        yield GaugeMetricFamily("ivr_dnc_numbers", "Numbers on the do-not-call list",
                                value=float(db.execute("SELECT count(*) FROM dnc").fetchone()[0]))

    def _calls(self, db: sqlite_utils.Database) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "ivr_calls_in_flight", "Attempts originated and not ended",
            value=float(db.execute("SELECT count(*) FROM attempts WHERE coalesce(state, '') "
                                   "!= 'ended'").fetchone()[0]))
        yield GaugeMetricFamily(
            "ivr_live_calls", "Answered survey calls in progress",
            value=float(db.execute("SELECT count(*) FROM calls WHERE state = 'in_progress'"
                                   ).fetchone()[0]))
        c = CounterMetricFamily("ivr_attempts", "Ended dial attempts by outcome and cause",
                                labels=["campaign", "outcome", "sip_code", "q850_cause"])
        for camp, outcome, sip, q850, n in db.execute(
                "SELECT campaign_id, outcome, sip_code, q850_cause, count(*) FROM attempts "
                "WHERE state = 'ended' GROUP BY 1, 2, 3, 4"):
            c.add_metric([str(camp or ""), str(outcome or ""),
                          "" if sip is None else str(sip), "" if q850 is None else str(q850)],
                         float(n))
        yield c

    def _campaigns(self, db: sqlite_utils.Database) -> Iterator[Metric]:
        contacts = GaugeMetricFamily("ivr_contacts", "Contacts by campaign and state",
                                     labels=["campaign", "state"])
        for camp, state, n in db.execute("SELECT campaign_id, state, count(*) FROM contacts "
                                         "GROUP BY 1, 2"):
            contacts.add_metric([str(camp), str(state)], float(n))
        yield contacts
        depth = GaugeMetricFamily("ivr_dialer_queue_depth",
                                  "Contacts due for a dial now (pending or retry)",
                                  labels=["campaign"])
        now = iso(datetime.now(UTC))
        for camp, n in db.execute(
                "SELECT c.campaign_id, count(*) FROM contacts c JOIN campaigns k ON "
                "k.id = c.campaign_id WHERE k.status IN ('running', 'planned', 'paused') AND "
                "c.state IN ('pending', 'retry') AND c.next_attempt_at <= ? GROUP BY 1", [now]):
            depth.add_metric([str(camp)], float(n))
        yield depth
        answer = GaugeMetricFamily("ivr_campaign_answer_rate",
                                   "Answered / dialed contacts", labels=["campaign"])
        completion = GaugeMetricFamily("ivr_campaign_completion_rate",
                                       "Completed surveys / answered contacts",
                                       labels=["campaign"])
        for camp, dialed, answered, completed in db.execute("""
                SELECT a.campaign_id, count(DISTINCT a.contact_id),
                       count(DISTINCT CASE WHEN a.outcome = 'answered' THEN a.contact_id END),
                       count(DISTINCT CASE WHEN c.outcome IN ('completed', 'recovered')
                                           THEN c.contact_id END)
                FROM attempts a LEFT JOIN calls c ON c.attempt_id = a.id
                WHERE a.state = 'ended' GROUP BY 1"""):
            if dialed:
                answer.add_metric([str(camp)], answered / dialed)
            if answered:
                completion.add_metric([str(camp)], completed / answered)
        yield answer
        yield completion

    def _turns(self, db: sqlite_utils.Database) -> Iterator[Metric]:
        latencies = [float(r[0]) for r in db.execute(
            "SELECT latency_s FROM turns WHERE latency_s IS NOT NULL")]
        yield _histogram("ivr_turn_latency_seconds",
                         "Caller's end of speech to the next prompt, per voice turn",
                         latencies, LATENCY_BUCKETS)
        counter = CounterMetricFamily("ivr_asr_turns", "Voice turns by recognition result",
                                      labels=["result"])
        by_result: dict[str, list[float]] = {r: [] for r in ASR_RESULTS}
        for result, conf in db.execute("SELECT result, confidence FROM turns"):
            by_result.setdefault(str(result), []).append(float(conf or 0.0))
        for result, values in by_result.items():
            counter.add_metric([result], float(len(values)))
        yield counter
        for result, values in by_result.items():
            yield _histogram("ivr_asr_confidence", "Recogniser confidence by result", values,
                             CONFIDENCE_BUCKETS, {"result": result})

    def _numbers(self, db: sqlite_utils.Database) -> Iterator[Metric]:
        score = GaugeMetricFamily("ivr_callerid_health_score", "Caller-ID health score 0-100",
                                  labels=["number", "pool", "state"])
        rotation = GaugeMetricFamily("ivr_callerid_in_rotation",
                                     "1 when the caller ID is active (in rotation)",
                                     labels=["number"])
        for number, pool, state, s in db.execute(
                "SELECT number, pool, state, score FROM numbers WHERE coalesce(in_config, 1)"):
            score.add_metric([str(number), str(pool or ""), str(state or "")],
                             float(s if s is not None else 100.0))
            rotation.add_metric([str(number)], 1.0 if state == "active" else 0.0)
        yield score
        yield rotation

    def _webhooks(self, db: sqlite_utils.Database) -> Iterator[Metric]:
        g = GaugeMetricFamily("ivr_webhook_deliveries", "Webhook deliveries by event and state",
                              labels=["event", "state"])
        backlog = 0
        for event, state, n in db.execute("SELECT event, state, count(*) FROM webhooks "
                                          "GROUP BY 1, 2"):
            g.add_metric([str(event), str(state)], float(n))
            if state in ("queued", "delivering"):
                backlog += int(n)
        yield g
        yield GaugeMetricFamily("ivr_webhook_backlog", "Webhook deliveries not yet delivered",
                                value=float(backlog))
