"""The Jinja2 page of the HTML report (kept in a module so it ships with the package).

Self-contained: inline CSS, inline SVG charts, no external resources (recordings are playable only
where a URL for them is given: the web console). Labels are human ones in the page's language
(``ivr.i18n``); the raw key of a column is its header's title. Every table cell carries
``data-value`` with the exact raw figure (rates as ``num/den``) so tools and tests can read it.
"""

CSS = """body { font-family: {{ font | safe }}; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px 0; }
h2 { font-size: 17px; margin: 28px 0 8px 0; border-bottom: 2px solid #3b6fb6; padding-bottom: 3px; }
.meta { color: #666; font-size: 13px; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.kpi { border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; min-width: 130px; }
.kpi b { display: block; font-size: 22px; color: #3b6fb6; }
.kpi span { font-size: 12px; color: #666; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.chart { border: 1px solid #eee; width: 760px; max-width: 100%; }
.chart svg { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; font-size: 12px; margin-bottom: 8px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #f3f6fb; }
td.text { text-align: left; max-width: 420px; }
tr.rectify td { background: #fdecea; }
.empty { color: #888; font-style: italic; }
audio { height: 28px; }
"""

# The report's content, also embedded in the web console's report page.
FRAGMENT = """<h1>{{ t("report_title") }}: {{ r.campaign_name }}</h1>
<div class="meta"><code>{{ r.campaign_id }}</code>
 &middot; {{ t("status") }} {{ t("st_" ~ r.campaign_status) }}
 &middot; {{ t("generated") }} {{ r.generated_at }}</div>
<div class="kpis">
{% for key, value in kpis %}<div class="kpi"><b>{{ value }}</b><span>{{ t(key) }}</span></div>
{% endfor %}</div>
<h2>{{ t("charts") }}</h2>
<div class="charts">
{% for name, svg in charts %}<div class="chart" id="chart-{{ name }}">{{ svg | safe }}</div>
{% endfor %}</div>
{% for tb in tables %}
<h2 id="{{ tb.name }}">{{ title_of(tb) }}</h2>
{% if tb.rows %}
<table id="table-{{ tb.name }}" data-table="{{ tb.name }}">
<thead><tr>{% for c in tb.columns %}<th title="{{ c }}">{{ t(c) }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in tb.rows %}<tr{% if row_class(tb, row) %} class="{{ row_class(tb, row) }}"{% endif %}>
{% for cell in row %}<td{% if cell is string %} class="text"{% endif %} data-value="{{ raw(cell) }}"
{%- if title(cell) %} title="{{ title(cell) }}"{% endif %}>
{%- if tb.name == "funnel" and loop.first %}{{ t(cell) }}
{%- elif tb.name == "suggestions" and tb.columns[loop.index0] == "recording"
   and cell and audio(row) %}
<audio controls preload="none" src="{{ audio(row) }}"></audio>
{%- else %}{{ show(cell) }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% else %}<p class="empty">{{ t("none") }}</p>{% endif %}
{% endfor %}
"""

PAGE = """<!DOCTYPE html>
<html lang="{{ 'zh' if lang == 'zh' else 'en' }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t("report_title") }} - {{ r.campaign_name }}</title>
<style>
{{ css | safe }}</style>
</head>
<body>
{{ fragment | safe }}
</body>
</html>
"""
