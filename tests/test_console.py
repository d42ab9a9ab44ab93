"""The web console at /ui, driven by Playwright in Debian's Chromium (headless): sign in,
watch requests sent through the official OpenAI SDK appear, open one's attempt chain, create
a key and see its secret once, use it, revoke it and see the next call refused, create,
edit and delete an organisation (its teams' keys revoked with it), filter spend
by team; a team admin's and an auditor's console show and allow only what their role may;
the Vendors page's independence measures; no console error on any page; screenshots of every
page at desktop and phone width into docs/console/. One gateway and one browser per module."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import SIM_KEY, gateway_config, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

CHROMIUM = "/usr/bin/chromium"
MASTER = "console-master-key-0d9f8a7b6c5e"
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "console"
USER = [{"role": "user", "content": "Say hello."}]
SIZES = {"desktop": (1280, 860), "phone": (390, 844)}

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install playwright)")
if shutil.which(CHROMIUM) is None:
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test does it "
                "when run as root)", allow_module_level=True)


def admin(gw: GatewayProcess, method: str, path: str, body: Any = None,
          key: str = MASTER) -> Any:
    request = urllib.request.Request(
        f"{gw.root_url}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def refused(gw: GatewayProcess, key: str, method: str, path: str, body: Any = None) -> str:
    """The error code of an admin call that must be refused with 403."""
    with pytest.raises(urllib.error.HTTPError) as info:
        admin(gw, method, path, body, key=key)
    assert info.value.code == 403
    return str(json.loads(info.value.read())["error"]["code"])


@pytest.fixture(scope="module")
def gw(sim: SimServer) -> Iterator[GatewayProcess]:
    config = gateway_config(sim, auth={"master_key": "${POLYROUTE_MASTER_KEY}"})
    # A second vendor (the same simulator under another provider name), for the Vendors page.
    config["providers"]["northwind"] = sim_provider(sim)
    config["model_groups"]["echo"]["deployments"][0]["provider"] = "northwind"
    for group in config["model_groups"].values():  # priced, so that spend shows
        for dep in group["deployments"]:
            dep["price"] = {"input_per_1m": 150.0, "output_per_1m": 600.0}
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY, "POLYROUTE_MASTER_KEY": MASTER}) as g:
        admin(g, "POST", "/admin/orgs", {"id": "acme", "monthly_budget_usd": 100})
        admin(g, "POST", "/admin/teams", {"id": "research", "org": "acme",
                                          "daily_budget_usd": 5})
        admin(g, "POST", "/admin/teams", {"id": "support", "org": "acme"})
        yield g


@pytest.fixture(scope="module")
def roles(gw: GatewayProcess) -> dict[str, str]:
    """Admin keys of the two limited roles: research's team admin, and an auditor."""
    return {
        "team_admin": admin(gw, "POST", "/admin/admin-keys",
                            {"role": "team_admin", "teams": ["research"]})["key"],
        "auditor": admin(gw, "POST", "/admin/admin-keys", {"role": "auditor"})["key"]}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(str(e)))
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    pg.problems = problems
    pg.dialogs = dialogs  # what each confirm() asked, in order
    yield pg
    context.close()
    assert problems == [], f"console errors: {problems}"


def sign_in(pg: Any, gw: GatewayProcess, key: str = MASTER) -> None:
    pg.goto(f"{gw.root_url}/ui")
    pg.get_by_label("Admin key").fill(key)
    pg.get_by_role("button", name="Sign in").click()
    pg.get_by_role("heading", name="Overview").wait_for()


def key_for(gw: GatewayProcess, team: str, name: str) -> str:
    return str(admin(gw, "POST", "/admin/keys", {"name": name, "team": team})["key"])


def test_sign_in_is_refused_with_a_wrong_key(page: Any, gw: GatewayProcess) -> None:
    page.goto(f"{gw.root_url}/ui")
    page.get_by_label("Admin key").fill("not-the-master-key-at-all")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="master key").wait_for()
    assert page.get_by_role("navigation").is_hidden()
    page.problems.clear()  # the browser logs the refused fetch (401) itself


