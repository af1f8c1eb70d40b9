"""The web console in a real headless Chromium (Debian's chromium + chromium-driver, driven by
selenium; nothing downloaded): log in, import orders, create and start a campaign that dials
real calls, pause and resume it, watch it finish on the live funnel, add a do-not-call entry,
open the report, switch to English. Screenshots are saved as artefacts and checked non-blank,
and Chinese text is checked to render as glyphs (not as identical missing-glyph boxes)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ivr.config import PROJECT_ROOT
from ivr.farend.bed import Bed, free_port
from ivr.farend.campaign import invites_per_number
from ivr.farend.customer_plan import Answer, plan_customer
from ivr.speech.tts import engine
from ivr.survey.loader import load_script
from ivr.survey.orders import order_context
from tests.conftest import IN_CI, require
from tests.service.proc import ServiceProc, quiet_pool, service_config

pytestmark = [pytest.mark.asterisk, pytest.mark.usefixtures("telephony")]

MINI = PROJECT_ROOT / "tests" / "data" / "mini.cmn.yaml"
PLATFORM = "快购"
HOSTILE = "直播回访 <script>alert('x')</script> & \"co\""
ARTIFACTS = Path(os.environ.get("IVR_ARTIFACTS_DIR", PROJECT_ROOT / "var" / "artifacts")) / \
    "console"


def number(i: int) -> str:
    return f"86138006{i:05d}"


DIGITS = [number(i) for i in range(1, 4)]


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    home = tmp_path_factory.mktemp("console-bed")
    service = service_config(home, port=free_port(), rules=[])
    with Bed(home, platform=PLATFORM, numbers=str(quiet_pool(home)), service=service) as b:
        yield b


@pytest.fixture(scope="module")
def svc(bed: Bed) -> Iterator[ServiceProc]:
    with ServiceProc(bed) as proc:
        yield proc


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    driver_bin = shutil.which("chromedriver")
    require(chromium is not None and driver_bin is not None,
            "chromium + chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(chromium)
    profile = tempfile.mkdtemp(prefix="ivr-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                "--lang=zh-CN", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(str(driver_bin)), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def orders_csv(path: Path) -> Path:
    when = (datetime.now(UTC) - timedelta(hours=6)).isoformat(timespec="seconds")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["order_id", "phone", "product", "category", "price", "merchant", "host",
                "order_time"])
    for d in DIGITS:
        w.writerow([f"W{d}", "+" + d, "婴儿湿巾", "baby", "39.9", "<b>好妈妈</b>旗舰店", "小李",
                    when])
    w.writerow(["W-bad", "+86 139-abc", "湿巾", "baby", "9.9", "x", "y", when])
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def shot(driver: Any, name: str) -> Path:
    """Save a screenshot artefact and check it is not blank."""
    from PIL import Image

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    with Image.open(path) as img:
        hist = img.convert("L").histogram()
        n = sum(hist)
        mean = sum(level * k for level, k in enumerate(hist)) / n
        variance = sum(k * (level - mean) ** 2 for level, k in enumerate(hist)) / n
    assert variance > 100, f"{name}: screenshot looks blank (variance {variance:.1f})"
    return path


def until(driver: Any, pred: Callable[[Any], Any], timeout: float, what: str,
          svc: ServiceProc | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = pred(driver)
        except Exception:  # noqa: BLE001 - element not there yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            shot_path = ARTIFACTS / f"timeout-{what.replace(' ', '-')}.png"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(shot_path))
            raise AssertionError(f"timed out waiting for {what} (screenshot {shot_path})\n"
                                 + (svc.output() if svc else ""))
        time.sleep(0.2)


def cjk_renders(driver: Any) -> None:
    """Two different Chinese strings of the same length must not render identically: missing
    glyphs would all be the same box. The console's font must be installed, too."""
    from PIL import Image, ImageChops

    assert driver.execute_script(
        "return document.fonts.check('16px \"WenQuanYi Micro Hei\"')") is True
    driver.execute_script("""
        for (const [id, text] of [['cjk-a', '外呼回访控制台'], ['cjk-b', '免打扰名单管理']]) {
          const el = document.createElement('div');
          el.id = id; el.textContent = text;
          el.style.cssText = 'font-size:32px;display:inline-block;padding:4px;background:#fff';
          document.body.prepend(el);
        }""")
    images = []
    for eid in ("cjk-a", "cjk-b"):
        path = ARTIFACTS / f"{eid}.png"
        driver.find_element("id", eid).screenshot(str(path))
        images.append(Image.open(path).convert("L"))
    a, b = images
    assert a.size == b.size
    assert ImageChops.difference(a, b).getbbox() is not None, "CJK text renders as boxes"
    for img in images:
        assert img.getextrema()[0] < 100, "no dark glyph pixels"
    driver.execute_script("document.getElementById('cjk-a').remove();"
                          "document.getElementById('cjk-b').remove();")


def click(driver: Any, element_id: str) -> None:
    driver.find_element("id", element_id).click()


def status_of(driver: Any) -> str:
    return str(driver.find_element("id", "campaign-status").get_attribute("data-status"))


def customers(bed: Bed) -> list[Any]:
    out = []
    for d in DIGITS:
        ctx = order_context(bed.db(), f"W{d}", phone="+" + d, platform=PLATFORM,
                            timezone="Asia/Shanghai")
        out.append(plan_customer(d, load_script(MINI), ctx, [Answer(key="1"), Answer(key="1")],
                                 engine(bed.settings), voice="cmn-calm-male", language="cmn",
                                 work_dir=bed.home))
    return out


