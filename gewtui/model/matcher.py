"""L2 on the feed path: advances every template's pattern over the events offered to a flow
and records a match (an Episode) with exactly the events that satisfied it.

Progress lives on the flow (or on the socket for ``same_socket`` patterns) and is created
only when a first step matches, so a healthy flow carries none. Every event held as evidence
— finished steps, events in a count window, episodes — is pinned in the registry's evidence
store and unpinned when dropped, so eng.event(id) can always answer for a cited id.
"""
from __future__ import annotations

import re
from typing import Callable

from gewtui.model.changes import change
from gewtui.model.schema import SIGNAL_FIELDS
from gewtui.model.templates import TemplateSet

_B0 = (0,)              # the commonest bounds tuple, shared
EVIDENCE_CAP = 32       # evidence ids kept per episode (the first ones and always the last)
EPISODES_CAP = 4        # episodes per template per flow; later matches count as occurrences


class Compiled:
    __slots__ = ("idx", "tid", "severity", "steps", "nsteps", "counts", "windows", "within",
                 "same", "single", "path", "steps0", "win0", "signal", "slot", "nslots", "sums", "longer")

    def __init__(self, idx, tpl):
        p = tpl.pattern
        self.idx = idx
        self.tid = tpl.id
        self.severity = tpl.severity
        self.steps = [s.by_kind for s in p.steps]
        self.nsteps = len(p.steps)
        self.counts = [s.count for s in p.steps]
        self.windows = [s.window_ns for s in p.steps]
        self.within = p.within_ns
        self.longer = p.longer_ns
        self.same = p.same_socket
        self.single = self.nsteps == 1
        self.path = p.scope == "path"
        self.steps0 = self.steps[0]
        # body fields the text sums ({sum.F}): totalled over every match, not the kept evidence
        self.sums = tuple(dict.fromkeys(n[4:] for n in tpl.placeholders if n.startswith("sum.")))
        self.win0 = self.windows[0]
        self.signal = any(a.kind in SIGNAL_FIELDS for s in p.steps for a in s.alts)


class Progress:
    """How far one pattern got on one flow or socket. Evidence of finished steps is a tuple
    (small, rarely grown); the count window a list made when a count step needs one."""

    __slots__ = ("step", "eids", "bounds", "t0", "win", "ep", "sig", "slot")

    def __init__(self, slot: int = 0):
        self.slot = slot
        self.step = 0
        self.eids: tuple[int, ...] = ()       # evidence of finished steps
        self.bounds: tuple[int, ...] = ()     # index in eids where each finished step starts
        self.t0 = 0
        self.win: list[tuple[int, int]] | None = None  # (ktime, id) of the current count step
        self.ep: Episode | None = None   # open episode a single-step pattern extends
        self.sig: dict | None = None     # L1 signal fields by evidence id

    def clone(self, ep_map: dict) -> "Progress":
        c = Progress.__new__(Progress)
        c.slot, c.step, c.t0, c.eids, c.bounds = self.slot, self.step, self.t0, self.eids, self.bounds
        c.win = list(self.win) if self.win else None
        c.ep = ep_map.get(id(self.ep)) if self.ep is not None else None
        c.sig = dict(self.sig) if self.sig else None
        return c

    def cited(self):
        yield from self.eids
        if self.win:
            for _, e in self.win:
                yield e


# Per-holder progress (``tstate`` of a flow or a socket): None until a first step matches;
# then the one Progress itself (most holders are only ever in the middle of one pattern);
# from a second on, a list with one slot per template that can be in progress on that kind
# of holder (sockets: same_socket templates; flows: the others). O(1), far smaller than a dict.
def tstate_get(st, slot: int):
    if st is None:
        return None
    if st.__class__ is list:
        return st[slot]
    return st if st.slot == slot else None


def tstate_put(holder, nslots: int, p: "Progress") -> None:
    st = holder.tstate
    if st is None:
        holder.tstate = p
    elif st.__class__ is list:
        st[p.slot] = p
    else:
        lst = [None] * nslots
        lst[st.slot] = st
        lst[p.slot] = p
        holder.tstate = lst


def clone_tstate(st, ep_map):
    if st.__class__ is not list:
        return st.clone(ep_map)
    return [p.clone(ep_map) if p is not None else None for p in st]


