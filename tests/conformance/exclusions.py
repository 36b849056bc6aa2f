# ruff: noqa: E501 (one reason a line reads best in this list)
"""The SDK tests convostore must pass, and the reason for every one it need not.

tests/test_sdk_conformance.py runs each module below from the openai-agents sdist that
pyproject's dev extra pins, on SQLite, PostgreSQL and MariaDB, and fails when:

- the module has a test listed nowhere here (a new SDK test: classify it);
- a test in ``expected_pass`` (or, on SQLite, in ``sqlite_only``) does not pass, unless it is
  in ``PENDING`` for that backend;
- a test in ``PENDING`` passes (take it out), or an entry here names no test of the module.

An entry without ``[...]`` covers every parametrization of the test.

- ``excluded``: tests that reach into the SDK class's private internals (``_session_factory``,
  ``_messages``, its literal SQL, its table layout) or into another store's, with the reason.
  They do not run.
- ``sqlite_only``: tests of SQLite's own behaviour; on PostgreSQL and MariaDB they do not run.
- ``substitute_sqlite_session``: the module's tests use the SDK's ``SQLiteSession`` (and
  ``AsyncSQLiteSession``) as "any underlying store"; convostore sessions stand in for them
  (tests/conformance/convostore_sdk_shim.py).

On PostgreSQL and MariaDB each test's SQLite URLs (``DB_URL``, ``tmp_path`` files,
``:memory:``) point to a database created for that test and dropped after it.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModuleManifest:
    """How one SDK test module is run and what it must show."""

    expected_pass: tuple[str, ...]
    excluded: dict[str, str]
    sqlite_only: dict[str, str] = dataclasses.field(default_factory=dict)
    substitute_sqlite_session: bool = False


def matches(name: str, entries: tuple[str, ...]) -> bool:
    """Whether ``name`` is one of ``entries``; an entry without ``[...]`` covers every param."""
    return name in entries or name.split("[", 1)[0] in entries


MODULES: dict[str, ModuleManifest] = {
    "tests/extensions/memory/test_sqlalchemy_session.py": ModuleManifest(
        substitute_sqlite_session=False,
        expected_pass=(
            "test_sqlalchemy_session_direct_ops",
            "test_runner_integration",
            "test_session_isolation",
            "test_get_items_with_limit",
            "test_pop_from_empty_session",
            "test_concurrent_pop_item_returns_each_row_once",
            "test_get_items_limit_returns_fewer_when_history_exhausted",
            "test_add_empty_items_list",
            "test_add_items_concurrent_first_access_with_create_tables",
            "test_add_items_concurrent_first_write_after_tables_exist",
            "test_add_items_concurrent_first_access_across_sessions_with_shared_engine",
            "test_add_items_concurrent_first_access_across_from_url_sessions",
            "test_add_items_concurrent_first_access_across_from_url_sessions_cross_loop",
            "test_add_items_concurrent_first_access_with_shared_session_cross_loop",
            "test_engine_property_from_url",
            "test_engine_property_from_external_engine",
            "test_engine_property_is_read_only",
            "test_session_settings_default",
            "test_session_settings_from_url",
            "test_get_items_uses_session_settings_limit",
            "test_get_items_explicit_limit_overrides_session_settings",
            "test_session_settings_resolve",
            "test_runner_with_session_settings_override",
        ),
        excluded={
            "test_sqlalchemy_session_defaults_to_escaped_non_ascii_storage": (
                "reads the stored JSON text through the SDK class's `_session_factory` and `_messages` (its storage encoding is not the protocol)"
            ),
            "test_sqlalchemy_session_can_store_non_ascii_without_escaping": (
                "reads the stored JSON text through the SDK class's `_session_factory` and `_messages` (its storage encoding is not the protocol)"
            ),
            "test_pop_item_supports_unknown_delete_rowcount": (
                "replaces the SDK class's `_session_factory` and `_ensure_tables` with fakes scripted for its ORM pop algorithm"
            ),
            "test_pop_item_retries_returning_claim_lost_to_concurrent_delete": (
                "replaces the SDK class's `_session_factory` and `_ensure_tables` with fakes scripted for its ORM pop algorithm"
            ),
            "test_mutation_cancellation_waits_for_transaction_exit": (
                "replaces the SDK class's `_session_factory` with a fake ORM session (convostore's writes are shielded from cancellation: tests/test_faults.py, tests/test_concurrency.py)"
            ),
            "test_pop_item_skips_corrupt_most_recent": (
                "writes a corrupt row through the SDK class's `_session_factory` and `_messages` (corrupt rows: tests/test_hostile_input.py, tests/test_bad_input.py)"
            ),
            "test_get_items_limit_skips_corrupt_newest_rows": (
                "writes a corrupt row through the SDK class's `_session_factory` and `_messages` (corrupt rows: tests/test_hostile_input.py, tests/test_bad_input.py)"
            ),
            "test_pop_item_returns_none_after_dropping_only_corrupt_rows": (
                "writes a corrupt row through the SDK class's `_session_factory` and `_messages` (corrupt rows: tests/test_hostile_input.py, tests/test_bad_input.py)"
            ),
            "test_add_items_cancelled_waiter_does_not_strand_table_init_lock": (
                "acquires the SDK class's private `_init_lock`"
            ),
            "test_create_tables_false_does_not_allocate_shared_init_lock": (
                "inspects the SDK class's private `_init_lock` and `_table_init_locks`"
            ),
            "test_get_items_same_timestamp_consistent_order": (
                "rewrites `created_at` through the SDK class's `_session_factory`/`_messages` and wraps its ORM session (convostore orders by a per-session sequence, not timestamps)"
            ),
            "test_pop_item_same_timestamp_returns_latest": (
                "runs the SDK's literal SQL `UPDATE agent_messages SET created_at` through its `_session_factory` (convostore orders by a per-session sequence, not timestamps)"
            ),
            "test_get_items_orders_by_id_for_ties": (
                "wraps the SDK class's `_session_factory` and asserts the text of its ORDER BY clauses"
            ),
            "test_sqlite_configuration_registry_releases_collected_engines": (
                "inspects the SDK class's private `_sqlite_configured_engines` registry"
            ),
            "test_sqlite_configuration_registry_does_not_grow_unbounded": (
                "inspects the SDK class's private `_sqlite_configured_engines` registry"
            ),
        },
        sqlite_only={
            "test_sqlite_fallback_reserves_writer_before_tail_claim": "SQLite's path without DELETE ... RETURNING, under SQLite's single-writer lock",
            "test_add_items_waits_for_transient_sqlite_write_lock": "holds SQLite's database write lock (BEGIN IMMEDIATE)",
        },
    ),
    "tests/memory/test_sqlalchemy_compaction.py": ModuleManifest(
        substitute_sqlite_session=False,
        expected_pass=(
            "test_limited_sqlalchemy_compacts_visible_suffix",
            "test_other_instance_mutation_invalidates_suffix",
            "test_encrypted_prefix_cleanup_is_atomic",
            "test_encrypted_unknown_row_is_retained",
        ),
        excluded={
            "test_replacement_uses_timestamp_order_not_id_order": (
                "rewrites `created_at` through the SDK class's `_messages` table object"
            ),
            "test_cancelled_replacement_settles_before_other_instance_append": (
                "replaces the SDK class's `_session_factory` with a pausing ORM session"
            ),
            "test_failed_replacement_preserves_history_during_other_instance_access": (
                "replaces the SDK class's `_session_factory` with a failing ORM session"
            ),
            "test_parent_constraint_rejection_propagates": (
                "expects sqlalchemy.exc.IntegrityError to escape the session; convostore's "
                "contract is a convostore error for every failure (StorageError, with the "
                "IntegrityError as its __cause__), tested in tests/test_compaction.py"
            ),
        },
        sqlite_only={
            "test_compaction_with_engine_managed_sqlite_begin": "SQLAlchemy's SQLite transaction-control recipe (the engine emits BEGIN itself)",
        },
    ),
    "tests/extensions/memory/test_encrypt_session.py": ModuleManifest(
        substitute_sqlite_session=True,
        expected_pass=(
            "test_encrypted_session_basic_functionality",
            "test_encrypted_session_with_runner",
            "test_runner_skips_unencrypted_stored_history",
            "test_encrypted_compaction_skips_unencrypted_stored_history",
            "test_runner_encrypts_items_around_compaction",
            "test_encrypted_compaction_replaces_complete_logical_history_after_expiry",
            "test_runner_decrypts_existing_compaction_history_with_ttl_and_limit",
            "test_runner_defers_compaction_using_decrypted_candidates",
            "test_encrypted_compaction_restores_original_tokens_before_concurrent_append",
            "test_clear_revokes_encrypted_deferred_compaction",
            "test_encrypted_session_preserves_optional_compaction_delegation",
            "test_compaction_wrapping_encrypted_storage",
            "test_runner_recovers_encrypted_resumed_append",
            "test_encrypted_runner_skips_compaction_after_interleaved_outer_write",
            "test_encrypted_session_pop_item",
            "test_encrypted_pop_delegates_to_overridden_sqlite_pop",
            "test_encrypted_pop_skips_plaintext_with_inherited_sqlite_behavior",
            "test_encrypted_pop_preserves_sqlalchemy_history",
            "test_encrypted_pop_preserves_compaction_wrapper",
            "test_encrypted_session_clear",
            "test_encrypted_session_forwards_wrapper_to_all_underlying_operations",
            "test_encrypted_session_ttl_expiration",
            "test_encrypted_session_pop_expired",
            "test_encrypted_session_pop_mixed_expired_valid",
            "test_encrypted_session_raw_string_key",
            "test_encrypted_session_get_items_limit",
            "test_encrypted_session_get_items_limit_skips_invalid_latest_envelope",
            "test_encrypted_session_get_items_limit_returns_latest_valid_items_after_invalids",
            "test_encrypted_session_get_items_session_settings_limit_skips_invalid_envelopes",
            "test_encrypted_session_rejects_nonpositive_scan_budget",
            "test_encrypted_session_scan_budget_counts_overlapping_expired_windows",
            "test_encrypted_session_scan_budget_backfills_in_chronological_order",
            "test_encrypted_session_scan_budget_rejects_incomplete_full_window",
            "test_encrypted_session_scan_budget_accepts_short_empty_and_zero_reads",
            "test_runner_encrypted_scan_budget_with_session_settings",
            "test_encrypted_session_unicode_content",
            "test_encrypted_session_delegation",
            "test_session_settings_delegated_to_underlying",
            "test_session_settings_get_items_uses_underlying_limit",
            "test_session_settings_explicit_limit_overrides_settings",
            "test_session_settings_resolve",
            "test_runner_with_session_settings_override",
        ),
        excluded={
            "test_encrypted_pop_wrong_key_preserves_recoverable_history": (
                "EncryptedSession authenticates inside the pop only for the SDK's own SQLiteSession (its private `_pop_item_with_validation`; EncryptedSession.pop_item's docstring: other stores, the SDK's SQLAlchemySession included, delegate)"
            ),
            "test_encrypted_pop_rechecks_authentication_after_expired_tail": (
                "EncryptedSession authenticates inside the pop only for the SDK's own SQLiteSession (its private `_pop_item_with_validation`; other stores delegate)"
            ),
            "test_encrypted_pop_authentication_is_atomic_with_concurrent_mutations": (
                "the SDK's own SQLiteSession's `_pop_item_with_validation` path, checked by reading `agent_messages` with the sqlite3 module"
            ),
            "test_encrypted_pop_wrong_key_preserves_row_identity": (
                "the SDK's own SQLiteSession's `_pop_item_with_validation` path, checked by reading `agent_messages` with the sqlite3 module"
            ),
            "test_encrypted_pop_cancellation_waits_for_authentication_rollback": (
                "the SDK's own SQLiteSession's `_pop_item_with_validation` path (patched to pause inside it)"
            ),
            "test_encrypted_session_scan_budget_rejects_negative_limit_before_read": (
                "asserts SQLiteSession's legacy read of `limit=-1` as unlimited; convostore refuses a negative limit with InvalidLimitError (docs/errors.md)"
            ),
            "test_encrypted_session_scan_budget_does_not_turn_redis_negative_limit_into_history": (
                "tests the SDK's RedisSession (on fakeredis); no convostore session is involved"
            ),
        },
        sqlite_only={},
    ),
    "tests/memory/test_compaction_suffix.py": ModuleManifest(
        substitute_sqlite_session=True,
        expected_pass=(
            "test_expired_prefix_does_not_block_full_live_window",
            "test_new_backend_write_invalidates_snapshot",
            "test_partial_previous_response_mode_preserves_history",
            "test_repeated_ttl_bursts_do_not_accumulate_expired_rows",
            "test_prefix_cleanup_stops_before_retained_history",
            "test_partial_compaction_does_not_split_tool_call_and_output",
            "test_unverifiable_rows_inside_snapshot_are_retained",
            "test_partial_compaction_preserves_reasoning_and_its_follower",
        ),
        excluded={
            "test_suffix_transaction_rolls_back_failed_insert": (
                "creates a trigger on the SDK's `agent_messages` layout (`message_data`) with the sqlite3 module and expects sqlite3.IntegrityError"
            ),
            "test_failed_encrypted_suffix_transaction_preserves_original_tokens": (
                "creates a trigger on the SDK's `agent_messages` layout with the sqlite3 module and expects sqlite3.IntegrityError"
            ),
            "test_cancelled_suffix_transaction_settles_before_newer_append": (
                "patches SQLiteSession's private `_insert_items`"
            ),
        },
        sqlite_only={},
    ),
    "tests/memory/test_openai_responses_compaction_session.py": ModuleManifest(
        substitute_sqlite_session=True,
        expected_pass=(
            "test_compaction_replay_strips_created_by",
            "TestIsOpenAIModelName::test_gpt_models",
            "TestIsOpenAIModelName::test_o_models",
            "TestIsOpenAIModelName::test_fine_tuned_models",
            "TestIsOpenAIModelName::test_invalid_models",
            "TestSelectCompactionCandidateItems::test_excludes_user_messages",
            "TestSelectCompactionCandidateItems::test_excludes_compaction_items",
            "TestSelectCompactionCandidateItems::test_excludes_easy_user_messages_without_type",
            "TestOpenAIResponsesCompactionSession::test_rollback_does_not_revive_items_expired_during_compaction",
            "TestOpenAIResponsesCompactionSession::test_rejects_nonpositive_rollback_budget",
            "TestOpenAIResponsesCompactionSession::test_manual_rollback_budget_rejects_before_api_or_writes",
            "TestOpenAIResponsesCompactionSession::test_rollback_budget_bounds_failed_clear_inspection",
            "TestOpenAIResponsesCompactionSession::test_automatic_compaction_rollback_budget",
            "TestOpenAIResponsesCompactionSession::test_exact_rollback_budget_refreshes_complete_snapshot",
            "TestOpenAIResponsesCompactionSession::test_client_preserves_falsy_default_client",
            "TestOpenAIResponsesCompactionSession::test_init_validates_model",
            "TestOpenAIResponsesCompactionSession::test_init_accepts_valid_model",
            "TestOpenAIResponsesCompactionSession::test_add_items_delegates",
            "TestOpenAIResponsesCompactionSession::test_pop_item_invalidates_response_chain",
            "TestOpenAIResponsesCompactionSession::test_empty_pop_preserves_response_chain",
            "TestOpenAIResponsesCompactionSession::test_clear_session_invalidates_response_chain",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_auto_uses_input_after_clear",
            "TestOpenAIResponsesCompactionSession::test_get_items_delegates",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_requires_response_id",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_honors_falsey_decision_hook",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_input_mode_without_response_id",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_auto_without_response_id_uses_input",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_input_mode_strips_internal_tool_call_metadata",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_uses_sanitized_cached_items_after_add",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_auto_uses_input_when_store_false",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_auto_uses_default_store_when_unset",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_auto_uses_input_when_last_response_unstored",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_skips_when_below_threshold",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_executes_when_threshold_met",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_restores_history_when_replacement_add_fails",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_restores_history_when_replacement_add_is_cancelled",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_restores_history_when_clear_is_cancelled_after_mutation",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_restores_history_when_cancelled_again_during_restore",
            "TestOpenAIResponsesCompactionSession::test_cancel_restore_waits_for_mutation_lock_before_newer_writes",
            "TestOpenAIResponsesCompactionSession::test_exception_restore_drains_when_compaction_is_cancelled",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_restores_full_history_when_session_limit_applies",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_does_not_restore_when_clear_fails_without_mutation",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_restores_history_when_clear_fails_after_mutation",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_reraises_replacement_error_when_restore_fails",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_force_bypasses_threshold",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_retains_deferred_marker_when_api_call_fails",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_suppresses_model_dump_warnings",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_normalizes_compacted_user_image_messages",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_normalizes_compacted_user_file_messages",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_normalizes_file_id_inputs_and_preserves_metadata",
            "TestOpenAIResponsesCompactionSession::test_run_compaction_preserves_history_when_output_normalization_fails",
            "TestOpenAIResponsesCompactionSession::test_compaction_runs_during_runner_flow",
            "TestOpenAIResponsesCompactionSession::test_compaction_skips_when_tool_outputs_present",
            "TestOpenAIResponsesCompactionSession::test_deferred_compaction_includes_compaction_mode_in_context",
            "TestOpenAIResponsesCompactionSession::test_compaction_runs_after_deferred_tool_outputs_when_due",
            "TestOpenAIResponsesCompactionSession::test_deferred_compaction_persists_across_tool_turns",
            "TestStripOrphanedAssistantIds::test_noop_when_empty",
            "TestStripOrphanedAssistantIds::test_strips_id_from_assistant_when_no_reasoning",
            "TestStripOrphanedAssistantIds::test_preserves_id_when_reasoning_present",
            "TestStripOrphanedAssistantIds::test_preserves_assistant_without_id",
            "TestStripOrphanedAssistantIds::test_strips_multiple_assistant_ids",
            "TestCompactionMutationSerialization::test_resumed_save_carries_generation_into_compaction",
            "TestCompactionMutationSerialization::test_runner_skips_compaction_after_interleaved_model_wait",
            "TestCompactionMutationSerialization::test_runner_skips_compaction_after_interleaved_persist",
            "TestCompactionMutationSerialization::test_add_waits_for_in_flight_compaction_and_survives",
            "TestCompactionMutationSerialization::test_clear_waits_for_in_flight_compaction_and_stays_empty",
            "TestCompactionStripsOrphanedIds::test_run_compaction_strips_orphaned_assistant_ids",
            "TestCompactionStripsOrphanedIds::test_run_compaction_keeps_ids_when_reasoning_present",
            "TestTypeGuard::test_is_compaction_aware_session_true",
            "TestTypeGuard::test_is_compaction_aware_session_false",
            "TestTypeGuard::test_is_compaction_aware_session_none",
        ),
        excluded={
            "TestOpenAIResponsesCompactionSession::test_settled_pop_failure_invalidates_response_chain": (
                "injects a sqlite3 connection into SQLiteSession's private `_connections`/`_connections_lock`"
            ),
            "TestOpenAIResponsesCompactionSession::test_settled_clear_failure_invalidates_response_chain": (
                "injects a sqlite3 connection into SQLiteSession's private `_connections`/`_connections_lock`"
            ),
        },
        sqlite_only={},
    ),
}

# TEMPORARY: tests that fail on this branch today, each with its cause; the run expects them
# to fail (a pending test that passes fails the run: take it out). Other parts of issue 11 fix
# them; empty this after merging them.
PENDING: dict[str, dict[str, dict[str, str]]] = {}
