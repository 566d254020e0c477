"""A batch's ``index.html`` opened in headless chromium (issue 27 item 2): the confusion
matrix, the per-class table and the histogram brush filter the list, the CSV export is the
filtered list with index.parquet's columns, hostile names stay text, and an index of
20,000 rows opens and filters at once (measured; the numbers are printed with ``-s``).

Skipped with the reason where chromium, chromedriver or selenium is absent (as the report
tests). With ``SALIENCY_TUBES_SCREENSHOTS=DIR`` the tests save the README's screenshots.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest

from _index_rows import made_up_rows
from saliency_tubes.commands import (
    BatchOptions,
    BatchSettings,
    ExplainOptions,
    ModelOptions,
    batch_videos,
    write_demo_dataset,
)
from saliency_tubes.commands.batch.records import read_index, summarise_rows
from saliency_tubes.commands.batch.worker import COLUMNS
from saliency_tubes.commands.report.index import index_page

from . import test_report_browser as _pages
from .test_report_browser import XSS, _errors, _shot, _until

browser = _pages.browser  # the same headless chromium fixture (and skip) as the report's

pytestmark = pytest.mark.browser

ROWS = "[data-role=rows] tr:not(.spacer)"


def _ready(driver, page: Path) -> None:
    driver.get(page.resolve().as_uri())
    _until(lambda: driver.execute_script("return document.body.dataset.ready") == "1", "ready")


def _shown(driver) -> list[str]:
    """The video ids of the rows drawn, in order."""
    return driver.execute_script(
        f"return [...document.querySelectorAll('{ROWS}')].map(r => r.dataset.row)"
    )


def _count(driver) -> int:
    text = driver.execute_script("return document.querySelector('[data-role=count]').textContent")
    return int(text.split(" of ")[0])


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A batch of 6 demo clips with ground truth, two labels wrong, one class name hostile."""
    root = tmp_path_factory.mktemp("batch")
    table = write_demo_dataset(root / "data", videos=6)
    rows = list(csv.DictReader(table.open()))
    rows[1]["label"] = "grow" if rows[1]["label"] != "grow" else "left"
    rows[4]["label"] = XSS  # a label the model does not know: unlabelled, and shown as text
    with table.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label", "gt"])
        writer.writeheader()
        writer.writerows(rows)
    out = root / "batch"
    settings = BatchSettings(
        ModelOptions(), ExplainOptions(formats=("html",), progress=False), out / "videos"
    )
    batch_videos(table, out, settings, BatchOptions(workers=2, progress=False))
    return out


def test_the_index_names_the_model_and_its_hooks_are_there(browser, batch: Path) -> None:
    _ready(browser, batch / "index.html")
    model = browser.execute_script("return document.querySelector('[data-role=model]').textContent")
    assert model.startswith(
        "model tiny-actions, trained weights shipped with the package, method cam"
    )
    assert "knows only 8 synthetic motion classes" in model
    for role in ("confusion", "per-class", "histogram", "export-csv", "rows"):
        assert browser.execute_script(f"return !!document.querySelector('[data-role={role}]')")
    columns = browser.execute_script(
        "return [...document.querySelectorAll('[data-role=histogram]')].map(h => h.dataset.column)"
    )
    assert columns == ["score", "fraction_above", "spread", "pointing", "mass", "iou"]
    # Thumbnails 120 px high, no horizontal scrolling at 1400 px.
    heights = browser.execute_script(
        "return [...document.querySelectorAll('[data-role=rows] img')].map(i => i.getBoundingClientRect().height)"
    )
    assert heights and all(h >= 120 for h in heights)
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    assert browser.execute_script("return window.__xss === undefined")
    _shot(browser, "batch_index.png")
    # Hovering a thumbnail previews the tube at the key frames, with their times.
    rows = read_index(batch / "index.parquet")
    browser.execute_script(
        "document.querySelector('[data-role=rows] img').dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))"
    )
    preview = browser.execute_script(
        "const p = document.querySelector('[data-role=preview]');"
        "return [p.hidden, p.querySelector('img').getAttribute('src'), p.textContent]"
    )
    assert preview[0] is False and preview[1].endswith(".keys.png")
    times = ", ".join(f"{t:.2f} s" for t in rows[0]["key_times"][:6])
    assert preview[2].startswith(f"key frames at {times}")
    from PIL import Image

    from saliency_tubes.commands.report.thumbs import KEY_GAP, KEY_HEIGHT, THUMB_HEIGHT

    thumb, strip = (
        Image.open(batch / "thumbs" / f"{rows[0]['video_id']}.png"),
        Image.open(batch / preview[1]),
    )
    assert thumb.height == THUMB_HEIGHT == 120 and strip.height == KEY_HEIGHT
    from saliency_tubes.video import probe

    h, w = probe(rows[0]["path"]).size
    keys = min(6, len(rows[0]["key_times"]))
    assert strip.width == keys * round(w * KEY_HEIGHT / h) + (keys - 1) * KEY_GAP
    _until(
        lambda: browser.execute_script(
            "return document.querySelector('[data-role=preview] img').complete"
        ),
        "the strip loads",
    )
    _shot(browser, "batch_index_hover.png")
    assert _errors(browser) == []


