"""Campaign reports (funnel, breakdowns, merchant/host ranking, suggestions) and ``ivr status``.

    from ivr.report import build_report, to_json, write_csv, write_html
    report = build_report(db, "c1", rectify_threshold="3/10", min_count=3)
"""

from ivr.report.model import Funnel, GroupRow, RankRow, Rate, Report, ReportError, build_report
from ivr.report.render import print_report, to_html, to_json, write_csv, write_html

__all__ = ["Funnel", "GroupRow", "RankRow", "Rate", "Report", "ReportError", "build_report",
           "print_report", "to_html", "to_json", "write_csv", "write_html"]
