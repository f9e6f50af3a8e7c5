/*
 * output.c — table, JSON and CSV rendering of meterctl results (output.h).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

struct cell {
    int null;
    int64_t i;     /* OUT_INT, OUT_MIN, OUT_TIME, OUT_BOOL */
    char *s;       /* OUT_STR */
};

struct out_table {
    const out_col *cols;
    size_t ncols;
    struct cell *cells;   /* row-major, nrows * ncols (last row may be partial) */
    size_t ncells, cap;
};

void *out_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("meterctl: out of memory\n", stderr);
        exit(EXIT_FAIL);
    }
    return p;
}

char *out_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(out_xmalloc(n), s, n);
}

int out_format_parse(const char *s, out_format *out)
{
    if (!strcmp(s, "table")) *out = OUT_TABLE;
    else if (!strcmp(s, "json")) *out = OUT_JSON;
    else if (!strcmp(s, "csv")) *out = OUT_CSV;
    else return -1;
    return 0;
}

out_table *out_new(const out_col *cols, size_t ncols)
{
    out_table *t = out_xmalloc(sizeof *t);
    memset(t, 0, sizeof *t);
    t->cols = cols;
    t->ncols = ncols;
    return t;
}

void out_free(out_table *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->ncells; i++) free(t->cells[i].s);
    free(t->cells);
    free(t);
}

static struct cell *next_cell(out_table *t)
{
    if (t->ncells == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        struct cell *c = realloc(t->cells, cap * sizeof *c);
        if (!c) {
            fputs("meterctl: out of memory\n", stderr);
            exit(EXIT_FAIL);
        }
        t->cells = c;
        t->cap = cap;
    }
    struct cell *c = &t->cells[t->ncells++];
    memset(c, 0, sizeof *c);
    return c;
}

void out_str(out_table *t, const char *s)
{
    struct cell *c = next_cell(t);
    if (s) c->s = out_xstrdup(s);
    else c->null = 1;
}

void out_int(out_table *t, int64_t v)  { next_cell(t)->i = v; }
void out_min(out_table *t, int64_t us) { next_cell(t)->i = us; }
void out_bool(out_table *t, int v)     { next_cell(t)->i = !!v; }
void out_null(out_table *t)            { next_cell(t)->null = 1; }

void out_time(out_table *t, int64_t ms)
{
    struct cell *c = next_cell(t);
    c->i = ms;
    c->null = (ms == 0);
}

/* ------------------------------------------------------------ text -- */

/* The cell as display text, in buf or as c->s.  csv selects the CSV
 * spellings: "" for none and true/false (a table shows "-" and yes/no). */
static const char *cell_text(const out_col *col, const struct cell *c,
                             int csv, char buf[64])
{
    if (c->null) return csv ? "" : "-";
    switch (col->kind) {
    case OUT_STR:
        return c->s;
    case OUT_INT:
        snprintf(buf, 64, "%" PRId64, c->i);
        return buf;
    case OUT_MIN:
        meter_format_minutes(c->i, buf);
        return buf;
    case OUT_TIME:
        meter_format_time(c->i, 0, buf);
        return buf;
    case OUT_BOOL:
        return csv ? (c->i ? "true" : "false") : (c->i ? "yes" : "no");
    }
    return "";
}

/* Display width in characters (UTF-8 continuation bytes don't count). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

static int numeric(const out_col *col)
{
    return col->kind == OUT_INT || col->kind == OUT_MIN;
}

static void pad(FILE *f, size_t n)
{
    while (n--) fputc(' ', f);
}

/* Aligned columns: left-aligned text, right-aligned numbers, two spaces
 * between columns, no trailing blanks. */
static void print_table(const out_table *t, FILE *f)
{
    size_t nrows = t->ncells / t->ncols;
    size_t *w = out_xmalloc(t->ncols * sizeof *w);
    size_t last = 0;   /* last shown column: no padding after it */
    char buf[64];

    for (size_t j = 0; j < t->ncols; j++) {
        w[j] = t->cols[j].title ? text_width(t->cols[j].title) : 0;
        if (t->cols[j].title) last = j;
        for (size_t r = 0; r < nrows && t->cols[j].title; r++) {
            size_t cw = text_width(cell_text(&t->cols[j],
                                   &t->cells[r * t->ncols + j], 0, buf));
            if (cw > w[j]) w[j] = cw;
        }
    }
    for (size_t r = 0; r <= nrows; r++) {   /* r == 0: the title line */
        int first = 1;
        for (size_t j = 0; j < t->ncols; j++) {
            const out_col *col = &t->cols[j];
            if (!col->title) continue;
            const char *s = r == 0 ? col->title
                : cell_text(col, &t->cells[(r - 1) * t->ncols + j], 0, buf);
            size_t gap = w[j] - text_width(s);
            if (!first) fputs("  ", f);
            first = 0;
            if (numeric(col)) {
                pad(f, gap);
                fputs(s, f);
            } else {
                fputs(s, f);
                if (j != last) pad(f, gap);
            }
        }
        fputc('\n', f);
    }
    free(w);
}