def test_requests_appear_and_show_their_attempt_chain(page: Any, gw: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key=key_for(gw, "research", "r1"),
                           max_retries=0)
    sign_in(page, gw)
    raw = client.chat.completions.with_raw_response.create(model="failover", messages=USER)
    request_id = raw.headers["x-request-id"]
    for _ in range(3):
        client.chat.completions.create(model="chat", messages=USER)

    # Overview (live): the requests are counted without a reload.
    page.wait_for_function(
        """() => Number((document.querySelector('[data-tile="count"] .v') || {})
                        .textContent?.replace(/,/g, '')) >= 4""", timeout=10_000)
    page.get_by_role("cell", name="research").first.wait_for()

    page.get_by_role("link", name="Requests").click()
    row = page.get_by_role("link", name=request_id)
    row.wait_for(timeout=10_000)
    row.click()
    chain = page.locator("#attempt-chain li")
    chain.first.wait_for()
    texts = chain.all_inner_texts()
    assert len(texts) == 2
    assert "primary" in texts[0] and "upstream_unavailable" in texts[0]
    assert "backup" in texts[1] and "ok" in texts[1]
    assert page.locator("dl.kv").get_by_text("research", exact=True).is_visible()


def test_create_use_and_revoke_a_key(page: Any, gw: GatewayProcess) -> None:
    sign_in(page, gw)
    page.get_by_role("link", name="Keys & teams").click()
    page.get_by_label("Name").fill("from-the-console")
    page.locator("#k-team").select_option("support")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret").inner_text()
    assert secret.startswith("sk-pr-")
    key_id = secret.split("-")[2]

    client = openai.OpenAI(base_url=gw.base_url, api_key=secret, max_retries=0)
    assert client.chat.completions.create(model="chat", messages=USER).choices

    page.reload()  # the secret is never shown again
    page.get_by_role("heading", name="Keys, teams and organisations").wait_for()
    assert secret not in page.content()
    # Limits and budgets are changed in place.
    page.get_by_role("button", name=f"Edit limits of key {key_id}").click()
    limits = page.get_by_role("form", name=f"Limits of key {key_id}")
    limits.get_by_label("Requests per minute").fill("1000")
    limits.get_by_label("Daily budget (USD)").fill("2.5")
    limits.get_by_role("button", name="Save limits").click()
    page.get_by_role("row").filter(has_text=key_id).filter(has_text="$2.50").wait_for()
    stored = admin(gw, "GET", f"/admin/keys/{key_id}")
    assert stored["rpm"] == 1000 and stored["daily_budget_usd"] == 2.5

    page.get_by_role("button", name=f"Revoke key {key_id}").click()
    page.get_by_role("row").filter(has_text=key_id).filter(has_text="revoked").wait_for()
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="chat", messages=USER)


def test_create_edit_and_delete_an_organisation(page: Any, gw: GatewayProcess) -> None:
    sign_in(page, gw)
    page.get_by_role("link", name="Keys & teams").click()
    create = page.get_by_role("form", name="Create an organisation")
    create.get_by_label("Organisation id").fill("globex")
    create.get_by_label("Monthly budget (USD)").fill("40")
    create.get_by_role("button", name="Create organisation").click()
    page.get_by_role("row").filter(has_text="globex").filter(has_text="$40.00").wait_for()
    assert admin(gw, "GET", "/admin/orgs/globex")["monthly_budget_usd"] == 40
    # A team of it with a key: deleting the organisation must revoke that key. (The key is
    # not used first: its spend would show in the other tests' per-team figures.)
    admin(gw, "POST", "/admin/teams", {"id": "globex-ops", "org": "globex"})
    made = admin(gw, "POST", "/admin/keys", {"name": "g1", "team": "globex-ops"})
    page.reload()

    # By keyboard: Enter on the focused button opens the form with the focus in its first field.
    page.get_by_role("button", name="Edit limits of organisation globex").focus()
    page.keyboard.press("Enter")
    limits = page.get_by_role("form", name="Limits of organisation globex")
    assert limits.get_by_label("Monthly budget (USD)").input_value() == "40"
    assert page.evaluate("document.activeElement.id") == "e-daily_budget_usd"
    limits.get_by_label("Monthly budget (USD)").fill("12.5")
    limits.get_by_label("Requests per minute").fill("600")
    limits.get_by_label("Allowed model groups").fill("chat, echo")
    limits.get_by_label("Tags").fill("cost-centre=cc-7, region=eu")
    limits.get_by_role("button", name="Save limits").click()
    row = page.get_by_role("row").filter(has_text="globex-ops").filter(has_text="$12.50")
    row.filter(has_text="region=eu").wait_for()
    stored = admin(gw, "GET", "/admin/orgs/globex")
    assert stored["monthly_budget_usd"] == 12.5 and stored["rpm"] == 600
    assert stored["models"] == ["chat", "echo"]
    assert stored["tags"] == {"cost-centre": "cc-7", "region": "eu"}
    # Emptied again: the allow-list is lifted and the budget cleared.
    page.get_by_role("button", name="Edit limits of organisation globex").click()
    limits.get_by_label("Allowed model groups").fill("")
    limits.get_by_label("Monthly budget (USD)").fill("")
    limits.get_by_label("Tags").fill("no-equals-sign")
    limits.get_by_role("button", name="Save limits").click()
    page.get_by_role("alert").filter(has_text='Tag "no-equals-sign" is not key=value.').wait_for()
    assert admin(gw, "GET", "/admin/orgs/globex")["monthly_budget_usd"] == 12.5  # not sent
    limits.get_by_label("Tags").fill("")
    limits.get_by_role("button", name="Save limits").click()
    page.get_by_role("row").filter(has_text="globex-ops").filter(has_text="all").wait_for()
    stored = admin(gw, "GET", "/admin/orgs/globex")
    assert "models" not in stored and "monthly_budget_usd" not in stored
    assert stored.get("tags", {}) == {} and stored["rpm"] == 600

    page.get_by_role("button", name="Delete organisation globex").focus()
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Delete organisation globex").wait_for(state="detached")
    page.get_by_role("row").filter(has_text="globex-ops").filter(has_text="revoked").wait_for()
    assert "globex-ops" in page.dialogs[-1] and "revoked" in page.dialogs[-1]
    with pytest.raises(urllib.error.HTTPError) as gone:
        admin(gw, "GET", "/admin/orgs/globex")
    assert gone.value.code == 404
    assert page.locator("#t-org option").all_inner_texts() == ["(none)", "acme"]
    assert admin(gw, "GET", f"/admin/keys/{made['id']}")["revoked"]
    client = openai.OpenAI(base_url=gw.base_url, api_key=made["key"], max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="chat", messages=USER)


