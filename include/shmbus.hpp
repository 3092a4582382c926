// shmbus.hpp - a small RAII wrapper of the shmbus C API (shmbus.h) for C++17.
//
// Handles close themselves; failures throw shmbus::error, which carries the
// C error code and the library's one-line message. Polling and timed calls
// return std::optional instead of throwing for "nothing yet". Thread-safety
// is that of the C handles: a bus may be shared between threads, a
// publisher or subscriber is used by one thread at a time.
//
//   shmbus::bus bus("default");
//   shmbus::publisher pub(bus, "sensors/imu");
//   pub.send("hello");
//   shmbus::subscriber sub(bus, "sensors/imu");
//   shmbus::message m = sub.recv();   // m.str() == "hello" if published after
//
// Link as for C: c++ -std=c++17 app.cpp $(pkg-config --cflags --libs shmbus)
#ifndef SHMBUS_HPP
#define SHMBUS_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "shmbus.h"

namespace shmbus {

/// A failed call: the C code and the library's message.
class error : public std::runtime_error {
public:
    error(shmbus_error_t code, std::uint64_t lost = 0)
        : std::runtime_error(shmbus_last_error()), code_(code), lost_(lost) {}
    /// The C error code.
    shmbus_error_t code() const noexcept { return code_; }
    /// Messages lost, when code() is SHMBUS_ERR_LAGGED.
    std::uint64_t lost() const noexcept { return lost_; }

private:
    shmbus_error_t code_;
    std::uint64_t lost_;
};

namespace detail {
inline void check(shmbus_error_t code) {
    if (code != SHMBUS_OK) throw error(code);
}
inline std::uint64_t nanos(std::chrono::nanoseconds d) {
    return d.count() < 0 ? 0 : static_cast<std::uint64_t>(d.count());
}
}  // namespace detail

/// A received message; its bytes stay valid until the next receive on the
/// same subscriber.
struct message {
    std::uint64_t seq;
    std::uint64_t timestamp_ns;
    const std::uint8_t *data;
    std::size_t size;
    /// The payload as text (a view, not a copy).
    std::string_view view() const { return {reinterpret_cast<const char *>(data), size}; }
    /// The payload copied into a string.
    std::string str() const { return std::string(view()); }
};

/// A connection to a bus's daemon.
class bus {
public:
    /// Connects to bus `name`; an empty `runtime_dir` means the default.
    explicit bus(const std::string &name, const std::string &runtime_dir = {}) {
        detail::check(shmbus_bus_connect(name.c_str(),
                                         runtime_dir.empty() ? nullptr : runtime_dir.c_str(), &h_));
    }
    bus(bus &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    bus &operator=(bus &&o) noexcept {
        std::swap(h_, o.h_);
        return *this;
    }
    bus(const bus &) = delete;
    bus &operator=(const bus &) = delete;
    ~bus() {
        if (h_) shmbus_bus_close(h_);
    }

    /// Creates a topic (see shmbus_topic_config_init for the defaults).
    void create_topic(const std::string &topic, const shmbus_topic_config_t &config) const {
        detail::check(shmbus_bus_create_topic(h_, topic.c_str(), &config));
    }
    /// Removes a topic.
    void remove_topic(const std::string &topic) const {
        detail::check(shmbus_bus_remove_topic(h_, topic.c_str()));
    }
    /// A snapshot of a topic's counters.
    shmbus_topic_stats_t stats(const std::string &topic) const {
        shmbus_topic_stats_t s;
        detail::check(shmbus_bus_topic_stats(h_, topic.c_str(), &s));
        return s;
    }
    /// The C handle.
    const shmbus_bus_t *get() const noexcept { return h_; }

private:
    shmbus_bus_t *h_ = nullptr;
};

class publisher;

/// A slot borrowed for zero-copy publishing: write into data(), then
/// commit(); destroyed uncommitted, it is abandoned.
class loan {
public:
    loan(loan &&o) noexcept
        : p_(std::exchange(o.p_, nullptr)), data_(o.data_), size_(o.size_) {}
    loan(const loan &) = delete;
    loan &operator=(const loan &) = delete;
    loan &operator=(loan &&) = delete;
    ~loan() {
        if (p_) shmbus_publisher_abandon(p_);
    }
    /// The writable bytes.
    std::uint8_t *data() const noexcept { return data_; }
    /// How many bytes were borrowed.
    std::size_t size() const noexcept { return size_; }
    /// Publishes the first `len` bytes (all by default); returns the sequence.
    std::uint64_t commit(std::size_t len) {
        std::uint64_t seq = 0;
        detail::check(shmbus_publisher_commit(p_, len, &seq));
        p_ = nullptr;
        return seq;
    }
    std::uint64_t commit() { return commit(size_); }

private:
    friend class publisher;
    loan(shmbus_publisher_t *p, void *data, std::size_t size)
        : p_(p), data_(static_cast<std::uint8_t *>(data)), size_(size) {}
    shmbus_publisher_t *p_;
    std::uint8_t *data_;
    std::size_t size_;
};

/// Publishes on one topic.
class publisher {
public:
    publisher(const bus &b, const std::string &topic) {
        detail::check(shmbus_publisher_open(b.get(), topic.c_str(), &h_));
    }
    publisher(publisher &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    publisher &operator=(publisher &&o) noexcept {
        std::swap(h_, o.h_);
        return *this;
    }
    publisher(const publisher &) = delete;
    publisher &operator=(const publisher &) = delete;
    ~publisher() {
        if (h_) shmbus_publisher_close(h_);
    }

    /// Publishes, waiting while a block ring is full; returns the sequence.
    std::uint64_t send(std::string_view msg) {
        std::uint64_t seq = 0;
        detail::check(shmbus_publisher_send(h_, msg.data(), msg.size(), &seq));
        return seq;
    }
    /// Publishes if there is room now; std::nullopt if the ring is full.
    std::optional<std::uint64_t> try_send(std::string_view msg) {
        std::uint64_t seq = 0;
        shmbus_error_t rc = shmbus_publisher_try_send(h_, msg.data(), msg.size(), &seq);
        if (rc == SHMBUS_ERR_FULL) return std::nullopt;
        detail::check(rc);
        return seq;
    }
    /// Publishes, waiting at most `timeout`; std::nullopt on timeout.
    std::optional<std::uint64_t> send_for(std::string_view msg, std::chrono::nanoseconds timeout) {
        std::uint64_t seq = 0;
        shmbus_error_t rc = shmbus_publisher_send_timeout(h_, msg.data(), msg.size(),
                                                          detail::nanos(timeout), &seq);
        if (rc == SHMBUS_ERR_TIMEOUT) return std::nullopt;
        detail::check(rc);
        return seq;
    }
    /// Borrows a slot of `size` bytes (zero copy), waiting while the ring is full.
    loan borrow(std::size_t size) {
        void *buf = nullptr;
        detail::check(shmbus_publisher_loan(h_, size, &buf));
        return loan(h_, buf, size);
    }
    /// The topic's largest message.
    std::size_t max_msg_size() const {
        std::size_t n = 0;
        detail::check(shmbus_publisher_max_msg_size(h_, &n));
        return n;
    }
    /// Subscribers attached now.
    std::uint32_t subscriber_count() const {
        std::uint32_t n = 0;
        detail::check(shmbus_publisher_subscriber_count(h_, &n));
        return n;
    }

private:
    shmbus_publisher_t *h_ = nullptr;
};

/// Receives every message of one topic.
class subscriber {
public:
    subscriber(const bus &b, const std::string &topic, bool from_start = false) {
        shmbus_subscribe_options_t opts;
        detail::check(shmbus_subscribe_options_init(&opts));
        opts.from_start = from_start;
        detail::check(shmbus_subscriber_open(b.get(), topic.c_str(), &opts, &h_));
    }
    subscriber(subscriber &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    subscriber &operator=(subscriber &&o) noexcept {
        std::swap(h_, o.h_);
        return *this;
    }
    subscriber(const subscriber &) = delete;
    subscriber &operator=(const subscriber &) = delete;
    ~subscriber() {
        if (h_) shmbus_subscriber_close(h_);
    }

    /// The next message (copied), waiting for it. Throws error with
    /// SHMBUS_ERR_LAGGED (see lost()) after a loss, SHMBUS_ERR_CLOSED at the end.
    message recv() { return take(shmbus_subscriber_recv(h_, &m_)).value(); }
    /// The next message if one is there.
    std::optional<message> try_recv() { return take(shmbus_subscriber_try_recv(h_, &m_)); }
    /// The next message, waiting at most `timeout`.
    std::optional<message> recv_for(std::chrono::nanoseconds timeout) {
        return take(shmbus_subscriber_recv_timeout(h_, detail::nanos(timeout), &m_));
    }
    /// The next message, held until the next receive: read in place (zero
    /// copy) on block topics, where is_valid() checks it after reading; a
    /// copy checked whole on drop-oldest topics.
    message recv_ref() { return take(shmbus_subscriber_recv_ref(h_, &m_)).value(); }
    /// Whether the message read in place still holds what was received.
    bool is_valid() const {
        bool v = false;
        detail::check(shmbus_subscriber_is_valid(h_, &v));
        return v;
    }

private:
    std::optional<message> take(shmbus_error_t rc) {
        if (rc == SHMBUS_ERR_EMPTY || rc == SHMBUS_ERR_TIMEOUT) return std::nullopt;
        if (rc != SHMBUS_OK) throw error(rc, m_.lost);
        return message{m_.seq, m_.timestamp_ns, m_.data, m_.len};
    }
    shmbus_subscriber_t *h_ = nullptr;
    shmbus_message_t m_{};
};

}  // namespace shmbus

#endif  // SHMBUS_HPP
