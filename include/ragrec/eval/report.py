"""Evaluation reports: one JSON per (model version, split), and an HTML page comparing every
report in the folder (table + grouped bar chart of nDCG@10, inline SVG, no scripts)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-")[:120]


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    name = _slug(f"{report['model_version']}--{report.get('reranker_version') or 'none'}"
                 f"--{report['split']}")
    json_path = folder / f"{name}.json"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True))
    html_path = folder / "index.html"
    html_path.write_text(render_html(load_reports(folder)))
    return json_path, html_path


def load_reports(folder: Path) -> list[dict]:
    reports = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(data, dict) and "metrics" in data:
            reports.append(data)
    return reports


def _label(report: dict) -> str:
    reranker = report.get("reranker_version")
    return report["model_version"] + (f" + {reranker}" if reranker else "")


def _chart(reports: list[dict], modes: list[str]) -> str:
    width, height, left, bottom = 760, 320, 50, 60
    plot_w, plot_h = width - left - 20, height - bottom - 20
    group_w = plot_w / max(1, len(modes))
    bar_w = group_w * 0.8 / max(1, len(reports))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'role="img" aria-label="nDCG@10 by mode and model version">']
    for tick in range(0, 11, 2):
        y = 20 + plot_h * (1 - tick / 10)
        parts.append(f'<line x1="{left}" x2="{width - 20}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{tick / 10:.1f}</text>')
    for m, mode in enumerate(modes):
        x0 = left + m * group_w + group_w * 0.1
        for r, report in enumerate(reports):
            value = report["metrics"].get(mode, {}).get("ndcg@10")
            if value is None:
                continue
            bar_h = plot_h * value
            x, y = x0 + r * bar_w, 20 + plot_h - bar_h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" '
                         f'height="{bar_h:.1f}" fill="{COLOURS[r % len(COLOURS)]}">'
                         f'<title>{html.escape(_label(report))} {mode}: {value:.4f}</title>'
                         '</rect>')
        parts.append(f'<text x="{left + (m + 0.5) * group_w:.1f}" y="{height - bottom + 18}" '
                     f'font-size="12" text-anchor="middle">{html.escape(mode)}</text>')
    for r, report in enumerate(reports):
        y = height - 22 + 0 * r
        x = left + r * 240
        parts.append(f'<rect x="{x}" y="{y - 10}" width="10" height="10" '
                     f'fill="{COLOURS[r % len(COLOURS)]}"/>')
        parts.append(f'<text x="{x + 14}" y="{y}" font-size="11">'
                     f'{html.escape(_label(report))[:34]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(reports: list[dict]) -> str:
    modes: list[str] = []
    for report in reports:
        modes += [m for m in report["metrics"] if m not in modes]
    rows = []
    for report in reports:
        for mode in modes:
            metric = report["metrics"].get(mode)
            if metric is None:
                continue
            rows.append(
                f"<tr><td>{html.escape(_label(report))}</td><td>{html.escape(report['split'])}"
                f"</td><td>{html.escape(mode)}</td><td>{metric['ndcg@10']:.4f}</td>"
                f"<td>{metric['recall@100']:.4f}</td><td>{metric['mrr@10']:.4f}</td>"
                f"<td>{metric['queries']}</td></tr>")
    tuned = "".join(
        f"<li>{html.escape(_label(r))}: "
        f"{html.escape(json.dumps({k: v for k, v in r['tuned'].items() if 'ndcg' not in k}))}"
        "</li>" for r in reports)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ragrec evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td:nth-child(3)
{{text-align:left}}</style></head><body>
<h1>Retrieval evaluation</h1>
<p>nDCG@10 by retrieval mode and model version (document level; fusion and rerank weights
tuned on the train split only).</p>
{_chart(reports, modes)}
<table><thead><tr><th>model</th><th>split</th><th>mode</th><th>nDCG@10</th>
<th>Recall@100</th><th>MRR@10</th><th>queries</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<h2>Tuned on train</h2><ul>{tuned}</ul>
</body></html>
"""
