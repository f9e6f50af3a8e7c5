/*
 * test_lease — farm-mode leases on the node (metering/lease.c): request
 * (one unanswered per account and class), grant (slices as packs, the local
 * expiry requested_at + ttl − min(ttl/5, 30 s), idempotent), renew (expiry
 * moved from the send time, voided and dropped slices frozen), resolve
 * (once), list, burn; the deduction engine on slices: FIFO across slices
 * and own packs, the expiry cut-off, frozen slices skipped, overage when
 * they run out, two accounts apart, the outbox naming the ledger's pack and
 * the lease, verify clean; and ENFORCE in farm mode (policy continue with
 * the ledger unreachable opens, anything else is ENOMINUTES), at open and
 * mid-job.
 *
 * Numbers: general H.264 HD (720p) bills 2 pack-s per output s.
 */
#include "mtest.h"

#define S(x) ((int64_t)(x) * US_PER_S)

static meter_time T0;  /* 2026-06-15T12:00:00Z */

static void at(int64_t ms_after_t0)
{
    tap_set_now_ms(T0 + ms_after_t0);
}

static meter_lease_slice slice(const char *pack, int64_t us, meter_time start, int voided)
{
    meter_lease_slice s;
    memset(&s, 0, sizeof s);
    snprintf(s.pack_id, sizeof s.pack_id, "%s", pack);
    s.granted_us = us;
    s.start = start;
    s.end = start + 365 * MS_PER_DAY;
    s.voided = voided;
    return s;
}

static meter_usage_result use(meter_store *st, const char *job, const char *account,
                              int64_t dur)
{
    meter_usage_in in = mt_in(job, "720p", METER_CLASS_GENERAL, "h264", 1280, 720, dur);
    in.account = account;
    meter_usage_result r;
    memset(&r, 0, sizeof r);
    CHECK_RC(st, meter_record(st, &in, &r), METER_OK, "record %s", job);
    return r;
}

static meter_lease lease_of(meter_store *st, const char *id)
{
    meter_lease *rows = NULL, none;
    size_t n = 0;
    memset(&none, 0, sizeof none);
    if (meter_lease_list(st, NULL, 0, &rows, &n) != METER_OK)
        tap_diag("meter_lease_list: %s", meter_errmsg(st));
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rows[i].id, id)) {
            none = rows[i];
            break;
        }
    meter_free(rows);
    return none;
}

