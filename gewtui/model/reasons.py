"""The reason engine's output side: builds one flow's ReasonChain (L3 -> L2 -> L1 -> L0)
from the registry's state, on demand.

L0: one event, its text rendered from its fields. L1: the flow's structure — lifecycle
transitions, path (routes, divergence, per-interface facts), lineage (sockets, processes),
session context (completeness, lost records) and interventions. L2: one node per template
match, citing exactly the events that satisfied the pattern. L3: the root, listing the L2
matches in time order. Every text is a fixed format filled from cited evidence; every node
cites event ids that eng.event() can return.
"""
from __future__ import annotations

import string
from itertools import zip_longest

from gewtui.addresses import addr_text
from gewtui.model.causal import Linker
from gewtui.model.entities import DIVERGED, TERMINATED, Flow
from gewtui.model.flows import Registry
from gewtui.model.identity import key_text, local_text, peer_text
from gewtui.model.latency import connect_text, rtt_text
from gewtui.model.snapshots import expand_transitions
from gewtui.model.event_text import errno_text, event_fields, event_text, short_state
from gewtui.model.templates import TemplateSet
from gewtui.pb import model_pb2

L0, L1, L2, L3 = model_pb2.L0, model_pb2.L1, model_pb2.L2, model_pb2.L3
_SEV_RANK = {"info": 0, "warning": 1, "critical": 2}
PHASE_NAMES = {1: "EMERGED", 2: "EVOLVING", 3: "DIVERGED", 4: "TERMINATED"}


def _absent(field: str) -> str:
    """What a text says for a field the kernel left empty: never an empty gap."""
    if field in ("ifname", "device"):
        return "no interface (the kernel named none)"
    return f"no {field} recorded"


