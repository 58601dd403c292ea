#!/usr/bin/env python3
"""End-to-end tests of the web dashboard in headless Chromium (playwright,
Debian's /usr/bin/chromium): the real `jobq serve` with tokens, on a temp
data dir and a free port. Run by scripts/browser.sh, which sets up the venv:

    bash scripts/browser.sh [path/to/jobq] [--screenshots DIR]

Each test prints PASS or FAIL; any failure (or a page error, or an alert
a job's name managed to raise) makes the run exit non-zero."""
import argparse, json, os, subprocess, sys, tempfile, time, traceback
import urllib.error, urllib.parse, urllib.request

from playwright.sync_api import expect, sync_playwright

ADMIN = "dash-admin-0123456789abcdef"
VIEWER = "dash-viewer-0123456789abcd"
XSS = "<img src=x onerror=alert(1)>"

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("--screenshots", help="write overview/jobs/job screenshots (desktop, phone) here")
ap.add_argument("--chromium", default="/usr/bin/chromium")
args = ap.parse_args()


def start_daemon():
    work = tempfile.mkdtemp(prefix="jobq-browser-")
    run_as = 'run_as = "nobody"' if os.getuid() == 0 else ""
    config = f"""listen = "127.0.0.1:0"
log = "info"
data_dir = "{work}/data"
workers = 2
kill_grace = "1s"
[[auth.tokens]]
name = "root"
role = "admin"
token = "{ADMIN}"
{run_as}
[[auth.tokens]]
name = "viewer"
role = "read"
token = "{VIEWER}"
"""
    with open(f"{work}/jobq.toml", "w") as f:
        f.write(config)
    log = open(f"{work}/daemon.log", "w")
    proc = subprocess.Popen([args.bin, "serve", "--config", f"{work}/jobq.toml"], stderr=log)
    addr = f"{work}/data/jobq.addr"
    deadline = time.monotonic() + 30
    while not (os.path.exists(addr) and open(addr).read().endswith("\n")):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"browser: jobq serve did not start; see {work}/daemon.log")
        time.sleep(0.05)
    return proc, "http://" + open(addr).read().strip(), work


daemon, BASE, WORK = start_daemon()