static void request(const char *dir)
{
    const char *db = tap_path(dir, "request.db");
    meter_store *st = mt_open(db);
    at(0);
    meter_lease a, b, c;
    CHECK_RC(st, meter_lease_request(st, "acme", METER_CLASS_GENERAL, S(600), &a), METER_OK,
             "request a lease");
    CHECK_EQ_STR(a.state, "requested", "state requested");
    CHECK_EQ_STR(a.account, "acme", "for acme");
    CHECK_EQ_I64(a.requested_us, S(600), "10 minutes asked");
    CHECK_EQ_I64(a.granted_us, 0, "nothing granted yet");
    CHECK_EQ_I64(a.requested_at, T0, "requested now");
    char *node_id = NULL;
    meter_setting_get(st, "node_id", &node_id);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s-l", node_id ? node_id : "?");
    CHECK(!strncmp(a.id, prefix, strlen(prefix)), "id %s is <node_id>-l<seq>", a.id);
    meter_free(node_id);

    at(5000);
    CHECK_RC(st, meter_lease_request(st, "acme", METER_CLASS_GENERAL, S(1200), &b), METER_OK,
             "request again (a crash, a retry)");
    CHECK_EQ_STR(b.id, a.id, "the unanswered request comes back: same id");
    CHECK_EQ_I64(b.requested_at, T0, "first send time kept");
    CHECK_RC(st, meter_lease_request(st, "acme", METER_CLASS_TSC, S(60), &c), METER_OK,
             "request for tsc");
    CHECK(strcmp(c.id, a.id) != 0, "another class, another lease");
    CHECK_RC(st, meter_lease_request(st, NULL, METER_CLASS_GENERAL, S(60), &c), METER_OK,
             "request for the store's account");
    CHECK_EQ_STR(c.account, "default", "store's account");
    CHECK(strcmp(c.id, a.id) != 0, "another account, another lease");

    CHECK_RC(st, meter_lease_request(st, "acme", METER_CLASS_GENERAL, 0, NULL), METER_EINVAL,
             "0 µs refused");
    CHECK_RC(st, meter_lease_request(st, "a b", METER_CLASS_GENERAL, S(1), NULL), METER_EINVAL,
             "bad account refused");
    CHECK_RC(st, meter_lease_request(st, "acme", (meter_class)7, S(1), NULL), METER_EINVAL,
             "bad class refused");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM leases"), 3, "three leases stored");

    /* refused: resolved, and the next request is a new lease */
    CHECK_RC(st, meter_lease_resolved(st, a.id, "refused", "no minutes"), METER_OK, "refused");
    meter_lease r = lease_of(st, a.id);
    CHECK_EQ_STR(r.state, "refused", "state refused");
    CHECK_EQ_STR(r.reason, "no minutes", "reason kept");
    CHECK_EQ_I64(r.resolved_at, T0 + 5000, "resolved now");
    CHECK_RC(st, meter_lease_request(st, "acme", METER_CLASS_GENERAL, S(600), &b), METER_OK,
             "request after a refusal");
    CHECK(strcmp(b.id, a.id) != 0, "a new id after a refusal");
    CHECK_RC(st, meter_lease_resolved(st, a.id, "released", NULL), METER_OK,
             "resolving again is fine");
    CHECK_EQ_STR(lease_of(st, a.id).state, "refused", "but a lease resolves once");
    CHECK_RC(st, meter_lease_resolved(st, a.id, "gone", NULL), METER_EINVAL, "bad state");
    CHECK_RC(st, meter_lease_resolved(st, "nope-l1", "expired", NULL), METER_ENOTFOUND,
             "unknown lease");
    CHECK_VERIFY(st, "verify clean");
    meter_close(st);
}

