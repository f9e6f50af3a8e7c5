/*
 * main.c — meterctl's entry: global options, command dispatch, help.
 *
 *   meterctl [--db PATH] [--format table|json|csv] COMMAND [SUBCOMMAND] [ARGS]
 *
 * Global options come before the command; each command parses its own
 * options (cmd_*.c).  The exit code comes from the command (cli.h).
 */
#include <stdlib.h>
#include <string.h>

#include "args.h"

static void print_usage(FILE *f)
{
    fprintf(f,
        "Usage: meterctl [--db PATH] [--format table|json|csv] COMMAND [ARGS]\n"
        "       meterctl COMMAND --help   (or: meterctl help COMMAND)\n"
        "       meterctl --help | --version\n"
        "\n"
        "Administers an ffmeter database: resource packs, the usage ledger,\n"
        "the rate table and settings.\n"
        "\n"
        "Global options:\n"
        "  --db PATH       the database (default $METER_DB, else\n"
        "                  /var/lib/ffmeter/meter.db; now %s)\n"
        "  --format FMT    table (default), json or csv\n"
        "  -h, --help      this help\n"
        "  -V, --version   print the version\n"
        "\n"
        "Commands:\n", meter_default_db_path());
    for (const struct cli_cmd *c = cli_commands; c->group; c++) {
        char name[40];
        snprintf(name, sizeof name, "%s%s%s", c->group, c->name ? " " : "",
                 c->name ? c->name : "");
        /* the first line of the help text is the summary */
        int n = (int)strcspn(c->help, "\n");
        fprintf(f, "  %-18s%.*s\n", name, n, c->help);
    }
    fprintf(f,
        "\n"
        "Exit codes: 0 ok; 1 verify found violations, or another failure;\n"
        "2 usage error; 3 not found; 4 refused by a billing rule or the\n"
        "pack's state; 5 database error (I/O, locked, read-only, not an\n"
        "ffmeter database, corrupt, newer version).  See meterctl(1).\n");
}

/* Commands without options of their own: only --help, and min…max words. */
int cli_no_options(const struct cli_cmd *cmd, int argc, char **argv, int min, int max,
                   const char *what)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int o;
    while ((o = args_getopt(argc, argv, opts)) != -1) {
        if (o == 'h') {
            cli_print_help(cmd, stdout);
            return -1;
        }
        return EXIT_USAGE;
    }
    return args_positional(argc, argv, min, max, what);
}

void cli_print_help(const struct cli_cmd *cmd, FILE *f)
{
    fprintf(f, "Usage: meterctl [GLOBAL OPTIONS] %s%s%s %s\n\n%s",
            cmd->group, cmd->name ? " " : "", cmd->name ? cmd->name : "",
            cmd->synopsis, cmd->help);
}

/* Help for a group without a default action ("meterctl pack --help"). */
static void print_group_help(const char *group, FILE *f)
{
    fprintf(f, "Usage: meterctl [GLOBAL OPTIONS] %s SUBCOMMAND [ARGS]\n\n"
               "Subcommands:\n", group);
    for (const struct cli_cmd *c = cli_commands; c->group; c++)
        if (!strcmp(c->group, group) && c->name)
            fprintf(f, "  %s %s %s\n", group, c->name, c->synopsis);
    fprintf(f, "\nmeterctl %s SUBCOMMAND --help describes each.\n", group);
}

/* The group's subcommand names, "add, list, show" (for errors). */
static void group_names(const char *group, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (const struct cli_cmd *c = cli_commands; c->group; c++) {
        if (strcmp(c->group, group) || !c->name) continue;
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", c->name);
    }
}

static const struct cli_cmd *find(const char *group, const char *name)
{
    for (const struct cli_cmd *c = cli_commands; c->group; c++) {
        if (strcmp(c->group, group)) continue;
        if (name ? (c->name && !strcmp(c->name, name)) : !c->name) return c;
    }
    return NULL;
}

static int group_exists(const char *group)
{
    for (const struct cli_cmd *c = cli_commands; c->group; c++)
        if (!strcmp(c->group, group)) return 1;
    return 0;
}

