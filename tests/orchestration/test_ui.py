"""The Dagster UI, started as a user starts it (``hybridops ui``), shows the pipeline run of the session.

Headless Chromium (the system one, never a downloaded browser) drives the real webserver on the real
instance that ``hybridops run`` filled: the asset graph lists every asset, the ``flights`` asset lists its
checks, and the runs page lists every run of the summary. ``HYBRIDOPS_UPDATE_SCREENSHOTS=1`` writes the
asset-graph screenshot into ``docs/img/``; otherwise it goes to the test's tmp folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools import require_tool

pytestmark = [pytest.mark.ui, pytest.mark.e2e]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HYBRIDOPS = str(Path(sys.executable).with_name("hybridops"))
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO_ROOT / "docs" / "img" / "dagster-asset-graph.png"
GRAPH_ASSETS = ["raw_flights", "flights", "spc_daily_metrics", "fct_flights", "online_features"]
START_TIMEOUT_S = 90
RENDER_TIMEOUT_MS = 60_000


def _free_port() -> int:
    # Same as conftest.free_port, kept here so the module imports under any pytest import mode.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`hybridops ui` exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"`hybridops ui` did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the webserver and its code server: the whole process group started for them."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # The webserver exits before its gRPC code server has finished: take down what is left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def chromium() -> str:
    """The system Chromium the UI tests drive (checked before the pipeline run they also need)."""
    return require_tool("chromium")


@pytest.fixture(scope="module")
def ui_url(
    chromium: str, pipeline_run: tuple[Path, object], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``hybridops ui`` on the session's pipeline home, as a user would start it."""
    home, _ = pipeline_run
    port = _free_port()
    log = tmp_path_factory.mktemp("ui") / "hybridops-ui.log"
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    env["HYBRIDOPS_HOME"] = str(home)
    # The pages are checked against what `hybridops run` wrote: the daemon's sensors stay stopped (the
    # daemon itself is tested in test_ui_daemon).
    env["HYBRIDOPS_ORCHESTRATION__AUTOMATION"] = "false"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [HYBRIDOPS, "ui", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp_path_factory.getbasetemp(),  # not the repo: the code location must load by module
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_serving(base, process, log)
        yield base
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def browser(chromium: str, ui_url: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(RENDER_TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def _code_location_loaded(page) -> None:
    """Fail with Dagster's own words when the code location did not load."""
    errors = page.get_by_text("Error loading")
    assert errors.count() == 0, page.inner_text("body")[:2000]


def _in_view(page, names: list[str]) -> bool:
    """Every named node is on screen, below the page header."""
    for name in names:
        box = page.get_by_text(name, exact=True).first.bounding_box()
        if box is None or box["x"] < 0 or box["y"] < 95 or box["x"] + box["width"] > 1600:
            return False
        if box["y"] + box["height"] > 1000:
            return False
    return True


def test_asset_graph_shows_the_pipeline_assets(page, ui_url: str, tmp_path: Path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{ui_url}/asset-groups")  # "Lineage": the global asset graph
    page.get_by_text("Global asset lineage").first.wait_for()
    # With several groups the graph starts collapsed to one box per group: expand them all.
    page.get_by_role("button", name="quality").first.wait_for()
    _code_location_loaded(page)
    expand = page.get_by_role("menuitem", name="Expand all groups")
    for _ in range(3):  # the graph's context menu; a late dialog may close it, so try again
        page.mouse.click(900, 250, button="right")
        with contextlib.suppress(PlaywrightTimeout):
            expand.click(timeout=5_000)
            break
    for asset in GRAPH_ASSETS:
        page.get_by_text(asset, exact=True).first.wait_for()

    # Screenshot: hide the asset tree, zoom out until the whole graph fits, wait for the statuses.
    page.locator("button:has([aria-label=panel_show_right])").last.click()
    for _ in range(4):
        if _in_view(page, GRAPH_ASSETS):
            break
        page.locator("button:has([aria-label=zoom_out])").click()
        page.wait_for_timeout(400)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)
    assert _in_view(page, GRAPH_ASSETS), "the pipeline assets do not fit in the 1600x1000 screenshot"
    update = os.environ.get("HYBRIDOPS_UPDATE_SCREENSHOTS") == "1"
    target = SCREENSHOT if update else tmp_path / SCREENSHOT.name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000


def test_asset_catalog_lists_the_pipeline_assets(page, ui_url: str):
    # The catalog list is virtualized (rows below the fold are not in the DOM): open each asset's page.
    for asset in GRAPH_ASSETS:
        page.goto(f"{ui_url}/assets/{asset}")
        page.get_by_text("Latest materialization").first.wait_for()
        page.get_by_text(asset, exact=True).first.wait_for()
    _code_location_loaded(page)


def test_flights_asset_lists_its_checks(page, ui_url: str, pipeline_run):
    _, summary = pipeline_run
    expected = {check.name for check in summary.checks if check.asset == "flights"}
    assert "bad_row_ratio" in expected
    page.goto(f"{ui_url}/assets/flights?view=checks")
    page.get_by_text(f"Checks ({len(expected)})").first.wait_for()
    for name in sorted(expected):
        # Long names are middle-truncated on screen; the full name stays in the row's DOM.
        page.get_by_text(name, exact=True).first.wait_for(state="attached")
    # The selected check shows its last evaluation, as written by the quality gate.
    page.get_by_text("bad_row_ratio", exact=True).first.click()
    page.get_by_text("rows quarantined").first.wait_for()


def test_runs_page_lists_every_run(page, ui_url: str, pipeline_run):
    _, summary = pipeline_run
    assert summary.run_ids
    page.goto(f"{ui_url}/runs")
    for run_id in summary.run_ids:
        page.get_by_text(run_id[:8], exact=True).first.wait_for()
    for job in ("dimensions", "monthly_partition", "report"):
        page.get_by_text(job, exact=True).first.wait_for()
    # Consecutive months are one run (after the dimensions); its log shows each month's own numbers.
    page.goto(f"{ui_url}/runs/{summary.run_ids[1]}")
    page.get_by_text("monthly_partition", exact=False).first.wait_for()
    for month in summary.months:
        page.get_by_text(month, exact=True).first.wait_for()


def test_a_fresh_instance_greets_nobody_with_the_community_dialog(page, ui_url: str):
    """The instance hybridops creates turns Dagster's first-visit dialog off (``nux: enabled: false``)."""
    import json

    request = urllib.request.Request(
        f"{ui_url}/graphql",
        data=json.dumps({"query": "{ shouldShowNux }"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["data"] == {"shouldShowNux": False}
    page.goto(f"{ui_url}/overview")  # a browser with empty local storage, on localhost
    page.get_by_text("Overview").first.wait_for()
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(2000)
    assert page.get_by_text("Join the Dagster community").count() == 0
    assert page.get_by_role("button", name="Skip").count() == 0


def test_spc_asset_shows_rounded_metadata_with_units_and_the_control_chart(page, ui_url: str, pipeline_run):
    home, _ = pipeline_run
    page.goto(f"{ui_url}/assets/spc_daily_metrics?view=events")
    page.get_by_text("control_chart_dep_delay_mean", exact=True).first.wait_for()
    _code_location_loaded(page)
    key = page.get_by_text("dep_delay_mean_ucl [min]", exact=True).first
    key.wait_for()
    value = key.locator("xpath=ancestor::tr[1]").inner_text().split()[-1]
    assert re.fullmatch(r"-?\d+(\.\d{1,2})?", value), value  # rounded, not 15 digits
    assert page.get_by_text("cancellation_rate_mean [%]", exact=True).count() == 1
    # The control chart: a PNG in the reports folder, shown as an image on the asset
    page.get_by_text(str(home / "reports" / "spc"), exact=False).first.wait_for()
    # the chart's own row (other markdown metadata, the alarm table, may come first)
    chart_row = page.get_by_text("control_chart_dep_delay_mean", exact=True).first.locator(
        "xpath=ancestor::tr[1]"
    )
    chart_row.get_by_text("[Show Markdown]").first.click()
    image = page.locator("img[src^='data:image/png']").first
    image.wait_for()
    width, height = image.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert (width, height) == (810, 288)
