"""``report.html`` opened in a real browser (headless chromium through Selenium).

Skipped, with the reason, where chromium, chromedriver or selenium is absent (``.ci/run``
installs them). With ``SALIENCY_TUBES_SCREENSHOTS=DIR`` the tests save screenshots there
(the README's come from such a run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from _clips import CLIPS, write_demo_clip
from saliency_tubes.commands import ExplainOptions, explain_video, load_model

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
SHARED = CLIPS
XSS = '<img src=x onerror="window.__xss=1">'

try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

if not (CHROMIUM and DRIVER and HAVE_SELENIUM):
    pytest.skip(
        "the report tests need chromium, chromedriver and selenium (apt-get install chromium "
        "chromium-driver; pip install selenium); .ci/run installs them",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1400,900",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _open(driver, page: Path) -> None:
    driver.get(page.resolve().as_uri())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if driver.execute_script(
            "return document.body.dataset.ready === '1' && "
            "document.querySelector('[data-role=video]').readyState >= 2"
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"{page} did not load its video and tubes within 30 s")


def _until(check, what: str, seconds: float = 30.0):
    """Poll ``check()`` until it is truthy (a page redraws on its own time, slower on a busy
    machine); its last value, or an AssertionError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert value, f"{what}: not within {seconds:g} s"
    return value


def _overlay(driver) -> int:
    """A hash of the overlay canvas's pixels."""
    return driver.execute_script(
        "const c = document.querySelector('[data-role=overlay]');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let h = 0; for (let i = 0; i < d.length; i += 3) h = (h * 31 + d[i]) % 1000000007;"
        "return h;"
    )


def _data(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    match = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S
    )
    assert match is not None
    return json.loads(match.group(1))


