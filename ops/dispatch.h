// ops/dispatch.h — host-side selection of a kernel's compile-time size: the CUDA launchers instantiate a kernel
// for a few widths (state sizes, conv taps, feature groups, d_v tiles) and pick one from the runtime value.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

namespace jrt::ops {

// Calls f(std::integral_constant<int, V>) with the first V of V0, Vs... (ascending) that is >= v, or the last
// one when none is.
template <int V0, int... Vs, class F>
void dispatch_ge(int64_t v, F&& f) {
  if constexpr (sizeof...(Vs) == 0) {
    f(std::integral_constant<int, V0>{});
  } else if (v <= V0) {
    f(std::integral_constant<int, V0>{});
  } else {
    dispatch_ge<Vs...>(v, std::forward<F>(f));
  }
}

}  // namespace jrt::ops
