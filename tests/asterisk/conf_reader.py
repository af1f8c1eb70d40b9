"""Read a rendered config the way Asterisk's main/config.c does, to check what Asterisk will see.

Ported from config_text_file_load / process_text_line: lines are read up to 8191 bytes (longer
ones are skipped), ';' starts a comment unless escaped as '\\;' (the backslash is dropped),
';--' ... '--;' is a block comment, '[name](options)' starts a section, 'key = value' and
'key => value' set a variable (both sides trimmed), '#include' / '#exec' are directives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LINE_LIMIT = 8192


@dataclass
class Section:
    name: str
    options: str = ""
    items: list[tuple[str, str]] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.items]

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.items if k == key), None)


@dataclass
class Conf:
    sections: list[Section] = field(default_factory=list)
    directives: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def section(self, name: str, kind: str | None = None) -> Section:
        found = [s for s in self.sections if s.name == name
                 and (kind is None or s.get("type") == kind)]
        assert len(found) == 1, (name, kind, [s.name for s in self.sections])
        return found[0]


def _strip_comments(line: str, depth: int) -> tuple[str, int]:
    out: list[str] = []
    keep = depth == 0
    i = 0
    while i < len(line):
        ch = line[i]
        if ch != ";":
            if keep:
                out.append(ch)
            i += 1
            continue
        if i > 0 and line[i - 1] == "\\" and keep:
            out[-1] = ";"  # escaped: the backslash goes, the ';' stays
            i += 1
            continue
        if line[i + 1:i + 3] == "--" and line[i + 3:i + 4] != "-":
            depth += 1
            keep = False
            i += 3
            continue
        if i >= 2 and line[i - 2:i] == "--" and depth:
            depth -= 1
            keep = depth == 0
            if keep and out[-2:] == ["-", "-"]:
                del out[-2:]
            i += 1
            continue
        if depth == 0:
            break  # a plain comment: the rest of the line
        i += 1
    return "".join(out), depth


def read_conf(text: str) -> Conf:
    conf = Conf()
    current: Section | None = None
    depth = 0
    for n, raw in enumerate(text.split("\n"), start=1):
        if len(raw.encode()) >= LINE_LIMIT - 1:
            conf.problems.append(f"line {n} too long: Asterisk skips it")
            continue
        line, depth = _strip_comments(raw, depth)
        cur = line.strip(" \t\r\n\v\f")
        if not cur:
            continue
        if cur.startswith("["):
            end = cur.find("]")
            if end < 0:
                conf.problems.append(f"line {n}: no closing ']'")
                continue
            current = Section(cur[1:end], cur[end + 1:].strip())
            conf.sections.append(current)
        elif cur.startswith("#"):
            conf.directives.append(cur)
        else:
            if current is None:
                conf.problems.append(f"line {n}: no section for {cur!r}")
                continue
            key, sep, value = cur.partition("=")
            if not sep:
                conf.problems.append(f"line {n}: no '=' in {cur!r}")
                continue
            if value.startswith(">"):
                value = value[1:]
            current.items.append((key.strip(), value.strip()))
    return conf
