/*
 * test_outbox — the sync outbox of libmeter (meter.h "sync"): every usage,
 * deduction (overage included), settlement and pack event is queued in the
 * transaction that makes it, with the record's own id; a refused operation
 * queues nothing; fetch in order, ack, quarantine and release; and
 * meter_pack_apply for packs the ledger assigns.
 */
#include "mtest.h"

#define S(x) ((int64_t)(x) * US_PER_S)

typedef struct counts {
    int usage, deduction, settlement, pack_event, other;
    int64_t deducted, overage, billed;
    int ordered, unique;
} counts;

static int idcmp(const void *a, const void *b)
{
    return strcmp(((const meter_sync_record *)a)->id,
                  ((const meter_sync_record *)b)->id);
}

/* Everything waiting, counted by kind. */
static counts tally(meter_store *st, meter_sync_record **keep, size_t *nkeep)
{
    counts c;
    memset(&c, 0, sizeof c);
    meter_sync_record *rows = NULL;
    size_t n = 0;
    if (meter_outbox_fetch(st, 100000, &rows, &n) != METER_OK) {
        FAIL("outbox fetch: %s", meter_errmsg(st));
        return c;
    }
    c.ordered = c.unique = 1;
    for (size_t i = 0; i < n; ++i) {
        const meter_sync_record *r = &rows[i];
        if (i && rows[i - 1].outbox_seq >= r->outbox_seq)
            c.ordered = 0;
        if (!strcmp(r->kind, "usage")) {
            c.usage++;
            c.billed += r->billed_us;
        } else if (!strcmp(r->kind, "deduction")) {
            c.deduction++;
            if (r->pack_id[0])
                c.deducted += r->amount_us;
            else
                c.overage += r->amount_us;
        } else if (!strcmp(r->kind, "settlement")) {
            c.settlement++;
        } else if (!strcmp(r->kind, "pack_event")) {
            c.pack_event++;
        } else {
            c.other++;
        }
    }
    /* uniqueness on a sorted copy: rows stay in outbox order */
    meter_sync_record *sorted = malloc((n ? n : 1) * sizeof *sorted);
    memcpy(sorted, rows, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, idcmp);
    for (size_t i = 1; i < n; ++i)
        if (!strcmp(sorted[i - 1].id, sorted[i].id))
            c.unique = 0;
    free(sorted);
    if (keep) {
        *keep = rows;
        *nkeep = n;
    } else {
        meter_free(rows);
    }
    return c;
}

static int64_t depth(meter_store *st)
{
    meter_sync_status s;
    memset(&s, 0, sizeof s);
    if (meter_sync_status_get(st, &s) != METER_OK)
        return -1;
    return s.depth;
}

static const meter_sync_record *find_kind(const meter_sync_record *r,
                                          size_t n, const char *kind,
                                          const char *charge)
{
    for (size_t i = 0; i < n; ++i)
        if (!strcmp(r[i].kind, kind) && (!charge || !strcmp(r[i].charge_id,
                                                            charge)))
            return &r[i];
    return NULL;
}

