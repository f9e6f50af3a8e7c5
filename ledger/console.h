/*
 * console.h — the web console's static files, compiled into the binary
 * (ledger/embed.sh generates the table from the files in ledger/console/).
 */
#ifndef LEDGER_CONSOLE_H
#define LEDGER_CONSOLE_H

#include <stddef.h>

struct console_file {
    const char *name;           /* "index.html", "app.js", … */
    const char *content_type;
    const unsigned char *data;
    size_t size;
};

/* Terminated by an entry with name NULL. */
extern const struct console_file console_files[];

#endif /* LEDGER_CONSOLE_H */
