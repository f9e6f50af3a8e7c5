/*
 * run.c — from libmeter results to output and exit codes (cli.h).
 */
#include "args.h"

int cli_exit_code(int rc)
{
    switch (rc) {
    case METER_OK:         return EXIT_OK;
    case METER_EINVAL:     return EXIT_USAGE;
    case METER_ENOTFOUND:  return EXIT_NOTFOUND;
    case METER_EEXIST:     /* the id is taken: the store refuses it */
    case METER_EREFUSED:
    case METER_ENOMINUTES: return EXIT_REFUSED;
    case METER_EDB:
    case METER_EVERSION:
    case METER_EFOREIGN:
    case METER_EBUSY:      return EXIT_DB;
    default:               return EXIT_FAIL;  /* ENOMEM, EIO, EFINALIZED */
    }
}

int cli_open(const struct cli *c, unsigned flags, meter_store **out)
{
    char err[METER_ERRMAX] = "";
    int rc = meter_open(c->db, flags, out, err);
    if (rc != METER_OK) {
        *out = NULL;
        cli_error("%s", err[0] ? err : meter_strerror(rc));
        return cli_exit_code(rc);
    }
    return EXIT_OK;
}

int cli_fail(meter_store *st, int rc)
{
    const char *msg = st ? meter_errmsg(st) : "";
    cli_error("%s", msg[0] ? msg : meter_strerror(rc));
    meter_close(st);
    return cli_exit_code(rc);
}

int cli_finish(const struct cli *c, meter_store *st, out_table *t, int single)
{
    meter_close(st);   /* its work is done; printing needs no store */
    int rc = out_print(t, c->format, single, stdout);
    out_free(t);
    if (rc != 0) {
        cli_error("cannot write the output");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}
