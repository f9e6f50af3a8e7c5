/*
 * output.h — meterctl's result writer: one row model, three formats.
 *
 * A command describes its columns once (JSON/CSV key, table title, kind),
 * appends rows cell by cell, and out_print() renders them as
 *   table  aligned columns like the console (numbers right-aligned, minutes
 *          with 3 decimals, times in ISO 8601 UTC, "-" for none); a single
 *          item prints as "Title: value" lines;
 *   json   an array of objects (an object for a single item), snake_case
 *          keys; every minutes column becomes two keys, the exact integer
 *          "<key>_us" and the display string "<key>_min";
 *   csv    a header of keys, then one line per row (RFC 4180 quoting;
 *          minutes as "<key>_us" and "<key>_min" columns).
 * Memory exhaustion is fatal (message and exit 1): a CLI has no better
 * recovery, and it keeps every caller free of error plumbing.
 */
#ifndef METERCTL_OUTPUT_H
#define METERCTL_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum out_format { OUT_TABLE = 0, OUT_JSON, OUT_CSV } out_format;

/* "table" | "json" | "csv"; returns -1 for anything else. */
int out_format_parse(const char *s, out_format *out);

typedef enum out_kind {
    OUT_STR,    /* text; NULL is none                               */
    OUT_INT,    /* integer                                          */
    OUT_MIN,    /* pack-µs: "<key>_us" + "<key>_min", table minutes */
    OUT_TIME,   /* epoch ms; 0 is none                              */
    OUT_BOOL,   /* 0/1: json true/false, csv true/false, table yes/no */
} out_kind;

typedef struct out_col {
    const char *key;    /* snake_case JSON/CSV name; NULL: tables only */
    const char *title;  /* table title; NULL keeps the column out of tables */
    out_kind kind;
} out_col;

typedef struct out_table out_table;

out_table *out_new(const out_col *cols, size_t ncols);
void out_free(out_table *t);

/* Append the next cell of the current row, in column order; a row is
 * complete after its last column. */
void out_str(out_table *t, const char *s);
void out_int(out_table *t, int64_t v);
void out_min(out_table *t, int64_t us);
void out_time(out_table *t, int64_t ms);
void out_bool(out_table *t, int v);
void out_null(out_table *t);

/* Renders every row.  single: the table holds one item (an object in
 * JSON, "Title: value" lines in a table).  Returns 0, or -1 when writing
 * to f failed. */
int out_print(const out_table *t, out_format fmt, int single, FILE *f);

/* Allocation helpers that exit on failure (see above). */
void *out_xmalloc(size_t n);
char *out_xstrdup(const char *s);

#endif /* METERCTL_OUTPUT_H */