class _Builder:
    def __init__(self, reg: Registry, templates: TemplateSet, f: Flow):
        self.reg, self.templates, self.f = reg, templates, f
        self.prefix = f"f{f.fid}"
        self._fields: dict[int, dict[str, str] | None] = {}

    def fields(self, eid: int) -> dict[str, str] | None:
        if eid not in self._fields:
            ev = self.reg.event(eid)
            self._fields[eid] = event_fields(ev) if ev is not None else None
        return self._fields[eid]

    def l0(self, eid: int, parent_id: str) -> model_pb2.ReasonNode | None:
        fl = self.fields(eid)
        if fl is None:
            return None
        return model_pb2.ReasonNode(
            node_id=f"{parent_id}/e{eid}", layer=L0, kind=fl["event"], text=event_text(None, fl),
            evidence_event_ids=[eid], flow_id=self.f.fid, fields=fl)

    def node(self, layer, kind: str, node_id: str, text: str, eids, fields=None,
             severity: str = "", children=None) -> model_pb2.ReasonNode:
        eids = [e for e in dict.fromkeys(eids) if self.fields(e) is not None]
        n = model_pb2.ReasonNode(node_id=node_id, layer=layer, kind=kind, text=text,
                                 evidence_event_ids=eids, flow_id=self.f.fid,
                                 fields=fields or {}, severity=severity)
        if children is None:
            children = [c for c in (self.l0(e, node_id) for e in eids) if c is not None]
        n.children.extend(children)
        return n

    # -- L2 ---------------------------------------------------------------------------------
    def episode(self, i: int, ep) -> model_pb2.ReasonNode:
        f = self.f
        tpl = self.templates.get(ep.tid)
        nid = f"{self.prefix}/L2/{ep.tid}/{i}"
        ev_fields = []
        for e in ep.eids:
            fl = dict(self.fields(e) or {"event": "", "id": str(e)})
            if ep.sig and e in ep.sig:
                fl.update(ep.sig[e])
            ev_fields.append(fl)
        values = {
            "count": str(ep.count), "total": str(ep.sums.get("*", ep.count)), "occurrences": str(ep.occurrences),
            "span_ms": str((ep.last_t - ep.first_t) // 1_000_000), "flow": key_text(f.key),
            "flow_id": str(f.fid), "peer": peer_text(f.key), "local": local_text(f.key),
            "template": ep.tid,
        }
        used: dict[str, str] = {}
        parts: list[str] = []
        if tpl is not None:
            for literal, name, _, _ in string.Formatter().parse(tpl.text):
                parts.append(literal)
                if not name:
                    continue
                head, _, fname = name.partition(".")
                if not fname:
                    used[name] = values[name]
                elif head == "first":
                    used[name] = ev_fields[0].get(fname, "")
                elif head == "last":
                    used[name] = ev_fields[-1].get(fname, "")
                elif head == "sum":
                    used[name] = str(ep.sums.get(fname, 0))
                else:
                    k = int(head[1:]) - 1
                    idx = ep.bounds[k] if k < len(ep.bounds) else len(ev_fields) - 1
                    used[name] = ev_fields[min(idx, len(ev_fields) - 1)].get(fname, "")
                if not used[name]:
                    used[name] = _absent(fname or name)
                parts.append(used[name])
        text = "".join(parts)
        fields = {**used, "count": values["count"], "occurrences": values["occurrences"],
                  "template": ep.tid}
        if tpl is not None:
            fields["classification"] = tpl.classification
            fields["allows"] = ",".join(tpl.allows)
            if ep.tid in self.templates.overridden:
                # The operator replaced a packaged template: every conclusion it draws says so.
                fields["replaces_packaged"] = tpl.source
                text += f" (template {ep.tid} from {tpl.source}, replacing the packaged one)"
        children = []
        for e, fl in zip(ep.eids, ev_fields):
            leaf = self.l0(e, nid)
            if leaf is None:
                continue
            if ep.sig and e in ep.sig:
                s = ep.sig[e]
                children.append(self.node(
                    L1, "path", f"{nid}/L1/diverge/e{e}",
                    f"path changed: {s['from_device']} -> {s['to_device']}; flow {s['parent_flow']}"
                    f" diverged into flow {s['child_flow']}", [e], fields=dict(s)))
            else:
                children.append(leaf)
        return self.node(L2, ep.tid, nid, text, ep.eids, fields=fields,
                         severity=tpl.severity if tpl else "info", children=children)

    # -- L1 ---------------------------------------------------------------------------------
    def lifecycle(self) -> list[model_pb2.ReasonNode]:
        f = self.f
        out = []
        first = f"flow {f.fid} emerged at event {f.first_eid}: {key_text(f.key)}"
        if f.parent:
            first += f"; diverged from flow {f.parent}"
        out.append(self.node(L1, "lifecycle", f"{self.prefix}/L1/lifecycle/emerged", first,
                             [f.first_eid], fields={"phase": "EMERGED", "key": key_text(f.key)}))
        if f.trans_elided:
            out.append(self.node(L1, "lifecycle", f"{self.prefix}/L1/lifecycle/elided",
                                 f"{f.trans_elided} transitions elided (kept: the first and the latest)",
                                 [f.first_eid],
                                 fields={"elided": str(f.trans_elided)}))
        for i, (eid, t, what, frm, to, extra) in enumerate(expand_transitions(self.reg, f)):
            if what in ("path", "member") or to == "EMERGED":
                continue
            nid = f"{self.prefix}/L1/lifecycle/{i}"
            fields = {"what": what, "from": frm, "to": to}
            if what == "tcp-state":
                text = f"socket {short_state(frm)} -> {short_state(to)} (event {eid})"
                if extra:
                    text = f"socket {short_state(frm)} -> {short_state(to)} after a received reset (event {extra})"
                    fields["after_reset"] = str(extra)
            elif what == "owner":
                text = f"process {to} acted on the flow's socket (previously {frm}), event {eid}"
            elif to == "DIVERGED":
                kids = ", ".join(str(c) for c in f.children)
                text = f"flow {f.fid} {frm} -> DIVERGED at event {eid}: path changed, continued by flow {kids}"
            elif to == "TERMINATED":
                text = (f"flow {f.fid} {frm} -> TERMINATED ({f.end_reason}) at event {eid};"
                        f" its last event was {f.last_eid}")
                fields["end_reason"] = f.end_reason
            else:
                text = f"flow {f.fid} {frm} -> {to} at event {eid}"
            out.append(self.node(L1, "lifecycle", nid, text, [eid, extra] if extra else [eid],
                                 fields=fields))
        return out

    def path(self) -> list[model_pb2.ReasonNode]:
        f = self.f
        out = []
        peer = peer_text(f.key)
        for i, (eid, dev, gw, table, err) in enumerate(f.path):
            nid = f"{self.prefix}/L1/path/{i}"
            if err:
                text = f"route lookup for {peer} failed: {errno_text(err)} (table {table})"
            else:
                g = addr_text(gw) if gw else ""
                text = f"route to {peer} via {dev}" + (f" gw {g}" if g else "") + f" (table {table})"
            out.append(self.node(L1, "path", nid, text, [eid],
                                 fields={"device": dev, "gateway": addr_text(gw) if gw else "",
                                         "table": str(table), "err": str(err)}))
        if f.dev is not None or f.path:
            dev = (f.netns, f.dev or f.path[-1][1])
            ctx = self.reg.ifctx.get(dev)
            end = f.end_t if f.phase >= DIVERGED else self.reg.now
            if ctx is not None:
                ids = [e for (t, e) in ctx.notable if f.first_t <= t <= end]
                if ids:
                    out.append(self.node(
                        L1, "path", f"{self.prefix}/L1/path/context",
                        f"interface {ctx.ifname} during the flow: {len(ids)} per-interface records"
                        " (counted per interface, not per flow)", ids,
                        fields={"ifname": ctx.ifname, "records": str(len(ids))}))
        return out

    def lineage(self) -> list[model_pb2.ReasonNode]:
        f = self.f
        out = []
        if f.members:
            socks = ", ".join(f"{hex(m.sock)} ({short_state(_state(m.state)) if m.state else 'state not seen'})"
                              for m in f.members)
            more = f" (+{f.members_elided} earlier)" if f.members_elided else ""
            out.append(self.node(L1, "lineage", f"{self.prefix}/L1/lineage/sockets",
                                 f"{f.n_conns} connection(s); sockets {socks}{more}",
                                 [m.first_eid for m in f.members],
                                 fields={"connections": str(f.n_conns), "sockets": socks}))
        if f.rtt or f.clat:
            # aggregates of the flow's tcp_probe summaries and transitions: the emergence cites
            # where the flow starts; the counts are over everything since
            parts = ([connect_text(f.clat)] if f.clat else []) + ([rtt_text(f.rtt)] if f.rtt else [])
            peer_rtt, n_peer = self._peer_rtt()
            if n_peer > 1:
                parts.append(f"to {addr_text(f.peer) or '*'} over its {n_peer} flows: {rtt_text(peer_rtt)}")
            out.append(self.node(L1, "latency", f"{self.prefix}/L1/latency", "; ".join(parts),
                                 [f.first_eid], fields={"connect": connect_text(f.clat) if f.clat else "",
                                                        "srtt": rtt_text(f.rtt) if f.rtt else "",
                                                        "peer_flows": str(n_peer)}))
        if f.procs:
            procs = ", ".join(f"{w[2]}[{w[1]}] via {via}{self._cgroup(w[3])}" for _, w, via in f.procs)
            named = [self.reg.cgroups[w[3]][3] for _, w, _v in f.procs if w[3] in self.reg.cgroups]
            out.append(self.node(L1, "lineage", f"{self.prefix}/L1/lineage/processes",
                                 f"processes: {procs}", [p[0] for p in f.procs] + named,
                                 fields={"processes": procs}))
        return out

    def _peer_rtt(self) -> tuple[list[int], int]:
        """The srtt distribution to this flow's peer over every kept flow in its namespace
        that has one (per peer, as the flow view groups them)."""
        f = self.f
        total: list[int] = []
        n = 0
        if not f.peer:
            return total, 0
        for g in self.reg.flows.values():
            if g.rtt and g.key[6] == f.peer and g.key[1] == f.key[1]:
                n += 1
                total = [a + b for a, b in zip_longest(total, g.rtt, fillvalue=0)]
        return total, n

    def _cgroup(self, cid: int) -> str:
        """ " in container X (cgroup P)" as a CgroupInfo event named the id; "" unnamed."""
        cg = self.reg.cgroups.get(cid)
        if cg is None or not cg[0]:
            return ""
        path, container, unit, _eid = cg
        who = f"container {container[:12]}, " if container else (f"unit {unit}, " if unit else "")
        return f" in {who}cgroup {path}"

    def session(self, session_id: str) -> list[model_pb2.ReasonNode]:
        f, reg = self.f, self.reg
        end = f.end_t if f.phase >= DIVERGED else reg.now
        out = []
        lost_nodes = []
        for i, (eid, count, t1, t2, stage) in enumerate(reg.lost):
            if t2 < f.first_t or t1 > end:
                continue
            if count:
                text = f"up to {count} records may be missing between {t1} and {t2} ns ({stage})"
            else:
                text = f"observation incomplete between {t1} and {t2} ns ({stage})"
            lost_nodes.append(self.node(L1, "session", f"{self.prefix}/L1/session/lost/{i}", text,
                                        [eid], fields={"count": str(count), "from_ns": str(t1),
                                                       "to_ns": str(t2), "stage": stage}))
        complete = "complete" if reg.complete else "incomplete"
        text = (f"session {session_id or '-'}: observation {complete}, {reg.lost_records}"
                f" records lost, {len(lost_nodes)} loss window(s) overlap this flow")
        ids = [e for n in lost_nodes for e in n.evidence_event_ids]
        out.append(self.node(L1, "session", f"{self.prefix}/L1/session", text, ids,
                             fields={"session_id": session_id, "complete": str(reg.complete).lower(),
                                     "lost_records": str(reg.lost_records)},
                             children=lost_nodes))
        return out

    def interventions(self, records) -> list[model_pb2.ReasonNode]:
        out = []
        for rec, ids in records:
            a = _enum_name("InterventionAction", rec.action)
            o = _enum_name("InterventionOutcome", rec.outcome)
            verdict = rec.verification.verdict
            text = f"intervention {rec.intervention_id}: {a} {o}" + (f" ({verdict})" if verdict else "")
            out.append(self.node(L1, "intervention",
                                 f"{self.prefix}/L1/intervention/{rec.intervention_id}", text, ids,
                                 fields={"intervention_id": str(rec.intervention_id), "action": a,
                                         "outcome": o, "verdict": verdict}))
        return out


def _state(n: int) -> str:
    from gewtui.model.schema import TCP_STATE_NAMES
    return TCP_STATE_NAMES.get(n, str(n))


def _enum_name(enum: str, n: int) -> str:
    from gewtui.pb import intervention_pb2
    d = intervention_pb2.DESCRIPTOR.enum_types_by_name[enum].values_by_number.get(n)
    return d.name if d else str(n)


def build_chain(reg: Registry, templates: TemplateSet, f: Flow, session_id: str,
                interventions=()) -> model_pb2.ReasonChain:
    b = _Builder(reg, templates, f)
    order = sorted(range(len(f.episodes)), key=lambda i: (f.episodes[i].eids[0], i))
    l2 = [b.episode(i, f.episodes[i]) for i in order]
    links, because = Linker(b, getattr(templates, "causes", ())).nodes(order)
    children = l2 + links + b.lifecycle() + b.path() + b.lineage() + b.session(session_id) + \
        b.interventions(interventions)
    sev = max((n.severity for n in l2), key=lambda s: _SEV_RANK.get(s, 0), default="info")
    phase = PHASE_NAMES[f.phase]
    if l2:
        summary = "; ".join(f"{n.kind} (event {n.evidence_event_ids[0]})" for n in l2)
        if because:
            summary += "; " + "; ".join(because)
    else:
        summary = "no template matched"
    end = f" ({f.end_reason})" if f.phase in (DIVERGED, TERMINATED) and f.end_reason else ""
    text = f"flow {f.fid} {key_text(f.key)}: {phase}{end}; {summary}"
    ids = sorted({e for n in l2 for e in n.evidence_event_ids} | {f.first_eid})
    root = b.node(L3, "flow", f"{b.prefix}/L3", text, ids, severity=sev, children=children,
                  fields={"flow_id": str(f.fid), "key": key_text(f.key), "phase": phase,
                          "templates": ",".join(n.kind for n in l2), "session_id": session_id,
                          "complete": str(reg.complete).lower()})
    allowed = sorted({a for ep in f.episodes for a in (templates.get(ep.tid).allows
                                                        if templates.get(ep.tid) else ())})
    return model_pb2.ReasonChain(flow_id=f.fid, at_event_id=reg.last_eid, root=root,
                                 session_id=session_id, allowed_interventions=allowed,
                                 intervention_ids=[r.intervention_id for r, _ in interventions])