def tstate_cited(st):
    if st.__class__ is not list:
        yield from st.cited()
        return
    for p in st:
        if p is not None:
            yield from p.cited()


class Episode:
    """One L2 match on one flow: the template, its evidence, when."""

    __slots__ = ("tidx", "tid", "eids", "bounds", "count", "first_t", "last_t", "sig",
                 "occurrences", "sock", "at_eid", "sums")

    def clone(self) -> "Episode":
        c = Episode.__new__(Episode)
        c.tidx, c.tid, c.count, c.first_t, c.last_t = self.tidx, self.tid, self.count, self.first_t, self.last_t
        c.eids, c.bounds = list(self.eids), list(self.bounds)
        c.sig = dict(self.sig) if self.sig else None
        c.occurrences, c.sock, c.at_eid = self.occurrences, self.sock, self.at_eid
        c.sums = dict(self.sums)
        return c


def _add_sums(sums: dict, fields: tuple, b) -> None:
    """Totals over every matched event, kept or elided: "*" counts each event as 1, or as its
    ``count`` field when it folds identical kernel facts (drops, route lookups); the others
    are the numeric fields the template's text sums ({sum.F})."""
    if b is None or isinstance(b, dict):   # an L1 signal
        sums["*"] = sums.get("*", 0) + 1
        return
    sums["*"] = sums.get("*", 0) + max(1, getattr(b, "count", 1) or 1)
    for fn in fields:
        v = getattr(b, fn, 0)
        if isinstance(v, int) and not isinstance(v, bool):
            sums[fn] = sums.get(fn, 0) + v


def sums_of(reg, eids, fields: tuple) -> dict:
    sums: dict = {}
    for e in eids:
        ev = reg.event(e)
        _add_sums(sums, fields, getattr(ev, ev.WhichOneof("body") or "", None) if ev is not None else None)
    return sums


_CONST = re.compile(r"\b_c(\d+)\b")


def _inline(pred, prefix: str, ns: dict, name: str) -> str:
    """A first-step predicate as an expression over ``e`` and ``b`` for generated code: its
    compiled expression with its constants renamed under ``prefix`` into ``ns``; a call of
    the predicate (bound as ``name``) when it carries no expression."""
    expr = getattr(pred, "expr", None)
    if expr is None:
        return f"{name}(e, b)"
    for k, v in pred.consts.items():
        ns[prefix + k] = v
    return "(" + _CONST.sub(lambda mo: f"{prefix}_c{mo.group(1)}", expr) + ")"