static void grant(const char *dir)
{
    const char *db = tap_path(dir, "grant.db");
    meter_store *st = mt_open(db);
    at(0);
    meter_lease l;
    meter_lease_request(st, "acme", METER_CLASS_GENERAL, S(600), &l);
    meter_time early = tap_utc(2026, 1, 1, 0, 0, 0), late = tap_utc(2026, 5, 1, 0, 0, 0);
    meter_lease_slice s[2] = { slice("pk-1", S(400), early, 0), slice("pk-2", S(200), late, 0) };

    /* bad answers change nothing */
    meter_lease_slice bad = slice("pk@1", S(10), early, 0);
    CHECK_RC(st, meter_lease_granted(st, l.id, 300000, 1, &bad, 1), METER_EINVAL,
             "a slice of an invalid pack id");
    bad = slice("pk-1", 0, early, 0);
    CHECK_RC(st, meter_lease_granted(st, l.id, 300000, 1, &bad, 1), METER_EINVAL,
             "a slice of 0 µs");
    meter_lease_slice twice[2] = { s[0], s[0] };
    CHECK_RC(st, meter_lease_granted(st, l.id, 300000, 1, twice, 2), METER_EINVAL,
             "a pack sliced twice");
    CHECK_RC(st, meter_lease_granted(st, l.id, 0, 1, s, 2), METER_EINVAL, "ttl 0");
    CHECK_RC(st, meter_lease_granted(st, l.id, 300000, 1, s, 0), METER_EINVAL, "no slices");
    char long_id[METER_NAME_MAX];
    memset(long_id, 'p', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    bad = slice(long_id, S(1), early, 0);
    CHECK_RC(st, meter_lease_granted(st, l.id, 300000, 1, &bad, 1), METER_EINVAL,
             "a slice id that would not fit");
    CHECK_RC(st, meter_lease_granted(st, "x-l9", 300000, 1, s, 2), METER_ENOTFOUND,
             "unknown lease");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM packs"), 0, "no slice written");
    CHECK_EQ_STR(lease_of(st, l.id).state, "requested", "still requested");

    at(2000);  /* the answer arrives 2 s after the request */
    CHECK_RC(st, meter_lease_granted(st, l.id, 300000, T0 + 999999, s, 2), METER_OK, "granted");
    meter_lease g = lease_of(st, l.id);
    CHECK_EQ_STR(g.state, "open", "open");
    CHECK_EQ_I64(g.granted_us, S(600), "granted 600 s");
    CHECK_EQ_I64(g.remaining_us, S(600), "600 s remaining");
    /* ttl 300 s: margin min(60 s, 30 s) = 30 s, from the request time */
    CHECK_EQ_I64(g.expires_at, T0 + 270000, "expires at requested_at + 270 s");
    char sid[METER_NAME_MAX];
    snprintf(sid, sizeof sid, "pk-1@%s", l.id);
    meter_pack p = mt_pack(st, sid);
    CHECK_EQ_STR(p.account, "acme", "slice in acme");
    CHECK_EQ_INT(p.type, METER_CLASS_GENERAL, "slice of the lease's class");
    CHECK_EQ_I64(p.total_us, S(400), "slice total = granted");
    CHECK_EQ_I64(p.remaining_us, S(400), "slice full");
    CHECK_EQ_I64(p.start, early, "slice starts with its pack");
    CHECK_EQ_I64(p.end, early + 365 * MS_PER_DAY, "slice ends with its pack");
    CHECK_EQ_STR(p.lease_id, l.id, "slice names its lease");
    CHECK_EQ_STR(p.source_id, "pk-1", "slice names its pack");
    CHECK_EQ_I64(p.expires_at, T0 + 270000, "slice expires with the lease");
    CHECK_EQ_STR(p.status, "valid", "slice valid");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM pack_events"), 0,
                 "no pack event for slices");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM outbox"), 0, "nothing queued");

    CHECK_RC(st, meter_lease_granted(st, l.id, 300000, T0 + 999999, s, 2), METER_OK,
             "granted twice (a retried answer)");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM packs"), 2, "still two slices");
    CHECK_EQ_I64(lease_of(st, l.id).expires_at, T0 + 270000, "expiry unchanged");

    CHECK_RC(st, meter_pack_freeze(st, sid), METER_EREFUSED, "a slice cannot be frozen here");
    CHECK_RC(st, meter_pack_refund(st, sid), METER_EREFUSED, "nor refunded");

    /* short ttl: margin a fifth */
    meter_lease l2;
    meter_lease_request(st, "beta", METER_CLASS_GENERAL, S(60), &l2);
    meter_lease_slice one = slice("pk-9", S(60), early, 0);
    CHECK_RC(st, meter_lease_granted(st, l2.id, 100000, 1, &one, 1), METER_OK, "granted");
    CHECK_EQ_I64(lease_of(st, l2.id).expires_at, T0 + 2000 + 80000,
                 "ttl 100 s: margin 20 s");

    /* a resolved lease is not granted */
    meter_lease l3;
    meter_lease_request(st, "gamma", METER_CLASS_GENERAL, S(60), &l3);
    meter_lease_resolved(st, l3.id, "expired", NULL);
    CHECK_RC(st, meter_lease_granted(st, l3.id, 100000, 1, &one, 1), METER_EREFUSED,
             "granting a resolved lease is refused");
    CHECK_VERIFY(st, "verify clean with slices");
    meter_close(st);
}

/* An acme lease of one slice of `us` from a pack starting `start`, granted
 * with ttl 300 s at T0 (local expiry T0 + 270 s); the slice id in sid. */
static meter_lease open_lease(meter_store *st, const char *account, const char *pack,
                              int64_t us, meter_time start, char sid[METER_NAME_MAX])
{
    meter_lease l;
    at(0);
    meter_lease_request(st, account, METER_CLASS_GENERAL, us, &l);
    meter_lease_slice s = slice(pack, us, start, 0);
    if (meter_lease_granted(st, l.id, 300000, T0 + 300000, &s, 1) != METER_OK)
        BAIL("grant %s: %s", l.id, meter_errmsg(st));
    snprintf(sid, METER_NAME_MAX, "%s@%s", pack, l.id);
    return l;
}

