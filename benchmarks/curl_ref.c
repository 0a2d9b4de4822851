/* curl_ref: the C libcurl reference client of the benchmark harness.
 *
 * Drives libcurl's multi socket API on epoll the way a tight load generator would:
 * CURLMOPT_SOCKETFUNCTION keeps curl's sockets in one epoll, CURLMOPT_TIMERFUNCTION's
 * timeout becomes the epoll_wait timeout, and a pool of in_flight easy handles is
 * configured once and re-added as soon as each transfer completes (closed model).
 *
 * Only transfers that complete in the main phase (after the warm-up) are counted. Phase
 * boundaries are sampled at the top of the event loop, together with getrusage(), so the
 * counts, the duration and the CPU cover the same span. One JSON line is printed at exit.
 *
 *   curl_ref URL [--http 1.1|2|2c|3] [--in-flight N] [--connections N] [--warmup S]
 *            [--duration S] [--cacert FILE] [--resolve HOST:PORT:ADDR]... [--timeout-ms MS]
 *   curl_ref --version      (the libcurl it runs with, as JSON)
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>

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
        else die("unknown option");
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
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) die("curl_global_init failed");
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) die("epoll_create1 failed");

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

    CURL **pool = calloc((size_t)o.in_flight, sizeof *pool);
    if (!pool) die("out of memory");
    for (long i = 0; i < o.in_flight; i++) {
        pool[i] = new_easy(&o, http_version, multiplexed);
        curl_multi_add_handle(multi, pool[i]);
    }

    long succeeded = 0, failed = 0, new_connections = 0, version_count[4] = {0, 0, 0, 0};
    CURLcode first_error = CURLE_OK;
    long first_bad_status = 0;
    int running = 0, in_main = 0;
    double t_start = now_s();
    double warm_end_s = t_start + o.warmup_s, main_end_s = warm_end_s + o.duration_s;
    double t_main = 0.0, t_end = 0.0, cpu_main = 0.0, cpu_end = 0.0;
    struct epoll_event events[MAX_EVENTS];

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
        double wake_s = in_main ? main_end_s : warm_end_s;
        if (timer_deadline_s >= 0 && timer_deadline_s < wake_s) wake_s = timer_deadline_s;
        double wait_ms = (wake_s - now) * 1e3;
        int timeout_ms = wait_ms <= 0 ? 0 : (int)wait_ms + 1; /* round up: never spin */

        int n = epoll_wait(epoll_fd, events, MAX_EVENTS, timeout_ms);
        if (n < 0 && errno != EINTR) die("epoll_wait failed");
        for (int i = 0; i < n; i++) {
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
            CURLcode result = msg->data.result;
            if (in_main) {
                long status = 0, version = 0, connects = 0;
                curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
                curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
                curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
                new_connections += connects > 0;
                if (version == CURL_HTTP_VERSION_1_1) version_count[1]++;
                else if (version == CURL_HTTP_VERSION_2_0) version_count[2]++;
                else if (version == CURL_HTTP_VERSION_3) version_count[3]++;
                else version_count[0]++;
                if (result == CURLE_OK && status >= 200 && status < 400) {
                    succeeded++;
                } else {
                    failed++;
                    if (result != CURLE_OK && first_error == CURLE_OK) first_error = result;
                    if (result == CURLE_OK && !first_bad_status) first_bad_status = status;
                }
            }
            curl_multi_remove_handle(multi, easy);
            curl_multi_add_handle(multi, easy);
        }
    }

    printf("{\"succeeded\": %ld, \"failed\": %ld, \"duration_s\": %.6f, \"cpu_s\": %.6f, "
           "\"cpu_s_whole_run\": %.6f, \"warmup_s\": %.6f, \"new_connections\": %ld, "
           "\"version\": {\"other\": %ld, \"1.1\": %ld, \"2\": %ld, \"3\": %ld}, "
           "\"first_error\": ",
           succeeded, failed, t_end - t_main, cpu_end - cpu_main, cpu_end, t_main - t_start,
           new_connections, version_count[0], version_count[1], version_count[2],
           version_count[3]);
    print_json_string(first_error == CURLE_OK ? "" : curl_easy_strerror(first_error));
    printf(", \"first_bad_status\": %ld, ", first_bad_status);
    print_version_fields();
    printf("}\n");
    fflush(stdout);

    /* Drop in-flight transfers without waiting for them. */
    for (long i = 0; i < o.in_flight; i++) {
        curl_multi_remove_handle(multi, pool[i]);
        curl_easy_cleanup(pool[i]);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(o.resolve);
    free(pool);
    curl_global_cleanup();
    return 0;
}
