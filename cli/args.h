/*
 * args.h — command-line parsing shared by meterctl's commands.
 *
 * Every helper that finds a problem prints one line "meterctl: <cmd>:
 * <what is wrong>" on stderr and returns EXIT_USAGE, so a command can write
 *     if ((rc = args_time(cmd, "--from", optarg, &q.from))) return rc;
 * Commands parse every argument before opening the database: a bad command
 * line never touches the file.
 */
#ifndef METERCTL_ARGS_H
#define METERCTL_ARGS_H

#include <getopt.h>
#include <stdint.h>

#include "cli.h"

/* Prints "meterctl: <formatted message>" and returns EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "meterctl: <formatted message>" (any failure). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* getopt_long over a command's words (argv[0] is the command name).
 * Long options only, plus -h; arguments may come in any order.  Returns
 * the option's val, -1 at the end, or '?' after printing why the option is
 * wrong (unknown, missing value, value not wanted).  The caller resets
 * optind to 0 before the first call (main.c does). */
int args_getopt(int argc, char **argv, const struct option *longopts);

/* The option word as typed ("--minutes"), without a "=value" part. */
const char *args_option_word(const char *arg, char buf[64]);

/* The words left after the options (argv[optind…]) must number between
 * min and max; `what` names the missing one ("pack ID"). */
int args_positional(int argc, char **argv, int min, int max, const char *what);

/* A whole decimal number in [min, max]. */
int args_int64(const char *cmd, const char *opt, const char *s,
               int64_t min, int64_t max, int64_t *out);
int args_int(const char *cmd, const char *opt, const char *s,
             int min, int max, int *out);

/* ISO 8601 with a zone, or a bare date (meter_parse_time). */
int args_time(const char *cmd, const char *opt, const char *s, meter_time *out);

/* general | tsc. */
int args_class(const char *cmd, const char *opt, const char *s, meter_class *out);

/* A required option that was not given. */
int args_missing(const char *cmd, const char *opt);

#endif /* METERCTL_ARGS_H */