def test_spend_filters_by_team(page: Any, gw: GatewayProcess) -> None:
    research = openai.OpenAI(base_url=gw.base_url, api_key=key_for(gw, "research", "r2"),
                             max_retries=0)
    support = openai.OpenAI(base_url=gw.base_url, api_key=key_for(gw, "support", "s2"),
                            max_retries=0)
    research.chat.completions.create(model="chat", messages=USER)
    support.chat.completions.create(model="echo", messages=USER)
    sign_in(page, gw)
    page.get_by_role("link", name="Spend").click()
    page.get_by_label("Group by").select_option("team")
    page.get_by_role("button", name="Show").click()
    table = page.locator("#spend-table")
    table.get_by_role("cell", name="support").wait_for()
    assert table.get_by_role("cell", name="research").is_visible()
    # Per day, stacked by team: today's bar has one segment per team, titled with its cost.
    per_day = page.locator("#spend-per-day")
    assert per_day.locator(".legend").inner_text().split() == ["research", "support"]
    segments = per_day.locator("rect title").all_text_contents()
    assert any(" · research: $" in t for t in segments)
    assert any(" · support: $" in t for t in segments)

    page.get_by_label("Team", exact=True).fill("research")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**#spend?*team=research*")
    table = page.locator("#spend-table")
    table.get_by_role("cell", name="research").wait_for()
    assert table.get_by_role("cell", name="support").count() == 0
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    text = Path(download.value.path()).read_text()
    assert text.startswith("Team,Requests") and "research" in text and "support" not in text


def test_every_page_renders_at_desktop_and_phone_width(browser: Any, gw: GatewayProcess,
                                                       roles: dict[str, str]) -> None:
    """Screenshots for docs/console/, and no console error on any page at either width; the
    Keys page also as a team admin and as an auditor sees it."""
    client = openai.OpenAI(base_url=gw.base_url, api_key=key_for(gw, "research", "shots"),
                           max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="failover", messages=USER)
    request_id = raw.headers["x-request-id"]
    pages = {"overview": "Overview", "deployments": "Deployments", "requests": "Requests",
             f"request/{request_id}": f"Request {request_id}", "spend": "Spend",
             "keys": "Keys, teams and organisations", "vendors": "Vendors"}
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in SIZES.items():
        context = browser.new_context(viewport={"width": width, "height": height})
        pg = context.new_page()
        problems: list[str] = []
        pg.on("console", lambda m, p=problems: p.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e, p=problems: p.append(str(e)))
        sign_in(pg, gw)
        for path, heading in pages.items():
            pg.goto(f"{gw.root_url}/ui#{path}")
            pg.get_by_role("heading", name=heading, exact=True).wait_for()
            pg.wait_for_load_state("networkidle")
            pg.wait_for_timeout(300)
            name = path.split("/")[0]
            pg.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)
            # Nothing overflows sideways at phone width except inside scrollable tables.
            overflow = pg.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{path} overflows by {overflow}px at {size} width"
        for role in ("team_admin", "auditor"):
            pg.get_by_role("button", name="Sign out").click()
            sign_in(pg, gw, roles[role])
            pg.goto(f"{gw.root_url}/ui#keys")
            pg.get_by_role("heading", name="Keys, teams and organisations").wait_for()
            pg.locator("#role-hint").wait_for()
            pg.wait_for_load_state("networkidle")
            pg.screenshot(path=str(SHOTS / f"keys-{role.replace('_', '-')}-{size}.png"),
                          full_page=True)
            overflow = pg.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"keys as {role} overflows by {overflow}px at {size} width"
        context.close()
        assert problems == [], f"console errors at {size} width: {problems}"


