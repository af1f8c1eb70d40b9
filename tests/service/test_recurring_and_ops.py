"""Recurring campaigns (APScheduler cron triggers, one campaign per firing, catch-up after
downtime), the rule files' validation, the structured log and the systemd units."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from ivr.campaign.yamlcfg import CampaignConfigError
from ivr.config import load_settings
from ivr.service.core import Service
from ivr.service.events import load_event_rules, parse_duration
from ivr.service.logs import JsonFormatter, configure
from ivr.service.recurring import RecurringScheduler, load_recurring
from ivr.service.units import render_units
from tests.service.conftest import MINI, order, write_service_config

TZ = ZoneInfo("Asia/Shanghai")


def recurring_file(path: Path, **over: object) -> Path:
    entry = {"name": "daily-baby", "schedule": "0 9 * * *", "script": str(MINI),
             "selection": {"days": 1, "until": "today", "categories": ["baby"]},
             "ends_after": "12h", "start": True, "catch_up": "2h", **over}
    path.write_text(yaml.safe_dump({"campaigns": [entry]}, allow_unicode=True), "utf-8")
    return path


def test_recurring_firing_plans_yesterdays_buyers_of_a_category_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cfg = write_service_config(home, extra={"service": {
        "recurring": str(recurring_file(tmp_path / "recurring.yaml"))}})
    # "now" is 09:30 local: the 09:00 firing was missed (service down), inside the catch-up
    now = datetime(2026, 12, 2, 9, 30, tzinfo=TZ)
    service = Service(load_settings(cfg), clock=lambda: now.astimezone(UTC))
    yesterday = datetime(2026, 12, 1, 15, 0, tzinfo=TZ).isoformat()
    today = datetime(2026, 12, 2, 8, 0, tzinfo=TZ).isoformat()
    before = datetime(2026, 11, 30, 15, 0, tzinfo=TZ).isoformat()
    from ivr.campaign.importer import ingest_records

    ingest_records(service.db, [
        order(1, order_time=yesterday), order(2, order_time=yesterday, category="snacks"),
        order(3, order_time=today), order(4, order_time=before)], source="t")
    sched = service.scheduler
    assert [e.name for e in sched.entries] == ["daily-baby"]

    async def run() -> None:
        await sched.catch_up()
        await sched.catch_up()  # a restart: the same firing is not planned again

    asyncio.run(run())
    runs = list(service.db.query("SELECT * FROM recurring_runs"))
    assert len(runs) == 1 and runs[0]["campaign_id"] == "daily-baby-202612020900"
    camp = next(iter(service.db.query("SELECT * FROM campaigns WHERE id = ?",
                                      [runs[0]["campaign_id"]])))
    assert (camp["status"], camp["kind"], camp["source"]) == ("running", "recurring",
                                                              "daily-baby")
    assert camp["ends_at"].startswith("2026-12-02T13:00")  # 09:00 + 12 h, in UTC
    phones = [r[0] for r in service.db.execute(
        "SELECT phone FROM contacts WHERE campaign_id = ?", [camp["id"]])]
    assert phones == [order(1)["phone"]]  # yesterday's, baby only


def test_a_firing_older_than_catch_up_is_skipped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cfg = write_service_config(home, extra={"service": {
        "recurring": str(recurring_file(tmp_path / "r.yaml", catch_up="10m"))}})
    now = datetime(2026, 12, 2, 9, 30, tzinfo=TZ)
    service = Service(load_settings(cfg), clock=lambda: now.astimezone(UTC))
    asyncio.run(service.scheduler.catch_up())
    assert service.db.execute("SELECT count(*) FROM recurring_runs").fetchone()[0] == 0


def test_scheduler_uses_cron_triggers(tmp_path: Path) -> None:
    entries = load_recurring(recurring_file(tmp_path / "r.yaml", schedule="*/15 8-20 * * 1-5"))

    async def run() -> dict[str, str | None]:
        sched = RecurringScheduler(None, entries, TZ, lambda e, t: "x")  # type: ignore[arg-type]
        sched.start()
        try:
            return sched.next_runs()
        finally:
            sched.shutdown()

    nxt = asyncio.run(run())["daily-baby"]
    assert nxt is not None
    when = datetime.fromisoformat(nxt)
    assert when.minute % 15 == 0 and 8 <= when.hour <= 20 and when.weekday() < 5


def test_bad_rule_files_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "events.yaml"
    bad.write_text("rules:\n  - name: x\n    event: order.paid\n    action: call\n"
                   "    delay: soon\n", encoding="utf-8")
    with pytest.raises(CampaignConfigError) as exc:
        load_event_rules(bad)
    assert f"{bad}:5: rules[0].delay" in str(exc.value)
    cron = recurring_file(tmp_path / "r.yaml", schedule="every morning")
    with pytest.raises(CampaignConfigError) as exc2:
        load_recurring(cron)
    assert "schedule" in str(exc2.value) and "crontab" in str(exc2.value)
    cond = tmp_path / "c.yaml"
    cond.write_text(yaml.safe_dump({"rules": [{
        "name": "x", "event": "order.paid", "action": "message", "message": "hi",
        "when": [{"field": "order.price", "gt": 1, "lt": 5}]}]}), encoding="utf-8")
    with pytest.raises(CampaignConfigError, match="exactly one of"):
        load_event_rules(cond)
    assert parse_duration("5m") == 300 and parse_duration("1h") == 3600
    assert parse_duration(90) == 90


def test_structured_log_is_one_json_object_per_line(tmp_path: Path) -> None:
    log_file = tmp_path / "log" / "service.log"
    handler = configure(log_file, max_bytes=4096, backups=2, console=False)
    try:
        logging.getLogger("ivr.calls").info("call 1 answered\nsecond line", extra={
            "event": "call.summary", "campaign": "c<1>", "attempt": 7})
        for i in range(60):  # past 4 KiB: one rotation
            logging.getLogger("x").info("filler %d %s", i, "x" * 40)
        handler.flush()
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert (tmp_path / "log" / "service.log.1").exists()
    assert oct(log_file.stat().st_mode & 0o777) == "0o640"
    lines = [json.loads(line) for p in sorted(log_file.parent.glob("service.log*"))
             for line in p.read_text(encoding="utf-8").splitlines()]
    summary = next(r for r in lines if r.get("event") == "call.summary")
    assert summary["msg"] == "call 1 answered\nsecond line" and summary["attempt"] == 7
    formatted = JsonFormatter().format(logging.LogRecord("n", 20, "f", 1, "a\nb", (), None))
    assert "\n" not in formatted


def test_systemd_units(tmp_path: Path) -> None:
    settings = load_settings(write_service_config(tmp_path / "home"))
    units = render_units(settings, tmp_path / "home" / "ivr.yaml", user="ivr")
    assert set(units) == {"ivr-asterisk.service", "ivr-fastagi.service", "ivr.service"}
    svc = units["ivr.service"]
    assert "serve" in svc and "After=ivr-asterisk.service ivr-fastagi.service" in svc
    assert "UMask=0077" in svc and "User=ivr" in svc and "NoNewPrivileges=yes" in svc
    assert f"ReadWritePaths={settings.home}" in svc
    assert "agi serve" in units["ivr-fastagi.service"]
    ast = units["ivr-asterisk.service"]
    assert "asterisk render" in ast and " -f -n -q" in ast and "core stop gracefully" in ast


def test_service_refuses_a_public_bind_without_allow_remote(tmp_path: Path) -> None:
    from ivr.config import ConfigError

    cfg = write_service_config(tmp_path / "home", extra={"service": {"host": "0.0.0.0"}})
    with pytest.raises(ConfigError, match="not a loopback address"):
        load_settings(cfg)


def test_secrets_and_database_are_private(tmp_path: Path) -> None:
    service = Service(load_settings(write_service_config(tmp_path / "home")))
    home = service.settings.home
    assert oct((home / "secrets").stat().st_mode & 0o777) == "0o700"
    for name in ("webhook_secret", "console_session_key"):
        assert oct((home / "secrets" / name).stat().st_mode & 0o777) == "0o600"
    assert oct(service.settings.db_path.stat().st_mode & 0o777) == "0o600"
    again = Service(load_settings(write_service_config(tmp_path / "home")))
    assert again.webhook_secret == service.webhook_secret  # generated once


def test_service_sends_follow_up_messages_through_its_sender(tmp_path: Path) -> None:
    from ivr.outbox.store import enqueue

    sent = tmp_path / "sms.jsonl"
    cfg = write_service_config(tmp_path / "home", extra={"service": {
        "outbox_sender": f"file:{sent}", "outbox_every_s": 0.1}})
    service = Service(load_settings(cfg))
    enqueue(service.db, "+8613912345678", "【示例平台】您的订单暂未发货，正在加急。回T退订",
            kind="event_message", dedup_key="event:e1")

    async def run() -> None:
        task = asyncio.create_task(service._outbox_loop())
        for _ in range(50):
            if sent.exists():
                break
            await asyncio.sleep(0.05)
        service._stopping.set()
        await task

    asyncio.run(run())
    lines = [json.loads(line) for line in sent.read_text(encoding="utf-8").splitlines()]
    assert [m["phone"] for m in lines] == ["+8613912345678"]
    assert service.db.execute("SELECT state FROM outbox").fetchone()[0] == "sent"
