// pubsub.cpp - the C++ wrapper (shmbus.hpp) in one program: subscribe to
// TOPIC, publish each MESSAGE on it (alternately copied and written in
// place through a loan), and read each one back (alternately copied and
// read in place). Other subscribers of TOPIC (say `shmbus sub TOPIC`) see
// the messages too.
//
//   usage: pubsub TOPIC MESSAGE...
//
// The bus is $SHMBUS_BUS (default "default"); its daemon's socket is looked
// for in $SHMBUS_RUNTIME_DIR, else the library's default runtime directory.
//
//   build: c++ -std=c++17 pubsub.cpp -o pubsub $(pkg-config --cflags --libs shmbus)
//   exit:  0 every message came back, 1 error, 2 usage
#include <shmbus.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

int main(int argc, char **argv) {
    if (argc < 3) {
        std::cerr << "usage: pubsub TOPIC MESSAGE...\n";
        return 2;
    }
    const char *env_bus = std::getenv("SHMBUS_BUS");
    const std::string bus_name = env_bus && *env_bus ? env_bus : "default";
    const std::string topic = argv[1];

    try {
        shmbus::bus bus(bus_name);
        // Subscribe first: a subscriber sees what is published after it
        // attached.
        shmbus::subscriber sub(bus, topic);
        shmbus::publisher pub(bus, topic);
        std::cout << "publishing " << (argc - 2) << " message(s) on " << topic << " (max "
                  << pub.max_msg_size() << " bytes, " << pub.subscriber_count()
                  << " subscriber(s))\n";

        for (int i = 2; i < argc; i++) {
            const std::string text = argv[i];
            std::uint64_t seq;
            if (i % 2 == 0) {
                seq = pub.send(text);
            } else {
                shmbus::loan slot = pub.borrow(text.size());
                std::memcpy(slot.data(), text.data(), text.size());
                seq = slot.commit();
            }

            auto m = (i % 2 == 0) ? sub.recv_for(std::chrono::seconds(10))
                                  : std::optional<shmbus::message>(sub.recv_ref());
            if (!m) {
                std::cerr << "pubsub: message #" << seq << " did not come back\n";
                return 1;
            }
            std::cout << "received #" << m->seq << ": " << m->view() << "\n";
            if (m->seq != seq || m->view() != text) {
                std::cerr << "pubsub: got #" << m->seq << " '" << m->view() << "', sent #" << seq
                          << " '" << text << "'\n";
                return 1;
            }
        }
        const shmbus_topic_stats_t st = bus.stats(topic);
        std::cout << "topic " << topic << ": " << st.published << " published, "
                  << st.subscribers << " subscriber(s)\n";

        // Failures are exceptions carrying the C code and message.
        try {
            shmbus::publisher bad(bus, "not a topic");
        } catch (const shmbus::error &e) {
            std::cout << "as expected, code " << e.code() << ": " << e.what() << "\n";
        }
    } catch (const shmbus::error &e) {
        std::cerr << "pubsub: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