/* One item as "Title:  value" lines. */
static void print_item(const out_table *t, size_t row, FILE *f)
{
    size_t tw = 0;
    char buf[64];

    for (size_t j = 0; j < t->ncols; j++)
        if (t->cols[j].title && text_width(t->cols[j].title) > tw)
            tw = text_width(t->cols[j].title);
    for (size_t j = 0; j < t->ncols; j++) {
        const out_col *col = &t->cols[j];
        if (!col->title) continue;
        fprintf(f, "%s:", col->title);
        pad(f, tw - text_width(col->title) + 1);
        fprintf(f, "%s\n", cell_text(col, &t->cells[row * t->ncols + j], 0, buf));
    }
}

/* ------------------------------------------------------------- csv -- */

static void csv_field(FILE *f, const char *s)
{
    size_t n = strlen(s);
    int quote = n && (s[0] == ' ' || s[n - 1] == ' ');
    for (const char *p = s; *p && !quote; p++)
        quote = (*p == ',' || *p == '"' || *p == '\n' || *p == '\r');
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static void print_csv(const out_table *t, FILE *f)
{
    size_t nrows = t->ncells / t->ncols;
    char buf[64];

    int first = 1;
    for (size_t j = 0; j < t->ncols; j++) {
        const char *k = t->cols[j].key;
        if (!k) continue;
        if (!first) fputc(',', f);
        first = 0;
        if (t->cols[j].kind == OUT_MIN) fprintf(f, "%s_us,%s_min", k, k);
        else fputs(k, f);
    }
    fputc('\n', f);
    for (size_t r = 0; r < nrows; r++) {
        first = 1;
        for (size_t j = 0; j < t->ncols; j++) {
            const out_col *col = &t->cols[j];
            const struct cell *c = &t->cells[r * t->ncols + j];
            if (!col->key) continue;
            if (!first) fputc(',', f);
            first = 0;
            if (col->kind == OUT_MIN && c->null) {
                fputc(',', f);
            } else if (col->kind == OUT_MIN) {
                fprintf(f, "%" PRId64 ",", c->i);
                meter_format_minutes(c->i, buf);
                fputs(buf, f);
            } else {
                csv_field(f, cell_text(col, c, 1, buf));
            }
        }
        fputc('\n', f);
    }
}

/* ------------------------------------------------------------ json -- */

static json_t *must(json_t *v)
{
    if (!v) {
        fputs("meterctl: out of memory\n", stderr);
        exit(EXIT_FAIL);
    }
    return v;
}

/* A JSON string; bytes that are not valid UTF-8 (jansson refuses them)
 * become '?', so one odd name cannot make the whole output fail. */
static json_t *json_text(const char *s)
{
    json_t *v = json_string(s);
    if (v) return v;
    char *copy = out_xstrdup(s);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    v = must(json_string(copy));
    free(copy);
    return v;
}

static void json_set(json_t *obj, const char *key, json_t *v)
{
    if (json_object_set_new(obj, key, must(v)) != 0) {
        fputs("meterctl: out of memory\n", stderr);
        exit(EXIT_FAIL);
    }
}

static json_t *json_row(const out_table *t, size_t row)
{
    json_t *obj = must(json_object());
    char buf[64], key[128];

    for (size_t j = 0; j < t->ncols; j++) {
        const out_col *col = &t->cols[j];
        const struct cell *c = &t->cells[row * t->ncols + j];
        if (!col->key) continue;
        switch (col->kind) {
        case OUT_MIN:
            snprintf(key, sizeof key, "%s_us", col->key);
            json_set(obj, key, c->null ? json_null()
                                       : json_integer((json_int_t)c->i));
            snprintf(key, sizeof key, "%s_min", col->key);
            meter_format_minutes(c->i, buf);
            json_set(obj, key, c->null ? json_null() : json_string(buf));
            break;
        case OUT_STR:
            json_set(obj, col->key, c->null ? json_null() : json_text(c->s));
            break;
        case OUT_INT:
            json_set(obj, col->key, c->null ? json_null()
                                            : json_integer((json_int_t)c->i));
            break;
        case OUT_TIME:
            if (c->null) {
                json_set(obj, col->key, json_null());
            } else {
                meter_format_time(c->i, 0, buf);
                json_set(obj, col->key, json_string(buf));
            }
            break;
        case OUT_BOOL:
            json_set(obj, col->key, c->null ? json_null() : json_boolean(c->i));
            break;
        }
    }
    return obj;
}

static int print_json(const out_table *t, int single, FILE *f)
{
    size_t nrows = t->ncells / t->ncols;
    json_t *root;

    if (single && nrows == 1) {
        root = json_row(t, 0);
    } else {
        root = must(json_array());
        for (size_t r = 0; r < nrows; r++)
            if (json_array_append_new(root, json_row(t, r)) != 0) {
                fputs("meterctl: out of memory\n", stderr);
                exit(EXIT_FAIL);
            }
    }
    int rc = json_dumpf(root, f, JSON_INDENT(2));
    json_decref(root);
    fputc('\n', f);
    return rc;
}

/* -------------------------------------------------------------------- */

int out_print(const out_table *t, out_format fmt, int single, FILE *f)
{
    size_t nrows = t->ncells / t->ncols;

    switch (fmt) {
    case OUT_JSON:
        if (print_json(t, single, f) != 0) return -1;
        break;
    case OUT_CSV:
        print_csv(t, f);
        break;
    case OUT_TABLE:
        if (single) {
            for (size_t r = 0; r < nrows; r++) {
                if (r) fputc('\n', f);
                print_item(t, r, f);
            }
        } else {
            print_table(t, f);
        }
        break;
    }
    return (fflush(f) != 0 || ferror(f)) ? -1 : 0;
}