def test_a_confusion_cell_and_a_class_row_filter_the_list(browser, batch: Path) -> None:
    rows = read_index(batch / "index.parquet")
    _ready(browser, batch / "index.html")
    wrong = next(r for r in rows if r["correct"] is False)
    cell = (
        f'document.querySelector(\'[data-role=confusion] td[data-true="{wrong["label"]}"]'
        f'[data-pred="{wrong["pred_name"]}"]\')'
    )
    browser.execute_script(f"{cell}.click()")
    expected = [
        i
        for i, r in enumerate(rows)
        if r["correct"] is not None
        and (r["label"], r["pred_name"]) == (wrong["label"], wrong["pred_name"])
    ]
    assert [int(i) for i in _shown(browser)] == expected
    assert browser.execute_script(f"return {cell}.textContent") == str(len(expected))
    browser.execute_script(f"{cell}.click()")  # again: the filter goes
    assert _count(browser) == len(rows)
    name = browser.execute_script(
        "const r = document.querySelector('[data-role=per-class] tbody tr'); r.click(); return r.dataset.class"
    )
    keep = [i for i, r in enumerate(rows) if name in (r["label"], r["pred_name"])]
    assert [int(i) for i in _shown(browser)] == keep


def test_a_brush_on_a_histogram_keeps_that_range(browser, batch: Path) -> None:
    rows = read_index(batch / "index.parquet")
    _ready(browser, batch / "index.html")
    # Drag from between the middle two scores to the end of the score axis (0 to 1).
    scores = sorted(r["score"] for r in rows if r["score"] is not None)
    k = len(scores) // 2
    start = (scores[k - 1] + scores[k]) / 2
    browser.execute_script(
        "const s = document.querySelector('[data-role=histogram][data-column=score] svg');"
        "const r = s.getBoundingClientRect(), y = r.top + r.height / 2;"
        "const at = (f, type) => s.dispatchEvent(new PointerEvent(type, {clientX: r.left + f * r.width, clientY: y, pointerId: 1, bubbles: true}));"
        f"at({start}, 'pointerdown'); at(0.99, 'pointermove'); at(1.0, 'pointerup');"
    )
    keep = [i for i, r in enumerate(rows) if r["score"] is not None and r["score"] >= start]
    assert 0 < len(keep) < len(rows)
    assert [int(i) for i in _shown(browser)] == keep
    said = browser.execute_script(
        "return document.querySelector('[data-role=filters]').textContent"
    )
    assert said == f"filters: score {start:.2f} to 1.00"
    # A click without a drag clears it.
    browser.execute_script(
        "const s = document.querySelector('[data-role=histogram][data-column=score] svg');"
        "const r = s.getBoundingClientRect(), y = r.top + r.height / 2;"
        "for (const type of ['pointerdown', 'pointerup'])"
        "  s.dispatchEvent(new PointerEvent(type, {clientX: r.left + 5, clientY: y, pointerId: 1, bubbles: true}));"
    )
    assert _count(browser) == len(rows)


def _csv(driver) -> str:
    """Click export and return the CSV it made (URL.createObjectURL caught)."""
    driver.execute_script(
        "window.__csv = null; URL.createObjectURL = (b) => { window.__csv = b; return 'about:blank'; };"
        "HTMLAnchorElement.prototype.click = function () {};"
        "document.querySelector('[data-role=export-csv]').click();"
    )
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; window.__csv.text().then(done);"
    )


