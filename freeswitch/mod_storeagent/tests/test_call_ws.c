/* sa_call lifecycle without a peer: config validation, a refused connection reported as an error event, ticks
 * that keep the cadence, teardown that leaves no thread or allocation behind (valgrind / LSan check that). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sa_call.h"
#include "sa_ws.h"

typedef struct {
    pthread_mutex_t lock;
    int errors, connects;
    char detail[128];
} events_t;

static void on_event(void *ud, const sa_event_t *ev)
{
    events_t *e = ud;
    pthread_mutex_lock(&e->lock);
    if (ev->kind == SA_EV_ERROR) {
        e->errors++;
        strncpy(e->detail, ev->detail ? ev->detail : "", sizeof(e->detail) - 1);
    }
    if (ev->kind == SA_EV_CONNECT) e->connects++;
    pthread_mutex_unlock(&e->lock);
}

/* A port nothing listens on: bind, read the port, close. */
static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, (struct sockaddr *)&a, sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

static sa_call_config_t config(const char *url, events_t *ev)
{
    sa_call_config_t c = {"call-1", url, "tok", 8000, 8000, SA_DEFAULT_PREBUFFER_MS, SA_DEFAULT_MAX_BUFFER_MS,
                          SA_DEFAULT_STATS_MS, 2, on_event, ev, 0, 0};
    return c;
}

static void rejects_bad_config_naming_the_field(void **state)
{
    (void)state;
    char err[128];
    sa_call_config_t c = config("ws://127.0.0.1:1/", NULL);
    c.ws_rate = 44100;
    assert_null(sa_call_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "rate"));
    c = config("ws://127.0.0.1:1/", NULL);
    c.prebuffer_ms = 100;
    assert_null(sa_call_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "prebuffer_ms"));
    c = config("", NULL);
    assert_null(sa_call_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "url"));
    c = config("ftp://x/", NULL);
    sa_call_t *call = sa_call_new(&c, err, sizeof(err));
    assert_non_null(call); /* the URL is checked when connecting */
    assert_int_equal(sa_call_start(call, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "scheme"));
    sa_call_free(call);
}

static void refused_connection_is_an_error_event_and_ticks_keep_going(void **state)
{
    (void)state;
    events_t ev = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char url[64], err[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/calls/call-1/audio", free_port());
    sa_call_config_t c = config(url, &ev);
    c.call_rate = 16000; /* 16 kHz call, 8 kHz websocket: both resamplers in the path */
    sa_call_t *call = sa_call_new(&c, err, sizeof(err));
    assert_non_null(call);
    assert_int_equal(sa_call_start(call, err, sizeof(err)), 0);
    int16_t pcm[320] = {0}, out[320];
    for (int i = 0; i < 500 && !sa_call_closed(call); i++) { /* up to 10 s on a loaded machine */
        sa_call_feed(call, pcm, 320);
        out[0] = 1;
        assert_int_equal(sa_call_tick(call, out, 320), 0);
        assert_int_equal(out[0], 0);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_true(sa_call_closed(call));
    sa_call_free(call);
    assert_int_equal(ev.errors, 1);
    assert_int_equal(ev.connects, 0);
}

static void free_while_connecting_is_clean(void **state)
{
    (void)state;
    events_t ev = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char err[128];
    /* a non-routable address: the connect hangs until we give up */
    sa_call_config_t c = config("ws://10.255.255.1:9/v1/calls/call-1/audio", &ev);
    sa_call_t *call = sa_call_new(&c, err, sizeof(err));
    assert_int_equal(sa_call_start(call, err, sizeof(err)), 0);
    sa_call_clear(call);
    sa_call_free(call);
    assert_true(ev.errors <= 1);
}

static int threads_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

static void calls_share_one_service_thread(void **state)
{
    (void)state;
    sa_ws_shutdown();
    int base = threads_now();
    assert_true(base > 0);
    events_t ev = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char err[128];
    enum { N = 16 };
    sa_call_t *calls[N];
    for (int i = 0; i < N; i++) { /* connects that hang: all N are live at once */
        sa_call_config_t c = config("ws://10.255.255.1:9/v1/calls/call-1/audio", &ev);
        calls[i] = sa_call_new(&c, err, sizeof(err));
        assert_non_null(calls[i]);
        assert_int_equal(sa_call_start(calls[i], err, sizeof(err)), 0);
    }
    assert_int_equal(threads_now(), base + 1);
    for (int i = 0; i < N; i++) sa_call_free(calls[i]);
    sa_ws_shutdown();
    assert_int_equal(threads_now(), base);
    assert_true(ev.errors <= N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rejects_bad_config_naming_the_field),
        cmocka_unit_test(refused_connection_is_an_error_event_and_ticks_keep_going),
        cmocka_unit_test(free_while_connecting_is_clean),
        cmocka_unit_test(calls_share_one_service_thread),
    };
    int failed = cmocka_run_group_tests_name("call_ws", tests, NULL, NULL);
    sa_ws_shutdown(); /* the shared service thread: after it every destroyed connection is freed (LSan) */
    return failed;
}