def test_team_admin_sees_and_changes_only_its_teams(page: Any, gw: GatewayProcess,
                                                     roles: dict[str, str]) -> None:
    research = openai.OpenAI(base_url=gw.base_url, api_key=key_for(gw, "research", "r3"),
                             max_retries=0)
    support_key = admin(gw, "POST", "/admin/keys", {"name": "s3", "team": "support"})
    support = openai.OpenAI(base_url=gw.base_url, api_key=support_key["key"], max_retries=0)
    mine = research.chat.completions.with_raw_response.create(
        model="chat", messages=USER).headers["x-request-id"]
    theirs = support.chat.completions.with_raw_response.create(
        model="chat", messages=USER).headers["x-request-id"]

    sign_in(page, gw, roles["team_admin"])
    assert page.locator("#whoami").inner_text() == "team admin · research"
    nav = page.get_by_role("navigation")
    assert nav.get_by_role("link", name="Deployments").is_hidden()
    assert nav.get_by_role("link", name="Vendors").is_hidden()
    page.get_by_role("cell", name="research").first.wait_for()  # Overview: its team only
    assert page.get_by_role("cell", name="support").count() == 0

    nav.get_by_role("link", name="Requests").click()
    page.get_by_role("link", name=mine).wait_for(timeout=10_000)
    assert page.get_by_role("link", name=theirs).count() == 0
    page.goto(f"{gw.root_url}/ui#request/{theirs}")  # another team's request: refused
    page.get_by_role("alert").filter(has_text="team_admin role may not").wait_for()
    page.problems.clear()  # the browser logs the refused fetch (403) itself

    nav.get_by_role("link", name="Spend").click()
    page.get_by_label("Group by").select_option("team")
    page.get_by_role("button", name="Show").click()
    page.locator("#spend-table").get_by_role("cell", name="research").wait_for()
    assert page.locator("#s-team option").all_inner_texts() == ["research"]
    assert page.locator("#spend-table").get_by_role("cell", name="support").count() == 0
    assert page.locator("#spend-per-day .legend").count() == 0  # one team: no legend

    nav.get_by_role("link", name="Keys & teams").click()
    page.get_by_role("heading", name="Keys, teams and organisations").wait_for()
    assert page.locator("#k-team option").all_inner_texts() == ["research"]
    assert page.get_by_role("row").filter(has_text=support_key["id"]).count() == 0
    assert page.get_by_role("button", name="Create team").count() == 0
    assert page.get_by_role("heading", name="Organisations", exact=True).count() == 0
    assert page.get_by_role("button", name="Edit limits of organisation acme").count() == 0
    assert page.get_by_role("button", name="Edit limits of team research").is_visible()
    page.get_by_label("Name").fill("made-by-the-team-admin")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret").inner_text()
    key_id = secret.split("-")[2]
    assert admin(gw, "GET", f"/admin/keys/{key_id}")["team"] == "research"

    page.goto(f"{gw.root_url}/ui#vendors")  # not its page: the overview instead
    page.get_by_role("heading", name="Overview").wait_for()
    key = roles["team_admin"]
    assert refused(gw, key, "PATCH", f"/admin/keys/{support_key['id']}", {"rpm": 1}) == \
        "role_forbidden"
    assert refused(gw, key, "GET", "/admin/requests?team=support") == "role_forbidden"
    assert refused(gw, key, "GET", "/admin/deployments") == "role_forbidden"
    assert refused(gw, key, "GET", "/admin/vendors") == "role_forbidden"
    assert refused(gw, key, "GET", "/admin/orgs") == "role_forbidden"
    assert refused(gw, key, "PATCH", "/admin/orgs/acme", {"rpm": 1}) == "role_forbidden"
    assert {r["team"] for r in admin(gw, "GET", "/admin/requests", key=key)["data"]} == {
        "research"}