def test_the_csv_is_the_filtered_list_with_the_index_columns(browser, batch: Path) -> None:
    rows = read_index(batch / "index.parquet")
    _ready(browser, batch / "index.html")
    browser.execute_script(
        "const w = document.querySelector('[data-role=wrong]'); w.checked = true;"
        "w.dispatchEvent(new Event('input'));"
    )
    table = list(csv.reader(io.StringIO(_csv(browser))))
    assert table[0] == list(COLUMNS)
    wrong = [r for r in rows if r["correct"] is False or r["status"] != "ok"]
    assert len(table) - 1 == len(wrong) > 0
    for line, row in zip(table[1:], wrong, strict=True):
        got = dict(zip(table[0], line, strict=True))
        for name, value in row.items():
            if value is None:
                assert got[name] == "", name
            elif isinstance(value, bool):
                assert got[name] == str(value).lower(), name
            elif isinstance(value, float):
                assert float(got[name]) == pytest.approx(value, rel=1e-5), name
            elif isinstance(value, list) and value and isinstance(value[0], float):
                assert json.loads(got[name]) == pytest.approx(value, rel=1e-5), name
            elif isinstance(value, list):
                assert json.loads(got[name]) == value, name
            else:
                assert got[name] == str(value), name


def test_hostile_names_stay_text_in_the_page_and_the_csv(browser, tmp_path: Path) -> None:
    rows = made_up_rows(5, seed=3)
    rows[0].update(path=f"/data/{XSS}.mp4", label=XSS, pred_name="{{DATA}}</script>")
    rows[1].update(error='=HYPERLINK("http://x")', status="error")
    for row in rows:
        row["model"] = XSS  # the model's name: in the title and the model line
    summary = summarise_rows(rows, {}, 1.0)
    page = tmp_path / "index.html"
    page.write_text(index_page(rows, summary, {}), encoding="utf-8")
    text = page.read_text(encoding="utf-8")
    assert XSS not in text and '</script>"' not in text
    _ready(browser, page)
    assert browser.execute_script("return window.__xss === undefined")
    assert (
        browser.execute_script("return document.querySelectorAll('[data-role=rows] img').length")
        == 0
    )
    assert XSS in browser.execute_script(
        "return document.querySelector('[data-role=rows]').textContent"
    )
    assert XSS in browser.execute_script("return document.title")
    model = browser.execute_script("return document.querySelector('[data-role=model]').textContent")
    assert model.startswith(f"model {XSS}, named pretrained weights")
    exported = list(csv.reader(io.StringIO(_csv(browser))))
    assert exported[1][list(COLUMNS).index("label")] == XSS
    # A cell a spreadsheet would run as a formula is quoted as text.
    assert exported[2][list(COLUMNS).index("error")] == '\'=HYPERLINK("http://x")'


def test_twenty_thousand_rows_open_and_filter_at_once(browser, tmp_path: Path) -> None:
    """A measurement on whatever machine runs it: the bounds are 5x the issue's (2 s to
    open, 200 ms to filter) for a busy machine; the numbers are printed."""
    rows = made_up_rows(20_000)
    summary = summarise_rows(rows, {"model": {"name": "r3d_18"}}, 1.0)
    page = tmp_path / "index.html"
    page.write_text(index_page(rows, summary, {}), encoding="utf-8")
    size = page.stat().st_size
    assert size < 10 * 2**20
    _ready(browser, page)
    opened = float(browser.execute_script("return document.body.dataset.readyAt"))
    drawn = browser.execute_script(f"return document.querySelectorAll('{ROWS}').length")
    assert 0 < drawn < 60  # only what is on screen
    times = []
    for text in ("class_01", "bction", "", "truncated"):
        times.append(
            browser.execute_script(
                "const s = document.querySelector('[data-role=search]'); const t0 = performance.now();"
                f"s.value = '{text}'; s.dispatchEvent(new Event('input'));"
                "document.body.offsetHeight; return performance.now() - t0;"
            )
        )
    assert _count(browser) == sum(1 for r in rows if r["status"] != "ok")
    browser.execute_script(
        "const v = document.querySelector('[data-role=view]'); v.value = 'wrong-confident';"
        "const s = document.querySelector('[data-role=search]'); s.value = '';"
        "s.dispatchEvent(new Event('input')); v.dispatchEvent(new Event('input'));"
    )
    scores = [r["score"] for r in rows if r["correct"] is False]
    assert _count(browser) == len(scores)
    first = browser.execute_script(f"return document.querySelector('{ROWS}').dataset.row")
    assert rows[int(first)]["score"] == max(scores)
    load = os.getloadavg()[0]
    print(
        f"\n20,000 rows: page {size / 2**20:.2f} MB, ready {opened:.0f} ms after navigation, "
        f"filters {', '.join(f'{t:.0f}' for t in times)} ms (load {load:.1f})"
    )
    assert opened < 10_000 and max(times) < 1_000
    _shot(browser, "batch_index_20000.png")
    assert _errors(browser) == []
