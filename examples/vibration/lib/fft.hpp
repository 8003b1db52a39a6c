// A thin owner of FFTW plans for one transform size. FFTW's planner is not thread-safe,
// so an Fft is created and used on one thread (the analyzer keeps one per window size).
#pragma once

#include <complex>
#include <cstddef>
#include <span>
#include <vector>

namespace vibration {

class Fft {
 public:
  explicit Fft(std::size_t size);
  ~Fft();
  Fft(const Fft&) = delete;
  Fft& operator=(const Fft&) = delete;

  std::size_t size() const noexcept { return size_; }
  // Unnormalised real-to-complex transform: size/2 + 1 bins.
  std::vector<std::complex<double>> forward(std::span<const double> input);
  // Unnormalised complex inverse transform of `size` bins.
  std::vector<std::complex<double>> inverse(std::span<const std::complex<double>> bins);

 private:
  std::size_t size_;
  double* real_ = nullptr;
  std::complex<double>* half_ = nullptr;
  std::complex<double>* full_in_ = nullptr;
  std::complex<double>* full_out_ = nullptr;
  void* forward_plan_ = nullptr;
  void* inverse_plan_ = nullptr;
};

}  // namespace vibration
