"""Interventions: the safety gate (gate), the deny classifier that executes a drop per
packet (classifier), the intervention log (log) and the controller that ties them to a live
session (controller). Only ``gate`` and ``log`` are pure; the rest need the kernel."""