def call(method, path, body=None, token=ADMIN):
    req = urllib.request.Request(BASE + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def job_ids():
    return [j["id"] for j in call("GET", "/v1/jobs?limit=1000")[1]["jobs"]]


problems = []  # page errors and dialogs no test asked for


def answer_dialog(page, dialog):
    """Accepts a confirmation the test asked for; any other dialog (an
    alert a job's name raised, say) is a failure."""
    if getattr(page, "confirm_next", False) and dialog.type == "confirm":
        page.confirm_next = False
        dialog.accept()
    else:
        problems.append(f"unexpected {dialog.type} dialog: {dialog.message}")
        dialog.dismiss()


def new_page(browser, token=ADMIN, width=1280, height=800):
    ctx = browser.new_context(viewport={"width": width, "height": height})
    page = ctx.new_page()
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # The browser logs every 4xx answer as "Failed to load resource"; the
    # tests check those answers themselves. Any other console error counts.
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" and "status of 4" not in m.text else None)
    page.on("dialog", lambda d: answer_dialog(page, d))
    if token:
        page.add_init_script(f"sessionStorage.setItem('jobq.token', {json.dumps(token)})")
    page.goto(BASE + "/")
    expect(page.locator("#who")).to_contain_text("token:")
    return page


def open_view(page, hash_):
    page.evaluate(f"location.hash = {json.dumps(hash_)}")


def badge(page):
    return page.locator("main h2 .badge")


# ---------------------------------------------------------------- tests

def test_asks_for_a_token_and_a_read_token_sees_no_actions(browser):
    page = browser.new_context().new_page()
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(BASE + "/")
    expect(page.locator("#token")).to_be_visible()
    page.fill("#token", "not-a-token-0123456789")
    page.keyboard.press("Enter")
    expect(page.locator("#token-error")).to_contain_text("refused")
    page.fill("#token", VIEWER)
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_contain_text("token:viewer (read)")
    expect(page.locator("section.queue").first).to_be_visible()
    assert page.locator("section.queue button").count() == 0, "a read token is offered Pause"
    expect(page.locator("nav a[href='#/submit']")).to_be_hidden()
    _, job = call("POST", "/v1/jobs", {"shell": "exit 0"})
    call("GET", f"/v1/jobs/{job['id']}?wait=10s")
    open_view(page, f"#/jobs/{job['id']}")
    expect(badge(page)).to_have_attribute("data-state", "succeeded")
    for label in ["Cancel", "Retry", "Delete"]:
        assert page.get_by_role("button", name=label, exact=True).count() == 0, f"a read token is offered {label}"
    open_view(page, "#/submit")
    expect(page.locator("main")).to_contain_text("may only read")
    # The token lives in this tab's sessionStorage only.
    assert page.evaluate("sessionStorage.getItem('jobq.token')") == VIEWER
    assert page.evaluate("localStorage.length") == 0


def test_pause_a_queue_then_a_submitted_job_goes_queued_running_succeeded_live(browser):
    page = new_page(browser)
    card = page.locator("section.queue[data-queue=default]")
    card.get_by_role("button", name="Pause queue default").click()
    expect(card.locator(".paused")).to_be_visible()
    assert call("GET", "/v1/queues")[1]["queues"][0]["paused"] is True, "the UI's Pause did not pause"
    page.evaluate("window.__sameDocument = true")
    page.get_by_role("link", name="Submit").click()
    page.fill("#s-program", "echo first; sleep 1.5; echo second >&2")
    page.check("#s-shell")
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(badge(page)).to_have_attribute("data-state", "queued")
    seen = ["queued"]
    call("PATCH", "/v1/queues/default", {"paused": False})
    deadline = time.monotonic() + 20
    saw_live_output = False
    while time.monotonic() < deadline:
        state = badge(page).get_attribute("data-state")
        if state != seen[-1]:
            seen.append(state)
        if state == "running" and "first" in page.locator("#output").inner_text():
            saw_live_output = True
        if state == "succeeded":
            break
        page.wait_for_timeout(50)
    assert seen == ["queued", "running", "succeeded"], f"states seen: {seen}"
    assert saw_live_output, "the output did not arrive while the job ran"
    expect(page.locator("#output .stderr")).to_have_text("second\n")
    expect(page.locator("#output")).to_contain_text("first")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"


def test_the_jobs_list_updates_rows_live_and_pages_with_the_cursor(browser):
    call("PATCH", "/v1/queues/default", {"paused": True})
    ids = [call("POST", "/v1/jobs", {"command": ["true"], "name": f"row-{i}"})[1]["id"] for i in range(60)]
    page = new_page(browser)
    open_view(page, "#/jobs?state=queued")
    row = page.locator(f"tr[data-id='{ids[-1]}']")
    expect(row).to_have_attribute("data-state", "queued")
    expect(page.locator("table.jobs tbody tr")).to_have_count(50)
    page.get_by_role("button", name="Next page").click()
    expect(page.locator(f"tr[data-id='{ids[0]}']")).to_be_visible()
    page.get_by_role("button", name="First page").click()
    expect(row).to_be_visible()
    call("PATCH", "/v1/queues/default", {"paused": False})
    expect(row).to_have_attribute("data-state", "succeeded", timeout=20000)
    expect(row.locator(".badge")).to_contain_text("succeeded")


def test_cancel_a_running_job_from_its_page(browser):
    _, job = call("POST", "/v1/jobs", {"command": ["sleep", "60"]})
    page = new_page(browser)
    open_view(page, f"#/jobs/{job['id']}")
    expect(badge(page)).to_have_attribute("data-state", "running", timeout=10000)
    page.confirm_next = True
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(badge(page)).to_have_attribute("data-state", "cancelled", timeout=10000)
    assert call("GET", f"/v1/jobs/{job['id']}")[1]["state"] == "cancelled"


def test_a_validation_error_shows_beside_its_field_and_nothing_is_made(browser):
    before = job_ids()
    page = new_page(browser)
    open_view(page, "#/submit")
    page.fill("#s-program", "true")
    page.fill("#s-priority", "high")
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page.locator("#err-priority")).not_to_be_empty()
    expect(page.locator("#s-priority")).to_have_attribute("aria-invalid", "true")
    page.fill("#s-priority", "")
    page.fill("#s-timeout", "soon")
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page.locator("#err-timeout")).to_contain_text("soon")
    expect(page.locator("#err-priority")).to_be_empty()
    assert job_ids() == before, "a refused submission made a job"


def test_a_job_named_with_markup_shows_as_text(browser):
    _, job = call("POST", "/v1/jobs", {"shell": f"echo '{XSS}'", "name": XSS})
    call("GET", f"/v1/jobs/{job['id']}?wait=10s")
    page = new_page(browser)
    open_view(page, f"#/jobs?name={urllib.parse.quote(XSS)}")
    cell = page.locator(f"tr[data-id='{job['id']}'] td").nth(2)
    expect(cell).to_have_text(XSS)
    open_view(page, f"#/jobs/{job['id']}")
    expect(page.locator("main h2")).to_contain_text(XSS)
    expect(page.locator("#output")).to_contain_text(XSS)
    assert page.locator("main img").count() == 0, "markup from a job became an element"
    page.wait_for_timeout(300)


