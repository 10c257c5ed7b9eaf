#include "stored_lease.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
}

#include "guard.hpp"
#include "settings.hpp"
#include "waiting.hpp"

namespace singleton_lock {

namespace {

constexpr const char* kNotifyChannel = "singleton_lock";

int64 interval_column_micros(int col) {
    if (column_is_null(col)) return 0;
    const Interval* value = DatumGetIntervalP(column(col));
    auto micros = cpp_call([&] { return interval_micros(value->time, value->day, value->month); });
    return micros.value_or(0);
}

// The first row of the last lease-loading plan.
StoredLease stored_lease() {
    StoredLease row = {};
    if (SPI_processed == 0) return row;
    row.exists = true;
    row.released = column_is_null(kColReleased) || DatumGetBool(column(kColReleased));
    row.paused = !column_is_null(kColPaused) && DatumGetBool(column(kColPaused));
    row.holder = text_column_copy(kColHolder);
    row.role = column_is_null(kColHolderRole) ? InvalidOid : DatumGetObjectId(column(kColHolderRole));
    row.token = DatumGetInt64(column(kColToken));
    row.priority = column_is_null(kColPriority) ? 0 : DatumGetInt32(column(kColPriority));
    row.has_expiry = !column_is_null(kColExpiresAt);
    row.expires_at = row.has_expiry ? DatumGetTimestampTz(column(kColExpiresAt)) : 0;
    row.ttl_us = interval_column_micros(kColTtl);
    row.binding_key =
        column_is_null(kColBindingKey) ? 0 : static_cast<uint64>(DatumGetInt64(column(kColBindingKey)));
    row.binding.bound = row.binding_key != 0 && !column_is_null(kColBoundSince);
    if (row.binding.bound) {
        row.binding.bound_since = DatumGetTimestampTz(column(kColBoundSince));
        row.binding.timeline =
            column_is_null(kColBoundTimeline) ? 0 : DatumGetInt32(column(kColBoundTimeline));
    }
    return row;
}

}  // namespace

StoredLease load(const LeaseKey& key, PlanId plan) {
    Datum args[1] = {PointerGetDatum(key.name)};
    run(plan, args, nullptr, SPI_OK_SELECT);
    return stored_lease();
}

StoredLease load_own(const LeaseKey& key, int64 token, Oid role, PlanId plan) {
    Datum args[3] = {PointerGetDatum(key.name), Int64GetDatum(token), ObjectIdGetDatum(role)};
    run(plan, args, nullptr, SPI_OK_SELECT);
    return stored_lease();
}

LeaseRow rule_row(const StoredLease& stored) {
    LeaseRow row;
    row.exists = stored.exists;
    row.paused = stored.paused;
    row.released = stored.released;
    row.holder = stored.holder != nullptr ? stored.holder : "";
    row.role = stored.role;
    row.token = stored.token;
    row.priority = stored.priority;
    row.expires_at = stored.expires_at;
    row.ttl = stored.ttl_us;
    row.binding = stored.binding.bound ? Binding::Live : Binding::Unbound;
    bool check = cpp_call([&] { return needs_binding_check(row); });
    if (check) row.binding = observe_binding(stored.binding_key, stored.binding);
    if (row.binding == Binding::EndedByRestart) row.server_epoch = server_epoch();
    return row;
}

LeaseState state_of(const StoredLease& stored, TimestampTz now) {
    LeaseRow row = rule_row(stored);
    return cpp_call([&] { return classify(row, now); });
}

char* holder_as_seen_by(const StoredLease& row, Oid caller) {
    if (row.holder == nullptr || row.role == caller) return row.holder;
    const char* role = GetUserNameFromId(row.role, true);
    // Read after SPI_finish (the function's result), like row.holder.
    return copy_out(psprintf("<role %s>", role != nullptr ? role : "(dropped)"));
}

TimestampTz expiry_or_error(TimestampTz now, int64 ttl_us) {
    auto expiry = cpp_call([&] { return expiry_after(now, ttl_us); });
    if (!expiry || !IS_VALID_TIMESTAMP(*expiry))
        ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
                        errmsg("lease expiry is out of range")));
    return *expiry;
}

void notify_change(const LeaseKey& key) {
    if (notify_changes) Async_Notify(kNotifyChannel, key.name_str);
}

void announce_change(const LeaseKey& key) {
    notify_change(key);
    wake_waiters_at_commit(key.name_hash);
}

int64 write_new_tenure(const LeaseKey& key, int64 previous_token, const NewTenure& tenure,
                       TimestampTz now, TimestampTz expires_at, TenureEnd previous_end) {
    auto token = cpp_call(
        [&] { return next_token(previous_token, current_timeline(), GetXLogInsertRecPtr()); });
    if (!token)
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("fencing tokens of lease \"%s\" are exhausted", key.name_str)));
    const char* ended = cpp_call([&] { return tenure_end_name(previous_end); });
    bool bound = tenure.binding_key != 0;
    Datum args[13] = {PointerGetDatum(key.name),
                      CStringGetTextDatum(tenure.holder),
                      ObjectIdGetDatum(tenure.role),
                      Int64GetDatum(*token),
                      TimestampTzGetDatum(now),
                      TimestampTzGetDatum(expires_at),
                      PointerGetDatum(micros_to_interval(tenure.ttl_us)),
                      Int32GetDatum(tenure.pid),
                      TimestampTzGetDatum(tenure.session_start),
                      Int32GetDatum(static_cast<int32>(current_timeline())),
                      Int64GetDatum(static_cast<int64>(tenure.binding_key)),
                      Int32GetDatum(tenure.priority),
                      ended != nullptr ? CStringGetTextDatum(ended) : (Datum)0};
    char b = bound ? ' ' : 'n';
    const char nulls[14] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', b, b, b, b, ' ',
                            ended != nullptr ? ' ' : 'n', '\0'};
    run(kTake, args, nulls, SPI_OK_UPDATE);
    // A token must never be handed out twice, whatever synchronous_commit says.
    ForceSyncCommit();
    notify_change(key);
    return *token;
}

}  // namespace singleton_lock
