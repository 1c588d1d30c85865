//! Metric names, each with its help text, in one place. Recorded through the `metrics`
//! facade; an exporter can be installed by the binary.

/// Leases that ran out (counter).
pub const LEASES_EXPIRED: &str = "baton_leases_expired_total";
/// Grants made (counter).
pub const GRANTS: &str = "baton_grants_total";
/// Commands executed (counter).
pub const COMMANDS: &str = "baton_commands_total";
/// Connections accepted (counter).
pub const CONNECTIONS: &str = "baton_connections_total";

/// Registers the help text of every metric with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(LEASES_EXPIRED, "Leases that ran out before release");
    metrics::describe_counter!(GRANTS, "Locks and permits granted");
    metrics::describe_counter!(COMMANDS, "Commands executed");
    metrics::describe_counter!(CONNECTIONS, "Client connections accepted");
}
