"""The job report in a real browser: headless Chromium loads report.html and every embedded image decodes."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.pipeline.test_pools import make_scored_job
from thresher.jobs.job_report import write_report
from thresher.jobs.job_spec import parse_spec
from thresher.pipeline.pools import PoolSpec, build_pools

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)

# Runs after load: each image's decoded size goes into the DOM, where --dump-dom shows it.
_PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify(imgs.map(i => ({alt: i.alt, w: i.naturalWidth, h: i.naturalHeight, ok: i.complete})));
  document.body.appendChild(out);
});
</script>"""


def _report(tmp_path: Path) -> Path:
    """A report over real outputs: a score job, pools, a fit on observations and plans for two budgets."""
    import numpy as np

    from thresher.jobs.planning_files import load_pools, save_frontier, save_plan
    from thresher.mixtures.fitting import fit
    from thresher.mixtures.observations import Observations
    from thresher.mixtures.planning import frontier, plan

    scored, _ = make_scored_job(tmp_path, n_docs=80)
    out = tmp_path / "job"
    (out / "score").mkdir(parents=True)
    for item in scored.iterdir():
        shutil.move(str(item), out / "score" / item.name)
    pools_res = build_pools(out / "score", out / "pools", PoolSpec(score="quality", edges=(0.5,), names=("low", "high")))
    pools, unit = load_pools(out / "pools" / "pools.json")
    rng = np.random.default_rng(0)
    seen, uniq, names, values, runs = [], [], [], [], []
    for k, p in enumerate(pools):  # synthetic pilot runs from a known law shape, with noise
        for f in (0.25, 0.5, 1, 2, 4):
            seen.append(f * p.unique)
            uniq.append(p.unique)
            names.append(p.name)
            values.append((3.0 + k * 0.3 + 2.0 * (f * p.unique / 100) ** -0.3) * (1 + 0.01 * rng.standard_normal()))
            runs.append(f"{p.name}{f}")
    w = np.array([[1.0 if n == p.name else 0.0 for p in pools] for n in names])
    u = np.array([[uq if n == p.name else 1.0 for p in pools] for n, uq in zip(names, uniq)])
    obs = Observations.from_arrays(seen=seen, value=values, unique=u, weights=w, pools=[p.name for p in pools], run=runs)
    fitted = fit(obs, "goyal", grid="small", max_starts=4)
    (out / "fit").mkdir()
    fit_path = fitted.save(out / "fit" / "fit.json")
    total = sum(p.unique for p in pools)
    plans = {}
    for label, b in (("half", 0.5 * total), ("two", 2.0 * total)):
        pl = plan(fitted, pools, b)
        path = save_plan(pl, out / "plan" / f"plan-{label}.json")
        plans[label] = {"budget": b, "path": str(path), "predicted": pl.predicted, "label": pl.label,
                        "interval": None, "pools": pl.pool_rows()}
    fr = frontier(fitted, pools, np.geomspace(0.2 * total, 4 * total, 6))
    save_frontier(fr, out / "plan" / "frontier.json")
    spec = parse_spec({"input": "x", "out": str(out), "score": {}, "pools": {"score": "quality"},
                       "fit": {"observations": "o.csv"}, "plan": {"budgets": [1]}}, "t", tmp_path)
    ledger = {"rows": 80, "kept": 80, "dropped": 0, "duplicate": 0, "malformed": 0, "dropped_by_reason": {},
              "malformed_by_reason": {}}
    summary = {"stages": dict.fromkeys(spec.stages, 0.1), "seconds": 0.4, "score": {"ledger": ledger},
               "pools": {"unit": unit, "pools": pools_res["pools"], "cuts": pools_res["cuts"],
                         "excluded": {"where": 0, "no_score": 0, "duplicate": 0},
                         "path": str(out / "pools" / "pools.json")},
               "fit": {"law": "goyal", "source": "observations file", "observations": "o.csv", "path": str(fit_path),
                       "params": fitted.params, "metrics": fitted.metrics, "n_obs": fitted.n_obs,
                       "share_at_best": fitted.share_at_best},
               "plan": {"unit": unit, "plans": plans, "frontier": str(out / "plan" / "frontier.json")}}
    return write_report(spec, summary)


def test_report_has_every_section_and_embedded_images(tmp_path):
    html = _report(tmp_path).read_text()
    for heading in ("Scores per source", "Ledger", "Pools", "Utility law and decay per pool", "Budget frontier",
                    "Mixtures"):
        assert f"<h2>{heading}</h2>" in html
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', html)
    assert imgs == ["score histograms per source", "ledger breakdown", "utility decay per pool", "budget frontier",
                    "mixture weights per budget"]
    assert "http://" not in html and "https://" not in html  # one file, nothing fetched


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs Debian's chromium)")
def test_report_loads_in_headless_chromium_with_its_images(tmp_path):
    report = _report(tmp_path)
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", _PROBE + "</body>"))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    m = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert m, "the probe script did not run: " + res.stdout[-500:]
    images = json.loads(m.group(1).replace("&quot;", '"'))
    assert len(images) == 5
    for img in images:
        assert img["ok"] and img["w"] > 300 and img["h"] > 150, img  # decoded PNGs, not broken-image icons
    assert "Budget frontier" in res.stdout