class Matcher:
    def __init__(self, templates: TemplateSet):
        self.templates = templates
        self.compiled = [Compiled(i, t) for i, t in enumerate(templates)]
        same = [c for c in self.compiled if c.same]
        other = [c for c in self.compiled if not c.same]
        for group in (same, other):
            for k, c in enumerate(group):
                c.slot, c.nslots = k, len(group)
        by_kind: dict[str, list[Compiled]] = {}
        path_kind: dict[str, list[Compiled]] = {}
        for c in self.compiled:
            kinds = {k for s in c.steps for k in s}
            for k in sorted(kinds):
                by_kind.setdefault(k, []).append(c)
                if c.path:
                    path_kind.setdefault(k, []).append(c)
        self.by_kind = {k: tuple(v) for k, v in by_kind.items()}
        self.path_kind = {k: tuple(v) for k, v in path_kind.items()}
        # Templates of a kind with their first step's predicate for it (None: the kind only
        # appears in later steps): all a holder with nothing in progress needs to test.
        self.with_first = {k: tuple((c, c.steps0.get(k)) for c in v) for k, v in by_kind.items()}
        # kind -> offer(reg, f, m, ev, b, eid, t, out): offer() for that kind, unrolled over
        # its templates (anchors call these directly on the feed path).
        self.offers = {k: self._unrolled(k, v) for k, v in self.with_first.items()}

    def _unrolled(self, kind: str, entries) -> Callable[..., None]:
        """offer() for one kind as straight-line code: the template loop unrolled, each
        template's slot a constant. Same behaviour, statement for statement, as the loop in
        offer(); built from the compiled templates only (no template text reaches it)."""
        ns: dict = {"start": self._start, "offer_one": self._offer_one, "kind": kind}
        lines = ["def offer(reg, f, m, e, b, eid, t, out):", "    fst = f.tstate"]
        if any(ct.same for ct, _ in entries):
            lines.append("    mst = m.tstate if m is not None else None")
        for i, (ct, pred0) in enumerate(entries):
            ns[f"ct{i}"], ns[f"pred{i}"] = ct, pred0
            ind = "    "
            if ct.same:
                lines.append("    if m is not None:")
                ind = "        "
            st = "mst" if ct.same else "fst"
            lines += [f"{ind}if {st} is None:",
                      f"{ind}    p = None",
                      f"{ind}elif {st}.__class__ is list:",
                      f"{ind}    p = {st}[{int(ct.slot)}]",
                      f"{ind}else:",
                      f"{ind}    p = {st} if {st}.slot == {int(ct.slot)} else None",
                      f"{ind}if p is not None:",
                      f"{ind}    offer_one(reg, ct{i}, f, m, kind, e, b, eid, t, out)"]
            if pred0 is not None:
                lines += [f"{ind}elif {_inline(pred0, f'_t{i}', ns, f'pred{i}')}:",
                          f"{ind}    start(reg, ct{i}, f, m, kind, b, eid, t, out)"]
        exec("\n".join(lines), ns)  # noqa: S102 - source built from validated names only
        return ns["offer"]

    def _start(self, reg, ct, f, m, kind, b, eid, t, out) -> None:
        """A first step matched on a holder with nothing in progress for ``ct``."""
        p = Progress(ct.slot)
        tstate_put(m if ct.same else f, ct.nslots, p)
        self._matched(reg, ct, f, m, p, kind, b, eid, t, out)

    # -- feed path ---------------------------------------------------------------------------
    def offer(self, reg, f, m, kind, ev, b, eid, t, out, cts=None) -> None:
        """Offer one event (or L1 signal with b = its fields) to the templates of ``kind``.
        ``cts`` narrows the templates (path-scoped delivery); by default all of the kind."""
        if cts is None:
            fn = self.offers.get(kind)
            if fn is not None:
                fn(reg, f, m, ev, b, eid, t, out)
            return
        fst = f.tstate
        mst = m.tstate if m is not None else None
        for ct, pred0 in tuple((c, c.steps0.get(kind)) for c in cts):
            # The common case, inline: nothing in progress and the first step does not match.
            if ct.same:
                if m is None:
                    continue
                st = mst
            else:
                st = fst
            if st is None:
                p = None
            elif st.__class__ is list:
                p = st[ct.slot]
            else:
                p = st if st.slot == ct.slot else None
            if p is None:
                if pred0 is None or not pred0(ev, b):
                    continue
                # (what _offer_one would do, without testing the predicate again)
                self._start(reg, ct, f, m, kind, b, eid, t, out)
                continue
            self._offer_one(reg, ct, f, m, kind, ev, b, eid, t, out)

    def _offer_one(self, reg, ct, f, m, kind, ev, b, eid, t, out) -> None:
        holder = m if ct.same else f
        if holder is None:
            return
        p = tstate_get(holder.tstate, ct.slot)
        if p is None:
            pred = ct.steps0.get(kind)
            if pred is None or not pred(ev, b):
                return
            p = Progress(ct.slot)
            tstate_put(holder, ct.nslots, p)
            self._matched(reg, ct, f, m, p, kind, b, eid, t, out)
            return
        if ct.within and p.eids and t - p.t0 > ct.within:
            self._reset(reg, p)
        if p.ep is not None:
            pred = ct.steps0.get(kind)
            if pred is None or not pred(ev, b):
                return
            ep = p.ep
            if ct.win0 is None or t - ep.last_t <= ct.win0:
                self._extend(reg, ep, eid, t, kind, b)
                return
            p.ep = None
        pred = ct.steps[p.step].get(kind)
        if pred is None or not pred(ev, b):
            return
        self._matched(reg, ct, f, m, p, kind, b, eid, t, out)

    def _matched(self, reg, ct, f, m, p, kind, b, eid, t, out) -> None:
        s = p.step
        need = ct.counts[s]
        if ct.signal and kind in SIGNAL_FIELDS:
            if p.sig is None:
                p.sig = {}
            p.sig[eid] = dict(b)
        reg.pin_id(eid)
        if need == 1:
            ids = (eid,)
            t_first = t
        else:
            win = p.win
            if win is None:
                win = p.win = []
            win.append((t, eid))
            w = ct.windows[s]
            while win and t - win[0][0] > w:
                reg.unpin(win.pop(0)[1])
            if len(win) < need:
                return
            ids = tuple(e for _, e in win)
            t_first = win[0][0]
            p.win = None
        if s == 0:
            p.t0 = t_first
        p.bounds = p.bounds + (len(p.eids),) if p.bounds else _B0 if not p.eids else (len(p.eids),)
        p.eids = p.eids + ids
        p.step = s + 1
        if p.step == ct.nsteps and ct.longer and t - p.t0 < ct.longer:
            self._reset(reg, p)     # fast enough: below the latency threshold, no match
            return
        if p.step == ct.nsteps:
            self._fire(reg, ct, f, m, p, t, out)

    def _fire(self, reg, ct, f, m, p, t, out) -> None:
        cur = p.eids[-1]
        idx = ct.idx
        n_eps = 0
        last = None
        for e in f.episodes:
            if e.tidx == idx:
                n_eps += 1
                last = e
        sums = sums_of(reg, p.eids, ct.sums)
        if n_eps >= EPISODES_CAP:
            # later matches fold into the last episode: its totals stay the flow's totals
            last.occurrences += 1
            last.count += len(p.eids)
            for k, v in sums.items():
                last.sums[k] = last.sums.get(k, 0) + v
            last.last_t = t
            for e in p.eids:
                reg.unpin(e)
            ep = last
        else:
            ep = Episode()
            ep.tidx, ep.tid = ct.idx, ct.tid
            ids = list(p.eids)
            if len(ids) > EVIDENCE_CAP:
                for e in ids[EVIDENCE_CAP - 1:-1]:
                    reg.unpin(e)
                ids = ids[:EVIDENCE_CAP - 1] + ids[-1:]
            ep.eids = ids
            ep.bounds = [min(x, len(ids) - 1) for x in p.bounds]
            ep.count = len(p.eids)
            ep.first_t, ep.last_t = p.t0, t
            ep.sig = p.sig
            ep.occurrences = 1
            ep.sums = sums
            ep.sock = m.sock if (ct.same and m is not None) else 0
            ep.at_eid = ids[-1]
            if not f.episodes:
                f.episodes = []
            f.episodes.append(ep)
            if ct.tid not in f.templates:
                f.templates = list(f.templates) + [ct.tid]
        out.append(change("template", f.fid, cur, {"template": ct.tid, "severity": ct.severity,
                                                    "occurrence": str(ep.occurrences)}))
        p.step, p.eids, p.bounds, p.win, p.sig = 0, (), (), None, None
        p.ep = ep if ct.single and ep.occurrences == 1 else None

    def _extend(self, reg, ep, eid, t, kind, b) -> None:
        ep.count += 1
        _add_sums(ep.sums, self.compiled[ep.tidx].sums, b)
        ep.last_t = t
        reg.pin_id(eid)
        if len(ep.eids) < EVIDENCE_CAP:
            ep.eids.append(eid)
        else:
            reg.unpin(ep.eids[-1])
            if ep.sig:
                ep.sig.pop(ep.eids[-1], None)
            ep.eids[-1] = eid
        if kind in SIGNAL_FIELDS:
            if ep.sig is None:
                ep.sig = {}
            ep.sig[eid] = dict(b)

    @staticmethod
    def _reset(reg, p) -> None:
        for e in p.cited():
            reg.unpin(e)
        p.step, p.eids, p.bounds, p.win, p.sig = 0, (), (), None, None

    @staticmethod
    def drop_progress(reg, holder) -> None:
        """Forget a holder's progress (its socket closed); open episodes stay on the flow."""
        st = holder.tstate
        if st:
            # tstate_cited, unrolled: most holders have one Progress with nothing pinned
            # (a pattern that just fired), and a generator costs more than that check.
            for p in (st if st.__class__ is list else (st,)):
                if p is None:
                    continue
                for e in p.eids:
                    reg.unpin(e)
                if p.win:
                    for _, e in p.win:
                        reg.unpin(e)
        holder.tstate = None
