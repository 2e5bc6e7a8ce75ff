"""Causal L3: declarative cause rules linking L2 matches (and per-namespace counters) that
explain other L2 matches, each link resting on a physical tie between cited events.

A rule is a TOML file in ``gewtui/model/causes/`` (users add directories, like templates):

    id = "drops-retransmissions"
    causes = ["netfilter-drop", "receive-queue-full"]    # L2 template ids that can explain ...
    effects = ["retransmission-storm", "handshake-timeout"]   # ... these L2 template ids
    tie = "flow"          # socket | flow | listener: what must physically join the two
    window_ms = 5000      # a cause event at most this long before an effect event
    text = "{effect} because {cause_total} packet(s) of this flow were dropped: ..."
    unobserved = "a drop of this flow's packets"         # what "cause not observed" names

Ties (always also: a cause event at or before an effect event, within ``window_ms``):

* ``socket``: a cause event and an effect event name the same connection (the same kernel
  socket, or the same 4-tuple in either direction);
* ``flow``: both matches are on this flow (the anchors attributed the cause's events to it by
  socket, tuple or path; a per-interface record says so in its own text);
* ``listener``: the effect's peer port is a listener's in a scoped namespace whose
  ListenOverflows counter (TcpExt, read at start, at end and at handshake timeouts) rose
  between the last reading before the effect and the first one after its first event; or
  that listener's flow has a ``causes`` match in the window. The counter is the cause.

For an effect no rule ties to a cause, L3 says "cause not observed: <unobserved of each rule
naming it>", never a guess. Rules are evaluated when a chain is built (never on the feed
path) from the registry's state only, so chains stay deterministic.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from gewtui.model.data_files import TemplateError, placeholder_names, read_toml

TIES = ("socket", "flow", "listener")
_KEYS = {"id", "causes", "effects", "tie", "window_ms", "text", "unobserved", "text_other_end"}
_ID_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
MAX_WINDOW_MS = 3_600_000
PLACEHOLDERS = ("effect", "cause", "flow_id", "peer", "cause_total", "cause_reason", "cause_site",
                "cause_netns", "cause_iface", "cause_event", "effect_event", "effect_kind", "lag_ms", "delta",
                "counter_from", "counter_to", "listener", "other_flow")


class CauseRuleError(TemplateError):
    """A cause rule file that cannot be used (one line naming the file and the key)."""


@dataclass(frozen=True)
class CauseRule:
    id: str
    causes: tuple[str, ...]
    effects: tuple[str, ...]
    tie: str
    window_ns: int
    text: str
    unobserved: str
    source: str
    # the text when the cause is counted on the flow at the other end of the connection
    # (tie "flow"); empty: ``text`` with a sentence saying so
    text_other_end: str = ""


def parse_rule(data: dict, source: str, known: Iterable[str] | None = None) -> CauseRule:
    extra = set(data) - _KEYS
    if extra:
        raise CauseRuleError(f"{source}: {sorted(extra)[0]}: unknown key (expected {', '.join(sorted(_KEYS))})")
    for k in ("id", "causes", "effects", "tie", "window_ms", "text", "unobserved"):
        if k not in data:
            raise CauseRuleError(f"{source}: {k}: missing")
    rid = data["id"]
    if not isinstance(rid, str) or not _ID_RE.match(rid):
        raise CauseRuleError(f"{source}: id: must be lower-case letters, digits and '-'")
    ids = set(known) if known is not None else None
    for k in ("causes", "effects"):
        v = data[k]
        if not isinstance(v, list) or not v or len(v) > 64 or not all(isinstance(x, str) for x in v):
            raise CauseRuleError(f"{source}: {k}: must be a non-empty list of template ids")
        if ids is not None:
            bad = [x for x in v if x not in ids]
            if bad:
                raise CauseRuleError(f"{source}: {k}: unknown template {bad[0]!r}")
    if data["tie"] not in TIES:
        raise CauseRuleError(f"{source}: tie: must be one of {', '.join(TIES)}")
    w = data["window_ms"]
    if not isinstance(w, int) or isinstance(w, bool) or not 0 < w <= MAX_WINDOW_MS:
        raise CauseRuleError(f"{source}: window_ms: must be an integer in 1..{MAX_WINDOW_MS}")
    for k in ("text", "unobserved", "text_other_end"):
        if k not in data and k == "text_other_end":
            continue
        if not isinstance(data[k], str) or not data[k].strip() or len(data[k]) > 1000:
            raise CauseRuleError(f"{source}: {k}: must be a non-empty string (at most 1000 characters)")
    for k in ("text", "text_other_end"):
        _check_placeholders(data.get(k, ""), f"{source}: {k}")
    return CauseRule(rid, tuple(data["causes"]), tuple(data["effects"]), data["tie"], w * 1_000_000,
                     data["text"], data["unobserved"], source, data.get("text_other_end", ""))


def _check_placeholders(text: str, where: str) -> None:
    for n in placeholder_names(text, where, CauseRuleError):
        if n not in PLACEHOLDERS:
            raise CauseRuleError(f"{where}: unknown placeholder {{{n}}} (known: {', '.join(PLACEHOLDERS)})")


def load_rule_file(path: Path, known: Iterable[str] | None = None) -> CauseRule:
    r = parse_rule(read_toml(path, CauseRuleError), str(path), known)
    if path.stem != r.id:
        raise CauseRuleError(f"{path}: id: {r.id!r} must match the file name ({path.stem}.toml)")
    return r


def rules_dir() -> Path:
    return Path(__file__).resolve().parent / "causes"


def load_rules(dirs: Iterable[str | Path] | None = None, known: Iterable[str] | None = None,
               *, packaged: bool = True, allow_override: Iterable[str] = ()) -> tuple[CauseRule, ...]:
    """Packaged rules plus those in ``dirs``; ``known``: the template ids rules may name.
    Ordered by id. As with templates, a user rule replaces a packaged one only when its id
    is in ``allow_override`` (``--override-template ID``): a directory cannot silently change
    which causes a verdict names."""
    known = tuple(known) if known is not None else None
    allowed = set(allow_override)
    found: dict[str, CauseRule] = {}
    if packaged:
        for f in sorted(rules_dir().glob("*.toml")):
            r = load_rule_file(f, known)
            found[r.id] = r
    packaged_ids = set(found)
    for d in (Path(x) for x in dirs or ()):
        if not d.is_dir():
            raise CauseRuleError(f"{d}: not a directory of cause rules")
        for f in sorted(d.glob("*.toml"))[:1024]:
            r = load_rule_file(f, known)
            if r.id in packaged_ids and r.id not in allowed:
                raise CauseRuleError(f"{f}: id: {r.id!r} is a packaged cause rule; replacing it "
                                     f"needs --override-template {r.id}")
            found[r.id] = r
    return tuple(sorted(found.values(), key=lambda r: r.id))


_PACKAGED: tuple[CauseRule, ...] | None = None


def packaged_rules() -> tuple[CauseRule, ...]:
    global _PACKAGED
    if _PACKAGED is None:
        _PACKAGED = load_rules()
    return _PACKAGED
