"""The review app in headless Chromium (Debian's chromium + chromium-driver, driven by selenium):
keyboard review, highlights at the right text, XSS payloads that never run, screenshots.

Skipped with a message when Chromium or its driver is not installed (``.ci/run`` installs them).
Screenshots go to ``$NARCOTAG_REVIEW_SCREENSHOTS`` (default /tmp) as ``review_*.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from test_review_support import XSS, batch_records, live_server, write_batch

from pipeline.review.app import create_app
from pipeline.review.storage import ReviewStore, open_review

SHOTS = Path(os.environ.get("NARCOTAG_REVIEW_SCREENSHOTS", "/tmp"))


def _find(names: list[str], env: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    return next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium session (one per module: starting it is the slow part)."""
    chromium = _find(["chromium", "chromium-browser", "google-chrome"], "CHROMIUM_BIN")
    driver_bin = _find(["chromedriver"], "CHROMEDRIVER")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        pytest.skip(f"selenium not installed ({e}): pip install selenium")
    if not chromium or not driver_bin:
        pytest.skip(
            "headless Chromium not available (chromium and chromedriver not on PATH): "
            "apt-get install -y chromium chromium-driver (.ci/run does)"
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium-manager download anything
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,1000", "--lang=en-US"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(driver_bin))
    except Exception as e:  # noqa: BLE001 - any start failure means: no browser here
        pytest.skip(f"headless Chromium would not start: {type(e).__name__}: {e}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    store, batch, _ = open_review(write_batch(tmp_path / "scored" / "batch.jsonl"), tmp_path / "review.db")
    app = create_app(store, batch.name, reviewer="alice")
    with live_server(app) as base:
        yield {"store": store, "base": base}


def press(driver: Any, key: str, shift: bool = False) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    chain = ActionChains(driver)
    chain = chain.key_down(Keys.SHIFT).send_keys(key).key_up(Keys.SHIFT) if shift else chain.send_keys(key)
    chain.perform()


def wait_for(driver: Any, condition: Any, timeout: float = 10) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def current_record(driver: Any) -> str:
    path = urlsplit(driver.current_url).path
    return unquote(path.removeprefix("/record/")) if path.startswith("/record/") else ""


def open_page(driver: Any, url: str) -> None:
    driver.get(url)
    wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")


def go_by_key(driver: Any, key: str, shift: bool = False) -> str:
    """Press a key that navigates and wait for the new page; returns the record id shown."""
    old = driver.find_element("tag name", "html")
    press(driver, key, shift)
    wait_for(driver, lambda d: d.find_element("tag name", "html") != old)
    wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
    return current_record(driver)


def checked(driver: Any, name: str) -> list[str]:
    return [
        e.get_attribute("value")
        for e in driver.find_elements("css selector", f'#decide input[name="{name}"]')
        if e.is_selected()
    ]


def test_review_by_keyboard(browser: Any, site: dict[str, Any]) -> None:
    store: ReviewStore = site["store"]
    order = [r["id"] for r in sorted(batch_records(), key=lambda r: r["confidence"])]
    open_page(browser, site["base"] + "/queue")
    press(browser, "j")
    assert browser.find_element("css selector", "#queue tr.selected").get_attribute("data-id") == order[0]
    assert go_by_key(browser, "\n") == order[0]
    assert go_by_key(browser, "j") == order[1]
    assert go_by_key(browser, "k") == order[0]

    open_page(browser, site["base"] + "/record/r-cocaine-nl")
    assert checked(browser, "drug_types") == ["cocaine"]
    assert browser.find_element("id", "accept-label").text == "accept"
    press(browser, "1")  # + cannabis
    press(browser, "1", shift=True)  # + benzodiazepine (label 10), then off again
    assert checked(browser, "drug_types") == ["cannabis", "cocaine", "benzodiazepine"]
    press(browser, "1", shift=True)
    assert browser.find_element("id", "accept-label").text == "save correction"
    press(browser, "h")
    press(browser, "3")  # + other_crypto in the hints group
    assert "other_crypto" in checked(browser, "laundering_hints")
    assert go_by_key(browser, "a") == "r-xanax-pl"  # saved, on to the next pending record
    last = store.decisions()[-1]
    assert last["rid"] == "r-cocaine-nl" and last["action"] == "correct" and last["reviewer"] == "alice"
    assert last["after"]["drug_types"] == ["cannabis", "cocaine"]
    assert last["after"]["laundering_hints"] == ["bitcoin", "other_crypto", "crypto_address"]
    assert last["after"]["quantity"]["total_grams"] == 5  # untouched fields kept as shown

    next_id = go_by_key(browser, "a")  # accept xanax as it is
    assert store.decisions()[-1]["action"] == "accept" and store.decisions()[-1]["rid"] == "r-xanax-pl"
    assert next_id and next_id != "r-xanax-pl"
    assert "2 / 33" in browser.find_element("id", "progress").text

    assert go_by_key(browser, "u") == "r-xanax-pl"  # undo goes back to the record undone
    assert store.decisions()[-1]["action"] == "undo"
    assert "1 / 33" in browser.find_element("id", "progress").text
    assert "undid your decision" in browser.find_element("css selector", "ul.flashes").text
    # typing in a field does not trigger shortcuts
    field = browser.find_element("css selector", 'input[name="ships_from"]')
    field.click()
    field.send_keys(", j, a")
    assert current_record(browser) == "r-xanax-pl"
    browser.save_screenshot(str(SHOTS / "review_keyboard.png"))


def test_highlights_at_the_right_text(browser: Any, site: dict[str, Any]) -> None:
    record = batch_records()[0]
    open_page(browser, site["base"] + "/record/r-cocaine-nl")
    marks = browser.execute_script(
        """
        const box = document.getElementById('record-text');
        const points = Array.from(box.textContent);   // code points, as the server counts
        return {
          full: box.textContent,
          marks: Array.from(box.querySelectorAll('mark')).map(m => ({
            kinds: m.dataset.kinds, text: m.textContent,
            at: points.slice(+m.dataset.start, +m.dataset.end).join(''),
          })),
        };"""
    )
    assert marks["full"] == record["text"]  # nothing lost, nothing added
    assert all(m["text"] == m["at"] for m in marks["marks"])  # each mark sits on its offsets
    by_kind: dict[str, list[str]] = {}
    for m in marks["marks"]:
        for kind in m["kinds"].split():
            by_kind.setdefault(kind, []).append(m["text"])
    assert by_kind == {
        "drug": ["Cocaine", "flake"],
        "qty": ["5g"],
        "origin": ["Netherlands", "EU"],
        "hint": ["BTC"],
        "addr": [record["crypto_addresses"][0]["address"]],
        "contact": ["@coke_nl"],
    }
    title = browser.find_element("css selector", "#record-text mark.hl-qty").get_attribute("title")
    assert title == "quantity: 5 g (offer, primary offer)"
    colours = {
        kind: browser.find_element("css selector", f"#record-text mark.hl-{kind}").value_of_css_property(
            "background-color"
        )
        for kind in ("drug", "qty", "origin", "hint")
    }
    assert len(set(colours.values())) == 4  # each kind visibly different
    browser.save_screenshot(str(SHOTS / "review_record.png"))


def test_xss_payloads_never_execute(browser: Any, site: dict[str, Any]) -> None:
    pages = ["/queue?status=all", "/queue?status=all&q=script"]
    pages += ["/record/" + quote(r["id"], safe="") for r in batch_records() if r["id"].startswith("x-")]
    for page in pages:
        browser.get_log("browser")  # drop earlier messages
        open_page(browser, site["base"] + page)
        # hover and click everything that holds hostile text, as an analyst would
        for mark in browser.find_elements("css selector", "#record-text mark, td a")[:20]:
            browser.execute_script(
                "arguments[0].dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))", mark
            )
        state = browser.execute_script(
            """return {
                 pwned: typeof window.__pwned === 'undefined' ? null : String(window.__pwned),
                 title: document.title,
                 injected: document.querySelectorAll('img, svg, iframe, object, embed, textarea, b').length,
                 jsLinks: document.querySelectorAll('[href^="javascript:" i], [src^="javascript:" i]').length,
                 scripts: Array.from(document.scripts).map(s => s.getAttribute('src')),
               };"""
        )
        assert state["pwned"] is None, (page, state)
        assert state["title"].endswith("narcotag review"), (page, state)  # payloads set "pwned-..."
        assert state["injected"] == 0 and state["jsLinks"] == 0, (page, state)
        assert state["scripts"] == ["/static/review.js"], (page, state)
        # nothing was even blocked by the CSP: no inline script reached the page at all
        messages = [
            m["message"] for m in browser.get_log("browser") if "Content Security Policy" in m["message"]
        ]
        assert messages == [], (page, messages)
    # the payloads are shown as text the analyst can read
    open_page(browser, site["base"] + "/record/x-script")
    assert XSS["script"] in browser.find_element("id", "record-text").text
    assert XSS["script"] in browser.find_element("css selector", "h1.title").text
    browser.save_screenshot(str(SHOTS / "review_xss.png"))
    open_page(browser, site["base"] + "/record/x-javascript")
    for link in browser.find_elements("css selector", "a"):
        assert not (link.get_attribute("href") or "").lower().startswith("javascript:")
    # keyboard review still works on a hostile record, and the decision is stored as data
    go_by_key(browser, "a")
    assert site["store"].decisions()[-1]["rid"] == "x-javascript"
    assert browser.execute_script("return typeof window.__pwned") == "undefined"


def test_queue_and_blind_screenshots(browser: Any, site: dict[str, Any], tmp_path: Path) -> None:
    open_page(browser, site["base"] + "/queue?status=all")
    rows = browser.find_elements("css selector", "#queue tr.row")
    assert len(rows) == len(batch_records())
    confidences = [float(r.find_element("css selector", "td.conf").text) for r in rows]
    assert confidences == sorted(confidences)
    browser.save_screenshot(str(SHOTS / "review_queue.png"))

    store, batch, _ = open_review(write_batch(tmp_path / "b2.jsonl"), tmp_path / "blind.db", blind_sample=1.0)
    store.decide("r-cocaine-nl", "alice", {"drug_types": ["cannabis"]})
    with live_server(create_app(store, batch.name, reviewer="bob")) as base:
        open_page(browser, base + "/record/r-cocaine-nl")
        status = browser.find_element("id", "status").text
        assert "Blind second review" in status and "alice" not in browser.page_source
        assert checked(browser, "drug_types") == ["cocaine"]  # the model's labels, not alice's
        browser.save_screenshot(str(SHOTS / "review_blind.png"))
