"""The console's server side: login, CSRF, read-only users, escaping, recordings only from the
recordings directory, CSV with a BOM, no external asset (the browser test drives the rest)."""

from __future__ import annotations

import re
from typing import Any

from ivr.campaign.planner import plan_campaign
from tests.service.conftest import MINI, Api, order


def csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def login(api: Api, name: str = "admin", password: str = "correct horse") -> str:
    page = api.client.get("/console/login")
    token = csrf(page.text)
    resp = api.client.post("/console/login", data={"name": name, "password": password,
                                                   "csrf": token}, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    return csrf(api.client.get("/console/").text)


def make_campaign(api: Api, **over: Any) -> str:
    api.call("POST", "/v1/orders", json={"orders": [
        order(1, merchant="<img src=x onerror=alert(1)>"), order(2)]})
    body = {"name": "<script>alert(1)</script>", "script": MINI.name, "days": 2, **over}
    return str(api.call("POST", "/v1/campaigns", json=body).json()["campaign_id"])


def test_pages_need_a_login(api: Api) -> None:
    for path in ("/console/", "/console/dnc", "/console/numbers", "/console/calls",
                 "/console/rules"):
        resp = api.client.get(path, follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"] == "/console/login", path


def test_wrong_password_and_missing_csrf_are_refused(api: Api) -> None:
    page = api.client.get("/console/login")
    bad = api.client.post("/console/login", data={"name": "admin", "password": "nope",
                                                  "csrf": csrf(page.text)})
    assert bad.status_code == 200 and "用户名或密码错误" in bad.text
    assert api.client.post("/console/login", data={"name": "admin",
                                                   "password": "correct horse"}
                           ).status_code == 403  # no CSRF token
    token = login(api)
    assert api.client.post("/console/dnc", data={"phone": "13912345678"}).status_code == 403
    ok = api.client.post("/console/dnc", data={"phone": "13912345678", "csrf": token},
                         follow_redirects=False)
    assert ok.status_code == 303
    assert api.service.db.execute("SELECT source FROM dnc").fetchone()[0] == "console:admin"


def test_read_only_user_sees_but_cannot_change(api: Api) -> None:
    cid = make_campaign(api)
    token = login(api, "viewer", "viewer pass")
    page = api.client.get(f"/console/campaigns/{cid}")
    assert page.status_code == 200 and 'id="action-start"' not in page.text
    resp = api.client.post(f"/console/campaigns/{cid}/start", data={"csrf": token})
    assert resp.status_code == 403
    assert api.service.db.execute("SELECT status FROM campaigns WHERE id = ?",
                                  [cid]).fetchone()[0] == "planned"


def test_hostile_names_are_escaped_everywhere(api: Api) -> None:
    cid = make_campaign(api)
    login(api)
    for path in ("/console/", f"/console/campaigns/{cid}", f"/console/campaigns/{cid}/report"):
        html = api.client.get(path).text
        assert "<script>alert(1)</script>" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        assert "<img src=x" not in html, path
        # every asset is local
        assert not re.search(r'(?:src|href)\s*=\s*["\']?(?:https?:)?//', html), path
    report = api.client.get(f"/console/campaigns/{cid}/report")
    assert "default-src 'self'" in report.headers["content-security-policy"]


def test_csv_downloads_carry_a_bom(api: Api) -> None:
    cid = make_campaign(api)
    login(api)
    for path in (f"/console/campaigns/{cid}/report.csv?table=funnel",
                 f"/console/campaigns/{cid}/calls.csv"):
        resp = api.client.get(path)
        assert resp.status_code == 200 and resp.content.startswith(b"\xef\xbb\xbf"), path
        assert "attachment" in resp.headers["content-disposition"]
    funnel = api.client.get(f"/console/campaigns/{cid}/report.csv?table=funnel")
    assert "指标" in funnel.content.decode("utf-8-sig").splitlines()[0]


def test_recordings_are_served_only_from_the_recordings_directory(api: Api) -> None:
    db = api.service.db
    recs = api.service.settings.recordings_dir
    recs.mkdir(parents=True, exist_ok=True)
    wav = recs / "c1-suggestions.wav"
    wav.write_bytes(b"RIFF0000WAVEfmt ")
    outside = api.service.settings.home / "secrets" / "webhook_secret"
    db.table("calls").insert({"id": "c1", "phone": "+8613800000001"})
    db.table("answers").insert({"call_id": "c1", "seq": 1, "node": "suggestions",
                                "recording": str(wav)})
    db.table("answers").insert({"call_id": "c1", "seq": 2, "node": "x",
                                "recording": str(outside)})
    db.table("answers").insert({"call_id": "c1", "seq": 3, "node": "y",
                                "recording": str(recs / ".." / "secrets" / "webhook_secret")})
    assert api.client.get("/console/recordings/c1/1",
                          follow_redirects=False).status_code == 303  # login first
    login(api)
    ok = api.client.get("/console/recordings/c1/1")
    assert ok.status_code == 200 and ok.headers["content-type"] == "audio/wav"
    assert api.client.get("/console/recordings/c1/2").status_code == 404
    assert api.client.get("/console/recordings/c1/3").status_code == 404
    assert api.client.get("/console/recordings/c1/9").status_code == 404


def test_report_page_plays_recordings(api: Api) -> None:
    db = api.service.db
    cid = make_campaign(api)
    contact = db.execute("SELECT id, phone FROM contacts WHERE campaign_id = ?",
                         [cid]).fetchone()
    wav = api.service.settings.recordings_dir / "c2.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    wav.write_bytes(b"RIFF")
    db.table("attempts").insert({"campaign_id": cid, "contact_id": contact[0],
                                 "phone": contact[1], "state": "ended", "outcome": "answered",
                                 "started_at": "2026-12-01T02:00:00.000Z"})
    db.table("calls").insert({"id": "c2", "phone": contact[1], "campaign_id": cid,
                              "contact_id": contact[0], "outcome": "completed", "satisfied": 0,
                              "reason": "物流太慢 <b>", "started_at": "2026-12-01T02:00:00Z"})
    db.table("answers").insert({"call_id": "c2", "seq": 4, "node": "suggestions",
                                "recording": str(wav), "answered_at": "2026-12-01T02:01:00Z"})
    login(api)
    html = api.client.get(f"/console/campaigns/{cid}/report").text
    assert '<audio controls preload="none" src="/console/recordings/c2/4">' in html
    assert "物流太慢 &lt;b&gt;" in html  # the complaint reason, escaped


def test_plan_campaign_selection_by_category(api: Api) -> None:
    from ivr.campaign.policy import PolicyConfig
    from ivr.campaign.segments import SegmentsConfig

    api.call("POST", "/v1/orders", json={"orders": [order(1), order(2, category="snacks"),
                                                    order(3, category="Baby")]})
    seg = SegmentsConfig.model_validate({"default_segment": "g", "segments": {
        "g": {"voice": "v", "windows": [{"start": "00:00", "end": "24:00"}]}}})
    result = plan_campaign(api.service.db, "baby", script=str(MINI), policy=PolicyConfig(),
                           segments=seg, days=2, include={"category": ["baby"]})
    phones = {r[0] for r in api.service.db.execute(
        "SELECT phone FROM contacts WHERE campaign_id = ?", [result.campaign_id])}
    assert phones == {order(1)["phone"], order(3)["phone"]}
