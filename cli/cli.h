/*
 * cli.h — what meterctl's files share: the run context, exit codes, the
 * command table and the helpers that turn libmeter results into exits.
 *
 * meterctl is a thin shell over libmeter: it parses arguments, calls one
 * meter.h function per command and prints the result.  Every rule about
 * money (ratios, refund windows, deduction order, limits) lives in libmeter;
 * the CLI only checks what it must to call the API (a number is a number, a
 * time is a time, a class is a class).
 */
#ifndef METERCTL_CLI_H
#define METERCTL_CLI_H

#include <stdio.h>

#include "meter.h"

#include "output.h"

/* Exit codes (documented in meterctl(1)). */
enum cli_exit {
    EXIT_OK       = 0,  /* success                                         */
    EXIT_FAIL     = 1,  /* verify found violations; other failures         */
    EXIT_USAGE    = 2,  /* bad command line or input value                 */
    EXIT_NOTFOUND = 3,  /* no such pack, setting, record                   */
    EXIT_REFUSED  = 4,  /* a billing rule or the store's state refuses it  */
    EXIT_DB       = 5,  /* database error: I/O, locked, read-only, foreign,
                           corrupt, newer version                          */
};

/* Global options, shared by every command. */
struct cli {
    const char *db;        /* --db, else meter_default_db_path() */
    out_format format;     /* --format */
};

/* One (sub)command.  `group` is the first word ("pack"), `name` the second
 * ("add") or NULL for a command that is a single word ("usage") or a
 * group's default action ("rates" alone shows the table).  run() gets
 * argv[0] = the full command name ("pack add") and the words after it, and
 * returns an exit code. */
struct cli_cmd {
    const char *group;
    const char *name;
    int (*run)(const struct cli *c, const struct cli_cmd *cmd,
               int argc, char **argv);
    const char *synopsis;  /* options after the command name */
    const char *help;      /* what it does and what each option means */
};

/* The command table (main.c) and its commands. */
extern const struct cli_cmd cli_commands[];

int cmd_init(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_pack_add(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_pack_list(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_pack_show(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_pack_freeze(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_pack_unfreeze(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_pack_refund(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_record(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_usage(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_jobs(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_settle(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_verify(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_rates(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_rates_set(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_rates_unset(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_config_get(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_config_set(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_reap(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_import_spool(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_lease_list(const struct cli *, const struct cli_cmd *, int, char **);
/* sync (cmd_sync.c) */
int cmd_sync(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_sync_status(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_sync_quarantine(const struct cli *, const struct cli_cmd *, int, char **);
int cmd_sync_release(const struct cli *, const struct cli_cmd *, int, char **);

/* Prints the command's usage and help to `f` (stdout for --help). */
void cli_print_help(const struct cli_cmd *cmd, FILE *f);
/* For a command without options of its own: takes --help (prints the help
 * and returns -1: the caller exits EXIT_OK), refuses any other option, and
 * checks there are min…max words (`what` names them).  0: go on; else the
 * exit code. */
int cli_no_options(const struct cli_cmd *cmd, int argc, char **argv, int min, int max,
                   const char *what);

/* The exit code for a METER_E* code. */
int cli_exit_code(int meter_rc);

/* How query commands open the store: read-write, like every other command,
 * not METER_OPEN_READONLY.  The last connection to a WAL database deletes
 * the -wal and -shm files on close only when it may write; a read-only one
 * leaves them behind, and a query must leave the directory as it was. */
#define CLI_OPEN_QUERY 0u

/* Opens the store at c->db.  flags: 0 for commands that must find an
 * existing database (a typo'd path is an error, not a new empty file),
 * METER_OPEN_CREATE for init.  On failure prints "meterctl: <reason>" and
 * returns the exit code; *out is then NULL. */
int cli_open(const struct cli *c, unsigned flags, meter_store **out);

/* Reports a failed libmeter call on `st` ("meterctl: <meter_errmsg>"),
 * closes the store and returns the exit code for rc. */
int cli_fail(meter_store *st, int rc);

/* Closes the store (may be NULL), prints the result to stdout in the
 * chosen format, frees it and returns EXIT_OK (EXIT_FAIL when stdout
 * cannot be written).  single: see out_print(). */
int cli_finish(const struct cli *c, meter_store *st, out_table *t, int single);

#endif /* METERCTL_CLI_H */
