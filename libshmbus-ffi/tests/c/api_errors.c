/* api_errors.c - calls every function of the shmbus C API with NULL and
 * invalid arguments, in the wrong states and from two threads at once, and
 * checks each returned code (and the message shmbus_last_error gives);
 * also walks the successful paths, so that a leak checker run over it
 * (tests/tests/c_api.rs runs it under valgrind) sees every handle and
 * message made and freed.
 *
 * It needs a running shmbusd: the bus is $SHMBUS_BUS, its runtime directory
 * $SHMBUS_RUNTIME_DIR. It creates topics under "capi/" on that bus.
 * Prints "api_errors: N checks passed" and exits 0, or prints each failed
 * check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <shmbus.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int checks = 0;
static int failures = 0;

static void fail_line(int line, const char *what, const char *why) {
    failures++;
    fprintf(stderr, "api_errors.c:%d: %s: %s\n", line, what, why);
}

/* Checks that `got` is `want`; for failures, that the last error says
 * something and that shmbus_strerror knows the code. */
static void check_code(int line, const char *what, shmbus_error_t got, shmbus_error_t want) {
    checks++;
    if (got != want) {
        char why[512];
        snprintf(why, sizeof why, "returned %d (%s), expected %d (%s); last error: %s", (int)got,
                 shmbus_strerror((int)got), (int)want, shmbus_strerror((int)want),
                 shmbus_last_error());
        fail_line(line, what, why);
        return;
    }
    if (want != SHMBUS_OK && strlen(shmbus_last_error()) == 0)
        fail_line(line, what, "failed with an empty last-error message");
}

static void check_true(int line, const char *what, int cond) {
    checks++;
    if (!cond) fail_line(line, what, "is false");
}

#define CHECK(call, want) check_code(__LINE__, #call, (call), (want))
#define CHECK_TRUE(cond) check_true(__LINE__, #cond, (cond))
#define CONTAINS(haystack, needle) (strstr((haystack), (needle)) != NULL)

static const uint64_t MS = 1000000ull;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- shmbus_strerror, shmbus_last_error, the _init functions ---- */

