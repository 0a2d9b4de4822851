/* curl_ref: the C libcurl reference client of the benchmark harness.
 *
 * Drives libcurl's multi socket API on epoll the way a tight load generator would:
 * CURLMOPT_SOCKETFUNCTION keeps curl's sockets in one epoll, CURLMOPT_TIMERFUNCTION's
 * timeout becomes the epoll_wait timeout, and a pool of in_flight easy handles is
 * configured once and re-added as soon as each transfer completes (closed model).
 *
 * With --rate R (open model) the handles form a free pool instead: request k is due at
 * t0 + k / R (t0: the program's start) and is added to the multi handle as soon as it is due,
 * with a free handle; when none is free it waits for one (late by the cap). Due times are
 * waited for with a timerfd in the same epoll, armed at absolute times, never with epoll's
 * millisecond timeouts, which would send up to 1 ms late. Besides the counts of the closed
 * model it reports the requests sent, the epoll wake-ups and the send lag (send time minus
 * due time) of the main phase. This mirrors rafale's engine at a fixed rate, so the CPU per
 * request of both can be compared at rates where wake-ups, not transfers, dominate.
 *
 * Only transfers that complete in the main phase (after the warm-up) are counted. Phase
 * boundaries are sampled at the top of the event loop, together with getrusage(), so the
 * counts, the duration and the CPU cover the same span. One JSON line is printed at exit.
 *
 *   curl_ref URL [--http 1.1|2|2c|3] [--in-flight N] [--connections N] [--warmup S]
 *            [--duration S] [--cacert FILE] [--resolve HOST:PORT:ADDR]... [--timeout-ms MS]
 *            [--rate R]
 *   curl_ref --version      (the libcurl it runs with, as JSON)
 */
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

static int epoll_fd = -1;
static double timer_deadline_s = -1.0; /* monotonic time curl wants to be called; -1 none */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void die(const char *what) {
    fprintf(stderr, "curl_ref: %s\n", what);
    exit(2);
}

static size_t discard_body(char *data, size_t size, size_t nmemb, void *user) {
    (void)data;
    (void)user;
    return size * nmemb;
}

/* CURLMOPT_SOCKETFUNCTION: mirror what curl wants into the epoll set. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *user, void *socketp) {
    (void)easy;
    (void)user;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL); /* may already be gone: fine */
        return 0;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.data.fd = fd;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev.events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev.events |= EPOLLOUT;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev) != 0) {
        if (errno != ENOENT || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            perror("curl_ref: epoll_ctl");
            return -1;
        }
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: remember when curl wants CURL_SOCKET_TIMEOUT (-1: never). */
static int on_timer(CURLM *multi, long timeout_ms, void *user) {
    (void)multi;
    (void)user;
    timer_deadline_s = timeout_ms < 0 ? -1.0 : now_s() + (double)timeout_ms * 1e-3;
    return 0;
}

struct options {
    const char *url;
    const char *http;
    long in_flight;
    long connections;
    double warmup_s;
    double duration_s;
    long timeout_ms;
    const char *cacert;
    struct curl_slist *resolve;
    double rate_per_s; /* requests per second of the open model; 0: closed model */
};

static void parse_args(int argc, char **argv, struct options *o) {
    o->http = "2";
    o->in_flight = 100;
    o->connections = 1;
    o->warmup_s = 1.0;
    o->duration_s = 5.0;
    o->timeout_ms = 10000;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-') {
            o->url = arg;
            continue;
        }
        if (i + 1 >= argc) die("option without a value");
        const char *value = argv[++i];
        if (!strcmp(arg, "--http")) o->http = value;
        else if (!strcmp(arg, "--in-flight")) o->in_flight = atol(value);
        else if (!strcmp(arg, "--connections")) o->connections = atol(value);
        else if (!strcmp(arg, "--warmup")) o->warmup_s = atof(value);
        else if (!strcmp(arg, "--duration")) o->duration_s = atof(value);
        else if (!strcmp(arg, "--timeout-ms")) o->timeout_ms = atol(value);
        else if (!strcmp(arg, "--cacert")) o->cacert = value;
        else if (!strcmp(arg, "--resolve")) o->resolve = curl_slist_append(o->resolve, value);
        else if (!strcmp(arg, "--rate")) {
            o->rate_per_s = atof(value);
            if (!(o->rate_per_s > 0) || !isfinite(o->rate_per_s)) die("--rate must be > 0");
        } else die("unknown option");
    }
    if (!o->url) die("usage: curl_ref URL [--http 1.1|2|2c|3] [--in-flight N] ...");
    if (o->in_flight < 1 || o->connections < 1 || o->duration_s <= 0) die("bad numbers");
}