int main(void)
{
    const char *dir = tap_tmpdir("test_outbox");
    tap_set_now("2026-06-15T12:00:00Z");
    meter_store *st = mt_open(tap_path(dir, "outbox.db"));
    CHECK_EQ_I64(depth(st), 0, "a new store has an empty outbox");

    mt_add_pack(st, "P", METER_CLASS_GENERAL, 1, tap_utc(2026, 6, 1, 0, 0, 0));
    counts c = tally(st, NULL, NULL);
    CHECK_EQ_INT(c.pack_event, 1, "purchase queued as a pack event");

    /* 40 s of H.264 HD = 80 s: 60 s from P, 20 s overage */
    meter_usage_result r;
    int rc = mt_record(st, "ob1", METER_CLASS_GENERAL, "h264", 1280, 720, S(40),
                       &r);
    CHECK(rc == METER_OK && r.covered_us == S(60) && r.overage_us == S(20),
          "record split between P and overage");
    meter_sync_record *rows = NULL;
    size_t n = 0;
    c = tally(st, &rows, &n);
    CHECK_EQ_INT(c.usage, 1, "one usage queued");
    CHECK_EQ_INT(c.deduction, 2, "a pack deduction and an overage row queued");
    CHECK_EQ_I64(c.deducted, S(60), "queued pack deduction 60 s");
    CHECK_EQ_I64(c.overage, S(20), "queued overage 20 s");
    CHECK_EQ_I64(c.billed, S(80), "queued usage billed 80 s");
    CHECK(c.ordered && c.unique, "outbox in order, ids unique");
    CHECK_EQ_I64(depth(st), (int64_t)n, "status depth = records waiting");
    const meter_sync_record *u = find_kind(rows, n, "usage", NULL);
    if (CHECK(u != NULL, "usage record present")) {
        CHECK_EQ_STR(u->id, r.id, "usage queued under its record id");
        CHECK_EQ_STR(u->job, "ob1", "job travels");
        CHECK_EQ_STR(u->ttype, "Standard.H264.HD", "ttype travels");
        CHECK_EQ_I64(u->duration_us, S(40), "duration travels");
        const meter_sync_record *d = find_kind(rows, n, "deduction", r.id);
        CHECK(d != NULL, "deduction's charge_id = the usage id");
        if (d && d->pack_id[0])
            CHECK(d->before_us - d->amount_us == d->after_us,
                  "before − amount = after");
    }
    meter_free(rows);

    /* a refused operation queues nothing */
    int64_t d0 = depth(st);
    mt_record(st, "bad", METER_CLASS_GENERAL, "vp9", 1280, 720, S(1), NULL);
    meter_pack_add(st, "P", METER_CLASS_GENERAL, 5, 0, NULL);
    meter_pack_refund(st, "P");
    CHECK_EQ_I64(depth(st), d0, "refused record/add/refund queue nothing");

    /* freeze and unfreeze are pack events */
    mt_add_pack(st, "Q", METER_CLASS_TSC, 5, 0);
    meter_pack_freeze(st, "Q");
    meter_pack_unfreeze(st, "Q");
    meter_pack_refund(st, "Q");
    c = tally(st, &rows, &n);
    CHECK_EQ_INT(c.pack_event, 5, "purchase P, purchase Q, freeze, unfreeze, "
                 "refund");
    int fr = 0, un = 0, re = 0;
    for (size_t i = 0; i < n; ++i) {
        fr += !strcmp(rows[i].action, "freeze");
        un += !strcmp(rows[i].action, "unfreeze");
        re += !strcmp(rows[i].action, "refund");
    }
    CHECK(fr == 1 && un == 1 && re == 1, "actions freeze/unfreeze/refund");

    /* fetch a batch, ack it */
    meter_sync_record *batch = NULL;
    size_t nb = 0;
    if (CHECK_RC(st, meter_outbox_fetch(st, 2, &batch, &nb), METER_OK,
                 "fetch 2")) {
        CHECK_EQ_I64(nb, 2, "batch of 2");
        CHECK(nb == 2 && batch[0].outbox_seq == rows[0].outbox_seq &&
              batch[1].outbox_seq == rows[1].outbox_seq,
              "the batch is the head of the outbox");
        const char *ids[3] = { batch[0].id, batch[1].id, "no-such-id" };
        CHECK_RC(st, meter_outbox_ack(st, ids, 3), METER_OK,
                 "ack 2 (+ an unknown id)");
        CHECK_EQ_I64(depth(st), (int64_t)n - 2, "depth down by 2");
        meter_sync_record *next = NULL;
        size_t nn = 0;
        if (meter_outbox_fetch(st, 1, &next, &nn) == METER_OK && nn == 1)
            CHECK_EQ_I64(next[0].outbox_seq, rows[2].outbox_seq,
                         "the next fetch starts after the acked ones");
        meter_free(next);
        meter_free(batch);
    }

    /* quarantine and release */
    const char *qid = rows[n - 1].id;
    CHECK_RC(st, meter_outbox_quarantine(st, qid, "ledger says: bad record"),
             METER_OK, "quarantine one");
    meter_sync_status ss;
    meter_sync_status_get(st, &ss);
    CHECK(ss.depth == (int64_t)n - 3 && ss.quarantined == 1,
          "depth %" PRId64 ", quarantined %" PRId64, ss.depth, ss.quarantined);
    meter_quarantined *qr = NULL;
    size_t nq = 0;
    if (CHECK_RC(st, meter_outbox_quarantined(st, &qr, &nq), METER_OK,
                 "list quarantined")) {
        CHECK(nq == 1 && !strcmp(qr[0].id, qid) &&
              !strcmp(qr[0].reason, "ledger says: bad record"),
              "quarantined with its reason");
        meter_free(qr);
    }
    c = tally(st, NULL, NULL);
    CHECK_EQ_I64(c.usage + c.deduction + c.settlement + c.pack_event,
                 (int64_t)n - 3, "fetch skips the quarantined record");
    int released = -1;
    CHECK_RC(st, meter_outbox_release(st, qid, &released), METER_OK, "release");
    CHECK_EQ_INT(released, 1, "one released");
    CHECK_EQ_I64(depth(st), (int64_t)n - 2, "back in the queue");
    meter_free(rows);

    /* daily settlement queues a settlement and its deductions */
    CHECK_RC(st, meter_setting_set(st, "settlement", "daily"), METER_OK,
             "daily");
    mt_add_pack(st, "R", METER_CLASS_GENERAL, 10, 0);
    int64_t before = depth(st);
    mt_record(st, "ob2", METER_CLASS_GENERAL, "h264", 640, 480, S(30), NULL);
    CHECK_EQ_I64(depth(st), before + 1, "daily record: only the usage queued");
    tap_set_now("2026-06-16T01:00:00Z");
    meter_settle_result sr;
    CHECK_RC(st, meter_settle(st, &sr), METER_OK, "settle");
    c = tally(st, NULL, NULL);
    CHECK_EQ_INT(c.settlement, 1, "settlement queued");
    CHECK_EQ_I64(depth(st), before + 3, "settlement + its deduction queued");

    /* packs assigned by the ledger */
    meter_remote_pack rp;
    memset(&rp, 0, sizeof rp);
    snprintf(rp.id, sizeof rp.id, "L1");
    rp.type = METER_CLASS_GENERAL;
    rp.total_us = 5 * US_PER_MIN;
    rp.start = tap_utc(2026, 6, 10, 0, 0, 0);
    rp.end = tap_utc(2027, 6, 10, 0, 0, 0);
    CHECK_RC(st, meter_pack_apply(st, &rp), METER_OK, "apply a new pack");
    meter_pack p = mt_pack(st, "L1");
    CHECK(p.total_us == rp.total_us && p.remaining_us == rp.total_us &&
          p.start == rp.start && p.end == rp.end, "applied pack as assigned");
    CHECK_RC(st, meter_pack_apply(st, &rp), METER_OK, "apply again: no-op");
    rp.frozen = 1;
    CHECK_RC(st, meter_pack_apply(st, &rp), METER_OK, "apply a freeze");
    CHECK_EQ_STR(mt_pack(st, "L1").status, "frozen", "L1 frozen");
    meter_remote_pack bad = rp;
    bad.total_us = 6 * US_PER_MIN;
    CHECK_RC(st, meter_pack_apply(st, &bad), METER_EREFUSED,
             "a different total is a conflict");
    CHECK_EQ_I64(mt_pack(st, "L1").total_us, 5 * US_PER_MIN, "total unchanged");
    rp.frozen = 0;
    CHECK_RC(st, meter_pack_apply(st, &rp), METER_OK, "apply an unfreeze");
    tap_set_now("2026-06-16T02:00:00Z");
    CHECK_RC(st, meter_setting_set(st, "settlement", "realtime"), METER_OK,
             "realtime");
    mt_record(st, "ob3", METER_CLASS_GENERAL, "h264", 640, 480, S(30), NULL);
    CHECK_EQ_I64(mt_remaining(st, "L1"), S(270), "L1 (earliest end) paid");
    rp.refunded_at = tap_utc(2026, 6, 16, 2, 0, 0);
    CHECK_RC(st, meter_pack_apply(st, &rp), METER_EREFUSED,
             "a refund of a used pack is refused");
    CHECK(mt_pack(st, "L1").refunded_at == 0, "L1 not refunded");
    CHECK_VERIFY(st, "verify");
    meter_close(st);
    return done_testing();
}
