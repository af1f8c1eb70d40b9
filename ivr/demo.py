"""``ivr demo``: a whole campaign on this machine, end to end, with simulated customers.

It boots a private bed (Asterisk 22 from the forky root, the FastAGI daemon, sipp customers on the
PJSIP trunk, all on 127.0.0.1), then works as an operator would, through the same CLI commands:
``ivr campaign import`` (a bad row is rejected with its line), ``ivr campaign plan`` (segments pick
the voice, a Xinjiang number is skipped by the region rule and gets a follow-up message),
``ivr campaign run`` (real calls over AMI; customers answer the default Mandarin survey with their
keypads, one is busy, one declines, one never answers), ``ivr report`` and ``ivr outbox send``.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import yaml
from rich.console import Console

from ivr.config import CONFIG_DIR, PROJECT_ROOT
from ivr.farend.bed import Bed
from ivr.farend.customer_plan import Answer, plan_customer
from ivr.farend.sipp import Customer
from ivr.speech.tts import engine
from ivr.survey.loader import load_script
from ivr.survey.orders import order_context
from ivr.yamlfile import load_yaml

SCRIPT = PROJECT_ROOT / "surveys" / "platform_satisfaction.cmn.yaml"
PLATFORM = "快购"

# phone, product, category, price, merchant, host, how the buyer reacts
ORDERS: list[tuple[str, str, str, str, str, str, str]] = [
    ("+8613800000101", "婴儿湿巾", "baby", "39.9", "好妈妈旗舰店", "小李", "satisfied"),
    ("+8613800000102", "麻辣牛肉干", "snacks", "19.9", "零食铺子", "阿强", "refund"),
    ("+8613800000103", "口红", "cosmetics", "59", "美妆小屋", "小美", "voucher"),
    ("+8613800000104", "保温杯", "home", "89", "家居好物", "小李", "opt_out"),
    ("+8613800000105", "薯片", "snacks", "9.9", "零食铺子", "阿强", "busy"),
    ("+8613800000106", "面霜", "cosmetics", "129", "美妆小屋", "小美", "decline"),
    ("+8613800000107", "奶瓶", "baby", "49", "好妈妈旗舰店", "小李", "no_answer"),
    ("+8613999123456", "葡萄干", "snacks", "29.9", "新疆果园", "阿强", "xinjiang"),
]
KEYS = {
    "satisfied": ["1", "1"],  # satisfied; (suggestion: #); would buy again
    "refund": ["2", "1", "3", "1"],  # unhappy; refund; logistics; (#); would buy again
    "voucher": ["2", "2", "1", "2"],  # unhappy; voucher; quality; (#); would not buy again
    "opt_out": ["9"],  # don't call me again
}


def _orders_csv(path: Path) -> Path:
    """Recent orders (relative dates, so the demo never goes stale), one bad row, one test buyer."""
    when = datetime.now(UTC) - timedelta(days=3)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["order_id", "phone", "product", "category", "price", "merchant", "host",
                    "order_time", "buyer_name"])
        for i, (phone, product, cat, price, merchant, host, _) in enumerate(ORDERS):
            w.writerow([f"D{i + 1:03d}", phone, product, cat, price, merchant, host,
                        (when + timedelta(hours=i)).isoformat(timespec="seconds"), ""])
        w.writerow(["D900", "+86 139-abc", "湿巾", "baby", "9.9", "好妈妈旗舰店", "小李",
                    when.isoformat(timespec="seconds"), ""])
        w.writerow(["D901", "+8613800000199", "湿巾", "baby", "9.9", "好妈妈旗舰店", "小李",
                    when.isoformat(timespec="seconds"), "测试账号"])
    return path


def _demo_configs(home: Path) -> tuple[Path, Path]:
    """The shipped segments and policy, with windows opened to 'now' and short retries."""
    segments = load_yaml(CONFIG_DIR / "segments.yaml").data
    for seg in segments["segments"].values():
        seg["windows"] = [{"days": "all", "start": "00:00", "end": "24:00"}]
    policy = load_yaml(CONFIG_DIR / "policy.yaml").data
    policy["quiet_hours"] = None
    policy["retry"].update({"max_attempts": 2, "multiplier": 1.0,
                            "backoff_s": {k: 3 for k in ("busy", "no_answer", "congestion",
                                                         "failed")}})
    policy["dialer"].update({"max_concurrent": 4, "cps": 2, "ring_timeout_s": 8})
    seg_file, pol_file = home / "demo-segments.yaml", home / "demo-policy.yaml"
    seg_file.write_text(yaml.safe_dump(segments, allow_unicode=True), encoding="utf-8")
    pol_file.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    return seg_file, pol_file


def _outbox_rules(home: Path) -> Path:
    """The shipped outbox rules with the demo platform's registered SMS signature."""
    rules = load_yaml(CONFIG_DIR / "outbox.yaml").data
    rules["signature"] = f"【{PLATFORM}】"
    path = home / "demo-outbox.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    return path


