"""Observation plane: the emergent flow registry (L1), the reason engine (L2 templates,
L3 chains) and snapshots. Pure Python over gewtui.pb; it never imports bcc, Textual, rich,
prompt_toolkit or pyroute2. Entry point: gewtui.model.engine.Engine.
"""
