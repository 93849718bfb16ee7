"""Single-file HTML reports: figures embedded as PNG data URIs, so a report is one file to mail or open offline."""
from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thresher.pipeline.outputs import write_text_atomic
from thresher.pipeline.storage import place

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} img{max-width:100%;height:auto;display:block;margin:.6em 0}
p.note{color:#555;font-size:.92em} pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.85em}
"""


def new_figure(width: float = 7.0, height: float = 4.0, ncols: int = 1, nrows: int = 1):
    """A matplotlib figure on the Agg canvas (no display, no pyplot global state) and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(nrows * ncols)]
    return fig, axes


def figure_data_uri(fig: Any, dpi: int = 110) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def short_number(value: float) -> str:
    """A number as the console prints sizes: 93.5K, 1.2M, 3B for large ones, four significant digits otherwise."""
    for suffix, scale, start in (("T", 1e12, 1e12), ("B", 1e9, 1e9), ("M", 1e6, 1e6), ("K", 1e3, 1e4)):
        if abs(value) >= start:  # below 10,000 four digits say it exactly
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.4g}"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = short_number(value)
    elif value is None:
        text = "–"
    else:
        text = str(value)
    cls = "" if isinstance(value, (int, float)) and not isinstance(value, bool) else ' class="l"'
    return f"<td{cls}>{html.escape(text)}</td>"


@dataclass
class Report:
    """Sections appended in order; `write` renders them into one self-contained file."""

    title: str
    subtitle: str = ""
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> Report:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def paragraph(self, text: str, note: bool = False) -> Report:
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def table(self, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> Report:
        if not rows:
            return self.paragraph("(no rows)", note=True)
        columns = list(columns or rows[0].keys())
        head = "".join(f'<th class="l">{html.escape(str(c))}</th>' for c in columns)
        body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def figure(self, fig: Any, alt: str) -> Report:
        self.parts.append(f'<img alt="{html.escape(alt)}" src="{figure_data_uri(fig)}">')
        return self

    def json_block(self, data: Any) -> Report:
        self.parts.append(f"<pre>{html.escape(json.dumps(data, indent=2, default=str))}</pre>")
        return self

    def render(self) -> str:
        sub = f"<p class=\"note\">{html.escape(self.subtitle)}</p>" if self.subtitle else ""
        return (
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>{sub}{''.join(self.parts)}</body></html>"
        )

    def write(self, path: str | Path) -> Path:
        """Written atomically, so a reader never sees half a report."""
        path = place(path)
        write_text_atomic(self.render(), path)
        return path