static void engine(const char *dir)
{
    const char *db = tap_path(dir, "engine.db");
    meter_store *st = mt_open(db);
    at(0);
    /* own pack of acme ending 2027-03-01; slices of packs ending earlier and later */
    CHECK_RC(st, meter_pack_add_account(st, "acme", "own", METER_CLASS_GENERAL, 1,
                                        tap_utc(2026, 3, 1, 0, 0, 0), NULL), METER_OK,
             "acme's own pack");
    mt_add_pack(st, "def", METER_CLASS_GENERAL, 100, tap_utc(2026, 1, 1, 0, 0, 0));
    char s_early[METER_NAME_MAX], s_late[METER_NAME_MAX];
    meter_lease l1 = open_lease(st, "acme", "pk-early", S(30), tap_utc(2026, 2, 1, 0, 0, 0),
                                s_early);
    meter_lease_resolved(st, l1.id, "released", NULL);  /* make room for a second */
    /* (a released lease's slice takes nothing: checked below) */
    at(0);
    meter_lease l2;
    meter_lease_request(st, "acme", METER_CLASS_GENERAL, S(90), &l2);
    meter_lease_slice two[2] = { slice("pk-a", S(30), tap_utc(2026, 2, 1, 0, 0, 0), 0),
                                 slice("pk-z", S(60), tap_utc(2026, 4, 1, 0, 0, 0), 0) };
    CHECK_RC(st, meter_lease_granted(st, l2.id, 300000, T0 + 300000, two, 2), METER_OK,
             "second lease granted");
    snprintf(s_early, sizeof s_early, "pk-a@%s", l2.id);
    snprintf(s_late, sizeof s_late, "pk-z@%s", l2.id);
    char s_released[METER_NAME_MAX];
    snprintf(s_released, sizeof s_released, "pk-early@%s", l1.id);

    /* FIFO by end: pk-a slice (ends 2027-02-01), own (2027-03-01), pk-z (2027-04-01).
     * 40 s of 720p = 80 s: 30 s from pk-a's slice, 50 s from own (60 s) */
    at(1000);
    meter_usage_result r = use(st, "f1", "acme", S(40));
    CHECK_EQ_I64(r.covered_us, S(80), "80 s covered");
    CHECK_EQ_I64(mt_remaining(st, s_released), S(30), "the released lease's slice untouched");
    CHECK_EQ_I64(mt_remaining(st, s_early), 0, "the earliest-ending slice went first");
    CHECK_EQ_I64(mt_remaining(st, "own"), S(10), "then the own pack");
    CHECK_EQ_I64(mt_remaining(st, s_late), S(60), "the later slice not yet");
    CHECK_EQ_I64(mt_remaining(st, "def"), S(6000), "default's pack untouched");
    CHECK_EQ_STR(r.id[0] ? "x" : "", "x", "usage has an id");

    /* 20 s = 40 s: own's 10 s, then 30 s of pk-z's slice */
    at(2000);
    r = use(st, "f2", "acme", S(20));
    CHECK_EQ_I64(r.covered_us, S(40), "40 s covered");
    CHECK_EQ_I64(mt_remaining(st, s_late), S(30), "pk-z slice has 30 s left");

    int64_t avail = -1;
    CHECK_RC(st, meter_available_account(st, "acme", METER_CLASS_GENERAL, &avail), METER_OK,
             "available");
    CHECK_EQ_I64(avail, S(30), "available = the live slice's 30 s");

    /* the expiry cut-off: at expires_at − 1 ms the slice pays, at expires_at not */
    at(270000 - 1);
    r = use(st, "f3", "acme", S(1));
    CHECK_EQ_I64(r.covered_us, S(2), "just before the expiry the slice pays");
    at(270000);
    CHECK_RC(st, meter_available_account(st, "acme", METER_CLASS_GENERAL, &avail), METER_OK,
             "available at expiry");
    CHECK_EQ_I64(avail, 0, "nothing available at the expiry");
    CHECK_EQ_STR(mt_pack(st, s_late).status, "expired", "the slice shows as expired");
    r = use(st, "f4", "acme", S(1));
    CHECK_EQ_I64(r.covered_us, 0, "at the expiry the slice pays nothing");
    CHECK_EQ_I64(r.overage_us, S(2), "overage instead (never default's pack)");
    CHECK_EQ_I64(mt_remaining(st, s_late), S(28), "slice keeps its 28 s");
    CHECK_EQ_I64(mt_remaining(st, "def"), S(6000), "default's pack still untouched");

    /* renewed (sent at T0 + 260 s): alive again until T0 + 260 s + 270 s */
    CHECK_RC(st, meter_lease_renewed(st, l2.id, T0 + 260000, 300000, T0 + 560000, two, 2),
             METER_OK, "renewed");
    CHECK_EQ_I64(mt_pack(st, s_late).expires_at, T0 + 530000, "slice expiry moved");
    CHECK_EQ_I64(lease_of(st, l2.id).expires_at, T0 + 530000, "lease expiry moved");
    r = use(st, "f5", "acme", S(1));
    CHECK_EQ_I64(r.covered_us, S(2), "the renewed slice pays again");
    CHECK_RC(st, meter_lease_renewed(st, l2.id, T0 + 260000, 300000, T0 + 560000, two, 2),
             METER_OK, "renewed twice: same result");
    CHECK_EQ_I64(mt_pack(st, s_late).expires_at, T0 + 530000, "same expiry");

    /* the ledger voids pk-z's slice (pack frozen there): no more deduction */
    at(280000);
    two[1].voided = 1;
    CHECK_RC(st, meter_lease_renewed(st, l2.id, T0 + 275000, 300000, T0 + 575000, two, 2),
             METER_OK, "renewed with a voided slice");
    CHECK_EQ_I64(mt_pack(st, s_late).expires_at, T0 + 280000, "voided: frozen now");
    CHECK_EQ_I64(mt_pack(st, s_early).expires_at, T0 + 545000, "the other slice moved on");
    r = use(st, "f6", "acme", S(1));
    CHECK_EQ_I64(r.covered_us, 0, "a voided slice pays nothing");
    CHECK_EQ_I64(mt_remaining(st, s_late), S(26), "its balance stays");
    meter_lease_slice stranger = slice("pk-unknown", S(1), T0, 0);
    CHECK_RC(st, meter_lease_renewed(st, l2.id, T0 + 275000, 300000, 1, &stranger, 1),
             METER_EREFUSED, "a renewal naming a slice this node never had");
    CHECK_EQ_I64(mt_pack(st, s_early).expires_at, T0 + 545000, "and nothing changed");

    /* the lease list: remaining = Σ slices, unsent = its deductions queued */
    meter_lease x = lease_of(st, l2.id);
    CHECK_EQ_I64(x.remaining_us, S(26), "lease remaining = Σ slices' remaining");
    CHECK_EQ_I64(x.unsent, 4, "four deductions from its slices in the outbox (f1 f2 f3 f5)");

    /* the outbox: slice deductions go out as the ledger's pack + lease */
    meter_sync_record *recs = NULL;
    size_t n = 0;
    CHECK_RC(st, meter_outbox_fetch(st, 1000, &recs, &n), METER_OK, "outbox fetch");
    int from_slices = 0, wrong = 0;
    const char *ids[1000];
    size_t nids = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(recs[i].kind, "deduction"))
            continue;
        wrong += strcmp(recs[i].account, "acme") != 0;
        if (recs[i].lease_id[0]) {
            from_slices++;
            wrong += strcmp(recs[i].lease_id, l2.id) != 0;
            wrong += strcmp(recs[i].pack_id, "pk-a") && strcmp(recs[i].pack_id, "pk-z");
            wrong += strchr(recs[i].pack_id, '@') != NULL;
            wrong += recs[i].before_us - recs[i].amount_us != recs[i].after_us;
            if (!strcmp(recs[i].pack_id, "pk-a") && recs[i].before_us != S(30))
                wrong++;  /* the slice's balance, not the ledger pack's */
            ids[nids++] = recs[i].id;
        } else if (!strcmp(recs[i].pack_id, "own")) {
            wrong += recs[i].lease_id[0] != '\0';
        }
    }
    CHECK_EQ_INT(from_slices, 4, "four slice deductions in the outbox");
    CHECK_EQ_INT(wrong, 0, "each names the ledger's pack, the lease, the slice's balance");
    CHECK_RC(st, meter_outbox_ack(st, ids, nids), METER_OK, "ack them");
    CHECK_EQ_I64(lease_of(st, l2.id).unsent, 0, "nothing unsent after the ack");
    meter_free(recs);

    /* resolved: no more deduction even where renewal had left time */
    CHECK_RC(st, meter_lease_resolved(st, l2.id, "expired", "ttl"), METER_OK, "expired");
    CHECK_EQ_I64(mt_pack(st, s_early).expires_at, T0 + 280000, "slices stop now");
    meter_lease *rows = NULL;
    CHECK_RC(st, meter_lease_list(st, "acme", 1, &rows, &n), METER_OK, "open leases of acme");
    CHECK_EQ_I64((int64_t)n, 0, "none open");
    meter_free(rows);
    CHECK_RC(st, meter_lease_list(st, "acme", 0, &rows, &n), METER_OK, "all leases of acme");
    CHECK_EQ_I64((int64_t)n, 2, "two leases of acme");
    meter_free(rows);
    CHECK_RC(st, meter_lease_renewed(st, l2.id, T0, 300000, 1, two, 2), METER_EREFUSED,
             "a resolved lease is not renewed");

    /* two accounts never touch each other's slices */
    char s_beta[METER_NAME_MAX];
    at(280000);
    meter_lease lb;
    meter_lease_request(st, "beta", METER_CLASS_GENERAL, S(100), &lb);
    meter_lease_slice bs = slice("pk-b", S(100), tap_utc(2026, 1, 1, 0, 0, 0), 0);
    CHECK_RC(st, meter_lease_granted(st, lb.id, 300000, 1, &bs, 1), METER_OK, "beta's lease");
    snprintf(s_beta, sizeof s_beta, "pk-b@%s", lb.id);
    r = use(st, "f7", "acme", S(5));
    CHECK_EQ_I64(r.overage_us, S(10), "acme without minutes: overage, not beta's slice");
    CHECK_EQ_I64(mt_remaining(st, s_beta), S(100), "beta's slice untouched");
    r = use(st, "f8", "beta", S(5));
    CHECK_EQ_I64(r.covered_us, S(10), "beta's usage from beta's slice");
    r = use(st, "f9", NULL, S(5));
    CHECK_EQ_I64(r.covered_us, S(10), "default's usage from def");
    CHECK_EQ_I64(mt_remaining(st, s_beta), S(90), "beta's slice lost only beta's 10 s");
    /* beyond the slice: split, the rest overage */
    r = use(st, "f10", "beta", S(50));
    CHECK_EQ_I64(r.covered_us, S(90), "beta's slice runs out");
    CHECK_EQ_I64(r.overage_us, S(10), "then overage");

    /* the burn of the last 10 minutes: acme billed 80+40+2+2+2+2+10 s
     * ([now − window, now): 1 ms on, so f6 and f7 are in) */
    at(280001);
    int64_t burn = -1;
    CHECK_RC(st, meter_burn(st, "acme", METER_CLASS_GENERAL, 600000, &burn), METER_OK, "burn");
    CHECK_EQ_I64(burn, S(138), "acme's burn over 10 minutes");
    CHECK_RC(st, meter_burn(st, "acme", METER_CLASS_GENERAL, 1000, &burn), METER_OK,
             "burn over 1 s");
    CHECK_EQ_I64(burn, S(12), "only f6 and f7 in the last second");
    CHECK_RC(st, meter_burn(st, "acme", METER_CLASS_TSC, 600000, &burn), METER_OK, "tsc burn");
    CHECK_EQ_I64(burn, 0, "no tsc burn");
    CHECK_RC(st, meter_burn(st, "acme", METER_CLASS_GENERAL, 0, &burn), METER_EINVAL,
             "window 0 refused");

    CHECK_VERIFY(st, "verify clean: slices, FIFO, expiry, two accounts");
    meter_close(st);

    /* verify catches a slice moved to another account */
    mt_sql(db, "UPDATE packs SET account = 'gamma' WHERE lease_id IS NOT NULL AND"
               " source_id = 'pk-b'");
    st = mt_open(db);
    CHECK(mt_verify(st) >= 2, "verify reports the slice's account against lease and usage");
    meter_close(st);
}

