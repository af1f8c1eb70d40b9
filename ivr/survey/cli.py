"""``ivr survey validate|show`` and ``ivr simulate``: check and walk a survey without a phone."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import click

from ivr.cli import Group, echo_json, json_option, settings_from
from ivr.store import CallRecorder, open_db
from ivr.survey.engine import SurveyRun
from ivr.survey.loader import ScriptError, load_script
from ivr.survey.script import RESULT_FIELDS, Script
from ivr.survey.simulate import ScriptedDialog, TerminalDialog, split_answers
from ivr.survey.vocab import vocabulary_for

# A plausible order per language for simulations (override with --order).
SAMPLE_ORDERS: dict[str, dict[str, Any]] = {
    "cmn": {"order_id": "SIM-0001", "phone": "+8613900000000", "platform": "示例平台",
            "product": "丹东草莓", "price": 39.9, "merchant": "鲜果旗舰店", "host": "小李",
            "buyer_name": "王女士", "order_time": "2024-05-03T20:15:00+08:00",
            "category": "生鲜"},
    "ko": {"order_id": "SIM-0001", "phone": "+821000000000", "platform": "예시몰",
           "product": "딸기", "price": 15000.0, "merchant": "과일가게", "host": "민지",
           "buyer_name": "김민수", "order_time": "2024-05-03T20:15:00+09:00",
           "category": "신선식품"},
}


@click.group(cls=Group)
def survey() -> None:
    """Survey scripts: validate them and look at their graph.

    \b
    Examples:
      ivr survey validate surveys/platform_satisfaction.cmn.yaml
      ivr survey show surveys/platform_satisfaction.cmn.yaml
    """


def _load(path: str, vocabulary: Any = None) -> Script:
    try:
        return load_script(path, vocabulary=vocabulary)
    except ScriptError as exc:
        for p in exc.problems:
            click.echo(str(p))
        click.echo(f"{len(exc.problems)} problem(s) in {path}", err=True)
        raise SystemExit(1) from exc


@survey.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--model", "model_lang", metavar="LANG",
              help="Check phrase words against the speech model of LANG (from ivr.yaml).")
@click.option("--model-path", type=click.Path(file_okay=False, path_type=Path),
              help="Check phrase words against the Vosk model in this directory.")
@json_option
@click.pass_context
def validate(ctx: click.Context, files: tuple[str, ...], model_lang: str | None,
             model_path: Path | None, as_json: bool) -> None:
    """Report every problem in survey FILES (file:line: node: problem); exit 1 if any.

    \b
    Examples:
      ivr survey validate surveys/platform_satisfaction.cmn.yaml
      ivr survey validate surveys/*.yaml
      ivr survey validate surveys/platform_satisfaction.ko.yaml --model ko
    """
    vocabulary = None
    if model_lang or model_path:
        vocabulary = vocabulary_for(model_lang or "", settings_from(ctx), model_path)
    failed = 0
    results = []
    for f in files:
        try:
            s = load_script(f, vocabulary=vocabulary)
        except ScriptError as exc:
            failed += 1
            results.append({"file": f, "ok": False, "problems": [str(p) for p in exc.problems]})
            if not as_json:
                for p in exc.problems:
                    click.echo(str(p))
            continue
        questions = sum(1 for n in s.nodes.values() if n.kind == "question")
        results.append({"file": f, "ok": True, "nodes": len(s.nodes), "questions": questions,
                        "language": s.language, "vocabulary_checked": vocabulary is not None})
        vocab = " (phrases checked against the model)" if vocabulary else ""
        if not as_json:
            click.echo(f"OK {f}: {len(s.nodes)} nodes, {questions} questions, "
                       f"language {s.language}{vocab}")
    if as_json:
        echo_json(results)
    if failed:
        raise SystemExit(1)


@survey.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--dot", is_flag=True, help="Print a Graphviz digraph instead of text.")
@json_option
def show(file: str, dot: bool, as_json: bool) -> None:
    """Show the nodes of a survey and where each answer leads.

    \b
    Examples:
      ivr survey show surveys/platform_satisfaction.cmn.yaml
      ivr survey show surveys/platform_satisfaction.cmn.yaml --dot | dot -Tsvg > survey.svg
    """
    s = _load(file)
    if as_json:
        echo_json({"name": s.name, "language": s.language, "voice": s.meta.voice,
                   "start": s.start, "nodes": {name: {
                       "kind": node.kind, "targets": dict(s.targets(name))}
                       for name, node in s.nodes.items()}})
        return
    click.echo(graph_dot(s) if dot else graph_text(s))


def graph_text(s: Script) -> str:
    lines = [f"{s.name} (language {s.language}, voice {s.meta.voice or '-'}), start: {s.start}"]
    for g, spec in s.global_intents.items():
        keys = ",".join(spec.dtmf) or "-"
        lines.append(f"  * global {g} [{keys}] -> {spec.goto}")
    for name, node in s.nodes.items():
        parts = []
        for label, target in s.targets(name):
            own = node.intents.get(label)
            keys = f"[{','.join(own.dtmf) or own.dtmf_pattern or '-'}]" if own else ""
            if label not in s.global_intents or label in node.intents:
                parts.append(f"{label}{keys} -> {target}")
        extra = ""
        if node.kind in ("end", "transfer"):
            extra = f" outcome={_outcome_text(node.outcome)}"
            if node.target:
                extra += f" target={node.target}"
        if node.dnc:
            extra += " +dnc"
        if s.active_globals(node):
            extra += " +globals"
        lines.append(f"  {name:<18} {node.kind:<9} {'; '.join(parts)}{extra}")
    return "\n".join(lines)


def _outcome_text(outcome: Any) -> str:
    if outcome is None or isinstance(outcome, str):
        return str(outcome or "default")
    return "|".join(r.then for r in outcome)


def graph_dot(s: Script) -> str:
    out = [f'digraph "{s.name}" {{', "  rankdir=LR;"]
    for name, node in s.nodes.items():
        shape = {"question": "diamond", "open": "parallelogram", "end": "doublecircle",
                 "transfer": "house"}.get(node.kind, "box")
        out.append(f'  "{name}" [shape={shape}];')
        for label, target in s.targets(name):
            style = ",style=dashed" if label in s.global_intents else ""
            out.append(f'  "{name}" -> "{target}" [label="{label}"{style}];')
    out.append("}")
    return "\n".join(out)


@click.command()
@click.argument("script_path", metavar="SCRIPT", type=click.Path(dir_okay=False))
@click.option("--answers", help='Comma-separated answers: intent names, DTMF digits or phrase '
                                'text; "-" silence, "?" not understood, "!" hang up. '
                                "Without it, type answers at the prompt.")
@click.option("--order", "order_json", help="Order fields as JSON, or @file.json.")
@click.option("--language", help="Call language (default: the script's).")
@click.option("--db", "db_path", type=click.Path(dir_okay=False),
              help="SQLite file to write results to (default: a temporary one).")
@click.option("--call-id", default="simulated-call", show_default=True,
              help="Call id; with --db, rerunning the same id resumes the stored call.")
def simulate(script_path: str, answers: str | None, order_json: str | None,
             language: str | None, db_path: str | None, call_id: str) -> None:
    """Run SCRIPT with scripted or typed answers and show the path and the stored results.

    \b
    Examples:
      ivr simulate surveys/platform_satisfaction.cmn.yaml --answers 2,1,1,-,1
      ivr simulate surveys/platform_satisfaction.cmn.yaml      type each answer at the prompt
      ivr simulate surveys/platform_satisfaction.cmn.yaml --answers '1,!' \\
          --order '{"product": "有机蓝莓", "price": 59}'
      ivr simulate surveys/platform_satisfaction.cmn.yaml --answers 2,1 \\
          --db var/sim.db --call-id sim-7
    """
    s = _load(script_path)
    order = dict(SAMPLE_ORDERS.get(s.language, SAMPLE_ORDERS["cmn"]))
    if order_json:
        order.update(_read_order(order_json))
    dialog = ScriptedDialog(split_answers(answers), echo=click.echo) if answers is not None \
        else TerminalDialog(echo=click.echo)
    with tempfile.TemporaryDirectory(prefix="ivr-sim-") as tmp:
        db = open_db(db_path or Path(tmp) / "simulate.db")
        rec = CallRecorder(db, call_id)
        run = SurveyRun(s, order, dialog, rec, language=language)
        result = asyncio.run(run.run())
        row = rec.get() or {}
        click.echo("")
        click.echo(f"path: {' -> '.join(result.path)}")
        click.echo(f"ended by: {result.ended_by}   outcome: {row.get('outcome')}")
        for f in RESULT_FIELDS:
            click.echo(f"  {f:<16} {row.get(f)}")
        click.echo("answers:")
        for a in rec.answers():
            said = a["dtmf"] or a["transcript"] or "-"
            click.echo(f"  {a['seq']:>2}. {a['node']:<14} {a['intent'] or '-':<12} "
                       f"{a['input_mode']:<5} tries={a['tries']} {said}")
        db.conn.close()
        if isinstance(dialog, ScriptedDialog) and dialog.used < len(dialog.answers):
            click.echo(f"note: {len(dialog.answers) - dialog.used} answer(s) left unused", err=True)


def _read_order(text: str) -> dict[str, Any]:
    try:
        raw = Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text
        data = json.loads(raw)
    except (OSError, json.JSONDecodeError) as exc:
        raise click.BadParameter(f"not a JSON object: {exc}", param_hint="--order") from exc
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object of order fields", param_hint="--order")
    return data
