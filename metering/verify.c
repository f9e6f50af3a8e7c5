/*
 * verify.c — checks every money invariant (internal.h I1–I5) and reports
 * each violation as one line.  Each check is a query whose rows are the
 * violations, already worded.
 */
#include "internal.h"

static const char *const checks[] = {
    /* I1: balance = total − Σ deductions. */
    "SELECT printf('pack %s: total %d - remaining %d = %d, but its deductions sum to %d',"
    "  p.id, p.total_us, p.remaining_us, p.total_us - p.remaining_us,"
    "  coalesce(sum(d.amount_us), 0))"
    " FROM packs p LEFT JOIN deductions d ON d.pack_id = p.id GROUP BY p.id"
    " HAVING p.total_us - p.remaining_us <> coalesce(sum(d.amount_us), 0)",

    "SELECT printf('pack %s: remaining %d outside 0..%d', id, remaining_us, total_us)"
    " FROM packs WHERE remaining_us < 0 OR remaining_us > total_us",

    /* I2: only from a usable pack of the same class. */
    "SELECT printf('deduction %s: at %d outside pack %s validity [%d, %d)',"
    "  d.id, d.at, p.id, p.start_at, p.end_at)"
    " FROM deductions d JOIN packs p ON p.id = d.pack_id"
    " WHERE d.at < p.start_at OR d.at >= p.end_at",

    "SELECT printf('deduction %s: class %d taken from pack %s of type %d',"
    "  d.id, d.class, p.id, p.type)"
    " FROM deductions d JOIN packs p ON p.id = d.pack_id WHERE d.class <> p.type",

    "SELECT printf('deduction %s: taken from pack %s which is refunded', d.id, p.id)"
    " FROM deductions d JOIN packs p ON p.id = d.pack_id WHERE p.refunded_at IS NOT NULL",

    "SELECT printf('deduction %s: taken from pack %s while it was frozen', d.id, d.pack_id)"
    " FROM deductions d WHERE d.pack_id IS NOT NULL AND 'freeze' = ("
    "  SELECT e.action FROM pack_events e WHERE e.pack_id = d.pack_id"
    "  AND e.action IN ('freeze', 'unfreeze') AND e.seq < d.seq ORDER BY e.seq DESC LIMIT 1)",

    "SELECT printf('deduction %s: settles day %s from pack %s bought after that day ended',"
    "  d.id, s.day, d.pack_id)"
    " FROM deductions d JOIN settlements s ON s.id = d.charge_id JOIN packs p ON p.id = d.pack_id"
    " WHERE p.start_at >= (unixepoch(s.day, '+1 day') * 1000"
    "  - 60000 * ((SELECT CAST(substr(value, 1, 3) AS INTEGER) * 60"
    "    + (CASE WHEN substr(value, 1, 1) = '-' THEN -1 ELSE 1 END)"
    "      * CAST(substr(value, 5, 2) AS INTEGER) FROM meta WHERE key = 'day_offset')))",

    /* I5: accounts never mix; slices belong to a lease of theirs. */
    "SELECT printf('deduction %s: account %s taken from pack %s of account %s',"
    "  d.id, d.account, p.id, p.account)"
    " FROM deductions d JOIN packs p ON p.id = d.pack_id WHERE d.account <> p.account",

    "SELECT printf('deduction %s: account %s for a charge of account %s', d.id, d.account,"
    "  coalesce(u.account, s.account))"
    " FROM deductions d LEFT JOIN usage u ON u.id = d.charge_id"
    " LEFT JOIN settlements s ON s.id = d.charge_id"
    " WHERE d.account <> coalesce(u.account, s.account)",

    "SELECT printf('usage %s: account %s settled by settlement %s of account %s',"
    "  u.id, u.account, s.id, s.account)"
    " FROM settled_usage su JOIN usage u ON u.seq = su.usage_seq"
    " JOIN settlements s ON s.id = su.settlement_id WHERE u.account <> s.account",

    "SELECT printf('pack event %s: account %s for pack %s of account %s',"
    "  e.id, e.account, p.id, p.account)"
    " FROM pack_events e JOIN packs p ON p.id = e.pack_id WHERE e.account <> p.account",

    "SELECT printf('pack %s: a slice of lease %s, which does not exist', p.id, p.lease_id)"
    " FROM packs p WHERE p.lease_id IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.id = p.lease_id)",

    "SELECT printf('pack %s: slice of account %s, type %d in lease %s of account %s, class %d',"
    "  p.id, p.account, p.type, l.id, l.account, l.class)"
    " FROM packs p JOIN leases l ON l.id = p.lease_id"
    " WHERE p.account <> l.account OR p.type <> l.class",

    "SELECT printf('pack %s: a lease slice without its source pack or expiry', id)"
    " FROM packs WHERE lease_id IS NOT NULL AND (source_id IS NULL OR expires_at IS NULL)",

    "SELECT printf('pack %s: a lease slice with pack events', e.pack_id)"
    " FROM pack_events e JOIN packs p ON p.id = e.pack_id WHERE p.lease_id IS NOT NULL"
    " GROUP BY e.pack_id",

    /* Balances chain: before − amount = after, and each deduction starts
     * where the pack's previous one ended (the first at the total). */
    "SELECT printf('deduction %s: before %d - amount %d <> after %d',"
    "  id, before_us, amount_us, after_us)"
    " FROM deductions WHERE pack_id IS NOT NULL AND before_us - amount_us <> after_us",

    "SELECT printf('deduction %s: pack %s balance before is %d, expected %d',"
    "  d.id, d.pack_id, d.before_us, coalesce((SELECT x.after_us FROM deductions x"
    "  WHERE x.pack_id = d.pack_id AND x.seq < d.seq ORDER BY x.seq DESC LIMIT 1), p.total_us))"
    " FROM deductions d JOIN packs p ON p.id = d.pack_id"
    " WHERE d.before_us <> coalesce((SELECT x.after_us FROM deductions x"
    "  WHERE x.pack_id = d.pack_id AND x.seq < d.seq ORDER BY x.seq DESC LIMIT 1), p.total_us)",

    "SELECT printf('overage row %s carries a balance', id) FROM deductions"
    " WHERE pack_id IS NULL AND (before_us IS NOT NULL OR after_us IS NOT NULL)",

    /* I3: every charge fully accounted for. */
    "SELECT printf('usage %s: billed %d but deductions + overage = %d',"
    "  u.id, u.billed_us, coalesce(sum(d.amount_us), 0))"
    " FROM usage u LEFT JOIN deductions d ON d.charge_id = u.id WHERE u.daily = 0"
    " GROUP BY u.seq HAVING coalesce(sum(d.amount_us), 0) <> u.billed_us",

    "SELECT printf('usage %s: charged directly although it is settled daily', u.id)"
    " FROM usage u WHERE u.daily = 1 AND EXISTS (SELECT 1 FROM deductions d"
    "  WHERE d.charge_id = u.id)",

    "SELECT printf('settlement %s: billed %d but deductions + overage = %d',"
    "  s.id, s.billed_us, coalesce(sum(d.amount_us), 0))"
    " FROM settlements s LEFT JOIN deductions d ON d.charge_id = s.id"
    " GROUP BY s.seq HAVING coalesce(sum(d.amount_us), 0) <> s.billed_us",

    "SELECT printf('settlement %s: billed %d but its usage sums to %d',"
    "  s.id, s.billed_us, coalesce(sum(u.billed_us), 0))"
    " FROM settlements s LEFT JOIN settled_usage su ON su.settlement_id = s.id"
    " LEFT JOIN usage u ON u.seq = su.usage_seq"
    " GROUP BY s.seq HAVING coalesce(sum(u.billed_us), 0) <> s.billed_us",

    "SELECT printf('deduction %s: charge %s is neither a usage nor a settlement',"
    "  d.id, d.charge_id) FROM deductions d"
    " WHERE NOT EXISTS (SELECT 1 FROM usage u WHERE u.id = d.charge_id)"
    " AND NOT EXISTS (SELECT 1 FROM settlements s WHERE s.id = d.charge_id)",

    /* Sessions that could not be billed: minutes waiting for an operator. */
    "SELECT printf('session %s (job %s, output %s) could not be billed: %s',"
    "  id, job, output, coalesce(error, '?')) FROM sessions WHERE status = 'failed'",

    /* Status flags agree with the audit trail. */
    "SELECT printf('pack %s: frozen flag %d disagrees with its last freeze event', p.id,"
    "  p.frozen) FROM packs p WHERE p.frozen <> coalesce((SELECT e.action = 'freeze'"
    "  FROM pack_events e WHERE e.pack_id = p.id AND e.action IN ('freeze', 'unfreeze')"
    "  ORDER BY e.seq DESC LIMIT 1), 0)",

    "SELECT printf('pack %s: refunded flag disagrees with its refund event', p.id)"
    " FROM packs p WHERE (p.refunded_at IS NOT NULL) <> EXISTS (SELECT 1 FROM pack_events e"
    "  WHERE e.pack_id = p.id AND e.action = 'refund')",
};

int meter_verify(meter_store *st, void (*report)(void *ctx, const char *problem), void *ctx,
                 size_t *violations)
{
    size_t found = 0;
    if (violations)
        *violations = 0;
    /* One read transaction: every check sees the same snapshot. */
    if (meter_exec(st, "BEGIN") != METER_OK)
        return METER_EDB;
    int code = METER_OK;
    for (size_t i = 0; i < sizeof checks / sizeof *checks && code == METER_OK; i++) {
        sqlite3_stmt *s = meter_prepare(st, checks[i]);
        if (!s) {
            code = METER_EDB;
            break;
        }
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            found++;
            if (report)
                report(ctx, (const char *)sqlite3_column_text(s, 0));
        }
        if (rc != SQLITE_DONE)
            code = meter_fail_db(st, "verify");
        sqlite3_finalize(s);
    }
    sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    if (violations)
        *violations = found;
    return code;
}
