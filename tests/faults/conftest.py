"""The fault suite's case map: which tests prove which case of issue 7.

Every test named here is tagged with a marker per case (``case01`` … ``case15``), so one
case runs alone: ``pytest tests/faults -m case08``. tests/faults/README.md shows the same
map as a table; tests/faults/test_case_map.py checks that both name only tests that exist
and that every case has at least one test named after it.

Fixture: ``lo_ns``, a fresh namespace with only lo (nothing in it makes a kernel record
unless the test does).
"""
from __future__ import annotations

import secrets
import subprocess
from typing import Iterator

import pytest

S, K, I, R, P, Y = ("test_session_faults.py", "test_kernel_faults.py", "test_intervention_faults.py",
                    "test_recording_faults.py", "test_privilege_faults.py", "test_replay_faults.py")
F, C = "test_flood_faults.py", "test_coexistence_faults.py"

CASES: dict[int, tuple[str, list[str]]] = {
    1: ("SIGKILL while observing, then restart", [
        f"{K}::test_case01_sigkill_while_observing_then_next_start_restores_the_baseline",
        f"{S}::test_sigkill_while_observing_then_cleanup",
        f"{S}::test_sigkill_of_gew_session_apply_then_cleanup",
        f"{I}::test_sigkill_with_active_drop_then_gc",
        f"{I}::test_drop_ttl_holds_in_the_kernel_after_sigkill"]),
    2: ("kill at every transaction step", [
        f"{K}::test_case02_sigkill_of_gew_session_apply_at_every_transaction_step",
        f"{S}::test_sigkill_at_every_transaction_step",
        f"{S}::test_sigterm_at_every_transaction_step_rolls_back_by_itself"]),
    3: ("injected attach failures", [
        f"{K}::test_case03_real_plane_failure_rolls_back_everything_in_a_living_process",
        f"{S}::test_injected_kernel_failures_leave_nothing",
        f"{S}::test_missing_device_at_attach_refuses_and_leaves_nothing"]),
    4: ("coexistence", [
        f"{C}::test_case04_coexistence_foreign_tracepoint_clsact_filters_and_pins_through_session_drop_and_gc",
        f"{I}::test_coexistence_through_drop_and_undo"]),
    5: ("two instances at once", [
        f"{K}::test_case05_two_instances_orphan_cleanup_never_touches_the_other_live_session",
        f"{S}::test_two_instances_gc_and_start_never_touch_the_other_live_session"]),
    6: ("hostile names", [
        f"{K}::test_case06_symlinked_session_entries_never_lead_gc_outside_and_never_block_it",
        f"{S}::test_hostile_names_from_the_command_line_are_refused"]),
    7: ("bpffs or tracefs not mounted, or remounted between runs", [
        f"{K}::test_case07_tracefs_and_bpffs_remounted_between_runs_no_duplicate_attachments",
        f"{S}::test_bpffs_and_tracefs_not_mounted_are_mounted",
        f"{S}::test_bpffs_remounted_between_runs"]),
    8: ("event flood with the consumer stopped", [
        f"{F}::test_case08_event_flood_with_consumer_stopped_is_counted_exactly"]),
    9: ("recording disk full or I/O error mid-session", [
        f"{K}::test_case09_recording_disk_full_mid_session_stops_observation_and_stays_readable",
        f"{R}::test_recording_on_a_real_full_filesystem_stays_readable",
        f"{I}::test_recording_disk_full_removes_drop_and_logs_it"]),
    10: ("torn recordings", [
        f"{Y}::test_case10_torn_real_recording_replays_every_complete_event_in_the_debugger_and_export",
        f"{R}::test_torn_tail_at_every_byte_of_the_last_records_returns_all_complete_records",
        f"{R}::test_torn_inside_the_header_is_a_one_line_error",
        f"{R}::test_torn_tail_with_a_large_record_spanning_read_chunks"]),
    11: ("bit flips", [
        f"{Y}::test_case11_bit_flips_in_a_real_recording_never_reach_the_debugger",
        f"{R}::test_every_single_bit_flip_in_a_middle_record_is_caught_and_skipped",
        f"{R}::test_flips_in_several_records_are_each_counted",
        f"{R}::test_flip_in_the_last_record_is_reported_as_torn_tail",
        f"{R}::test_strict_mode_raises_on_the_first_damaged_record",
        f"{R}::test_damaged_header_is_a_one_line_error"]),
    12: ("hostile framing", [
        f"{Y}::test_case12_hostile_frames_in_a_real_recording_replay_in_bounded_memory",
        f"{R}::test_hostile_length_is_skipped_without_allocating_it",
        f"{R}::test_claimed_length_past_the_end_of_a_small_file_reads_only_the_file",
        f"{R}::test_crafted_false_frame_starts_are_refused_in_linear_time",
        f"{R}::test_damaged_lengths_of_large_records_are_not_mistaken_for_hostility",
        f"{R}::test_nesting_bombs_and_bad_protobuf_with_valid_crc_are_skipped",
        f"{R}::test_hostile_header_is_a_one_line_error",
        f"{R}::test_not_a_recording_and_future_versions_are_refused",
        f"{R}::test_export_of_a_hostile_file_is_one_line_without_traceback",
        f"{R}::test_fuzz_reader_on_mutated_files"]),
    13: ("replay stays inert", [
        f"{Y}::test_case13_replay_of_interventions_is_inert_in_every_front_end",
        f"{I}::test_replay_with_interventions_is_inert"]),
    14: ("privileges", [
        f"{P}::test_case14_without_privileges_every_kernel_entry_point_refuses_with_77",
        f"{P}::test_case14_overrides_only_from_the_local_command_line",
        f"{P}::test_case14_a_recording_that_had_the_overrides_grants_nothing_to_its_replay",
        f"{I}::test_override_never_from_environment_or_session_options"]),
    15: ("scoped interface disappears mid-session", [
        f"{K}::test_case15_scoped_interface_deleted_mid_session_is_recorded_and_observation_goes_on",
        f"{S}::test_scoped_interface_vanishing_is_recorded_and_the_session_keeps_running",
        f"{I}::test_scoped_interface_disappears_removes_drop"]),
}

_BY_TEST: dict[str, list[int]] = {}
for _case, (_, _tests) in CASES.items():
    for _t in _tests:
        _BY_TEST.setdefault(_t, []).append(_case)


@pytest.fixture
def lo_ns() -> Iterator[str]:
    """A namespace with only lo, up: nothing in it makes a record unless the test does."""
    ns = f"gewt-{secrets.token_hex(3)}-lo"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.fixture
def tiny_fs(tmp_path):
    """A 256 KiB tmpfs: a disk that fills up."""
    d = tmp_path / "tiny"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "gewt-tiny", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def pytest_configure(config: pytest.Config) -> None:
    for case, (title, _) in CASES.items():
        config.addinivalue_line("markers", f"case{case:02d}: issue 7 case {case}, {title}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = getattr(item, "originalname", None) or item.name
        for case in _BY_TEST.get(f"{item.path.name}::{name}", ()):
            item.add_marker(f"case{case:02d}")
