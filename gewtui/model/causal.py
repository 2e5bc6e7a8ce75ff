"""Causal L3 links, built with a flow's chain: for each L2 match that some cause rule
(gewtui.model.causes) names as an effect, the causes tied to it physically, or "cause not
observed". Each link cites the events on both sides: the cause's, the effect's (and for a
counter, the two readings it rose between).

Only kept evidence is compared (an episode keeps its first events and its latest), so a tie
through an elided event is not seen: L3 then says "cause not observed", never a link it
cannot cite.
"""
from __future__ import annotations

from gewtui.model.identity import LISTENER, peer_text
from gewtui.model.causes import CauseRule
from gewtui.pb import model_pb2

L3 = model_pb2.L3
_NO_IFACE = "no interface (the kernel named none)"


class _Info:
    __slots__ = ("t", "sock", "conn", "netns", "fields")


def _conn(tup) -> tuple | None:
    if tup is None or not tup.sport or not tup.dport:
        return None
    a, b = (tup.saddr, tup.sport), (tup.daddr, tup.dport)
    return (a, b) if a <= b else (b, a)


class Linker:
    def __init__(self, builder, rules: tuple[CauseRule, ...]):
        self.b, self.reg, self.rules = builder, builder.reg, rules
        self._info: dict[int, _Info | None] = {}

    def info(self, eid: int) -> _Info | None:
        if eid in self._info:
            return self._info[eid]
        ev = self.reg.event(eid)
        i = None
        if ev is not None:
            i = _Info()
            body = getattr(ev, ev.WhichOneof("body") or "", None)
            i.t, i.netns = ev.ktime_ns, ev.attr.netns
            i.sock = getattr(body, "sock", 0) if body is not None else 0
            i.conn = _conn(getattr(body, "tuple", None)) if body is not None else None
            i.fields = self.b.fields(eid) or {}
        self._info[eid] = i
        return i

    # -- ties ---------------------------------------------------------------------------------
    def _ends(self):
        """Flows holding the other end of this flow's conversation (local and peer addresses
        swapped, another flow): a drop there is tied to an effect here only event by event,
        when the drop names the very connection (see _pair's same_conn). One pass over the
        flows, made only for an effect no cause on its own flow explains."""
        f = self.b.f
        local, peer = f.key[4], f.key[6]
        if not local or not peer:
            return []
        return [g for fid, g in sorted(self.reg.flows.items())
                if g is not f and g.key[4] == peer and g.key[6] == local]

    def _pair(self, rule: CauseRule, cause_eids, effect_eids, same_conn: bool = False):
        """The (cause, effect) event pair with the shortest lag satisfying the rule
        (``same_conn``: the two events must also name the same connection)."""
        best = None
        for e in effect_eids:
            ie = self.info(e)
            if ie is None:
                continue
            for c in cause_eids:
                ic = self.info(c)
                if ic is None or ic.t > ie.t or ie.t - ic.t > rule.window_ns:
                    continue
                if (rule.tie == "socket" or same_conn) and not (
                        (ic.sock and ic.sock == ie.sock) or (ic.conn is not None and ic.conn == ie.conn)):
                    continue
                lag = ie.t - ic.t
                if best is None or lag < best[2]:
                    best = (c, e, lag)
        return best

    def _listener(self, rule: CauseRule, f, ep):
        """A listener on the effect's peer port whose namespace's ListenOverflows rose around
        the effect, or whose flow has a cause match in the window."""
        reg = self.reg
        role, _n, _fam, _p, _local, _lport, peer, pport = f.key
        if not pport:
            return None
        first = self.info(self._effect_eids(ep)[0])
        if first is None:
            return None
        # every listener flow kept, live or ended (the index holds live ones only)
        for _fid, lf in sorted(reg.flows.items()):
            if lf.key[0] != LISTENER or lf.key[5] != pport:
                continue
            netns, laddr = lf.key[1], lf.key[4]
            if laddr and laddr.count(0) != len(laddr) and laddr != peer:
                continue
            facts = reg.ns_facts.get(netns, ())
            before = [x for x in facts if x[1] <= first.t]
            after = [x for x in facts if x[1] > first.t]
            if before and after and after[0][3] > before[-1][3] and \
                    after[0][1] - first.t <= rule.window_ns:
                return ("counter", lf, before[-1], after[0])
            for cep in lf.episodes:
                if cep.tid in rule.causes:
                    pair = self._pair(rule, cep.eids, self._effect_eids(ep))
                    if pair is not None:
                        return ("episode", lf, cep, pair)
        return None

    # -- nodes ----------------------------------------------------------------------------------
    @staticmethod
    def _effect_eids(ep) -> list[int]:
        """The events of the effect's last step: what shows the effect itself (a stall's
        no-progress evidence, not the establishment before it)."""
        k = ep.bounds[-1] if ep.bounds else 0
        return list(ep.eids[k:]) or list(ep.eids)

    def nodes(self, order: list[int]) -> tuple[list, list[str]]:
        """L3 link nodes for the flow's episodes (in ``order``), and one summary per effect."""
        b, f = self.b, self.b.f
        out, summary = [], []
        for i in order:
            ep = f.episodes[i]
            rules = [r for r in self.rules if ep.tid in r.effects]
            if not rules:
                continue
            links = []
            for r in rules:
                if r.tie == "listener":
                    hit = self._listener(r, f, ep)
                    if hit is not None:
                        links.append(self._listener_node(r, i, ep, hit))
                    continue
                for j, cep in enumerate(f.episodes):
                    if j == i or cep.tid not in r.causes:
                        continue
                    pair = self._pair(r, cep.eids, self._effect_eids(ep))
                    if pair is not None:
                        links.append(self._link_node(r, i, ep, j, cep, pair))
                if r.tie == "flow" and not links:
                    for g in self._ends():
                        for j, cep in enumerate(g.episodes):
                            if cep.tid in r.causes:
                                pair = self._pair(r, cep.eids, self._effect_eids(ep), same_conn=True)
                                if pair is not None:
                                    links.append(self._link_node(r, i, ep, j, cep, pair, g))
            if links:
                out.extend(links)
                summary.append(f"{ep.tid} because " + ", ".join(n.fields["cause"] for n in links))
                continue
            looked = "; nor ".join(dict.fromkeys(r.unobserved for r in rules))
            text = (f"cause not observed: {ep.tid} (events {ep.eids[0]}..{ep.eids[-1]}):"
                    f" no {looked} tied to it")
            out.append(b.node(L3, "cause-not-observed", f"{b.prefix}/L3/cause/{ep.tid}/{i}/none", text,
                              [ep.eids[0]], fields={"effect": ep.tid, "effect_node": f"{b.prefix}/L2/{ep.tid}/{i}",
                                                    "rules": ",".join(r.id for r in rules)}))
            summary.append(f"{ep.tid}: cause not observed")
        return out, summary

    def _values(self, rule, ep, cause: str, c: int, e: int, lag: int, total) -> dict[str, str]:
        ic = self.info(c)
        fl = ic.fields if ic is not None else {}
        loc = fl.get("location_symbol") or (fl.get("location") if fl.get("location") not in (None, "", "0x0") else "")
        return {
            "effect": ep.tid, "cause": cause, "flow_id": str(self.b.f.fid), "peer": peer_text(self.b.f.key),
            "cause_total": str(total), "cause_reason": fl.get("reason_name") or fl.get("event", "") or "no reason recorded",
            "cause_site": loc or "no location recorded", "cause_netns": str(ic.netns if ic else 0),
            "cause_iface": fl.get("ifname") or fl.get("device") or _NO_IFACE,
            "cause_event": str(c), "effect_event": str(e), "lag_ms": f"{lag / 1e6:.1f}",
            "effect_kind": (self.info(e).fields.get("event", "") if self.info(e) else "") or "event",
            "delta": "", "counter_from": "", "counter_to": "", "listener": "", "other_flow": "",
        }

    def _fill(self, rule, values: dict[str, str], text: str | None = None) -> str:
        return (text or rule.text).format(**{k: (v if v != "" else "none recorded") for k, v in values.items()})

    def _link_node(self, rule, i, ep, j, cep, pair, other=None):
        """A link; ``other``: the flow holding the cause (the connection's other end)."""
        b = self.b
        c, e, lag = pair
        v = self._values(rule, ep, cep.tid, c, e, lag, cep.sums.get("*", cep.count))
        owner = f"f{other.fid}" if other is not None else b.prefix
        fields = {"rule": rule.id, "tie": rule.tie, "effect": ep.tid, "cause": cep.tid,
                  "effect_node": f"{b.prefix}/L2/{ep.tid}/{i}", "cause_node": f"{owner}/L2/{cep.tid}/{j}",
                  "lag_ms": v["lag_ms"], "cause_event": str(c), "effect_event": str(e)}
        if other is None:
            text = self._fill(rule, v)
        elif rule.text_other_end:
            v["other_flow"] = str(other.fid)
            text = self._fill(rule, v, rule.text_other_end)
        else:
            # the total is the other end's match: say whose, and what ties it here
            text = self._fill(rule, v) + (f" (counted on flow {other.fid}, the other end of the"
                                          f" same connection; event {c} names this connection)")
        return b.node(L3, "cause", f"{b.prefix}/L3/cause/{ep.tid}/{i}/{rule.id}/{owner}/{j}", text,
                      [c, e], fields=fields)

    def _listener_node(self, rule, i, ep, hit):
        b = self.b
        what, lf, x, y = hit
        e = self._effect_eids(ep)[0]
        if what == "counter":
            before, after = x, y
            v = self._values(rule, ep, "ListenOverflows", before[0], e, 0, after[3] - before[3])
            v.update(delta=str(after[3] - before[3]), counter_from=str(before[3]), counter_to=str(after[3]),
                     cause_event=f"{before[0]} and {after[0]}", listener=f"flow {lf.fid}")
            eids = [before[0], after[0], e]
            cause = "ListenOverflows"
        else:
            cep, (c, e, lag) = x, y
            v = self._values(rule, ep, cep.tid, c, e, lag, cep.sums.get("*", cep.count))
            v.update(listener=f"flow {lf.fid}")
            eids = [c, e]
            cause = cep.tid
        fields = {"rule": rule.id, "tie": rule.tie, "effect": ep.tid, "cause": cause,
                  "effect_node": f"{b.prefix}/L2/{ep.tid}/{i}", "listener_flow": str(lf.fid)}
        return b.node(L3, "cause", f"{b.prefix}/L3/cause/{ep.tid}/{i}/{rule.id}/l{lf.fid}",
                      self._fill(rule, v), eids, fields=fields)