/* Runs cmd with argv[0] replaced by its full name (for messages). */
static int run(const struct cli *cli, const struct cli_cmd *cmd,
               int argc, char **argv)
{
    char name[64];
    snprintf(name, sizeof name, "%s%s%s", cmd->group, cmd->name ? " " : "",
             cmd->name ? cmd->name : "");
    char **args = out_xmalloc((size_t)(argc + 1) * sizeof *args);
    args[0] = name;
    for (int i = 1; i < argc; i++) args[i] = argv[i];
    args[argc] = NULL;
    optind = 0;   /* glibc: start a fresh scan of a new argv */
    int rc = cmd->run(cli, cmd, argc, args);
    free(args);
    return rc;
}

/* "meterctl help [GROUP [NAME]]" */
static int help_command(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stdout);
        return EXIT_OK;
    }
    if (!group_exists(argv[1]))
        return cli_usage_error("help: unknown command '%s'", argv[1]);
    const struct cli_cmd *cmd = find(argv[1], argc > 2 ? argv[2] : NULL);
    if (!cmd && argc > 2)
        return cli_usage_error("help: unknown command '%s %s'", argv[1], argv[2]);
    if (cmd) cli_print_help(cmd, stdout);
    else print_group_help(argv[1], stdout);
    return EXIT_OK;
}

static int dispatch(const struct cli *cli, int argc, char **argv)
{
    char names[128];
    const char *group = argv[0];

    if (!strcmp(group, "help")) return help_command(argc, argv);
    if (!group_exists(group))
        return cli_usage_error("unknown command '%s' (see meterctl --help)", group);

    const struct cli_cmd *cmd = argc > 1 ? find(group, argv[1]) : NULL;
    if (cmd) return run(cli, cmd, argc - 1, argv + 1);

    cmd = find(group, NULL);   /* the group's default action, if any */
    if (cmd) return run(cli, cmd, argc, argv);

    group_names(group, names, sizeof names);
    if (argc < 2) return cli_usage_error("%s: missing subcommand (%s)", group, names);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        print_group_help(group, stdout);
        return EXIT_OK;
    }
    return cli_usage_error("%s: unknown subcommand '%s' (%s)", group, argv[1], names);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "db",      required_argument, NULL, 'd' },
        { "format",  required_argument, NULL, 'f' },
        { "help",    no_argument,       NULL, 'h' },
        { "version", no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct cli cli = { .db = NULL, .format = OUT_TABLE };
    char buf[64];
    int c;

    opterr = 0;   /* args.c prints one-line errors itself */
    argv[0] = "meterctl";
    /* '+': stop at the command; its options are its own */
    while ((c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
        /* after an error optind is past the offending word */
        const char *word = optind > 0 && optind <= argc && argv[optind - 1]
                         ? argv[optind - 1] : "";
        switch (c) {
        case 'd':
            if (!optarg[0]) return cli_usage_error("--db: empty path");
            cli.db = optarg;
            break;
        case 'f':
            if (out_format_parse(optarg, &cli.format) != 0)
                return cli_usage_error("--format: unknown format '%s' "
                                       "(table, json or csv)", optarg);
            break;
        case 'h':
            print_usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("meterctl %s (libmeter schema %d)\n", METER_VERSION_STRING,
                   meter_schema_version());
            return EXIT_OK;
        case ':':
            return cli_usage_error("option '%s' needs a value",
                                   args_option_word(word, buf));
        default:
            if (optopt && strncmp(word, "--", 2) != 0)
                return cli_usage_error("unknown option '-%c' (see meterctl --help)",
                                       optopt);
            return cli_usage_error("unknown option '%s' (see meterctl --help)",
                                   args_option_word(word, buf));
        }
    }
    if (!cli.db) cli.db = meter_default_db_path();
    if (optind >= argc)
        return cli_usage_error("missing command (see meterctl --help)");
    int rc = dispatch(&cli, argc - optind, argv + optind);
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == EXIT_OK) {
        cli_error("cannot write the output");
        rc = EXIT_FAIL;
    }
    return rc;
}
