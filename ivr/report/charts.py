"""Inline SVG charts (pygal) for the HTML report: no scripts or fonts fetched from the network."""

from __future__ import annotations

from typing import Any

import pygal
from pygal.style import Style

from ivr.report.model import Report

FONT = "'WenQuanYi Micro Hei', 'Noto Sans CJK SC', 'DejaVu Sans', sans-serif"
_STYLE = Style(
    background="white", plot_background="white", foreground="#333", foreground_strong="#111",
    foreground_subtle="#ccc", colors=("#3b6fb6", "#d9534f", "#5cb85c", "#f0ad4e"),
    font_family=FONT, label_font_family=FONT, title_font_family=FONT, value_font_family=FONT,
    legend_font_family=FONT, tooltip_font_family=FONT, major_label_font_family=FONT,
    value_font_size=13, label_font_size=13, major_label_font_size=13, title_font_size=16,
)
_COMMON: dict[str, Any] = {
    "style": _STYLE, "js": [],  # the default js list loads tooltips from the internet
    "disable_xml_declaration": True, "show_legend": False, "print_values": True,
    "width": 760, "height": 340, "margin": 12,
}


def _render(chart: Any) -> str:
    return str(chart.render(is_unicode=True, disable_xml_declaration=True))


def funnel_svg(report: Report, lang: str = "en") -> str:
    from ivr.i18n import label

    f = report.funnel
    stages = [(label(k, lang).capitalize(), getattr(f, k)) for k in (
        "dialed", "answered", "completed", "unsatisfied", "remedy_accepted", "recovered")]
    chart = pygal.HorizontalBar(title=label("funnel_title", lang).format(n=f.contacts),
                                **_COMMON)
    chart.x_labels = [name for name, _ in reversed(stages)]
    chart.add("contacts", [n for _, n in reversed(stages)])
    return _render(chart)


def hour_svg(report: Report, lang: str = "en") -> str:
    from ivr.i18n import label

    rows = [g for g in report.breakdowns["hour"] if g.key.isdigit()]
    chart = pygal.Bar(title=label("hour_title", lang), range=(0, 100),
                      value_formatter=lambda v: f"{v:.0f}%", **_COMMON)
    chart.x_labels = [f"{int(g.key):02d}h" for g in rows]
    values = []
    for g in rows:
        rate = g.funnel.answer_rate.value
        counts = f"{g.funnel.answered}/{g.funnel.dialed}"
        values.append({"value": None if rate is None else float(rate) * 100, "label": counts})
    chart.add(label("answer_rate", lang), values)
    return _render(chart)


def ranking_svg(report: Report, kind: str = "merchant", top: int = 15,
                lang: str = "en") -> str:
    from ivr.i18n import label

    rows = [r for r in (report.merchants if kind == "merchant" else report.hosts)
            if r.complaint_rate.value is not None][:top]
    threshold = float(report.rectify_threshold) * 100
    chart = pygal.HorizontalBar(
        title=label("ranking_title", lang).format(kind=label(kind, lang).capitalize(),
                                                  t=f"{threshold:g}", m=report.min_count),
        range=(0, 100), value_formatter=lambda v: f"{v:.0f}%",
        **{**_COMMON, "height": max(200, 60 + 34 * len(rows))})
    chart.x_labels = [r.name for r in reversed(rows)]
    chart.add("complaint rate", [
        {"value": float(r.complaint_rate.value or 0) * 100,
         "color": "#d9534f" if r.rectify else "#3b6fb6",
         "label": f"{r.unsatisfied}/{r.satisfaction_answered}"}
        for r in reversed(rows)])
    return _render(chart)


def trend_svg(report: Report, lang: str = "en") -> str:
    """Per callee-local day: attempts, answered, completed (bars) of the campaign."""
    from ivr.i18n import label

    rows = [g for g in report.breakdowns.get("day", []) if g.key != "(none)"]
    chart = pygal.Bar(title=label("trend", lang),
                      **{**_COMMON, "show_legend": True, "legend_at_bottom": True})
    chart.x_labels = [g.key[5:] for g in rows]  # MM-DD
    chart.add(label("attempts", lang), [g.funnel.dialed for g in rows])
    chart.add(label("answered", lang), [g.funnel.answered for g in rows])
    chart.add(label("completed", lang), [g.funnel.completed for g in rows])
    return _render(chart)


def satisfaction_svg(report: Report, lang: str = "en") -> str:
    from ivr.i18n import label

    f = report.funnel
    chart = pygal.Pie(title=f"{label('satisfaction', lang)} ({f.answered})",
                      **{**_COMMON, "show_legend": True, "legend_at_bottom": True,
                         "inner_radius": 0.4})
    chart.add(label("satisfied", lang), f.satisfied)
    chart.add(label("unsatisfied", lang), f.unsatisfied)
    chart.add(label("not_rated", lang), max(0, f.answered - f.satisfaction_answered))
    return _render(chart)


def reasons_svg(report: Report, lang: str = "en", top: int = 10) -> str:
    from ivr.i18n import label

    rows = report.reasons[:top]
    chart = pygal.HorizontalBar(title=label("complaint_reasons", lang),
                                **{**_COMMON, "height": max(200, 60 + 34 * len(rows))})
    chart.x_labels = [reason for reason, _ in reversed(rows)]
    chart.add(label("contacts", lang), [n for _, n in reversed(rows)])
    return _render(chart)
