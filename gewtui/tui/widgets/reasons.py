"""The reason-chain inspector: the selected flow's chain as a tree, L3 at the root down to
the L0 events it rests on, and below it the node under the cursor in full. Opening an L0
node fetches the raw event (every field); ``j`` moves the debugger's cursor to the node's
event.

Place in the pipeline: the main screen hands it each DebugView (it rebuilds the tree only
when the chain's content changed, keeping what was expanded, and only while its tab is
shown: a hidden tab renders the latest view when it comes to the front) and routes the raw event the
screen fetched back into ``show_event``. It asks for things with messages (``OpenEvent``,
``JumpTo``); the screen turns them into ``event #ID`` and ``goto #ID``.
"""
from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Tree

from gewtui.debugger.view import ChainNode, DebugView, EventView
from gewtui.present import renderables
from gewtui.tui.widgets.panels import Body, Deferred


class ChainTree(Tree[ChainNode]):
    # Space belongs to the app (pause/continue) everywhere but in text inputs.
    BINDINGS = [
        Binding("space", "app.toggle_run", "Pause/continue", show=False, id="reasons.run"),
        Binding("j", "jump", "Jump to event", id="reasons.jump"),
        Binding("o", "open", "Open event", id="reasons.open"),
    ]

    def action_jump(self) -> None:
        node = self.cursor_node
        if node is not None and node.data is not None and node.data.evidence:
            self.post_message(ReasonInspector.JumpTo(node.data.evidence[0]))

    def action_open(self) -> None:
        node = self.cursor_node
        if node is not None and node.data is not None and node.data.evidence:
            self.post_message(ReasonInspector.OpenEvent(node.data.evidence[0]))


class ReasonInspector(Deferred, Vertical):
    DEFAULT_CSS = """
    ReasonInspector { background: $surface; }
    ReasonInspector > ChainTree { height: 1fr; min-height: 5; background: $surface; }
    ReasonInspector > #reason-detail { height: 1fr; border-top: solid $panel; padding: 0 1; }
    """

    class OpenEvent(Message):
        def __init__(self, event_id: int) -> None:
            super().__init__()
            self.event_id = event_id

    class JumpTo(Message):
        def __init__(self, event_id: int) -> None:
            super().__init__()
            self.event_id = event_id

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._root: ChainNode | None = None
        self._flow: int | None = None
        self._event: EventView | None = None

    def compose(self):
        tree: ChainTree = ChainTree("no reason chain", id="chain-tree")
        tree.show_root = True
        tree.guide_depth = 3
        yield tree
        with VerticalScroll(id="reason-detail"):
            yield Body(id="reason-node")

    @property
    def tree(self) -> ChainTree:
        return self.query_one(ChainTree)

    def render_view(self, view: DebugView) -> None:
        root = view.detail.chain if view.detail is not None else None
        if root == self._root and view.selected == self._flow:
            return
        same_flow = view.selected == self._flow
        self._root, self._flow = root, view.selected
        tree = self.tree
        # What was expanded is kept for the same flow; another flow opens fully expanded.
        open_ids = {n.data.node_id for n in _walk(tree.root)
                    if n.data and n.is_expanded} if same_flow else set()
        cursor_id = tree.cursor_node.data.node_id if tree.cursor_node and tree.cursor_node.data else None
        tree.clear()
        if root is None:
            tree.root.data = None
            tree.root.set_label(Text("no reason chain at the cursor (no template matched yet)"
                                     if view.selected else "no flow selected", "gew.dim"))
            self._show_node(None)
            return
        tree.root.data = root
        tree.root.set_label(renderables.chain_label(root))

        def add(parent, node: ChainNode) -> None:
            for c in node.children:
                child = parent.add(renderables.chain_label(c), data=c, allow_expand=bool(c.children))
                add(child, c)

        add(tree.root, root)
        for n in _walk(tree.root):
            if n.data is not None and (not open_ids or n.data.node_id in open_ids):
                n.expand()
        target = next((n for n in _walk(tree.root) if n.data and n.data.node_id == cursor_id), None)
        if target is not None:
            tree.move_cursor(target)
        cur = tree.cursor_node
        self._show_node(cur.data if cur is not None and cur.data is not None else root)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        event.stop()
        # The event may name a node of the tree before it was rebuilt; show what the
        # cursor is on now.
        node = self.tree.cursor_node
        self._show_node(node.data if node is not None and node.data is not None else self._root)

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        event.stop()
        node = event.node.data
        if node is not None and node.layer == "L0" and node.evidence:
            self.post_message(self.OpenEvent(node.evidence[0]))

    def _show_node(self, node: ChainNode | None) -> None:
        body = self.query_one("#reason-node", Body)
        if node is None:
            body.show(Text(""))
            return
        parts: list = [renderables.chain_label(node)]
        for k, v in node.fields:
            parts.append(Text.assemble((f"  {k} ", "gew.dim"), v))
        if node.evidence:
            hint = "enter/o opens the event, j moves the cursor there" if node.layer == "L0" \
                else "j moves the cursor to the first evidence event"
            parts.append(Text(hint, "gew.dim"))
        if self._event is not None and self._event.event_id in node.evidence:
            parts.append(renderables.event(self._event))
        body.show(Group(*parts))

    def show_event(self, ev: EventView) -> None:
        """The raw event the screen fetched for an opened node."""
        self._event = ev
        node = self.tree.cursor_node
        self._show_node(node.data if node is not None and node.data is not None else self._root)


def _walk(node):
    yield node
    for c in node.children:
        yield from _walk(c)