/* ENFORCE in farm mode, at open and mid-job. */
static int try_open(const char *db, const char *account, meter_session **s, char *err)
{
    meter_session_opts o = { .db = db, .job = "enf", .output = account,
                             .cls = METER_CLASS_GENERAL, .codec = "h264",
                             .flags = METER_SESSION_ENFORCE, .account = account };
    *s = NULL;
    return meter_session_open(&o, s, err);
}

static void enforce(const char *dir)
{
    const char *db = tap_path(dir, "enforce.db");
    meter_store *st = mt_open(db);
    at(0);
    mt_add_pack(st, "def", METER_CLASS_GENERAL, 10, tap_utc(2026, 1, 1, 0, 0, 0));
    char err[METER_ERRMAX];
    meter_session *s;

    /* standalone: no minutes is ENOMINUTES, whatever sync says */
    meter_sync_note(st, "connection refused");
    CHECK_RC_ERR(err, try_open(db, "acme", &s, err), METER_ENOMINUTES,
                 "standalone, acme without packs: refused");
    CHECK_RC_ERR(err, try_open(db, "default", &s, err), METER_OK, "default has minutes");
    meter_session_finalize(s, 0, NULL);
    meter_session_close(s);

    /* farm mode, continue, ledger unreachable: opens */
    CHECK_RC(st, meter_setting_set(st, "lease_accounts", "acme"), METER_OK, "farm mode");
    CHECK_RC_ERR(err, try_open(db, "acme", &s, err), METER_OK,
                 "continue + unreachable: opens without minutes");
    if (s) {
        CHECK_RC_ERR(meter_session_errmsg(s), meter_session_segment(s, 1280, 720, S(60)),
                     METER_OK, "mid-job: runs on without minutes");
        meter_session_summary sum;
        meter_session_finalize(s, 0, &sum);
        CHECK_EQ_I64(sum.overage_us, S(120), "billed as overage, settled by the ledger later");
        meter_session_close(s);
    }
    /* farm mode, continue, ledger reachable: refused */
    meter_sync_note(st, NULL);
    CHECK_RC_ERR(err, try_open(db, "acme", &s, err), METER_ENOMINUTES,
                 "continue + reachable: refused");
    CHECK(strstr(err, "acme") != NULL, "the message names the account: %s", err);
    /* farm mode, stop, ledger unreachable: refused */
    meter_sync_note(st, "timeout");
    CHECK_RC(st, meter_setting_set(st, "lease_policy", "stop"), METER_OK, "policy stop");
    CHECK_RC_ERR(err, try_open(db, "acme", &s, err), METER_ENOMINUTES,
                 "stop + unreachable: refused");

    /* minutes in a slice count: a 60 s slice opens, and the mid-job check
     * stops at 30 s of output (60 s billed) */
    char sid[METER_NAME_MAX];
    open_lease(st, "acme", "pk-1", S(60), tap_utc(2026, 1, 1, 0, 0, 0), sid);
    at(1000);
    CHECK_RC_ERR(err, try_open(db, "acme", &s, err), METER_OK, "a slice's minutes open it");
    if (s) {
        CHECK_RC_ERR(meter_session_errmsg(s), meter_session_segment(s, 1280, 720, S(30)),
                     METER_OK, "30 s (60 s billed) fits");
        CHECK_RC_ERR(meter_session_errmsg(s), meter_session_segment(s, 1280, 720, S(31)),
                     METER_ENOMINUTES, "31 s (62 s billed) does not (policy stop)");
        meter_session_finalize(s, 0, NULL);
        meter_session_close(s);
    }
    /* policy continue + unreachable: the mid-job check lets it run, decided
     * at the open (and at every checkpoint) */
    CHECK_RC(st, meter_setting_set(st, "lease_policy", "continue"), METER_OK, "continue");
    CHECK_RC_ERR(err, try_open(db, "acme", &s, err), METER_OK, "opens");
    if (s) {
        CHECK_RC_ERR(meter_session_errmsg(s), meter_session_segment(s, 1280, 720, S(40)),
                     METER_OK, "unreachable: runs on past the slice");
        meter_sync_note(st, NULL);
        CHECK_RC_ERR(meter_session_errmsg(s), meter_session_checkpoint(s), METER_OK,
                     "checkpoint (the ledger is back)");
        CHECK_RC_ERR(meter_session_errmsg(s), meter_session_segment(s, 1280, 720, S(41)),
                     METER_ENOMINUTES, "reachable again: the check applies");
        meter_session_finalize(s, 0, NULL);
        meter_session_close(s);
    }
    /* a slice's minutes count until its expiry, not at it */
    open_lease(st, "acme", "pk-2", S(60), tap_utc(2026, 1, 1, 0, 0, 0), sid);
    meter_sync_note(st, NULL);
    at(270000 - 1);
    CHECK_RC_ERR(err, try_open(db, "acme", &s, err), METER_OK,
                 "a slice's minutes count just before its expiry");
    meter_session_finalize(s, 0, NULL);
    meter_session_close(s);
    at(270000);
    CHECK_RC_ERR(err, try_open(db, "acme", &s, err), METER_ENOMINUTES,
                 "at its expiry they do not");
    CHECK_VERIFY(st, "verify clean after enforce");
    meter_close(st);
}