static void test_strings_and_init(void) {
    /* Before any failure on this thread. */
    CHECK_TRUE(shmbus_last_error() != NULL);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "no shmbus call has failed"));

    const char *unknown = shmbus_strerror(-1);
    CHECK_TRUE(unknown != NULL && CONTAINS(unknown, "unknown"));
    CHECK_TRUE(strcmp(shmbus_strerror(SHMBUS_ERR_OTHER + 1), unknown) == 0);
    CHECK_TRUE(strcmp(shmbus_strerror(INT_MAX), unknown) == 0);
    CHECK_TRUE(strcmp(shmbus_strerror(INT_MIN), unknown) == 0);
    for (int code = SHMBUS_OK; code <= SHMBUS_ERR_OTHER; code++) {
        const char *s = shmbus_strerror(code);
        CHECK_TRUE(s != NULL && strlen(s) > 0 && strcmp(s, unknown) != 0);
    }
    CHECK_TRUE(strcmp(shmbus_strerror(SHMBUS_OK), "success") == 0);

    CHECK(shmbus_topic_config_init(NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "shmbus_topic_config_init: config is NULL"));
    shmbus_topic_config_t cfg;
    CHECK(shmbus_topic_config_init(&cfg), SHMBUS_OK);
    CHECK_TRUE(cfg.capacity == 1024 && cfg.max_msg_size == 4096 &&
               cfg.policy == SHMBUS_POLICY_BLOCK);

    CHECK(shmbus_subscribe_options_init(NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    shmbus_subscribe_options_t opts;
    CHECK(shmbus_subscribe_options_init(&opts), SHMBUS_OK);
    CHECK_TRUE(!opts.from_start && opts.wait == SHMBUS_WAIT_SPIN_THEN_PARK);
}

/* ---- the bus ---- */

static shmbus_bus_t *test_bus(const char *name, const char *runtime_dir) {
    shmbus_bus_t *bus = (shmbus_bus_t *)&checks; /* junk: must be reset to NULL */
    CHECK(shmbus_bus_connect(NULL, runtime_dir, &bus), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK_TRUE(bus == NULL);
    CHECK(shmbus_bus_connect(name, runtime_dir, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_bus_connect("bad.name", runtime_dir, &bus), SHMBUS_ERR_INVALID_NAME);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "bad.name"));
    CHECK(shmbus_bus_connect("", runtime_dir, &bus), SHMBUS_ERR_INVALID_NAME);
    CHECK(shmbus_bus_connect("\xff\xfe", runtime_dir, &bus), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_bus_connect(name, "/nonexistent/shmbus-capi", &bus), SHMBUS_ERR_NO_DAEMON);
    CHECK_TRUE(bus == NULL);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "shmbusd --bus"));
    CHECK(shmbus_bus_connect("capi-nobody-serves-this", runtime_dir, &bus),
          SHMBUS_ERR_NO_DAEMON);
    CHECK(shmbus_bus_close(NULL), SHMBUS_ERR_INVALID_ARGUMENT);

    /* The default runtime directory honours $SHMBUS_RUNTIME_DIR. */
    CHECK(shmbus_bus_connect(name, NULL, &bus), SHMBUS_OK);
    CHECK(shmbus_bus_close(bus), SHMBUS_OK);
    bus = NULL;
    CHECK(shmbus_bus_connect(name, runtime_dir, &bus), SHMBUS_OK);
    CHECK_TRUE(bus != NULL);

    shmbus_topic_config_t cfg;
    shmbus_topic_config_init(&cfg);
    CHECK(shmbus_bus_create_topic(NULL, "capi/t", &cfg), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_bus_create_topic(bus, NULL, &cfg), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_bus_create_topic(bus, "capi/t", NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_bus_create_topic(bus, "capi//t", &cfg), SHMBUS_ERR_INVALID_NAME);
    CHECK(shmbus_bus_create_topic(bus, "/capi", &cfg), SHMBUS_ERR_INVALID_NAME);
    cfg.policy = 7;
    CHECK(shmbus_bus_create_topic(bus, "capi/t", &cfg), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "policy 7"));
    shmbus_topic_config_init(&cfg);
    cfg.capacity = 3;
    CHECK(shmbus_bus_create_topic(bus, "capi/t", &cfg), SHMBUS_ERR_INVALID_CONFIG);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "power of two"));
    shmbus_topic_config_init(&cfg);
    cfg.max_msg_size = 0;
    CHECK(shmbus_bus_create_topic(bus, "capi/t", &cfg), SHMBUS_ERR_INVALID_CONFIG);

    CHECK(shmbus_bus_remove_topic(NULL, "capi/t"), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_bus_remove_topic(bus, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_bus_remove_topic(bus, "capi/.."), SHMBUS_ERR_INVALID_NAME);
    CHECK(shmbus_bus_remove_topic(bus, "capi/never-created"), SHMBUS_ERR_NO_SUCH_TOPIC);

    shmbus_topic_stats_t st;
    CHECK(shmbus_bus_topic_stats(NULL, "capi/t", &st), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_bus_topic_stats(bus, NULL, &st), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_bus_topic_stats(bus, "capi/t", NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_bus_topic_stats(bus, "capi/never-created", &st), SHMBUS_ERR_NO_SUCH_TOPIC);
    CHECK(shmbus_bus_topic_stats(bus, "bad topic", &st), SHMBUS_ERR_INVALID_NAME);
    return bus;
}

/* ---- publishers ---- */

static void test_publisher(shmbus_bus_t *bus) {
    shmbus_publisher_t *pub = (shmbus_publisher_t *)&checks;
    CHECK(shmbus_publisher_open(NULL, "capi/pub", &pub), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK_TRUE(pub == NULL);
    CHECK(shmbus_publisher_open(bus, NULL, &pub), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_open(bus, "capi/pub", NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_open(bus, "capi/pub/", &pub), SHMBUS_ERR_INVALID_NAME);
    /* A misaligned pointer is never dereferenced. */
    CHECK(shmbus_publisher_open((const shmbus_bus_t *)((const char *)bus + 1), "capi/pub", &pub),
          SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_open(bus, "capi/pub", &pub), SHMBUS_OK);

    /* A publisher handle is not a bus handle (the kind tag is checked). */
    shmbus_publisher_t *other = NULL;
    CHECK(shmbus_publisher_open((const shmbus_bus_t *)pub, "capi/pub", &other),
          SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "not a live shmbus_bus_t"));
    CHECK(shmbus_publisher_close((shmbus_publisher_t *)bus), SHMBUS_ERR_INVALID_ARGUMENT);

    CHECK(shmbus_publisher_set_wait(NULL, SHMBUS_WAIT_PARK), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_set_wait(pub, 99), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_set_wait(pub, SHMBUS_WAIT_PARK), SHMBUS_OK);

    size_t max = 0;
    CHECK(shmbus_publisher_max_msg_size(NULL, &max), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_max_msg_size(pub, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_max_msg_size(pub, &max), SHMBUS_OK);
    CHECK_TRUE(max == 4096);
    uint32_t subs = 99;
    CHECK(shmbus_publisher_subscriber_count(NULL, &subs), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_subscriber_count(pub, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_subscriber_count(pub, &subs), SHMBUS_OK);
    CHECK_TRUE(subs == 0);

    uint64_t seq = 99;
    CHECK(shmbus_publisher_send(NULL, "x", 1, &seq), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_send(pub, NULL, 5, &seq), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "shmbus_publisher_send: data is NULL but len is 5"));
    CHECK(shmbus_publisher_try_send(NULL, "x", 1, &seq), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_try_send(pub, NULL, 1, &seq), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_send_timeout(NULL, "x", 1, MS, &seq), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_send_timeout(pub, NULL, 1, MS, &seq), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_send(pub, "x", (size_t)-1, &seq), SHMBUS_ERR_INVALID_ARGUMENT);

    /* NULL data with length 0 is the empty message; seq may be NULL. */
    CHECK(shmbus_publisher_send(pub, NULL, 0, &seq), SHMBUS_OK);
    CHECK_TRUE(seq == 0);
    CHECK(shmbus_publisher_try_send(pub, "a", 1, NULL), SHMBUS_OK);
    CHECK(shmbus_publisher_send_timeout(pub, "b", 1, MS, &seq), SHMBUS_OK);
    CHECK_TRUE(seq == 2);

    static char big[4097];
    memset(big, 'x', sizeof big);
    CHECK(shmbus_publisher_send(pub, big, sizeof big, &seq), SHMBUS_ERR_TOO_LARGE);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "4097"));
    CHECK(shmbus_publisher_try_send(pub, big, sizeof big, &seq), SHMBUS_ERR_TOO_LARGE);
    CHECK(shmbus_publisher_send(pub, big, 4096, &seq), SHMBUS_OK);

    /* Loans. */
    void *buf = (void *)&checks;
    CHECK(shmbus_publisher_loan(NULL, 4, &buf), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK_TRUE(buf == NULL);
    CHECK(shmbus_publisher_loan(pub, 4, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_try_loan(NULL, 4, &buf), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_try_loan(pub, 4, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_loan_timeout(NULL, 4, MS, &buf), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_loan_timeout(pub, 4, MS, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_loan(pub, 4097, &buf), SHMBUS_ERR_TOO_LARGE);
    CHECK_TRUE(buf == NULL);
    CHECK(shmbus_publisher_commit(NULL, 0, &seq), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_commit(pub, 0, &seq), SHMBUS_ERR_BAD_STATE);
    CHECK(shmbus_publisher_abandon(NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_abandon(pub), SHMBUS_ERR_BAD_STATE);

    CHECK(shmbus_publisher_loan(pub, 4, &buf), SHMBUS_OK);
    CHECK_TRUE(buf != NULL);
    memcpy(buf, "loan", 4);
    /* While the loan is outstanding, the publisher is busy with it. */
    void *buf2 = NULL;
    CHECK(shmbus_publisher_loan(pub, 4, &buf2), SHMBUS_ERR_BAD_STATE);
    CHECK(shmbus_publisher_try_loan(pub, 4, &buf2), SHMBUS_ERR_BAD_STATE);
    CHECK(shmbus_publisher_send(pub, "x", 1, &seq), SHMBUS_ERR_BAD_STATE);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "commit or abandon"));
    CHECK(shmbus_publisher_set_wait(pub, SHMBUS_WAIT_SPIN), SHMBUS_ERR_BAD_STATE);
    CHECK(shmbus_publisher_subscriber_count(pub, &subs), SHMBUS_ERR_BAD_STATE);
    CHECK(shmbus_publisher_max_msg_size(pub, &max), SHMBUS_OK);
    CHECK(shmbus_publisher_commit(pub, 5, &seq), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_commit(pub, 4, &seq), SHMBUS_OK);
    CHECK_TRUE(seq == 4);
    CHECK(shmbus_publisher_commit(pub, 4, &seq), SHMBUS_ERR_BAD_STATE);

    CHECK(shmbus_publisher_try_loan(pub, 8, &buf), SHMBUS_OK);
    CHECK(shmbus_publisher_abandon(pub), SHMBUS_OK);
    CHECK(shmbus_publisher_loan_timeout(pub, 0, MS, &buf), SHMBUS_OK);
    CHECK(shmbus_publisher_commit(pub, 0, NULL), SHMBUS_OK);
    /* A publisher closed with a loan outstanding abandons it. */
    CHECK(shmbus_publisher_loan(pub, 2, &buf), SHMBUS_OK);

    CHECK(shmbus_publisher_close(NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_close(pub), SHMBUS_OK);
}

/* ---- subscribers ---- */

static void test_subscriber(shmbus_bus_t *bus) {
    shmbus_subscriber_t *sub = (shmbus_subscriber_t *)&checks;
    shmbus_subscribe_options_t opts;
    shmbus_subscribe_options_init(&opts);
    CHECK(shmbus_subscriber_open(NULL, "capi/sub", &opts, &sub), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK_TRUE(sub == NULL);
    CHECK(shmbus_subscriber_open(bus, NULL, &opts, &sub), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_open(bus, "capi/sub", &opts, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_open(bus, "capi/../sub", &opts, &sub), SHMBUS_ERR_INVALID_NAME);
    opts.wait = 9;
    CHECK(shmbus_subscriber_open(bus, "capi/sub", &opts, &sub), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "wait strategy 9"));
    /* NULL options are the defaults. */
    CHECK(shmbus_subscriber_open(bus, "capi/sub", NULL, &sub), SHMBUS_OK);

    shmbus_publisher_t *pub = NULL;
    CHECK(shmbus_publisher_open(bus, "capi/sub", &pub), SHMBUS_OK);
    CHECK(shmbus_subscriber_close((shmbus_subscriber_t *)pub), SHMBUS_ERR_INVALID_ARGUMENT);

    CHECK(shmbus_subscriber_set_wait(NULL, SHMBUS_WAIT_SPIN), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_set_wait(sub, 3), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_set_wait(sub, SHMBUS_WAIT_PARK), SHMBUS_OK);
    size_t max = 0;
    CHECK(shmbus_subscriber_max_msg_size(NULL, &max), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_max_msg_size(sub, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_max_msg_size(sub, &max), SHMBUS_OK);
    CHECK_TRUE(max == 4096);

    shmbus_message_t m;
    CHECK(shmbus_subscriber_recv(NULL, &m), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_recv(sub, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_try_recv(NULL, &m), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_try_recv(sub, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_recv_timeout(NULL, MS, &m), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_recv_timeout(sub, MS, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_recv_ref(NULL, &m), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_recv_ref(sub, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_try_recv_ref(NULL, &m), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_try_recv_ref(sub, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_recv_ref_timeout(NULL, MS, &m), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_recv_ref_timeout(sub, MS, NULL), SHMBUS_ERR_INVALID_ARGUMENT);

    /* Nothing published yet. */
    m.data = (const uint8_t *)"junk";
    CHECK(shmbus_subscriber_try_recv(sub, &m), SHMBUS_ERR_EMPTY);
    CHECK_TRUE(m.data == NULL && m.len == 0 && m.lost == 0);
    CHECK(shmbus_subscriber_try_recv_ref(sub, &m), SHMBUS_ERR_EMPTY);
    CHECK(shmbus_subscriber_recv_timeout(sub, MS, &m), SHMBUS_ERR_TIMEOUT);
    CHECK(shmbus_subscriber_recv_ref_timeout(sub, 0, &m), SHMBUS_ERR_TIMEOUT);

    bool valid = false;
    CHECK(shmbus_subscriber_is_valid(NULL, &valid), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_is_valid(sub, NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_is_valid(sub, &valid), SHMBUS_ERR_BAD_STATE);
    CHECK(shmbus_subscriber_release(NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_release(sub), SHMBUS_ERR_BAD_STATE);

    const char *words[] = {"zero", "one", "two", "three", "four", "five"};
    for (int i = 0; i < 6; i++)
        CHECK(shmbus_publisher_send(pub, words[i], strlen(words[i]), NULL), SHMBUS_OK);

    CHECK(shmbus_subscriber_recv(sub, &m), SHMBUS_OK);
    CHECK_TRUE(m.seq == 0 && m.len == 4 && memcmp(m.data, "zero", 4) == 0 && m.timestamp_ns > 0);
    CHECK(shmbus_subscriber_try_recv(sub, &m), SHMBUS_OK);
    CHECK_TRUE(m.seq == 1 && m.len == 3 && memcmp(m.data, "one", 3) == 0);
    CHECK(shmbus_subscriber_recv_timeout(sub, 1000 * MS, &m), SHMBUS_OK);
    CHECK_TRUE(m.seq == 2 && memcmp(m.data, "two", 3) == 0);

    CHECK(shmbus_subscriber_recv_ref(sub, &m), SHMBUS_OK);
    CHECK_TRUE(m.seq == 3 && m.len == 5 && memcmp(m.data, "three", 5) == 0);
    CHECK(shmbus_subscriber_is_valid(sub, &valid), SHMBUS_OK);
    CHECK_TRUE(valid);
    CHECK(shmbus_subscriber_set_wait(sub, SHMBUS_WAIT_SPIN), SHMBUS_ERR_BAD_STATE);
    CHECK(shmbus_subscriber_release(sub), SHMBUS_OK);
    CHECK(shmbus_subscriber_release(sub), SHMBUS_ERR_BAD_STATE);
    /* The next receive releases a message held in place. */
    CHECK(shmbus_subscriber_try_recv_ref(sub, &m), SHMBUS_OK);
    CHECK_TRUE(m.seq == 4 && memcmp(m.data, "four", 4) == 0);
    CHECK(shmbus_subscriber_recv_ref_timeout(sub, 1000 * MS, &m), SHMBUS_OK);
    CHECK_TRUE(m.seq == 5 && memcmp(m.data, "five", 4) == 0);
    CHECK(shmbus_subscriber_try_recv(sub, &m), SHMBUS_ERR_EMPTY);
    CHECK(shmbus_subscriber_is_valid(sub, &valid), SHMBUS_ERR_BAD_STATE);

    /* A subscriber closed while holding a message in place consumes it. */
    CHECK(shmbus_publisher_send(pub, "held", 4, NULL), SHMBUS_OK);
    CHECK(shmbus_subscriber_recv_ref(sub, &m), SHMBUS_OK);
    CHECK(shmbus_subscriber_close(NULL), SHMBUS_ERR_INVALID_ARGUMENT);
    CHECK(shmbus_subscriber_close(sub), SHMBUS_OK);

    /* History for late joiners. */
    shmbus_subscribe_options_init(&opts);
    opts.from_start = true;
    CHECK(shmbus_subscriber_open(bus, "capi/sub", &opts, &sub), SHMBUS_OK);
    CHECK(shmbus_subscriber_try_recv(sub, &m), SHMBUS_OK);
    CHECK_TRUE(m.seq == 0 && memcmp(m.data, "zero", 4) == 0);
    CHECK(shmbus_subscriber_close(sub), SHMBUS_OK);
    CHECK(shmbus_publisher_close(pub), SHMBUS_OK);

    shmbus_topic_stats_t st;
    CHECK(shmbus_bus_topic_stats(bus, "capi/sub", &st), SHMBUS_OK);
    CHECK_TRUE(st.published == 7 && st.capacity == 1024 && st.subscribers == 0 && !st.closed);
}

/* ---- full rings, lost messages, closed topics ---- */

static void test_flow(shmbus_bus_t *bus) {
    shmbus_topic_config_t cfg;
    shmbus_topic_config_init(&cfg);
    cfg.capacity = 2;
    cfg.max_msg_size = 64;
    CHECK(shmbus_bus_create_topic(bus, "capi/full", &cfg), SHMBUS_OK);
    /* Again with the same settings: fine; with others: refused. */
    CHECK(shmbus_bus_create_topic(bus, "capi/full", &cfg), SHMBUS_OK);
    cfg.capacity = 4;
    CHECK(shmbus_bus_create_topic(bus, "capi/full", &cfg), SHMBUS_ERR_DAEMON);

    shmbus_subscriber_t *sub = NULL;
    shmbus_publisher_t *pub = NULL;
    CHECK(shmbus_subscriber_open(bus, "capi/full", NULL, &sub), SHMBUS_OK);
    CHECK(shmbus_publisher_open(bus, "capi/full", &pub), SHMBUS_OK);
    uint32_t subs = 0;
    CHECK(shmbus_publisher_subscriber_count(pub, &subs), SHMBUS_OK);
    CHECK_TRUE(subs == 1);
    CHECK(shmbus_publisher_try_send(pub, "1", 1, NULL), SHMBUS_OK);
    CHECK(shmbus_publisher_try_send(pub, "2", 1, NULL), SHMBUS_OK);
    CHECK(shmbus_publisher_try_send(pub, "3", 1, NULL), SHMBUS_ERR_FULL);
    CHECK(shmbus_publisher_send_timeout(pub, "3", 1, MS, NULL), SHMBUS_ERR_TIMEOUT);
    void *buf = NULL;
    CHECK(shmbus_publisher_try_loan(pub, 1, &buf), SHMBUS_ERR_FULL);
    CHECK_TRUE(buf == NULL);
    CHECK(shmbus_publisher_loan_timeout(pub, 1, MS, &buf), SHMBUS_ERR_TIMEOUT);
    shmbus_message_t m;
    CHECK(shmbus_subscriber_recv(sub, &m), SHMBUS_OK);
    CHECK(shmbus_publisher_try_send(pub, "3", 1, NULL), SHMBUS_OK);
    shmbus_topic_stats_t st;
    CHECK(shmbus_bus_topic_stats(bus, "capi/full", &st), SHMBUS_OK);
    CHECK_TRUE(st.capacity == 2 && st.max_msg_size == 64 && st.policy == SHMBUS_POLICY_BLOCK);
    CHECK_TRUE(st.publishers == 1 && st.subscribers == 1 && st.published == 3);
    CHECK_TRUE(st.blocked_publishes > 0 && st.max_lag == 2);
    CHECK(shmbus_subscriber_close(sub), SHMBUS_OK);
    CHECK(shmbus_publisher_close(pub), SHMBUS_OK);

    shmbus_topic_config_init(&cfg);
    cfg.capacity = 2;
    cfg.policy = SHMBUS_POLICY_DROP_OLDEST;
    CHECK(shmbus_bus_create_topic(bus, "capi/drop", &cfg), SHMBUS_OK);
    CHECK(shmbus_subscriber_open(bus, "capi/drop", NULL, &sub), SHMBUS_OK);
    CHECK(shmbus_publisher_open(bus, "capi/drop", &pub), SHMBUS_OK);
    for (int i = 0; i < 5; i++) CHECK(shmbus_publisher_try_send(pub, "d", 1, NULL), SHMBUS_OK);
    CHECK(shmbus_subscriber_recv(sub, &m), SHMBUS_ERR_LAGGED);
    CHECK_TRUE(m.lost == 3 && m.data == NULL);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "3 messages"));
    CHECK(shmbus_subscriber_recv(sub, &m), SHMBUS_OK);
    CHECK_TRUE(m.seq == 3 && m.lost == 0);
    for (int i = 0; i < 5; i++) CHECK(shmbus_publisher_try_send(pub, "e", 1, NULL), SHMBUS_OK);
    CHECK(shmbus_subscriber_recv_ref(sub, &m), SHMBUS_ERR_LAGGED);
    CHECK_TRUE(m.lost == 4);
    CHECK(shmbus_bus_topic_stats(bus, "capi/drop", &st), SHMBUS_OK);
    CHECK_TRUE(st.policy == SHMBUS_POLICY_DROP_OLDEST && st.lost == 7);

    /* Removing the topic closes it for everyone attached. */
    CHECK(shmbus_bus_remove_topic(bus, "capi/drop"), SHMBUS_OK);
    /* What is left in the ring is still read, then the end is told. */
    CHECK(shmbus_subscriber_recv(sub, &m), SHMBUS_OK);
    CHECK_TRUE(m.seq == 8);
    CHECK(shmbus_subscriber_recv_ref(sub, &m), SHMBUS_OK);
    CHECK_TRUE(m.seq == 9);
    CHECK(shmbus_subscriber_recv(sub, &m), SHMBUS_ERR_CLOSED);
    CHECK(shmbus_subscriber_try_recv(sub, &m), SHMBUS_ERR_CLOSED);
    CHECK(shmbus_publisher_send(pub, "x", 1, NULL), SHMBUS_ERR_CLOSED);
    CHECK(shmbus_publisher_loan(pub, 1, &buf), SHMBUS_ERR_CLOSED);
    CHECK(shmbus_subscriber_close(sub), SHMBUS_OK);
    CHECK(shmbus_publisher_close(pub), SHMBUS_OK);
}

/* ---- two threads on one handle; per-thread last error ---- */

struct waiter {
    shmbus_subscriber_t *sub;
    shmbus_error_t rc;
    char last_error[256];
};

static void *wait_for_message(void *arg) {
    struct waiter *w = arg;
    shmbus_message_t m;
    w->rc = shmbus_subscriber_recv(w->sub, &m);
    /* Fail on this thread: its last error is its own. */
    shmbus_subscriber_recv(NULL, &m);
    snprintf(w->last_error, sizeof w->last_error, "%s", shmbus_last_error());
    return NULL;
}

static void test_threads(shmbus_bus_t *bus) {
    shmbus_subscriber_t *sub = NULL;
    shmbus_publisher_t *pub = NULL;
    CHECK(shmbus_subscriber_open(bus, "capi/threads", NULL, &sub), SHMBUS_OK);
    CHECK(shmbus_publisher_open(bus, "capi/threads", &pub), SHMBUS_OK);
    CHECK(shmbus_bus_remove_topic(bus, "capi/none"), SHMBUS_ERR_NO_SUCH_TOPIC);

    struct waiter w = {sub, SHMBUS_OK, ""};
    pthread_t t;
    CHECK_TRUE(pthread_create(&t, NULL, wait_for_message, &w) == 0);
    /* Once the other thread is inside recv, this one is refused. */
    shmbus_error_t rc = SHMBUS_OK;
    shmbus_message_t m;
    for (int i = 0; i < 20000; i++) { /* bounded: 20 s */
        rc = shmbus_subscriber_try_recv(sub, &m);
        if (rc == SHMBUS_ERR_BUSY) break;
        sleep_ms(1);
    }
    CHECK(rc, SHMBUS_ERR_BUSY);
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "in use by another thread"));
    CHECK(shmbus_subscriber_close(sub), SHMBUS_ERR_BUSY);
    CHECK(shmbus_publisher_send(pub, "wake", 4, NULL), SHMBUS_OK);
    pthread_join(t, NULL);
    CHECK(w.rc, SHMBUS_OK);
    CHECK_TRUE(CONTAINS(w.last_error, "shmbus_subscriber_recv: subscriber is NULL"));
    CHECK_TRUE(CONTAINS(shmbus_last_error(), "in use by another thread"));

    CHECK(shmbus_subscriber_close(sub), SHMBUS_OK);
    CHECK(shmbus_publisher_close(pub), SHMBUS_OK);
}

int main(void) {
    const char *bus_name = getenv("SHMBUS_BUS");
    const char *runtime_dir = getenv("SHMBUS_RUNTIME_DIR");
    if (bus_name == NULL || runtime_dir == NULL) {
        fprintf(stderr, "api_errors: set SHMBUS_BUS and SHMBUS_RUNTIME_DIR to a running shmbusd's\n");
        return 2;
    }
    test_strings_and_init();
    shmbus_bus_t *bus = test_bus(bus_name, runtime_dir);
    if (bus == NULL) {
        fprintf(stderr, "api_errors: cannot go on without a bus\n");
        return 1;
    }
    test_publisher(bus);
    test_subscriber(bus);
    test_flow(bus);
    test_threads(bus);
    CHECK(shmbus_bus_close(bus), SHMBUS_OK);

    if (failures > 0) {
        fprintf(stderr, "api_errors: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("api_errors: %d checks passed\n", checks);
    return 0;
}