@pytest.mark.timeout(600)
def test_console_end_to_end_in_chromium(bed: Bed, svc: ServiceProc, browser: Any,
                                        tmp_path: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    d = browser
    base = svc.base
    d.get(base + "/console/")
    until(d, lambda d: d.find_element("id", "login-form"), 10, "the login page")
    assert "登录" in d.page_source
    shot(d, "01-login")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cjk_renders(d)
    # a wrong password is refused
    d.find_element("id", "name").send_keys("admin")
    d.find_element("id", "password").send_keys("wrong password")
    click(d, "login-submit")
    until(d, lambda d: d.find_element("id", "login-error"), 10, "the login error")
    d.find_element("id", "name").clear()
    d.find_element("id", "name").send_keys("admin")
    d.find_element("id", "password").send_keys("管理员 password")
    click(d, "login-submit")
    until(d, lambda d: d.find_element("id", "orders-form"), 10, "the campaigns page")
    shot(d, "02-campaigns")

    # import orders from a file, through the browser
    d.find_element("id", "orders-file").send_keys(str(orders_csv(tmp_path / "orders.csv")))
    click(d, "orders-submit")
    result = until(d, lambda d: d.find_element("id", "import-result"), 20, "the import result")
    assert "inserted 3" in result.text and "rejected 1" in result.text, result.text
    assert "invalid phone number" in result.text
    shot(d, "03-imported")
    bed.start_customers(customers(bed))

    # create the campaign (hostile name), start, pause, resume
    d.find_element("id", "campaign-name").send_keys(HOSTILE)
    from selenium.webdriver.support.ui import Select

    Select(d.find_element("id", "campaign-script")).select_by_value(str(MINI))
    d.find_element("id", "campaign-days").send_keys("1")
    click(d, "campaign-submit")
    until(d, lambda d: status_of(d) == "planned", 30, "the planned campaign", svc)
    assert d.find_element("tag name", "h1").text.startswith(HOSTILE)
    with pytest.raises(NoAlertPresentException):
        d.switch_to.alert  # noqa: B018 - the name's <script> never ran
    shot(d, "04-planned")
    click(d, "action-start")
    until(d, lambda d: status_of(d) == "running", 10, "running", svc)
    click(d, "action-pause")
    until(d, lambda d: status_of(d) == "paused", 10, "paused", svc)
    shot(d, "05-paused")
    time.sleep(2)
    click(d, "action-resume")
    until(d, lambda d: status_of(d) == "running", 10, "running again", svc)
    # the live funnel (polled JSON) shows the campaign finish without a reload
    url = d.current_url
    until(d, lambda d: status_of(d) == "done", 180, "the campaign to finish", svc)
    # ... and then reloads itself once, so the server-rendered tables are current too
    until(d, lambda d: d.find_element("tag name", "h1").get_attribute(
        "data-rendered-status") == "done", 10, "the page to refresh its tables", svc)
    assert d.current_url == url
    assert d.find_element("css selector", "[data-v='answered']").text == "3"
    assert d.find_element("css selector", "[data-v='completed']").text == "3"
    shot(d, "06-done")
    assert bed.sipp is not None
    invites = invites_per_number(bed.sipp.messages())
    assert {x: invites[x] for x in DIGITS} == dict.fromkeys(DIGITS, 1)

    # the report: charts, human labels, the hostile names escaped
    click(d, "open-report")
    until(d, lambda d: d.find_element("id", "report"), 20, "the report")
    page = d.page_source
    assert "接通率" in page and "外呼漏斗" in page and "每日趋势" in page
    assert len(d.find_elements("css selector", "#report svg")) >= 5
    assert "<b>好妈妈</b>" not in page and "&lt;b&gt;好妈妈&lt;/b&gt;旗舰店" in page
    shot(d, "07-report")
    csv_link = d.find_element("css selector", "a.csv").get_attribute("href")
    assert csv_link and "report.csv?table=funnel" in csv_link

    # do-not-call: add an entry in the form
    d.get(base + "/console/dnc")
    d.find_element("id", "dnc-phone").send_keys("13912345678")
    d.find_element("id", "dnc-reason").send_keys("电话里要求不再来电")
    click(d, "dnc-add")
    row = until(d, lambda d: d.find_element("css selector", "tr[data-phone='+8613912345678']"),
                10, "the DNC entry")
    assert "电话里要求不再来电" in row.text
    assert d.find_element("id", "dnc-total").text == "1"
    shot(d, "08-dnc")

    # caller-ID pool with check now; live calls; event rules
    d.get(base + "/console/numbers")
    click(d, "check-now")
    until(d, lambda d: d.find_element("id", "check-result"), 10, "the pool check")
    shot(d, "09-numbers")
    d.get(base + "/console/calls")
    until(d, lambda d: d.find_element("id", "live-calls"), 10, "live calls")
    d.get(base + "/console/rules")
    until(d, lambda d: d.find_element("id", "rules"), 10, "rules")

    # English on request
    d.get(base + "/console/")
    click(d, "lang-switch")
    until(d, lambda d: "Campaigns" in d.find_element("tag name", "h1").text, 10, "English")
    shot(d, "10-english")
    click(d, "logout")
    until(d, lambda d: d.find_element("id", "login-form"), 10, "logged out")
    d.get(base + "/console/dnc")
    until(d, lambda d: d.find_element("id", "login-form"), 10, "login required again")
    if IN_CI:
        print(f"console screenshots in {ARTIFACTS}")
