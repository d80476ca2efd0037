"""The HTML report: self-contained, and it renders in headless Chromium (skipped where none is installed)."""

import base64
import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread

from tmi_nlp.report import summary_table, write_report
from tmi_nlp.stages.report import victim_warnings


@pytest.fixture
def report(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.random((8, 50)) < 0.5
    curves = {"mlp": (labels, rng.normal(size=labels.shape) + labels),
              "confidence": (labels, rng.normal(size=labels.shape) + 0.3 * labels)}
    results = {"mlp": {"auc": 0.75, "auc_ci95": [0.7, 0.8], "tpr@0.001": 0.02, "tpr@0.01": 0.1, "tpr@0.1": 0.4,
                       "balanced_accuracy": 0.7, "family": "tmi", "seconds": 1.0},
               "confidence": {"auc": 0.58, "tpr@0.001": 0.0, "tpr@0.01": 0.02, "tpr@0.1": 0.15,
                              "balanced_accuracy": 0.56, "family": "shadow-free", "seconds": 0.0}}
    path = tmp_path / "report.html"
    write_report(path, title="test <run>", facts={"models": "8"}, results=results, curves=curves,
                 accuracies=[0.8] * 8, epsilons=[7.9] * 8, recipe_yaml="run: {name: test}\n")
    return path


def test_report_is_self_contained(report):
    page = report.read_text()
    assert "test &lt;run&gt;" in page  # escaped
    assert not re.search(r"(src|href)=\"(https?:|//)", page)  # nothing fetched from the network
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert page.count("<tr>") == 3 and "epsilon 7.90" not in page  # epsilon is drawn in the plot, not text


def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on this machine (make test installs Debian's chromium where it can)")
    def screenshot(page):
        shot = tmp_path / f"{page.stem}.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1100,2200", f"--screenshot={shot}", page.as_uri()],
                       check=True, capture_output=True, timeout=120)
        return imread(shot)[..., :3]

    def share(pixels, rgb):
        return np.mean(np.abs(pixels - np.array(rgb) / 255).max(-1) < 0.06)

    # Control: the same page with its images removed must fail the checks below.
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r'src="data:[^"]+"', 'src=""', report.read_text()))
    pixels, control = screenshot(report), screenshot(broken)
    assert pixels.shape[:2] == (2200, 1100) and pixels.std() > 0.05
    # The embedded plots are drawn: matplotlib's tab:blue (ROC line, OUT histogram) and tab:green
    # (victims' accuracy bars) cover many pixels of the page and none of the control.
    for rgb in ((31, 119, 180), (44, 160, 44)):
        assert share(pixels, rgb) > 2e-4 and share(control, rgb) < 2e-5


def test_victims_near_chance_or_far_below_the_reference_are_flagged():
    reference = {"tfidf_logistic": 0.86, "majority_class": 0.26}
    assert "near chance" in victim_warnings(0.30, reference)[0]  # gained < a quarter of what TF-IDF gains
    assert "far below" in victim_warnings(0.70, reference)[0]
    assert victim_warnings(0.80, reference) == [] and victim_warnings(0.30, None) == []
    binary = {"tfidf_logistic": 0.78, "majority_class": 0.51}
    assert "near chance" in victim_warnings(0.507, binary)[0]  # the 16 full victims at chance on SST-2
    text = summary_table({}, {"mean": 0.507, "min": 0.5, "max": 0.51}, binary, victim_warnings(0.507, binary))
    assert "TF-IDF + logistic regression 0.780" in text and "WARNING: the victims are near chance" in text
