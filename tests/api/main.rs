//! Integration tests: a real server on a random port, real HTTP, on both
//! SQLite and PostgreSQL. Each scenario is written once and run per backend.

mod approval;
mod erasure;
mod helpers;
mod interop;
mod isolation;
mod mail;
mod mailer;
mod manual;
mod openapi;
mod scenarios;
mod support;
mod targets_server;

/// Generate one test per scenario and backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::scenarios::$name(crate::helpers::spawn_app(crate::helpers::Db::Sqlite).await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::scenarios::$name(crate::helpers::spawn_app(crate::helpers::Db::Postgres).await).await
                }
            )*
        }
    };
}

on_both_backends!(
    eu_submission_awaits_approval_and_queues_the_email,
    a_note_on_a_request_that_moved_meanwhile_goes_on_its_new_head,
    notes_written_together_land_once_each_on_their_own_heads,
    links_written_together_leave_one_usable_link_per_request,
    a_decision_on_a_link_or_request_that_moved_meanwhile_writes_nothing,
    non_eu_submission_goes_straight_to_erasing,
    idempotent_replay_returns_the_same_request_and_one_row,
    reused_idempotency_key_with_another_body_is_422,
    second_open_request_for_a_subject_returns_the_first,
    submissions_arriving_together_get_their_own_answers,
    concurrent_cancels_give_one_200_and_one_409,
    cancel_rules_follow_the_state_machine,
    other_tenants_see_404,
    garbage_bodies_get_json_4xx_and_change_nothing,
    batch_is_all_or_nothing_with_per_item_results,
    list_filters_and_paginates_with_a_stable_cursor,
    subject_status_says_whether_to_keep_the_account,
    admin_api_manages_tenants_and_keys,
    revoked_keys_stop_working_at_once,
    submissions_see_key_and_policy_changes_at_once,
    audit_verify_passes_and_catches_a_hand_edit,
    health_and_readiness,
    metrics_are_exposed_for_prometheus,
);

/// Scenarios that take the backend themselves (they start extra peers).
macro_rules! on_both_backends_with_peers {
    ($($name:ident),* $(,)?) => {
        mod approval_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::approval::$name(crate::helpers::Db::Sqlite).await
                }
            )*
        }
        mod approval_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::approval::$name(crate::helpers::Db::Postgres).await
                }
            )*
        }
    };
}

on_both_backends_with_peers!(
    approval_mail_and_browser_click_start_the_erasure,
    opening_the_link_changes_nothing,
    the_scrub_waits_for_the_subjects_email,
    used_expired_and_voided_links_change_nothing,
    rejection_needs_a_reason_and_the_subject_is_told,
    mail_waits_for_the_smtp_server,
    german_and_french_contacts_get_their_language,
    a_batch_gets_one_email_and_one_page,
    reminders_renew_the_link_and_deadlines_escalate,
    an_undeliverable_reminder_does_not_stop_the_escalation,
    racing_approvals_make_one_transition,
    decisions_at_once_each_take_effect_once,
);

macro_rules! erasure_on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod erasure_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::erasure::$name(crate::helpers::Db::Sqlite).await
                }
            )*
        }
        mod erasure_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::erasure::$name(crate::helpers::Db::Postgres).await
                }
            )*
        }
    };
}

erasure_on_both_backends!(
    approved_request_is_erased_at_the_target_with_proof,
    server_errors_are_retried,
    accepted_then_confirmed,
    refused_then_retried_after_a_fix,
    a_hanging_target_times_out_and_is_retried,
    erased_only_when_every_target_confirmed,
    two_targets_answering_at_once_erase_the_request,
    two_of_three_targets_answering_at_once_wait_for_the_third,
    job_workers_claiming_together_certify_each_request,
    platform_completion_and_signed_callbacks,
    callbacks_to_inside_addresses_are_refused,
);

macro_rules! interop_on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod interop_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::interop::$name(crate::helpers::Db::Sqlite).await
                }
            )*
        }
        mod interop_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::interop::$name(crate::helpers::Db::Postgres).await
                }
            )*
        }
    };
}

interop_on_both_backends!(
    opendsr_request_is_approved_completed_and_called_back,
    opendsr_errors_cancel_and_opengdpr,
    facebook_deletion_creates_a_request_with_a_status_page,
);

mod cli;
mod logs;
mod replicas;
mod statistics;

macro_rules! manual_on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod manual_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::manual::$name(crate::helpers::Db::Sqlite).await
                }
            )*
        }
        mod manual_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::manual::$name(crate::helpers::Db::Postgres).await
                }
            )*
        }
    };
}

manual_on_both_backends!(
    owner_confirms_a_manual_target_by_hand,
    owner_reports_erasure_impossible,
    manual_targets_are_validated,
);

mod isolation_sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_route_answers_every_caller_as_its_access_class_says() {
        crate::isolation::every_route_answers_every_caller_as_its_access_class_says(
            crate::helpers::Db::Sqlite,
        )
        .await
    }
}

mod isolation_postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_route_answers_every_caller_as_its_access_class_says() {
        crate::isolation::every_route_answers_every_caller_as_its_access_class_says(
            crate::helpers::Db::Postgres,
        )
        .await
    }
}
