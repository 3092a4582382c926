/* publisher.c - publish each MESSAGE argument as one message on TOPIC.
 *
 *   usage: publisher [--zero-copy] TOPIC MESSAGE...
 *
 * The bus is $SHMBUS_BUS (default "default"); its daemon's socket is looked
 * for in $SHMBUS_RUNTIME_DIR, else the library's default runtime directory.
 * With --zero-copy each message is written straight into the ring (loan,
 * fill, commit) instead of being copied by shmbus_publisher_send.
 *
 *   build: cc publisher.c -o publisher $(pkg-config --cflags --libs shmbus)
 *   exit:  0 all published, 1 error, 2 usage, 3 a full ring did not drain in time
 */
#include <shmbus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a send may wait for a full ring (block topics) to drain. */
#define SEND_TIMEOUT_NS (5ull * 1000 * 1000 * 1000)

static int fail(const char *what, shmbus_error_t rc) {
    fprintf(stderr, "publisher: %s: %s\n", what, shmbus_last_error());
    return rc == SHMBUS_ERR_TIMEOUT ? 3 : 1;
}

/* Zero copy: borrow a slot, write the bytes in place, publish it. */
static shmbus_error_t publish_in_place(shmbus_publisher_t *pub, const char *msg, uint64_t *seq) {
    size_t len = strlen(msg);
    void *buf = NULL;
    shmbus_error_t rc = shmbus_publisher_loan_timeout(pub, len, SEND_TIMEOUT_NS, &buf);
    if (rc != SHMBUS_OK) return rc;
    memcpy(buf, msg, len);
    return shmbus_publisher_commit(pub, len, seq);
}

int main(int argc, char **argv) {
    int zero_copy = 0;
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--zero-copy") == 0) {
        zero_copy = 1;
        first = 2;
    }
    if (argc - first < 2) {
        fprintf(stderr, "usage: publisher [--zero-copy] TOPIC MESSAGE...\n");
        return 2;
    }
    const char *topic = argv[first];
    const char *bus_name = getenv("SHMBUS_BUS");
    if (bus_name == NULL || *bus_name == '\0') bus_name = "default";

    shmbus_bus_t *bus = NULL;
    shmbus_error_t rc = shmbus_bus_connect(bus_name, NULL, &bus);
    if (rc != SHMBUS_OK) return fail("connect", rc);

    shmbus_publisher_t *pub = NULL;
    rc = shmbus_publisher_open(bus, topic, &pub);
    /* The publisher does not need the bus handle once open. */
    shmbus_bus_close(bus);
    if (rc != SHMBUS_OK) return fail("open publisher", rc);

    uint32_t subscribers = 0;
    if (shmbus_publisher_subscriber_count(pub, &subscribers) == SHMBUS_OK)
        fprintf(stderr, "publisher: %u subscriber(s) attached to %s\n", subscribers, topic);

    int status = 0;
    for (int i = first + 1; i < argc; i++) {
        uint64_t seq = 0;
        rc = zero_copy ? publish_in_place(pub, argv[i], &seq)
                       : shmbus_publisher_send_timeout(pub, argv[i], strlen(argv[i]),
                                                       SEND_TIMEOUT_NS, &seq);
        if (rc != SHMBUS_OK) {
            status = fail("publish", rc);
            break;
        }
        printf("published #%llu (%zu bytes) on %s\n", (unsigned long long)seq, strlen(argv[i]),
               topic);
    }
    shmbus_publisher_close(pub);
    return status;
}
