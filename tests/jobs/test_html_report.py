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
