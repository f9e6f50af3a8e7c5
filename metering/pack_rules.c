/*
 * pack_rules.c — the rules of a resource pack (billing-rules.md §2), one
 * copy for the node (packs.c) and the ledger (ledger/store_packs.c): its
 * validity, its status, when it may be refunded or frozen, its id syntax.
 *
 * Pure functions of their arguments (no store, no clock), so both ends
 * decide alike and the rules are tested once (tests/unit/test_pack_rules.c)
 * at their exact boundaries.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

meter_time meter_pack_end(meter_time start)
{
    return meter_add_years(start, 1);
}

meter_time meter_pack_refundable_until(meter_time start)
{
    return start + METER_PACK_REFUND_WINDOW_MS;
}

const char *meter_pack_status(const meter_pack_state *p, meter_time now)
{
    /* the order matters: a refunded pack that was frozen is refunded, an
     * expired one that was used up is expired */
    if (p->refunded_at)
        return "refunded";
    if (p->frozen)
        return "frozen";
    if (now >= p->end)
        return "expired";
    if (p->remaining_us <= 0)
        return "exhausted";
    if (now < p->start)
        return "pending";
    return "valid";
}

int meter_pack_may_refund(const meter_pack_state *p, const char *id, meter_time now,
                          char err[METER_ERRMAX])
{
    if (p->refunded_at) {
        snprintf(err, METER_ERRMAX, "pack '%s' is already refunded", id);
        return METER_EEXIST;
    }
    if (p->deductions > 0 || p->remaining_us != p->total_us) {
        snprintf(err, METER_ERRMAX, "pack '%s' cannot be refunded: it has been used (no "
                 "refund once used)", id);
        return METER_EREFUSED;
    }
    if (now > meter_pack_refundable_until(p->start)) {
        char when[40];
        meter_format_time(meter_pack_refundable_until(p->start), 0, when);
        snprintf(err, METER_ERRMAX, "pack '%s' cannot be refunded: the 5-day refund window "
                 "ended at %s", id, when);
        return METER_EREFUSED;
    }
    return METER_OK;
}

int meter_pack_may_freeze(const meter_pack_state *p, const char *id, int frozen,
                          char err[METER_ERRMAX])
{
    if (p->refunded_at) {
        snprintf(err, METER_ERRMAX, "pack '%s' is refunded", id);
        return METER_EREFUSED;
    }
    if ((p->frozen != 0) == (frozen != 0)) {
        snprintf(err, METER_ERRMAX, "pack '%s' is %s frozen", id, frozen ? "already" : "not");
        return METER_EEXIST;
    }
    return METER_OK;
}

int meter_pack_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= METER_NAME_MAX || strcmp(s, "-") == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-:", s[i]))
            return 0;
    return 1;
}

int meter_pack_id_make(meter_time start, const char *tail_hex, char out[METER_NAME_MAX])
{
    char day[11];
    meter_day_of(start, 0, day);
    snprintf(out, METER_NAME_MAX, "pk-%.4s%.2s%.2s-%.8s", day, day + 5, day + 8, tail_hex);
    return meter_pack_id_valid(out) ? METER_OK : METER_EINVAL;
}
