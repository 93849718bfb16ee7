"""The single-file report: escaped text, embedded PNGs that decode, atomic write."""
from __future__ import annotations

import base64
import re

from thresher.jobs.html_report import Report, new_figure


def test_report_is_one_file_with_decodable_images(tmp_path):
    fig, (ax,) = new_figure(3, 2)
    ax.plot([0, 1], [1, 0])
    rep = Report("Scores <&>", subtitle="demo").heading("A").table([{"pool": "p<1>", "docs": 3, "share": 0.5}]).figure(fig, "line")
    path = rep.write(tmp_path / "out" / "report.html")
    text = path.read_text()
    assert "<title>Scores &lt;&amp;&gt;</title>" in text and "p&lt;1&gt;" in text
    (uri,) = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert base64.b64decode(uri).startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(tmp_path.glob("out/*.tmp"))


def test_table_numbers_read_as_the_console_prints_sizes(tmp_path):
    from thresher.jobs.html_report import short_number

    assert [short_number(x) for x in (0.5, 1234.5, 9999.0, 93460.0, 1.5e6, 2.34e9, -45000.0)] == \
        ["0.5", "1234", "9999", "93.5K", "1.5M", "2.34B", "-45K"]
    text = Report("t").table([{"pool": "high", "unique tokens": 93460.0}]).render()
    assert ">93.5K<" in text and "e+04" not in text


def test_the_histogram_legend_accounts_for_every_source(monkeypatch):
    """More sources than the legend has room for: the rest are drawn together and named, never dropped."""
    import numpy as np
    import pyarrow as pa

    from thresher.jobs import job_report

    sources = [f"site{i:02d}" for i in range(14) for _ in range(5 + i)]
    table = pa.table({"gopher_words": np.arange(len(sources), dtype=float), "source": sources})
    monkeypatch.setattr(job_report, "_score_table", lambda spec, cols: table)
    labels = []
    monkeypatch.setattr(job_report, "new_figure", lambda *a, **k: _recording_figure(labels))

    class Spec:
        stages = ["score"]

    job_report._histograms(Report("t"), Spec(), {})
    drawn = sum(int(label.rsplit("(", 1)[1].rstrip(")")) for label in labels)
    assert drawn == len(sources) and any(label.startswith("4 other sources") for label in labels), labels


def _recording_figure(labels: list[str]):
    fig, (ax,) = new_figure(3, 2)
    real_hist = ax.hist

    def hist(values, *args, label: str = "", **kwargs):
        labels.append(label)
        return real_hist(values, *args, label=label, **kwargs)

    ax.hist = hist
    return fig, (ax,)


def test_report_and_console_word_the_job_time_alike():
    from thresher.jobs.job_report import timing

    summary = {"seconds": 27.46, "stages": {"score": 10.0, "pools": 17.46}, "corpus": {"seconds": 3.2}}
    assert timing(summary) == "corpus 3.2 s, stages (score, pools) 27.5 s"
    assert timing({"seconds": 5.0, "stages": {"score": 5.0}}) == "stages (score) 5.0 s"
