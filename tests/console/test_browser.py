"""The console in a real browser (headless Chromium from Debian's packages, driven by Selenium)
against a real registry process with a Celery worker that trains one small job.

Sign-in through the form as ops, an auditor and two tenants; a tenant reaches none of another
tenant's pages by URL (404); an auditor sees no promote form and its forged promote is refused;
a promote with a reason shows in the version's alias history and on the audit page; the verify
button reports a tampered chain; a job's page updates while the job trains. Full-page
screenshots of the version, job and audit pages go to build/console-screenshots/.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.console.browser import (
    ConsoleWorld,
    console_world,
    error_page,
    every,
    one,
    screenshot,
    wait_for,
)
from workers.devmodel.samples import sample_rows, to_jsonl

pytestmark = pytest.mark.slow
__all__ = ["console_world"]  # the module-scoped fixture, imported for pytest

ADAPTER = "orders"
CONFIG = {
    "epochs": 40,
    "max_steps": 60,
    "learning_rate": 0.005,
    "batch_size": 4,
    "rank": 8,
    "max_seq_length": 128,
    "early_stopping_patience": 0,
}
ACME = f"/v1/tenants/acme/adapters/{ADAPTER}"
VERSION_PAGE = f"/console/t/acme/adapters/{ADAPTER}/v/1"
STEP = re.compile(r"step\s+(\d+)\s*/\s*(\d+)")


@pytest.fixture(scope="module")
def job(console_world: ConsoleWorld) -> dict[str, Any]:
    """acme's adapter `orders` and its first training job, queued (version 1)."""
    p = console_world.platform
    rows = to_jsonl(sample_rows("orders", 24, seed=3))
    data = p.ok(
        p.http.post(
            "/v1/tenants/acme/datasets",
            data={"name": "orders"},
            files={"file": ("o.jsonl", rows)},
            headers=p.acme,
        )
    )
    body = {"name": ADAPTER, "base_model": "tiny", "training": CONFIG}
    p.ok(p.http.post("/v1/tenants/acme/adapters", json=body, headers=p.acme))
    body = {"adapter": ADAPTER, "dataset_ids": [data["id"]]}
    job: dict[str, Any] = p.ok(
        p.http.post("/v1/tenants/acme/training-jobs", json=body, headers=p.acme)
    )
    return job


