/*
 * curltime.c — an LD_PRELOAD shim that times every curl_easy_perform() of
 * the process it is loaded into, for the load tests: `meterctl sync` does
 * not print how long its requests take, and the ledger's own histogram
 * (/metrics) mixes every endpoint in coarse buckets.  Observing only; the
 * request itself is left exactly as meterctl made it.
 *
 * With $LOAD_TIMES set, each request appends one line to that file:
 *
 *     PATH STATUS CURLCODE SECONDS
 *
 * PATH the URL's path (/v1/usage/batch, /v1/nodes/N/packs), STATUS the
 * HTTP status (0 when none came back), CURLCODE libcurl's result, SECONDS
 * the wall time of the call on the monotonic clock (connection set-up,
 * sending, the ledger's work, the answer: meterctl opens a new connection
 * per request).  One write(2) per line on an O_APPEND descriptor.
 * Not part of any shipped program.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* RTLD_NEXT */
#endif
#include <curl/curl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The path of an URL: from the first '/' after "scheme://host". */
static const char *url_path(const char *url)
{
    const char *p = url ? strstr(url, "://") : NULL;
    p = p ? strchr(p + 3, '/') : NULL;
    return p ? p : "?";
}

CURLcode curl_easy_perform(CURL *curl)
{
    static CURLcode (*real)(CURL *);
    if (!real)
        real = (CURLcode (*)(CURL *))dlsym(RTLD_NEXT, "curl_easy_perform");
    if (!real)
        return CURLE_FAILED_INIT;

    double t0 = seconds_now();
    CURLcode cc = real(curl);
    double dt = seconds_now() - t0;

    const char *file = getenv("LOAD_TIMES");
    if (!file || !*file)
        return cc;
    long status = 0;
    char *url = NULL;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &url);
    char line[1024];
    int n = snprintf(line, sizeof line, "%s %ld %d %.6f\n", url_path(url), status, (int)cc, dt);
    if (n > 0 && (size_t)n < sizeof line) {
        int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            ssize_t w = write(fd, line, (size_t)n);
            (void)w;
            close(fd);
        }
    }
    return cc;
}