def _customers(bed: Bed, campaign_id: str) -> list[Customer]:
    db = bed.db()
    script = load_script(SCRIPT)
    tts = engine(bed.settings)
    reaction = {phone: how for phone, *_rest, how in ORDERS}
    out: list[Customer] = []
    for c in db["contacts"].rows_where("campaign_id = ? and state = 'pending'", [campaign_id]):
        digits = c["phone"].lstrip("+")
        how = reaction.get(c["phone"], "satisfied")
        if how == "busy":
            out.append(Customer(digits, reject=486, name=how))
        elif how == "decline":
            out.append(Customer(digits, reject=603, name=how))
        elif how == "no_answer":
            out.append(Customer(digits, no_answer=True, name=how))
        else:
            ctx = order_context(db, c["order_id"], phone=c["phone"], platform=PLATFORM,
                                timezone="Asia/Shanghai")
            out.append(plan_customer(digits, script, ctx, [Answer(key=k) for k in KEYS[how]],
                                     tts, voice=c["voice"], language="cmn", work_dir=bed.home,
                                     name=how))
    return out


def _ivr(bed: Bed, console: Console, *args: str) -> str:
    console.print(f"\n[bold cyan]$ ivr {' '.join(args)}[/]")
    proc = bed.ivr(*args)
    out = proc.stdout + (proc.stderr if proc.returncode else "")
    console.print(out.rstrip(), markup=False, highlight=False)
    if proc.returncode not in (0, 1):
        raise click.ClickException(f"ivr {' '.join(args)} failed with {proc.returncode}")
    return proc.stdout


@click.command()
@click.option("--home", type=click.Path(file_okay=False), default="var/demo", show_default=True,
              help="Where the demo's database, configs, logs and report go (wiped first).")
def demo(home: str) -> None:
    """Run a demo campaign end to end on the local bed and print the report.

    \b
    Example:
      ivr demo                       (about 3 minutes; report in var/demo/report.html)
    """
    console = Console()
    home_path = Path(home).resolve()
    if home_path.exists():
        shutil.rmtree(home_path)
    t0 = time.monotonic()
    with Bed(home_path, platform=PLATFORM) as bed:
        console.print(f"[bold]bed up[/] in {time.monotonic() - t0:.1f} s: "
                      f"{bed.asterisk.root.version()}, trunk -> sipp customers on "
                      f"127.0.0.1:{bed.settings.trunk.port}, FastAGI on :{bed.settings.agi.port}")
        segments, policy = _demo_configs(home_path)
        orders = _orders_csv(home_path / "orders.csv")
        _ivr(bed, console, "campaign", "import", str(orders), "--rejects",
             str(home_path / "rejects.csv"))
        planned = _ivr(bed, console, "campaign", "plan", "live-stream buyers",
                       "--script", str(SCRIPT), "--language", "cmn", "--segments", str(segments),
                       "--policy", str(policy))
        campaign_id = str(json.loads(planned.strip().splitlines()[-1])["campaign_id"])
        bed.start_customers(_customers(bed, campaign_id))
        _ivr(bed, console, "campaign", "run", campaign_id, "--until-idle")
        _retry_until_done(bed, console, campaign_id)
        _ivr(bed, console, "campaign", "status", campaign_id)
        _ivr(bed, console, "report", campaign_id)
        _ivr(bed, console, "report", campaign_id, "--html", str(home_path / "report.html"))
        rules = _outbox_rules(home_path)
        _ivr(bed, console, "outbox", "--rules", str(rules), "send", "--sender",
             f"file:{home_path / 'outbox.jsonl'}")
    console.print(f"\n[bold green]demo finished[/] in {time.monotonic() - t0:.0f} s; "
                  f"database {home_path / 'ivr.db'}, report {home_path / 'report.html'}, "
                  f"messages {home_path / 'outbox.jsonl'}")


def _retry_until_done(bed: Bed, console: Console, campaign_id: str) -> None:
    """Busy and unanswered contacts come back after their short demo backoff."""
    for _ in range(3):
        due = bed.db().execute(
            "select count(*) from contacts where campaign_id = ? and state in "
            "('pending', 'retry')", [campaign_id]).fetchone()[0]
        if not due:
            return
        time.sleep(4)
        _ivr(bed, console, "campaign", "run", campaign_id, "--until-idle")