static long curl_http_version(const struct options *o) {
    if (!strcmp(o->http, "1.1")) return CURL_HTTP_VERSION_1_1;
    if (!strcmp(o->http, "3")) return CURL_HTTP_VERSION_3ONLY;
    if (!strcmp(o->http, "2c") || !strncmp(o->url, "http://", 7))
        return CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
    if (!strcmp(o->http, "2")) return CURL_HTTP_VERSION_2TLS;
    die("--http must be 1.1, 2, 2c or 3");
    return 0;
}

static CURL *new_easy(const struct options *o, long http_version, int multiplexed) {
    CURL *easy = curl_easy_init();
    if (!easy) die("curl_easy_init failed");
    curl_easy_setopt(easy, CURLOPT_URL, o->url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, http_version);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    if (multiplexed) curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
    if (o->resolve) curl_easy_setopt(easy, CURLOPT_RESOLVE, o->resolve);
    if (o->cacert) curl_easy_setopt(easy, CURLOPT_CAINFO, o->cacert);
    return easy;
}

static void print_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s >= 0x20) putchar(*s);
    }
    putchar('"');
}

/* "libcurl_version": ..., "http3": ..., "curl_version": ... (no braces). */
static void print_version_fields(void) {
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    printf("\"libcurl_version\": ");
    print_json_string(info->version);
    printf(", \"http3\": %s, \"curl_version\": ",
           (info->features & CURL_VERSION_HTTP3) ? "true" : "false");
    print_json_string(curl_version());
}

/* What the main phase counts of the transfers that complete in it, in either model. */
struct counts {
    long succeeded, failed, new_connections, version_count[4];
    CURLcode first_error;
    long first_bad_status;
};

static void count_done(CURL *easy, CURLcode result, struct counts *c) {
    long status = 0, version = 0, connects = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
    c->new_connections += connects > 0;
    if (version == CURL_HTTP_VERSION_1_1) c->version_count[1]++;
    else if (version == CURL_HTTP_VERSION_2_0) c->version_count[2]++;
    else if (version == CURL_HTTP_VERSION_3) c->version_count[3]++;
    else c->version_count[0]++;
    if (result == CURLE_OK && status >= 200 && status < 400) {
        c->succeeded++;
    } else {
        c->failed++;
        if (result != CURLE_OK && c->first_error == CURLE_OK) c->first_error = result;
        if (result == CURLE_OK && !c->first_bad_status) c->first_bad_status = status;
    }
}

/* The open model: request k is due at t0_s + k / rate_per_s, the pool's idle handles wait
 * in free_handles, and the send figures cover the requests sent in the main phase. */
struct pacer {
    double rate_per_s, t0_s;
    long long next_k; /* the next request to send */
    int capped;       /* a due request found no free handle, and the backlog is not sent yet */
    CURL **free_handles;
    long n_free;
    long sent, late, late_by_cap;
    float *lags_us; /* send lag of every request sent in the main phase, microseconds */
    size_t n_lags, lags_size;
};

#define LATE_US 1000.0 /* a send lag above this is late: what a 1 ms timer tick would cost */

static double due_s(const struct pacer *p, long long k) {
    /* From t0 and k, never by adding 1/R to the last due time: no drift, whatever the rate. */
    return p->t0_s + (double)k / p->rate_per_s;
}

/* Add every request that is due to the multi handle, while a handle is free. A due request
 * with no free handle waits for a completion to free one (the loop comes back here right
 * after its completions); it and the requests that fall due behind it until the backlog is
 * sent are late by the cap. */
static void send_due(CURLM *multi, struct pacer *p, int in_main) {
    for (;;) {
        double now = now_s(), due = due_s(p, p->next_k);
        if (now < due) {
            p->capped = 0; /* caught up */
            return;
        }
        if (p->n_free == 0) {
            p->capped = 1;
            return;
        }
        curl_multi_add_handle(multi, p->free_handles[--p->n_free]);
        p->next_k++;
        if (!in_main) continue;
        double lag_us = (now - due) * 1e6;
        p->sent++;
        p->late += lag_us > LATE_US;
        p->late_by_cap += p->capped;
        if (p->n_lags == p->lags_size) {
            p->lags_size = p->lags_size ? 2 * p->lags_size : 4096;
            p->lags_us = realloc(p->lags_us, p->lags_size * sizeof *p->lags_us);
            if (!p->lags_us) die("out of memory");
        }
        p->lags_us[p->n_lags++] = (float)lag_us;
    }
}