@pytest.fixture(scope="module")
def version(console_world: ConsoleWorld, job: dict[str, Any]) -> int:
    """The job's version, once the job succeeded."""
    done = console_world.platform.wait_job(job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    return int(job["version"])


def test_ops_an_auditor_and_two_tenants_sign_in_through_the_form(cw: ConsoleWorld) -> None:
    for who in (cw.ops, cw.auditor):
        who.sign_in()
        d = who.driver
        assert d.current_url.endswith("/console"), d.current_url
        slugs = {r.get_attribute("data-tenant") or r.text for r in every(d, "#tenants tbody tr")}
        assert any("acme" in s for s in slugs) and any("globex" in s for s in slugs), slugs
        assert who.client_id in one(d, "header .who").text
    for who in (cw.acme, cw.globex):
        who.sign_in()
        d = who.driver
        assert d.current_url.endswith(f"/console/t/{who.name}"), d.current_url  # 303 home
        assert every(d, "#adapters") and not every(d, "#tenants")
        assert not every(d, 'a[href="/console/audit"]')  # no audit link for a tenant
    assert "/console/audit" in [
        a.get_attribute("href").removeprefix(cw.base_url)  # type: ignore[union-attr]
        for a in every(cw.auditor.driver, "header nav a")
    ]


def test_a_job_page_updates_while_it_trains(cw: ConsoleWorld, job: dict[str, Any]) -> None:
    """The page opens while the job is queued; console.js refreshes `#live`. So that the page
    is seen mid-run however fast the machine trains, the job is paused after a few steps (the
    API's pause), looked at, and resumed to the end."""
    acme, p = cw.acme, cw.platform
    jobs = f"/v1/tenants/acme/training-jobs/{job['id']}"
    if acme._driver is None:
        acme.sign_in()
    d = acme.open(f"/console/t/acme/jobs/{job['id']}")
    live = one(d, "#live")
    assert live.get_attribute("data-live") == f"/console/t/acme/jobs/{job['id']}/live"
    d.execute_script("window.__loaded_once = true")  # gone if the page reloads

    def seen() -> tuple[int, int]:
        """(step shown, points drawn in the loss chart)."""
        match = STEP.search(one(d, "#progress").text)
        points = sum(
            int(line.get_attribute("data-points") or 0)
            for line in every(d, "#loss-chart polyline[data-points]")
        )
        return (int(match.group(1)) if match else 0), points

    first_step, first_points = seen()
    p.wait_job(job["id"], until={"running"}, step=4, timeout=180)
    p.ok(p.http.post(f"{jobs}/pause", headers=p.acme))
    paused = p.wait_job(job["id"], until={"paused"}, timeout=60)
    total = paused["progress"]["total_steps"]
    assert paused["progress"]["step"] < total == CONFIG["max_steps"], paused["progress"]

    def mid_run() -> list[int]:
        step, points = seen()
        moved = first_step < step < total and points > first_points
        return [step, points] if moved and "paused" in one(d, "#live").text else []

    during = wait_for(d, mid_run, "the page to show the job mid-run", timeout=30)
    screenshot(d, "job-running")
    p.ok(p.http.post(f"{jobs}/resume", headers=p.acme))
    wait_for(
        d,
        lambda: one(d, "#live").get_attribute("data-live-done") == "1",
        "the job to finish on its page",
        timeout=300,
    )
    last_step, last_points = seen()
    assert last_step == total and last_points > during[1], (during, last_step, last_points)
    assert d.execute_script("return window.__loaded_once === true"), "the page was reloaded"
    assert "succeeded" in one(d, "#live").text
    assert every(d, "#events li, #events tr"), "no events listed"
    screenshot(d, "job")


def test_a_tenant_cannot_reach_another_tenants_pages(
    cw: ConsoleWorld, job: dict[str, Any], version: int
) -> None:
    if cw.globex._driver is None:
        cw.globex.sign_in()
    acme_pages = [
        "/console/t/acme",
        f"/console/t/acme/adapters/{ADAPTER}",
        f"/console/t/acme/adapters/{ADAPTER}/v/{version}",
        f"/console/t/acme/adapters/{ADAPTER}/evals",
        f"/console/t/acme/jobs/{job['id']}",
        "/console/t/acme/jobs",
    ]
    with cw.globex.http() as http:
        for path in acme_pages:
            d = cw.globex.open(path)
            heading, message = error_page(d)
            assert heading.startswith("Not found"), (path, heading)
            assert "acme" in message or "not found" in message.lower(), (path, message)
            assert ADAPTER not in d.find_element(By.TAG_NAME, "main").text.replace(
                f"/{ADAPTER}", ""
            ), path
            assert http.get(path).status_code == 404, path
        # its own pages answer, and list nothing of acme's
        assert http.get("/console/t/globex").status_code == 200
        d = cw.globex.open("/console/t/globex")
        assert not every(d, f'#adapters tr[data-adapter="{ADAPTER}"]')
        # the platform-wide pages are not for tenants
        assert http.get("/console/audit").status_code == 403
    with cw.acme.http() as http:  # while acme itself sees them
        for path in acme_pages:
            assert http.get(path).status_code == 200, path


def test_an_auditor_sees_no_promote_form_and_a_forged_promote_is_refused(
    cw: ConsoleWorld, version: int
) -> None:
    auditor = cw.auditor
    if auditor._driver is None:
        auditor.sign_in()
    p = cw.platform
    before = p.ok(p.http.get(f"{ACME}/aliases", headers=p.ops))
    for path in (VERSION_PAGE, f"/console/t/acme/adapters/{ADAPTER}"):
        d = auditor.open(path)
        assert every(d, "#status" if path == VERSION_PAGE else "#versions"), path
        forms = [f.get_attribute("action") or "" for f in every(d, "main form")]
        assert not [f for f in forms if "/aliases/" in f or "/cancel" in f], (path, forms)
        assert not every(d, 'main input[name="reason"]'), path
    csrf = one(auditor.driver, 'form[action="/console/logout"] input[name="csrf"]')
    form = {
        "csrf": csrf.get_attribute("value") or "",
        "version": str(version),
        "reason": "an auditor tries to promote",
    }
    with auditor.http() as http:
        resp = http.post(f"/console/t/acme/adapters/{ADAPTER}/aliases/production", data=form)
    assert resp.status_code == 403, resp.text[:2000]
    assert "stale" not in resp.text  # the CSRF value was good: the scope refused it
    assert p.ok(p.http.get(f"{ACME}/aliases", headers=p.ops)) == before
    assert "an auditor tries to promote" not in str(
        p.ok(p.http.get("/v1/audit/events", headers=p.ops))
    )


def test_a_promote_with_a_reason_shows_in_the_alias_history_and_the_audit_log(
    cw: ConsoleWorld, version: int
) -> None:
    acme, p = cw.acme, cw.platform
    if acme._driver is None:
        acme.sign_in()
    reason = "console e2e: the held-out loss looks right"
    d = acme.open(f"/console/t/acme/adapters/{ADAPTER}/v/{version}")
    form = one(d, 'form[action$="/aliases/production"]')
    form.find_element(By.CSS_SELECTOR, 'input[name="reason"]').send_keys(reason)
    form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    wait_for(d, lambda: "done=promoted" in d.current_url, "the promote to answer")
    assert one(d, "#flash").is_displayed()
    rows = [r.text for r in every(d, "#alias-history tr.alias-event")]
    assert any(reason in r and "production" in r for r in rows), rows
    aliases = p.ok(p.http.get(f"{ACME}/aliases", headers=p.acme))
    assert any(a["alias"] == "production" and a["version"] == version for a in aliases)
    screenshot(d, "version")

    auditor = cw.auditor
    if auditor._driver is None:
        auditor.sign_in()
    d = auditor.open("/console/audit")
    field = one(d, '#audit-filters [name="tenant"]')
    if field.tag_name == "select":
        Select(field).select_by_value("acme")
    else:
        field.clear()
        field.send_keys("acme")
    field.submit()
    wait_for(d, lambda: "tenant=acme" in d.current_url, "the filter to apply")
    events = [r.text for r in every(d, "#audit-events tr[data-seq]")]
    assert events and all("globex" not in e for e in events), events
    assert any(reason in e and "alias" in e for e in events), events
    screenshot(d, "audit")


def test_the_verify_button_reports_a_tampered_chain(cw: ConsoleWorld, version: int) -> None:
    auditor = cw.auditor
    if auditor._driver is None:
        auditor.sign_in()
    d = auditor.open("/console/audit")
    one(d, "#verify").click()
    result = wait_for(d, lambda: every(d, "#verify-result"), "the verify result")[0]
    assert "ok" in (result.get_attribute("class") or "").split(), result.text

    seq = cw.sql("SELECT max(seq) FROM audit_events WHERE action LIKE 'alias%'")[0][0]
    assert seq is not None
    cw.sql("ALTER TABLE audit_events DISABLE TRIGGER USER")  # a superuser who switches it off
    try:
        cw.sql("UPDATE audit_events SET actor = 'mallory' WHERE seq = :seq", seq=seq)
    finally:
        cw.sql("ALTER TABLE audit_events ENABLE TRIGGER USER")

    d = auditor.open("/console/audit")
    one(d, "#verify").click()
    bad = wait_for(d, lambda: every(d, "#verify-result.bad"), "the verify result to be bad")[0]
    assert re.search(rf"\b{seq}\b", bad.text), bad.text
    one(bad, "a").click()  # to the bad event in the log
    row = wait_for(d, lambda: every(d, f'#audit-events tr[data-seq="{seq}"]'), "the bad event")
    assert "mallory" in row[0].text, row[0].text


@pytest.fixture
def cw(console_world: ConsoleWorld) -> ConsoleWorld:
    return console_world
