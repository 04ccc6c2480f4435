// StepCost: what a decode step carrying prompt tokens costs, as a line t = base + per_token * n
// fitted to the recent steps (n prompt tokens beside the generating sequences' tokens, t the
// step's duration), by least squares with exponentially fading weights.
//
// Why a line and not a cost per token: on a CPU, a prompt joining the batch costs the running
// sequences a fixed amount at once (attention then spans the longest context in the batch), and
// each more prompt token adds comparatively little. Charging that fixed part to the tokens would
// shrink chunks to a few tokens that do not make the steps any shorter and make the prompt's
// own first token very late.
#pragma once

#include <optional>

namespace llmq {

class StepCost {
 public:
  struct Line {
    double base;       // seconds of a step with the prompt's context and no prompt tokens
    double per_token;  // seconds per prompt token, > 0
  };

  // `fade`: the weight the fit keeps of the past at each new step (0.9: about the last ten).
  explicit StepCost(double fade = 0.9) : fade_(fade) {}

  void add(double tokens, double seconds) {
    w_ = fade_ * w_ + 1;
    n_ = fade_ * n_ + tokens;
    t_ = fade_ * t_ + seconds;
    nn_ = fade_ * nn_ + tokens * tokens;
    nt_ = fade_ * nt_ + tokens * seconds;
  }

  // The fitted line, once the steps so far vary enough in size to tell base from per-token cost.
  std::optional<Line> line() const {
    if (w_ < kMinWeight) return std::nullopt;
    const double mean_n = n_ / w_, mean_t = t_ / w_;
    const double var = nn_ / w_ - mean_n * mean_n;
    if (var < kMinVariance) return std::nullopt;
    const double slope = (nt_ / w_ - mean_n * mean_t) / var;
    // Noise can tilt the line; a token never costs nothing (nor less than a small floor).
    const double per_token = slope > kMinPerToken ? slope : kMinPerToken;
    return Line{mean_t - per_token * mean_n, per_token};
  }

 private:
  static constexpr double kMinWeight = 3.0;
  static constexpr double kMinVariance = 0.5;     // tokens²: chunks must differ by about a token
  static constexpr double kMinPerToken = 1e-5;    // 10 µs
  double fade_;
  double w_ = 0, n_ = 0, t_ = 0, nn_ = 0, nt_ = 0;  // faded sums of 1, n, t, n², n·t
};

}  // namespace llmq
