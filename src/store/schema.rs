// The tables, as diesel sees them. Both backends share this schema; the
// migrations under migrations/sqlite and migrations/postgres create it.

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        approval_policy -> Text,
        contact_name -> Nullable<Text>,
        contact_email -> Nullable<Text>,
        locale -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        notify_subject -> Bool,
        callback_secret_box -> Nullable<Text>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        key_prefix -> Text,
        key_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    erasure_requests (id) {
        id -> Text,
        tenant_id -> Text,
        subject_hash -> Text,
        subject_id -> Nullable<Text>,
        subject_email -> Nullable<Text>,
        initiator -> Text,
        reason -> Nullable<Text>,
        callback_url -> Nullable<Text>,
        state -> Text,
        batch_id -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        fingerprint -> Text,
        received_at -> Timestamp,
        due_at -> Timestamp,
        updated_at -> Timestamp,
        closed_at -> Nullable<Timestamp>,
        audit_seq -> BigInt,
        audit_head -> Text,
        decision_code -> Nullable<Text>,
        decision_explanation -> Nullable<Text>,
        escalated_at -> Nullable<Timestamp>,
        delivery_failed_at -> Nullable<Timestamp>,
        approved_at -> Nullable<Timestamp>,
        erased_at -> Nullable<Timestamp>,
        scrubbed_at -> Nullable<Timestamp>,
        extended_at -> Nullable<Timestamp>,
        extension_reason -> Nullable<Text>,
        extended_by -> Nullable<Text>,
        cancel_reason -> Nullable<Text>,
        opendsr_linked -> Bool,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        tenant_id -> Text,
        request_id -> Text,
        seq -> BigInt,
        from_state -> Nullable<Text>,
        to_state -> Text,
        event -> Text,
        actor_kind -> Text,
        actor_id -> Text,
        detail -> Nullable<Text>,
        at -> Timestamp,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        tenant_id -> Nullable<Text>,
        request_id -> Nullable<Text>,
        kind -> Text,
        payload -> Text,
        run_at -> Timestamp,
        attempts -> Integer,
        max_attempts -> Integer,
        lease_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        dead -> Bool,
        locked_by -> Nullable<Text>,
    }
}

diesel::table! {
    approval_links (id) {
        id -> Text,
        tenant_id -> Text,
        token_hash -> Text,
        request_id -> Nullable<Text>,
        batch_id -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        voided_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    erasure_targets (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        url -> Text,
        secret_box -> Text,
        timeout_ms -> Integer,
        enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        kind -> Text,
        owner_email -> Nullable<Text>,
    }
}

diesel::table! {
    target_calls (id) {
        id -> Text,
        tenant_id -> Text,
        request_id -> Text,
        target_id -> Text,
        target_name -> Text,
        status -> Text,
        attempts -> Integer,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        confirmed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        confirmed_by -> Nullable<Text>,
    }
}

diesel::table! {
    target_links (id) {
        id -> Text,
        tenant_id -> Text,
        request_id -> Text,
        target_id -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    opendsr_requests (tenant_id, subject_request_id) {
        tenant_id -> Text,
        subject_request_id -> Text,
        request_id -> Text,
        regulation -> Text,
        api_version -> Text,
        status_callback_urls -> Text,
        submitted_at -> Timestamp,
        received_at -> Timestamp,
        opengdpr -> Bool,
    }
}

diesel::table! {
    facebook_apps (tenant_id) {
        tenant_id -> Text,
        app_id -> Text,
        secret_box -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    facebook_deletions (code_hash) {
        code_hash -> Text,
        tenant_id -> Text,
        request_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    api_keys,
    erasure_requests,
    audit_events,
    jobs,
    approval_links,
    erasure_targets,
    target_calls,
    target_links,
    opendsr_requests,
    facebook_apps,
    facebook_deletions
);
