"""The Jinja2 page of the HTML report (kept in a module so it ships with the package).

Self-contained: inline CSS, inline SVG charts, no external resources. Every table cell carries
``data-value`` with the exact raw figure (rates as ``num/den``) so tools and tests can read it.
"""

PAGE = """<!DOCTYPE html>
<html lang="zh">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Campaign report - {{ r.campaign_name }}</title>
<style>
body { font-family: {{ font | safe }}; margin: 24px; color: #222; background: #fff; }
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
</style>
</head>
<body>
<h1>Campaign report: {{ r.campaign_name }}</h1>
<div class="meta">campaign <code>{{ r.campaign_id }}</code> &middot; status {{ r.campaign_status }}
 &middot; generated {{ r.generated_at }}</div>
<div class="kpis">
{% for label, value in kpis %}<div class="kpi"><b>{{ value }}</b><span>{{ label }}</span></div>
{% endfor %}</div>
<h2>Charts</h2>
<div class="charts">
{% for name, svg in charts %}<div class="chart" id="chart-{{ name }}">{{ svg | safe }}</div>
{% endfor %}</div>
{% for t in tables %}
<h2 id="{{ t.name }}">{{ t.title }}</h2>
{% if t.rows %}
<table id="table-{{ t.name }}" data-table="{{ t.name }}">
<thead><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr{% if row_class(t, row) %} class="{{ row_class(t, row) }}"{% endif %}>
{% for cell in row %}<td{% if cell is string %} class="text"{% endif %} data-value="{{ raw(cell) }}"
{%- if title(cell) %} title="{{ title(cell) }}"{% endif %}>{{ show(cell) }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% else %}<p class="empty">(none)</p>{% endif %}
{% endfor %}
</body>
</html>
"""