def test_the_keyboard_alone_reaches_every_view_and_a_phone_needs_no_sideways_scroll(browser):
    page = new_page(browser, width=390, height=844)
    # Where the first Tab from the address bar lands: the skip link.
    page.focus("a.skip")
    for _ in range(6):
        if page.evaluate("document.activeElement.textContent") == "Jobs":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("main h2").first).to_have_text("Jobs")
    # Filter by keyboard: tick "failed" and send the form.
    page.focus("input[name=state][value=failed]")
    page.keyboard.press("Space")
    page.keyboard.press("Enter")
    expect(page).to_have_url(BASE + "/#/jobs?state=failed")
    _, job = call("POST", "/v1/jobs", {"shell": "echo a-rather-long-line-of-output-without-any-spaces-in-it-at-all-0123456789", "retries": 1})
    call("GET", f"/v1/jobs/{job['id']}?wait=10s")
    for view in ["#/", "#/jobs", f"#/jobs/{job['id']}", "#/submit", "#/schedules"]:
        open_view(page, view)
        page.wait_for_timeout(300)
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 1, f"{view} is {wide}px wider than a phone"


def test_schedules_list_pause_and_run_now(browser):
    call("PUT", "/v1/schedules/nightly", {"cron": "0 3 * * *", "job": {"command": ["true"]}})
    page = new_page(browser)
    open_view(page, "#/schedules")
    row = page.locator("tr[data-name=nightly]")
    expect(row).to_contain_text("0 3 * * *")
    row.get_by_role("button", name="Pause schedule nightly").click()
    expect(row).to_contain_text("paused")
    assert call("GET", "/v1/schedules/nightly")[1]["paused"] is True
    row.get_by_role("button", name="Run now schedule nightly").click()
    expect(row.locator("a")).to_contain_text("#", timeout=10000)


def screenshots(browser, out):
    """The pictures in docs/screenshots: each view at desktop and phone
    width, after 20 s of jobs coming and going so the charts have a shape."""
    os.makedirs(out, exist_ok=True)
    call("PATCH", "/v1/queues/default", {"paused": False})
    pages = {name: new_page(browser, width=w, height=h) for name, w, h in [("desktop", 1280, 800), ("phone", 390, 844)]}
    for i in range(40):
        call("POST", "/v1/jobs/batch", {"jobs": [{"command": ["sleep", "0.4"], "queue": "web" if k % 3 else "default",
                                                  "name": f"render page {i * 4 + k}"} for k in range(1 + i % 5)]})
        time.sleep(0.5)
    call("POST", "/v1/jobs", {"command": ["sh", "-c", "exit 3"], "name": "flaky import", "retries": 1, "backoff": "1s"})
    _, shown = call("POST", "/v1/jobs", {"shell": "for i in 1 2 3 4 5; do echo \"fetched batch $i\"; sleep 0.1; done; echo 'warning: 3 rows skipped' >&2; echo 'done: 1,204 rows'",
                                         "name": "nightly report", "labels": {"team": "data"}})
    _, long = call("POST", "/v1/jobs", {"command": ["sleep", "600"], "name": "long backfill", "queue": "batch"})
    time.sleep(2)
    for name, page in pages.items():
        for view, hash_, wait in [("overview", "#/", "section.queue"), ("jobs", "#/jobs", "table.jobs tbody tr[data-id]"),
                                  ("job", f"#/jobs/{shown['id']}", "#output")]:
            if view != "overview":
                open_view(page, hash_)
            page.wait_for_selector(wait)
            page.wait_for_timeout(800)
            page.screenshot(path=os.path.join(out, f"{view}-{name}.png"), full_page=(view == "job"))
    call("POST", f"/v1/jobs/{long['id']}/cancel")


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_")]

failed = 0
try:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium,
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        for test in TESTS:
            before = len(problems)
            try:
                test(browser)
                if len(problems) > before:
                    raise AssertionError("; ".join(problems[before:]))
                print(f"PASS {test.__name__}", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {test.__name__}", flush=True)
                traceback.print_exc()
        if args.screenshots and not failed:
            screenshots(browser, args.screenshots)
            print(f"screenshots in {args.screenshots}")
        browser.close()
finally:
    daemon.terminate()
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        failed += 1
        print("FAIL the daemon did not stop within 30 s of SIGTERM", flush=True)
    if failed:
        print(f"daemon log: {WORK}/daemon.log", file=sys.stderr)
print(f"{len(TESTS) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
