"""A region rule routes a province over another trunk, with that trunk's caller-ID pool.

The bed runs two carrier trunks, each with its own sipp: Sichuan numbers must leave on
"carrier2" presenting a number of the "west" pool; everyone else on "carrier".
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from ivr.campaign.wiring import run_campaign
from ivr.config import PROJECT_ROOT
from ivr.farend import campaign as helpers
from ivr.farend.bed import Bed
from ivr.farend.customer_plan import Answer, plan_customer
from ivr.speech.tts import engine
from ivr.survey.loader import load_script
from ivr.survey.orders import order_context

pytestmark = [pytest.mark.asterisk, pytest.mark.usefixtures("telephony")]

MINI = PROJECT_ROOT / "tests" / "data" / "mini.cmn.yaml"
SICHUAN = "8613880012345"  # Chengdu, Sichuan (phonenumbers)
JIANGSU = "8613912345678"  # Changzhou, Jiangsu


def rules_with_sichuan_enabled(path: Path) -> Path:
    rules = yaml.safe_load((PROJECT_ROOT / "config" / "regions.yaml").read_text("utf-8"))
    for rule in rules["rules"]:
        if rule["name"] == "sichuan-via-carrier2":
            rule["enabled"] = True
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    return path


def test_sichuan_goes_out_on_carrier2_with_a_west_number(tmp_path: Path) -> None:
    rules = rules_with_sichuan_enabled(tmp_path / "regions.yaml")
    with Bed(tmp_path / "bed", extra_trunks=["carrier2"], regions=str(rules),
             platform="快购") as bed:
        plan = helpers.import_and_plan(bed, tmp_path, "routing", ["+" + SICHUAN, "+" + JIANGSU],
                                       script=MINI, voice="cmn-calm-male")
        assert plan["pending"] == 2, plan

        def customer(digits: str) -> object:
            ctx = order_context(bed.db(), f"O{digits}", phone="+" + digits, platform="快购",
                                timezone="Asia/Shanghai")
            return plan_customer(digits, load_script(MINI), ctx, [Answer(key="1"),
                                                                  Answer(key="1")],
                                 engine(bed.settings), voice="cmn-calm-male", language="cmn",
                                 work_dir=bed.home)

        bed.start_customers([customer(JIANGSU)])  # type: ignore[list-item]
        carrier2 = bed.start_trunk_customers("carrier2", [customer(SICHUAN)])  # type: ignore[list-item]
        asyncio.run(run_campaign(bed.settings, bed.db(), str(plan["campaign_id"]),
                                 handle_signals=False, stop_when_idle=True))
        assert bed.sipp is not None
        via_carrier2 = helpers.invites_from(carrier2.messages())
        via_carrier = helpers.invites_from(bed.sipp.messages())
        assert [n for n, _ in via_carrier2] == [SICHUAN], bed.diagnostics()
        assert [n for n, _ in via_carrier] == [JIANGSU]
        assert via_carrier2[0][1] == "862880001001"  # the west pool's Chengdu number
        attempts = {r["phone"]: r for r in bed.db()["attempts"].rows}
        assert attempts["+" + SICHUAN]["trunk"] == "carrier2"
        assert attempts["+" + SICHUAN]["outcome"] == "answered"
        assert attempts["+" + JIANGSU]["trunk"] == "carrier"
        assert attempts["+" + JIANGSU]["outcome"] == "answered"
