#pragma once
// An HDR-style latency histogram: log-linear buckets (64 linear sub-buckets per power of two),
// so every recorded value is kept within 1/64 (1.6 %) of its true value from 1 us to hours, in
// a fixed ~18 KiB, and histograms merge by adding counts. Values are microseconds.

#include <cstdint>
#include <vector>

namespace exsim::loadgen {

class histogram {
public:
    void record(std::uint64_t micros);
    void merge(const histogram& other);

    std::uint64_t count() const noexcept { return count_; }
    std::uint64_t max() const noexcept { return max_; }  // exact
    std::uint64_t min() const noexcept { return count_ ? min_ : 0; }  // exact
    double mean() const noexcept { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0; }

    // The value at percentile p (0..100]: the highest value equivalent to the bucket holding the
    // ceil(p% x count)-th smallest value, capped by max(). 0 when empty.
    std::uint64_t percentile(double p) const;

private:
    std::vector<std::uint64_t> counts_;  // sized on first record
    std::uint64_t count_ = 0, max_ = 0, min_ = 0, sum_ = 0;
};

}  // namespace exsim::loadgen