/* Review: a usage recorded with a past time (meterctl record --at) must
 * not spend a slice that has stopped on the local clock: the lease is
 * resolved (or expired) at the ledger, whose minutes those are no more. */
static void backdated(const char *dir)
{
    const char *db = tap_path(dir, "backdated.db");
    meter_store *st = mt_open(db);
    char sid[METER_NAME_MAX];
    meter_lease l = open_lease(st, "acme", "pk-b", S(600), tap_utc(2026, 2, 1, 0, 0, 0), sid);
    at(100000);
    CHECK_RC(st, meter_lease_resolved(st, l.id, "released", NULL), METER_OK, "released");
    at(200000);
    meter_usage_in in = mt_in("old", "720p", METER_CLASS_GENERAL, "h264", 1280, 720, S(10));
    in.account = "acme";
    in.at = T0 + 50000;   /* before the release */
    meter_usage_result r;
    memset(&r, 0, sizeof r);
    CHECK_RC(st, meter_record(st, &in, &r), METER_OK, "record a usage dated before the release");
    CHECK_EQ_I64(r.covered_us, 0, "a back-dated usage takes nothing from a stopped slice");
    CHECK_EQ_I64(mt_remaining(st, sid), S(600), "…the released slice untouched");
    /* an open lease's slice still pays a back-dated usage */
    char sid2[METER_NAME_MAX];
    open_lease(st, "acme", "pk-c", S(600), tap_utc(2026, 2, 1, 0, 0, 0), sid2);
    at(1000);
    in.job = "old2";
    in.at = T0 - 3600000;
    CHECK_RC(st, meter_record(st, &in, &r), METER_OK, "record a usage dated an hour ago");
    CHECK_EQ_I64(r.covered_us, S(20), "…an open slice pays it");
    meter_close(st);
}

int main(void)
{
    T0 = tap_utc(2026, 6, 15, 12, 0, 0);
    const char *dir = tap_tmpdir("test_lease");
    request(dir);
    grant(dir);
    engine(dir);
    enforce(dir);
    backdated(dir);
    return done_testing();
}
