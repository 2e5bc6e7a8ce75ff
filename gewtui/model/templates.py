"""Templates: the L2 vocabulary. Each is one TOML file naming a pattern over L0 events and
L1 signals, a classification, a severity, the interventions it allows and a text filled from
its evidence. The packaged set lives in gewtui/model/templates/; users add directories with
``--templates DIR`` (the CLI calls load_templates(dirs)).

Loading validates everything up front and fails with one line naming the file and the key.
A template directory is hostile input: only regular ``*.toml`` files directly in it are
read (a FIFO, device or directory named like one is refused without blocking), each at
most MAX_TEMPLATE_BYTES, at most MAX_TEMPLATES_PER_DIR of them, nesting bounded, and no
string may hold a control character (a newline in an id or a title would forge lines in
every front end). A user template replaces a packaged one only when the operator names
its id (``--override-template ID``); the set remembers which (``TemplateSet.overridden``)
so the runtime info, the status bar and the chain can say so.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from gewtui.model.data_files import TemplateError, placeholder_names, read_toml
from gewtui.model.patterns import Pattern, PatternError, parse_pattern
from gewtui.model.schema import fields_of
from gewtui.resources import templates_dir

SEVERITIES = ("info", "warning", "critical")
INTERVENTION_LEVELS = ("drop", "replay", "redirect")
_ID_RE = re.compile(r"[a-z][a-z0-9-]{0,62}")           # fullmatch: "$" would allow a "\n"
MAX_TEMPLATES_PER_DIR = 256
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_KEYS = {"id", "title", "classification", "severity", "allows", "text", "pattern"}
#: Placeholders every text may use, filled from the match and the flow's identity.
PLAIN_PLACEHOLDERS = ("count", "total", "occurrences", "span_ms", "flow", "flow_id", "peer", "local",
                      "template")
_PSEUDO = ("id", "ktime_ns", "event")


@dataclass(frozen=True)
class Template:
    id: str
    title: str
    classification: str
    severity: str
    allows: tuple[str, ...]
    text: str
    pattern: Pattern
    source: str                    # file it came from

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.text) if f)


class TemplateSet:
    """An ordered (by id), immutable set of templates."""

    def __init__(self, templates: Iterable[Template], overridden: Iterable[str] = (), causes=()):
        self._list = tuple(sorted(templates, key=lambda t: t.id))
        self._by_id = {t.id: t for t in self._list}
        self.overridden = tuple(sorted(overridden))  # packaged ids replaced by user files
        # cause rules over these templates (gewtui.model.causes): used when chains are built
        self.causes = tuple(causes)

    def __iter__(self) -> Iterator[Template]:
        return iter(self._list)

    def __len__(self) -> int:
        return len(self._list)

    def __contains__(self, tid: str) -> bool:
        return tid in self._by_id

    def get(self, tid: str) -> Template | None:
        return self._by_id.get(tid)

    def __getitem__(self, tid: str) -> Template:
        return self._by_id[tid]

    def ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self._list)

    def index(self, tid: str) -> int:
        return self._list.index(self._by_id[tid])

    def at(self, i: int) -> Template:
        return self._list[i]

    def override_notes(self) -> tuple[str, ...]:
        """One line per packaged template replaced by a user file, for every front end."""
        return tuple(f"template {tid} replaced by {self._by_id[tid].source}" for tid in self.overridden)


def _check_text(text: str, pattern: Pattern, where: str) -> None:
    steps = pattern.steps
    all_fields: set[str] = set(_PSEUDO)
    step_fields: list[set[str]] = []
    numeric: set[str] = set()
    for s in steps:
        fs = set(_PSEUDO)
        for a in s.alts:
            table = fields_of(a.kind)
            fs |= set(table)
            numeric |= {n for n, i in table.items() if i.numeric}
        step_fields.append(fs)
        all_fields |= fs
    for name in placeholder_names(text, f"{where}: text"):
        if name in PLAIN_PLACEHOLDERS:
            continue
        head, _, fname = name.partition(".")
        if not fname:
            raise TemplateError(f"{where}: text: unknown placeholder {{{name}}} (plain ones: "
                                f"{', '.join(PLAIN_PLACEHOLDERS)}; or first.F, last.F, sN.F, sum.F)")
        if head in ("first", "last"):
            ok = fname in all_fields
        elif head == "sum":
            ok = fname in numeric
        elif re.fullmatch(r"s[1-9]", head) and int(head[1:]) <= len(steps):
            ok = fname in step_fields[int(head[1:]) - 1]
        else:
            raise TemplateError(f"{where}: text: unknown placeholder {{{name}}} (steps are s1..s{len(steps)})")
        if not ok:
            raise TemplateError(f"{where}: text: {{{name}}} names a field no event of that step has")


def parse_template(data: dict, source: str) -> Template:
    """Validate one template's table; TemplateError names ``source`` and the key."""
    extra = set(data) - _KEYS
    if extra:
        raise TemplateError(f"{source}: {sorted(extra)[0]}: unknown key (expected {', '.join(sorted(_KEYS))})")
    for key in ("id", "title", "classification", "severity", "text", "pattern"):
        if key not in data:
            raise TemplateError(f"{source}: {key}: missing")
    for key in ("id", "title", "classification", "severity", "text"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise TemplateError(f"{source}: {key}: must be a non-empty string")
    for key in ("id", "title", "classification", "severity", "text"):
        if _CONTROL_RE.search(data[key]):
            raise TemplateError(f"{source}: {key}: must be one line without control characters")
    tid = data["id"]
    if not _ID_RE.fullmatch(tid):
        raise TemplateError(f"{source}: id: {ascii(tid)} must be lower-case letters, digits and '-'")
    if data["severity"] not in SEVERITIES:
        raise TemplateError(f"{source}: severity: {data['severity']!r} is not one of {', '.join(SEVERITIES)}")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", data["classification"]):
        raise TemplateError(f"{source}: classification: must be one lower-case word (a-z, 0-9, '-')")
    allows = data.get("allows", [])
    if not isinstance(allows, list) or any(a not in INTERVENTION_LEVELS for a in allows):
        raise TemplateError(f"{source}: allows: must be a list of {', '.join(INTERVENTION_LEVELS)}")
    try:
        pattern = parse_pattern(data["pattern"])
    except PatternError as e:
        raise TemplateError(f"{source}: {e}") from None
    _check_text(data["text"], pattern, source)
    return Template(tid, data["title"], data["classification"], data["severity"],
                    tuple(dict.fromkeys(allows)), data["text"], pattern, source)


def load_template_file(path: Path) -> Template:
    from gewtui.securefs import show

    where = show(str(path))
    data = read_toml(path)
    try:
        t = parse_template(data, where)
    except TemplateError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as e:
        # A value of a type the pattern parser did not expect: still one line, never a traceback.
        raise TemplateError(f"{where}: malformed ({type(e).__name__}: {str(e)[:120]})") from None
    if path.stem != t.id:
        raise TemplateError(f"{where}: id: {t.id!r} must match the file name ({t.id}.toml)")
    return t


def _dir_templates(d: Path) -> list[Template]:
    from gewtui.securefs import show

    if not d.is_dir():
        raise TemplateError(f"{show(str(d))}: not a directory of templates")
    files = sorted(d.glob("*.toml"))
    if not files:
        raise TemplateError(f"{show(str(d))}: no *.toml templates in it")
    if len(files) > MAX_TEMPLATES_PER_DIR:
        raise TemplateError(f"{show(str(d))}: {len(files)} templates, over the limit of {MAX_TEMPLATES_PER_DIR}")
    return [load_template_file(f) for f in files]


def load_templates(dirs: Iterable[str | Path] | None = None, *, packaged: bool = True,
                   allow_override: Iterable[str] = ()) -> TemplateSet:
    """The packaged templates (unless packaged=False) plus those in ``dirs``.

    A user template with a packaged template's id replaces it (to tune a threshold) only
    when that id is in ``allow_override`` (``--override-template ID``); otherwise it is an
    error, so a directory cannot silently change what a packaged template concludes. Two
    user files with one id are an error, and so is an allowed id no user file replaces.
    Cause rules come with them: the packaged ones (if packaged) and those in each
    directory's ``causes/`` subdirectory.
    """
    from gewtui.model.causes import load_rules

    found: dict[str, Template] = {}
    if packaged:
        for t in _dir_templates(templates_dir()):
            found[t.id] = t
    allowed = set(allow_override)
    overridden: list[str] = []
    user: dict[str, str] = {}
    for d in dirs or ():
        for t in _dir_templates(Path(d)):
            if t.id in user:
                raise TemplateError(f"{t.source}: id: {t.id!r} already defined in {user[t.id]}")
            user[t.id] = t.source
            if t.id in found:
                if t.id not in allowed:
                    raise TemplateError(f"{t.source}: id: {t.id!r} is a packaged template; replacing "
                                        f"it needs --override-template {t.id}")
                overridden.append(t.id)
            found[t.id] = t
    rule_dirs = [Path(d) / "causes" for d in dirs or () if (Path(d) / "causes").is_dir()]
    rule_ids = {f.stem for rd in rule_dirs for f in rd.glob("*.toml")}
    for tid in sorted(allowed - set(overridden) - rule_ids):
        raise TemplateError(f"--override-template {ascii(tid)}: no template or cause rule in "
                            "--templates replaces a packaged one with that id")
    causes = load_rules(rule_dirs, known=found, packaged=packaged, allow_override=allowed)
    return TemplateSet(found.values(), overridden, causes)


_PACKAGED: TemplateSet | None = None


def packaged_templates() -> TemplateSet:
    """The packaged set, loaded once per process (templates are immutable)."""
    global _PACKAGED
    if _PACKAGED is None:
        _PACKAGED = load_templates()
    return _PACKAGED
