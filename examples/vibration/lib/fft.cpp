#include "lib/fft.hpp"

#include <fftw3.h>

#include <algorithm>
#include <new>
#include <stdexcept>

namespace vibration {

namespace {
// std::complex<double> and fftw_complex have the same layout (FFTW documents this).
fftw_complex* as_fftw(std::complex<double>* p) { return reinterpret_cast<fftw_complex*>(p); }
}  // namespace

Fft::Fft(std::size_t size) : size_(size) {
  if (size < 2) throw std::invalid_argument("FFT size below 2");
  const int n = static_cast<int>(size);
  real_ = fftw_alloc_real(size);
  half_ = reinterpret_cast<std::complex<double>*>(fftw_alloc_complex(size / 2 + 1));
  full_in_ = reinterpret_cast<std::complex<double>*>(fftw_alloc_complex(size));
  full_out_ = reinterpret_cast<std::complex<double>*>(fftw_alloc_complex(size));
  if (!real_ || !half_ || !full_in_ || !full_out_) throw std::bad_alloc();
  // FFTW_ESTIMATE plans without measuring, so results do not depend on timing.
  forward_plan_ = fftw_plan_dft_r2c_1d(n, real_, as_fftw(half_), FFTW_ESTIMATE);
  inverse_plan_ = fftw_plan_dft_1d(n, as_fftw(full_in_), as_fftw(full_out_), FFTW_BACKWARD, FFTW_ESTIMATE);
  if (!forward_plan_ || !inverse_plan_) throw std::runtime_error("FFTW could not plan");
}

Fft::~Fft() {
  if (forward_plan_) fftw_destroy_plan(static_cast<fftw_plan>(forward_plan_));
  if (inverse_plan_) fftw_destroy_plan(static_cast<fftw_plan>(inverse_plan_));
  fftw_free(real_);
  fftw_free(half_);
  fftw_free(full_in_);
  fftw_free(full_out_);
}

std::vector<std::complex<double>> Fft::forward(std::span<const double> input) {
  if (input.size() != size_) throw std::invalid_argument("FFT input size mismatch");
  std::copy(input.begin(), input.end(), real_);
  fftw_execute(static_cast<fftw_plan>(forward_plan_));
  return {half_, half_ + size_ / 2 + 1};
}

std::vector<std::complex<double>> Fft::inverse(std::span<const std::complex<double>> bins) {
  if (bins.size() != size_) throw std::invalid_argument("FFT input size mismatch");
  std::copy(bins.begin(), bins.end(), full_in_);
  fftw_execute(static_cast<fftw_plan>(inverse_plan_));
  return {full_out_, full_out_ + size_};
}

}  // namespace vibration
