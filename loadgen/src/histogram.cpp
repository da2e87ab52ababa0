#include "exsim/loadgen/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace exsim::loadgen {

namespace {

// Values below 2^7 get a bucket each; from there on, each power of two 2^e is split into 64
// linear sub-buckets of width 2^(e-6), so a bucket's width is at most 1/64 of its values.
constexpr unsigned linear_bits = 7;           // 0..127: exact
constexpr unsigned sub_bits = 6;              // 64 sub-buckets per power of two
constexpr unsigned top_bits = 42;             // 2^42 us is 51 days: anything above is clamped
constexpr std::size_t linear_buckets = std::size_t{1} << linear_bits;
constexpr std::size_t bucket_count = linear_buckets + (top_bits - linear_bits) * (std::size_t{1} << sub_bits);

std::size_t bucket_of(std::uint64_t v) {
    if (v < linear_buckets) return static_cast<std::size_t>(v);
    const unsigned e = static_cast<unsigned>(std::bit_width(v)) - 1;
    if (e >= top_bits) return bucket_count - 1;
    const std::uint64_t sub = (v >> (e - sub_bits)) - (std::uint64_t{1} << sub_bits);
    return linear_buckets + (e - linear_bits) * (std::size_t{1} << sub_bits) + static_cast<std::size_t>(sub);
}

// The highest value that lands in bucket `i`.
std::uint64_t highest_of(std::size_t i) {
    if (i < linear_buckets) return i;
    const std::size_t k = i - linear_buckets;
    const unsigned e = linear_bits + static_cast<unsigned>(k >> sub_bits);
    const std::uint64_t sub = (std::uint64_t{1} << sub_bits) + (k & ((std::size_t{1} << sub_bits) - 1));
    return ((sub + 1) << (e - sub_bits)) - 1;
}

}  // namespace

void histogram::record(std::uint64_t micros) {
    if (counts_.empty()) counts_.resize(bucket_count);
    ++counts_[bucket_of(micros)];
    min_ = count_ ? std::min(min_, micros) : micros;
    max_ = std::max(max_, micros);
    sum_ += micros;
    ++count_;
}

void histogram::merge(const histogram& other) {
    if (other.count_ == 0) return;
    if (counts_.empty()) counts_.resize(bucket_count);
    for (std::size_t i = 0; i < bucket_count; ++i) counts_[i] += other.counts_[i];
    min_ = count_ ? std::min(min_, other.min_) : other.min_;
    max_ = std::max(max_, other.max_);
    sum_ += other.sum_;
    count_ += other.count_;
}

std::uint64_t histogram::percentile(double p) const {
    if (count_ == 0) return 0;
    // p x count is often meant to be whole (99.9 % of 1000) but is not quite in binary: the
    // epsilon keeps ceil() from moving such a rank one up.
    const double want = std::ceil(std::clamp(p, 0.0, 100.0) * static_cast<double>(count_) / 100.0 - 1e-9);
    const std::uint64_t rank = std::clamp<std::uint64_t>(static_cast<std::uint64_t>(std::max(want, 0.0)), 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
        seen += counts_[i];
        // The last bucket also holds every clamped value: only max() bounds it.
        if (seen >= rank) return i + 1 == bucket_count ? max_ : std::min(highest_of(i), max_);
    }
    return max_;
}

}  // namespace exsim::loadgen