def test_auditor_reads_everything_and_is_offered_no_write(page: Any, gw: GatewayProcess,
                                                          roles: dict[str, str]) -> None:
    victim = admin(gw, "POST", "/admin/keys", {"name": "kept", "team": "support"})
    sign_in(page, gw, roles["auditor"])
    assert page.locator("#whoami").inner_text() == "auditor · read-only"
    nav = page.get_by_role("navigation")
    for name in ("Deployments", "Vendors"):
        nav.get_by_role("link", name=name).click()
        page.get_by_role("heading", name=name, exact=True).wait_for()
        page.locator("table").first.wait_for()

    nav.get_by_role("link", name="Keys & teams").click()
    page.get_by_role("row").filter(has_text=victim["id"]).wait_for()
    assert page.get_by_role("heading", name="Organisations", exact=True).is_visible()
    assert page.locator("#page form").count() == 0
    assert page.locator("#page button").count() == 0  # no create, limits or revoke control
    page.get_by_role("row").filter(has_text="acme").filter(has_text="research, support").wait_for()
    key = roles["auditor"]
    assert refused(gw, key, "POST", "/admin/keys", {"name": "nope"}) == "role_forbidden"
    assert refused(gw, key, "DELETE", f"/admin/keys/{victim['id']}") == "role_forbidden"
    assert refused(gw, key, "PATCH", "/admin/teams/research", {"rpm": 1}) == "role_forbidden"
    assert refused(gw, key, "PATCH", "/admin/orgs/acme", {"rpm": 1}) == "role_forbidden"
    assert refused(gw, key, "DELETE", "/admin/orgs/acme") == "role_forbidden"
    assert admin(gw, "GET", "/admin/orgs/acme")["monthly_budget_usd"] == 100  # unchanged
    assert not admin(gw, "GET", f"/admin/keys/{victim['id']}").get("revoked")  # still active


def test_vendors_page_shows_the_independence_measures(page: Any, gw: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key=key_for(gw, "research", "v1"),
                           max_retries=0)
    def vendors() -> tuple[dict[str, Any], dict[str, Any]]:
        view = admin(gw, "GET", "/admin/independence?since=30d")
        (whole,) = [c for c in view["report"]["concentrations"]
                    if c["scope"] == "all" and c["dimension"] == "vendor"]
        return view, whole

    before = vendors()[1]["requests"]
    for model in ("chat", "chat", "echo"):
        client.chat.completions.create(model=model, messages=USER)
    deadline = time.monotonic() + 10
    while True:  # the ledger is written a moment after the answers
        view, whole = vendors()
        if whole["requests"] == before + 3:
            break
        assert time.monotonic() < deadline, whole
        time.sleep(0.05)
    assert {s["name"] for s in whole["shares"]} == {"sim", "northwind"}
    assert whole["top"] == "sim" and 0.5 < whole["top_share"] < 1
    sign_in(page, gw)
    page.get_by_role("link", name="Vendors").click()
    top = page.locator('[data-tile="top"]')
    top.wait_for()
    assert top.inner_text().startswith(f"{100 * whole['top_share']:.1f} %")
    assert "(sim)" in top.inner_text()
    assert page.locator('[data-tile="hhi30"] .v').inner_text() == \
        f"{round(whole['hhi_requests']):,}"
    # Each group has one vendor: losing it takes the group down.
    groups = {f["name"] for f in view["findings"] if f["scope"] == "group"}
    assert {"chat", "echo"} <= groups
    assert page.locator('[data-tile="spof"] .v').inner_text() == str(len(groups))
    chat = page.locator("#spof").get_by_role("cell", name="chat", exact=True)
    assert chat.count() == sum(1 for f in view["findings"]
                               if f["scope"] == "group" and f["name"] == "chat")
    share = page.get_by_role("region", name="Share per vendor, 30 days")
    for vendor in ("sim", "northwind"):
        assert share.get_by_role("cell", name=vendor, exact=True).is_visible()
    # Latency over time: a point per vendor and hour with answered requests, both vendors.
    latency = page.locator("#vendor-latency")
    assert latency.locator(".legend").inner_text().split() == ["sim", "northwind"]
    titles = latency.locator("circle title").all_text_contents()
    assert any(" · sim: " in t for t in titles) and any(" · northwind: " in t for t in titles)