static int compare_floats(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The nearest-rank q-quantile of n sorted values; 0 when there are none. */
static double quantile(const float *sorted, size_t n, double q) {
    if (n == 0) return 0.0;
    size_t rank = (size_t)(q * (double)n);
    if ((double)rank < q * (double)n) rank++; /* ceil(q n), at least 1 */
    return sorted[rank > 0 ? rank - 1 : 0];
}

static int timer_fd = -1;
static double timer_armed_s = -1.0; /* when timer_fd fires; -1: disarmed, or fired */

/* Arm timer_fd to fire at monotonic time at_s: absolute, so the time spent getting here
 * does not delay it, and rounded up to the next nanosecond, so that it never fires before
 * at_s (a wake-up a hair early would find nothing due and wake again). Most wake-ups are
 * socket events that leave the next deadline as it was: re-arming to the armed instant is
 * skipped, which saves a system call per wake-up. The kernel's default timer slack (50 us)
 * still applies, as it does to rafale's waits: it is left alone. */
static void arm_timer(double at_s) {
    if (at_s == timer_armed_s) return;
    double ns_f = at_s * 1e9;
    long long ns = (long long)ns_f;
    if ((double)ns < ns_f) ns++;
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    spec.it_value.tv_sec = (time_t)(ns / 1000000000LL);
    spec.it_value.tv_nsec = (long)(ns % 1000000000LL);
    if (timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &spec, NULL) != 0)
        die("timerfd_settime failed");
    timer_armed_s = at_s;
}

