// The summary statistics the benchmarks report, defined once so that a p99 means the same in each.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace airlock::bench {

// Nearest-rank percentile, p in (0, 1]: the smallest sample with at least p of all samples at or
// below it (p = 0.5 of 5 runs: the third). NaN without samples, which JSON prints as null: "not
// measured", never a number that looks like one.
inline double percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(samples.begin(), samples.end());
  const double rank = std::ceil(p * static_cast<double>(samples.size()));
  const size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return samples[std::min(index, samples.size() - 1)];
}

inline double median(std::vector<double> samples) { return percentile(std::move(samples), 0.5); }

}  // namespace airlock::bench
