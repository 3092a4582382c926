/* subscriber.c - print the messages of TOPIC, one per line, as they come.
 *
 *   usage: subscriber [--count N] [--timeout-ms MS] [--from-start] [--in-place] TOPIC
 *
 * The bus is $SHMBUS_BUS (default "default"); its daemon's socket is looked
 * for in $SHMBUS_RUNTIME_DIR, else the library's default runtime directory.
 * --count stops after N messages, --timeout-ms bounds the whole wait,
 * --from-start begins with the oldest message still in the ring, and
 * --in-place reads each message in shared memory (zero copy) instead of a
 * copy. Ctrl-C ends it (SIGINT interrupts a wait in progress; one that lands
 * between two waits is seen at the next 250 ms slice), and so does the topic
 * being closed.
 *
 *   build: cc subscriber.c -o subscriber $(pkg-config --cflags --libs shmbus)
 *   exit:  0 done (count reached, closed, Ctrl-C), 1 error, 2 usage,
 *          3 timed out before N messages
 */
#define _POSIX_C_SOURCE 200809L /* sigaction, clock_gettime under -std=c11 */
#include <shmbus.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop = 0;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int usage(void) {
    fprintf(stderr,
            "usage: subscriber [--count N] [--timeout-ms MS] [--from-start] [--in-place] TOPIC\n");
    return 2;
}

int main(int argc, char **argv) {
    long long count = -1, timeout_ms = -1;
    int in_place = 0;
    const char *topic = NULL;
    shmbus_subscribe_options_t opts;
    shmbus_subscribe_options_init(&opts);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            count = atoll(argv[++i]);
        } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            timeout_ms = atoll(argv[++i]);
        } else if (strcmp(argv[i], "--from-start") == 0) {
            opts.from_start = true;
        } else if (strcmp(argv[i], "--in-place") == 0) {
            in_place = 1;
        } else if (argv[i][0] != '-' && topic == NULL) {
            topic = argv[i];
        } else {
            return usage();
        }
    }
    if (topic == NULL) return usage();
    const char *bus_name = getenv("SHMBUS_BUS");
    if (bus_name == NULL || *bus_name == '\0') bus_name = "default";

    /* No SA_RESTART: a signal makes a waiting receive return
     * SHMBUS_ERR_INTERRUPTED, so Ctrl-C ends the program at once. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    shmbus_bus_t *bus = NULL;
    shmbus_error_t rc = shmbus_bus_connect(bus_name, NULL, &bus);
    if (rc != SHMBUS_OK) {
        fprintf(stderr, "subscriber: connect: %s\n", shmbus_last_error());
        return 1;
    }
    shmbus_subscriber_t *sub = NULL;
    rc = shmbus_subscriber_open(bus, topic, &opts, &sub);
    shmbus_bus_close(bus);
    if (rc != SHMBUS_OK) {
        fprintf(stderr, "subscriber: subscribe: %s\n", shmbus_last_error());
        return 1;
    }

    /* Waits are cut into slices, so that a Ctrl-C that lands just before a
     * wait begins (and so cannot interrupt it) is still seen within a slice. */
    const uint64_t slice_ns = 250ull * 1000000ull;
    uint64_t deadline = timeout_ms >= 0 ? now_ns() + (uint64_t)timeout_ms * 1000000ull : 0;
    int status = 0;
    for (long long got = 0; count < 0 || got < count;) {
        if (stop) break;
        uint64_t wait = slice_ns;
        if (timeout_ms >= 0) {
            uint64_t now = now_ns();
            uint64_t left = now < deadline ? deadline - now : 0;
            if (left < wait) wait = left;
        }
        shmbus_message_t msg;
        rc = in_place ? shmbus_subscriber_recv_ref_timeout(sub, wait, &msg)
                      : shmbus_subscriber_recv_timeout(sub, wait, &msg);
        if (rc == SHMBUS_OK) {
            fwrite(msg.data, 1, msg.len, stdout);
            fputc('\n', stdout);
            fflush(stdout);
            if (in_place) {
                /* Read in place on block topics: only a process breaking
                 * the protocol could overwrite the slot while we read it,
                 * and this says so. (On drop-oldest topics the library
                 * hands out a copy checked whole: always valid.) */
                bool valid = true;
                shmbus_subscriber_is_valid(sub, &valid);
                if (!valid) fprintf(stderr, "subscriber: #%llu was overwritten while read\n",
                                    (unsigned long long)msg.seq);
                shmbus_subscriber_release(sub);
            }
            got++;
        } else if (rc == SHMBUS_ERR_LAGGED) {
            fprintf(stderr, "subscriber: lost %llu messages\n", (unsigned long long)msg.lost);
        } else if (rc == SHMBUS_ERR_INTERRUPTED) {
            /* The top of the loop looks at `stop`. */
        } else if (rc == SHMBUS_ERR_CLOSED) {
            break;
        } else if (rc == SHMBUS_ERR_TIMEOUT) {
            if (timeout_ms < 0 || now_ns() < deadline) continue; /* a quiet slice */
            fprintf(stderr, "subscriber: timed out after %lld of %lld messages\n", got, count);
            status = 3;
            break;
        } else {
            fprintf(stderr, "subscriber: receive: %s\n", shmbus_last_error());
            status = 1;
            break;
        }
    }
    shmbus_subscriber_close(sub);
    return status;
}