def _shot(driver, name: str) -> None:
    folder = os.environ.get("SALIENCY_TUBES_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def _errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """explain --format html of the demo clip, every class named with an XSS attempt."""
    folder = tmp_path_factory.mktemp("report")
    clip = write_demo_clip(folder)
    loaded = load_model("tiny-actions")
    names = [f"{XSS} {name}" for name in loaded.categories]
    (folder / "names.txt").write_text("\n".join(names) + "\n")
    loaded = load_model("tiny-actions", categories=folder / "names.txt")
    options = ExplainOptions(classes="top3", formats=("html",), progress=False)
    result = explain_video(clip, folder / "out", loaded, options)
    assert [p.name for p in result.files["html"]] == ["report.html"]
    return folder / "out" / "report.html"


def test_the_report_plays_and_every_control_works(browser, report: Path) -> None:
    _open(browser, report)
    data = _data(report)
    first = _overlay(browser)
    browser.execute_script(
        "const s = document.querySelector('[data-role=opacity]'); s.value = '0.95';"
        "s.dispatchEvent(new Event('input'));"
    )
    faded = _overlay(browser)
    assert faded != first  # the slider fades the tube
    browser.execute_script(
        "const s = document.querySelector('[data-role=class]'); s.value = '1';"
        "s.dispatchEvent(new Event('change'));"
    )
    _until(lambda: _overlay(browser) != faded, "another class draws another tube")
    # A click at 3/4 of the curve's time axis (44 px in from the left, 10 px from the
    # right) seeks to that frame.
    n = len(data["video"]["timestamps"])
    browser.execute_script(
        "const v = document.querySelector('[data-role=video]'); v.pause();"
        "const c = document.querySelector('[data-role=curve]'); const r = c.getBoundingClientRect();"
        "const at = {clientX: r.left + 44 + 0.75 * (r.width - 54), clientY: r.top + r.height / 2, bubbles: true};"
        "c.dispatchEvent(new MouseEvent('mousedown', at));"
        "window.dispatchEvent(new MouseEvent('mouseup', at));"
    )
    frame = round(0.75 * (n - 1))
    label = "return document.getElementById('frame').textContent"
    _until(
        lambda: browser.execute_script(label).startswith(f"frame {frame} / {n - 1}"),
        f"a click at 3/4 of the curve shows frame {frame}",
    )
    ts = data["video"]["timestamps"]
    now = browser.execute_script("return document.querySelector('[data-role=video]').currentTime")
    assert abs(now - (ts[frame] - ts[0])) < 0.5 / data["video"]["fps"]
    # The arrow keys step one frame.
    browser.execute_script(
        "window.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight'}))"
    )
    _until(
        lambda: browser.execute_script(label).startswith(f"frame {frame + 1} / "),
        "the right arrow steps one frame",
    )
    assert _errors(browser) == []
    # Nothing but the page itself and its video was loaded, all from the disk.
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert all(u.startswith(("file:", "data:", "blob:")) for u in loaded), loaded


def test_the_header_names_the_model_and_the_side_panel_has_sections(browser, report: Path) -> None:
    _open(browser, report)
    model = browser.execute_script("return document.querySelector('[data-role=model]').textContent")
    assert model == (
        "model tiny-actions, trained weights shipped with the package, method cam; caveat: "
        "tiny-actions knows only 8 synthetic motion classes: its classes and tubes mean nothing "
        "on other videos"
    )
    sections = browser.execute_script(
        "return [...document.querySelectorAll('[data-role=meta] h2')].map(h => h.textContent)"
    )
    assert sections == ["model", "method", "video", "options"]
    encoder = browser.execute_script(
        "const dts = [...document.querySelectorAll('[data-role=meta] dt')];"
        "return dts.find(d => d.textContent === 'encoder').nextElementSibling.textContent"
    )
    assert encoder == "libx264 superfast crf 18"


def test_class_names_stay_text(browser, report: Path) -> None:
    _open(browser, report)
    options = browser.execute_script(
        "return [...document.querySelectorAll('[data-role=class] option')].map(o => o.textContent)"
    )
    assert options and all(o.startswith(XSS) for o in options)
    assert browser.execute_script("return window.__xss === undefined")
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    assert XSS not in report.read_text(encoding="utf-8")  # escaped in the page source too


def test_an_embedded_report_is_one_file_and_an_avi_gets_a_playable_copy(
    browser, tmp_path: Path
) -> None:
    from saliency_tubes.synthetic import make_clip
    from saliency_tubes.video import VideoWriter

    clip = make_clip(seed=1002, frames=24, size=(96, 128))
    avi = tmp_path / "clip.avi"
    with VideoWriter(tmp_path / "clip.mp4", fps=12) as writer:
        writer.write_frames(clip.video)
    import av

    with av.open(str(avi), "w") as out:  # an MPEG-4 part 2 AVI: browsers cannot play it
        stream = out.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for image in clip.video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    loaded = load_model("tiny-actions")
    plain = explain_video(
        avi, tmp_path / "avi", loaded, ExplainOptions(formats=("html",), progress=False)
    )
    assert sorted(p.name for p in plain.files["html"]) == ["report.html", "source.mp4"]
    _open(browser, tmp_path / "avi" / "report.html")
    embedded = explain_video(
        tmp_path / "clip.mp4",
        tmp_path / "embedded",
        loaded,
        ExplainOptions(formats=("html",), embed=True, progress=False),
    )
    alone = tmp_path / "elsewhere" / "report.html"
    alone.parent.mkdir()
    shutil.copy(embedded.files["html"][0], alone)  # without the video beside it
    _open(browser, alone)
    assert _errors(browser) == []


@pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"real clips not found in {SHARED}: set SALIENCY_TUBES_CLIPS to run it",
)
def test_a_ten_second_report_with_three_classes_is_under_2_mb(browser, tmp_path: Path) -> None:
    options = ExplainOptions(classes="top3", formats=("html",), progress=False)
    result = explain_video(
        SHARED / "arm_wrestling.mp4", tmp_path, load_model("tiny-actions"), options
    )
    assert result.manifest["source"]["duration"] > 9
    page = result.files["html"][0]
    assert page.stat().st_size < 2 * 2**20
    _open(browser, page)
    browser.execute_script(
        "const v = document.querySelector('[data-role=video]'); v.pause(); v.currentTime = 4.0;"
    )
    _until(  # the seek settles (no spinner in the screenshot)
        lambda: browser.execute_script(
            "const v = document.querySelector('[data-role=video]');"
            "return !v.seeking && v.readyState >= 2 && Math.abs(v.currentTime - 4.0) < 0.5"
        ),
        "the video seeks to 4 s",
    )
    _shot(browser, "report.png")
    assert _errors(browser) == []


def test_compare_classes_shows_the_contrast_after_the_classes(browser, tmp_path: Path) -> None:
    from saliency_tubes.commands import CompareOptions, compare_classes

    clip = write_demo_clip(tmp_path)
    loaded = load_model("tiny-actions")
    options = CompareOptions(
        classes="top2", contrast=("shrink", "grow"), formats=("html",), progress=False
    )
    result = compare_classes(clip, tmp_path / "out", loaded, options)
    page = result.files["html"][0]
    labels = [c["label"] for c in _data(page)["classes"]]
    assert len(labels) >= 3 and labels[-1].startswith("shrink vs grow")
    assert _data(page)["classes"][-1]["signed"] is True
    _open(browser, page)
    before = _overlay(browser)
    browser.execute_script(
        "const s = document.querySelector('[data-role=class]');"
        f"s.value = '{len(labels) - 1}'; s.dispatchEvent(new Event('change'));"
    )
    _until(lambda: _overlay(browser) != before, "the contrast draws its own tube")
    assert _errors(browser) == []


def test_a_batch_index_sorts_filters_and_links_each_report(browser, tmp_path: Path) -> None:
    import csv

    from saliency_tubes.commands import (
        BatchOptions,
        BatchSettings,
        ModelOptions,
        batch_videos,
        write_demo_dataset,
    )

    table = write_demo_dataset(tmp_path / "data", videos=3)
    rows = list(csv.DictReader(table.open()))
    rows[2]["label"] = "grow" if rows[2]["label"] != "grow" else "left"  # one wrong label
    with table.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label", "gt"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "batch"
    settings = BatchSettings(
        ModelOptions(), ExplainOptions(formats=("html",), progress=False), out / "videos"
    )
    batch_videos(table, out, settings, BatchOptions(workers=2, progress=False))
    _open_index = out / "index.html"
    browser.get(_open_index.resolve().as_uri())
    _until(
        lambda: browser.execute_script("return document.body.dataset.ready") == "1",
        "the index is ready",
    )
    count = "return document.querySelectorAll('[data-role=rows] tr:not(.spacer)').length"
    assert browser.execute_script(count) == 3
    browser.find_element("css selector", "th[data-column=score]").click()
    scores = browser.execute_script(
        "return [...document.querySelectorAll('[data-role=rows] tr:not(.spacer)')]"
        ".map(r => parseFloat(r.children[4].textContent))"
    )
    assert scores == sorted(scores)
    browser.execute_script(
        "const w = document.querySelector('[data-role=wrong]'); w.checked = true;"
        "w.dispatchEvent(new Event('input'));"
    )
    assert browser.execute_script(count) == 1
    link = browser.execute_script("return document.querySelector('[data-role=rows] a').href")
    assert link.endswith("/report.html")
    browser.get(link)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not browser.execute_script(
        "return document.body.dataset.ready === '1' && "
        "document.querySelector('[data-role=video]').readyState >= 2"
    ):
        time.sleep(0.1)
    assert (
        browser.execute_script("return document.querySelector('[data-role=video]').readyState") >= 2
    )
    assert _errors(browser) == []


def test_a_file_name_cannot_break_out_of_the_page(tmp_path: Path) -> None:
    clip = write_demo_clip(tmp_path)
    named = clip.rename(tmp_path / 'a__DATA__ " onerror=alert(1) .mp4')
    result = explain_video(
        named,
        tmp_path / "out",
        load_model("tiny-actions"),
        ExplainOptions(formats=("html",), progress=False),
    )
    page = result.files["html"][0].read_text(encoding="utf-8")
    markup = page.split('<script type="application/json"')[0]  # the HTML before the data
    assert "onerror=" not in markup  # no attribute made of the name
    from urllib.parse import unquote

    (src,) = re.findall(r'<video data-role="video" src="([^"]*)"', markup)
    assert unquote(src) == f"../{named.name}"  # the whole name, as one URL
    assert _data(result.files["html"][0])["title"].startswith('a__DATA__ " onerror=alert(1) .mp4')