/* timer_fd fired: read its expiration count so that it stops being readable. */
static void drain_timer(void) {
    uint64_t expirations;
    if (read(timer_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        die("timerfd read failed");
    timer_armed_s = -1.0;
}

int main(int argc, char **argv) {
    struct options o;
    memset(&o, 0, sizeof o);
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        putchar('{');
        print_version_fields();
        printf("}\n");
        return 0;
    }
    parse_args(argc, argv, &o);
    int open_model = o.rate_per_s > 0;
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) die("curl_global_init failed");
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) die("epoll_create1 failed");
    if (open_model) {
        /* In the same epoll as curl's sockets: one epoll_wait(-1) waits for all of them. */
        timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (timer_fd < 0) die("timerfd_create failed");
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;
        ev.data.fd = timer_fd;
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, timer_fd, &ev) != 0) die("epoll_ctl failed");
    }

    long http_version = curl_http_version(&o);
    int multiplexed = strcmp(o.http, "1.1") != 0;
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, o.connections);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, o.connections);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, o.in_flight > 16 ? o.in_flight : 16L);
    if (multiplexed) {
        long streams = o.in_flight / o.connections;
        curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
        curl_multi_setopt(multi, CURLMOPT_MAX_CONCURRENT_STREAMS, streams > 0 ? streams : 1L);
    }

    struct pacer pacer;
    memset(&pacer, 0, sizeof pacer);
    CURL **pool = calloc((size_t)o.in_flight, sizeof *pool);
    if (open_model) pacer.free_handles = calloc((size_t)o.in_flight, sizeof *pool);
    if (!pool || (open_model && !pacer.free_handles)) die("out of memory");
    for (long i = 0; i < o.in_flight; i++) {
        pool[i] = new_easy(&o, http_version, multiplexed);
        if (open_model) pacer.free_handles[pacer.n_free++] = pool[i]; /* sent when due */
        else curl_multi_add_handle(multi, pool[i]);
    }

    struct counts c;
    memset(&c, 0, sizeof c);
    c.first_error = CURLE_OK;
    long wakeups = 0;
    int running = 0, in_main = 0;
    double t_start = now_s();
    double warm_end_s = t_start + o.warmup_s, main_end_s = warm_end_s + o.duration_s;
    double t_main = 0.0, t_end = 0.0, cpu_main = 0.0, cpu_end = 0.0;
    struct epoll_event events[MAX_EVENTS];
    pacer.rate_per_s = o.rate_per_s;
    pacer.t0_s = t_start;

    for (;;) {
        double now = now_s();
        if (!in_main && now >= warm_end_s) {
            in_main = 1;
            t_main = now;
            cpu_main = cpu_s();
            main_end_s = t_main + o.duration_s; /* the main phase lasts at least duration_s */
        }
        if (now >= main_end_s) {
            t_end = now;
            cpu_end = cpu_s();
            break;
        }
        if (open_model) send_due(multi, &pacer, in_main);
        double wake_s = in_main ? main_end_s : warm_end_s;
        if (timer_deadline_s >= 0 && timer_deadline_s < wake_s) wake_s = timer_deadline_s;

        int n;
        if (!open_model) {
            double wait_ms = (wake_s - now) * 1e3;
            int timeout_ms = wait_ms <= 0 ? 0 : (int)wait_ms + 1; /* round up: never spin */
            n = epoll_wait(epoll_fd, events, MAX_EVENTS, timeout_ms);
            wakeups += in_main;
        } else {
            /* A busy pool has nothing to send when the next request falls due: a completion
             * wakes the loop then, and send_due() sends the backlog. */
            if (pacer.n_free > 0 && due_s(&pacer, pacer.next_k) < wake_s)
                wake_s = due_s(&pacer, pacer.next_k);
            if (wake_s <= now_s()) {
                /* Already due, mostly curl's 0 ms timer after an add: look at the sockets
                 * without waiting (as rafale's engine does), then run it. */
                n = epoll_wait(epoll_fd, events, MAX_EVENTS, 0);
            } else {
                arm_timer(wake_s);
                n = epoll_wait(epoll_fd, events, MAX_EVENTS, -1);
                wakeups += in_main;
            }
        }
        if (n < 0 && errno != EINTR) die("epoll_wait failed");
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == timer_fd) {
                drain_timer(); /* it only woke the loop: what is due is checked below */
                continue;
            }
            int flags = 0;
            if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
            if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
            if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
            curl_multi_socket_action(multi, events[i].data.fd, flags, &running);
        }
        if (timer_deadline_s >= 0 && now_s() >= timer_deadline_s) {
            timer_deadline_s = -1.0;
            curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }

        CURLMsg *msg;
        int queued;
        while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *easy = msg->easy_handle;
            if (in_main) count_done(easy, msg->data.result, &c);
            curl_multi_remove_handle(multi, easy);
            if (open_model) pacer.free_handles[pacer.n_free++] = easy;
            else curl_multi_add_handle(multi, easy);
        }
    }

    printf("{\"succeeded\": %ld, \"failed\": %ld, \"duration_s\": %.6f, \"cpu_s\": %.6f, "
           "\"cpu_s_whole_run\": %.6f, \"warmup_s\": %.6f, \"new_connections\": %ld, "
           "\"version\": {\"other\": %ld, \"1.1\": %ld, \"2\": %ld, \"3\": %ld}, "
           "\"first_error\": ",
           c.succeeded, c.failed, t_end - t_main, cpu_end - cpu_main, cpu_end, t_main - t_start,
           c.new_connections, c.version_count[0], c.version_count[1], c.version_count[2],
           c.version_count[3]);
    print_json_string(c.first_error == CURLE_OK ? "" : curl_easy_strerror(c.first_error));
    printf(", \"first_bad_status\": %ld, \"rate\": %.15g, \"wakeups\": %ld, ", c.first_bad_status,
           o.rate_per_s, wakeups);
    if (open_model) {
        qsort(pacer.lags_us, pacer.n_lags, sizeof *pacer.lags_us, compare_floats);
        printf("\"sent\": %ld, \"send_lag_us_p50\": %.1f, \"send_lag_us_p99\": %.1f, "
               "\"late\": %ld, \"late_by_cap\": %ld, ",
               pacer.sent, quantile(pacer.lags_us, pacer.n_lags, 0.50),
               quantile(pacer.lags_us, pacer.n_lags, 0.99), pacer.late, pacer.late_by_cap);
    }
    print_version_fields();
    printf("}\n");
    fflush(stdout);

    /* Drop in-flight transfers without waiting for them (removing an idle handle is a no-op). */
    for (long i = 0; i < o.in_flight; i++) {
        curl_multi_remove_handle(multi, pool[i]);
        curl_easy_cleanup(pool[i]);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(o.resolve);
    free(pool);
    free(pacer.free_handles);
    free(pacer.lags_us);
    if (timer_fd >= 0) close(timer_fd);
    curl_global_cleanup();
    return 0;
}
