// The support tables, as diesel sees them (migration 000004_support on both
// backends). The request columns it adds are in `store::schema`.

diesel::table! {
    support_users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        created_at -> Timestamp,
        disabled_at -> Nullable<Timestamp>,
        failed_logins -> Integer,
        locked_until -> Nullable<Timestamp>,
        last_login_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    support_sessions (id) {
        id -> Text,
        user_id -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    support_tokens (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        token_prefix -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(support_sessions -> support_users (user_id));
diesel::joinable!(support_tokens -> support_users (user_id));
diesel::allow_tables_to_appear_in_same_query!(support_users, support_sessions, support_tokens);
