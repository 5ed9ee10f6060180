"""The self-contained HTML report (one file: inline CSS, inline SVG, no URL)."""

from analyzer.render.html.report import render_report, report_model

__all__ = ["render_report", "report_model"]
