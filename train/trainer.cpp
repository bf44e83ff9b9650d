// train/trainer.cpp — see trainer.h.
#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "train/checkpoint.h"

namespace jrt {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string hms(double s) {
  if (!std::isfinite(s) || s < 0) s = 0;
  const int64_t t = int64_t(s + 0.5);
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60);
  return fmt::format("{}:{:02}", t / 60, t % 60);
}

std::string rate(double tps) {
  if (tps >= 1e6) return fmt::format("{:.2f}M", tps / 1e6);
  if (tps >= 1e3) return fmt::format("{:.1f}k", tps / 1e3);
  return fmt::format("{:.0f}", tps);
}

}  // namespace

EvalResult evaluate(TrainEngine& m, const BatchSource& data, const Objective& obj) {
  EvalResult r;
  const auto names = data.slice_names();
  std::vector<double> sacc(names.size(), 0.0);
  std::vector<int64_t> sn(names.size(), 0);
  double acc_sum = 0, loss_sum = 0;
  int64_t nbatch = 0;
  std::vector<int32_t> pred;
  for (int64_t i = 0; i < data.num_batches(); ++i) {
    const Batch b = data.batch(i);
    m.forward(b.ids, b.labels, b.B, b.L, obj);
    m.predictions(pred);
    loss_sum += m.take_losses().back().loss;
    ++nbatch;
    for (int64_t e = 0; e < b.B; ++e) {
      int64_t correct = 0, count = 0;
      for (int64_t t = 0; t < b.L; ++t) {
        const int64_t n = e * b.L + t, lab = b.labels[n];
        if (lab == -100) continue;
        correct += pred[size_t(n)] == lab;
        ++count;
      }
      if (count == 0) continue;
      const double a = double(correct) / double(count);
      acc_sum += a;
      ++r.examples;
      if (b.slice >= 0 && size_t(b.slice) < names.size()) {
        sacc[size_t(b.slice)] += a;
        ++sn[size_t(b.slice)];
      }
    }
  }
  r.accuracy = r.examples ? acc_sum / double(r.examples) : 0.0;
  r.loss = nbatch ? loss_sum / double(nbatch) : 0.0;
  for (size_t s = 0; s < names.size(); ++s)
    if (sn[s]) r.slices.push_back({names[s], sacc[s] / double(sn[s])});
  return r;
}

Trainer::Trainer(TrainEngine& engine, const BatchSource& train, const BatchSource* test, TrainerOptions opt)
    : m_(engine), train_(train), test_(test), opt_(std::move(opt)) {
  JRT_CHECK(train_.num_batches() > 0, "trainer: the training set has no batches");
  JRT_CHECK(opt_.epochs >= 1, "trainer: --epochs must be >= 1, got {}", opt_.epochs);
  JRT_CHECK(opt_.accum >= 1, "trainer: --accum must be >= 1, got {}", opt_.accum);
  JRT_CHECK(opt_.lr > 0 && std::isfinite(opt_.lr), "trainer: --lr must be > 0, got {}", opt_.lr);
  st_.rng.reseed(opt_.seed);
}

std::vector<int64_t> Trainer::epoch_order(int64_t epoch) const {
  const int64_t nb = train_.num_batches();
  std::vector<int64_t> order(static_cast<size_t>(nb));
  for (int64_t i = 0; i < nb; ++i) order[size_t(i)] = i;
  if (opt_.shuffle) {
    Rng r(Rng::derive(opt_.seed, uint64_t(epoch)));
    for (int64_t i = nb - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(r.uniform_int(0, i + 1))]);
  }
  return order;
}

void Trainer::save(const std::string& path) const {
  auto s = st_.rng.state();
  std::map<std::string, std::string> meta = {
      {"step", std::to_string(st_.step)},
      {"epoch", std::to_string(st_.epoch)},
      {"batch", std::to_string(st_.batch)},
      {"tokens", std::to_string(st_.tokens)},
      {"done", st_.done ? "1" : "0"},
      {"last_accuracy", fmt::format("{:.17g}", st_.last_accuracy)},
      {"rng", fmt::format("{:016x}{:016x}{:016x}{:016x}", s[0], s[1], s[2], s[3])},
      {"num_batches", std::to_string(train_.num_batches())},
      {"config", opt_.config_json},
  };
  m_.pull();
  write_checkpoint(path, m_.host(), m_.adam(), meta);
}

void Trainer::resume(const std::string& path) {
  auto meta = read_checkpoint(path, m_.host(), m_.adam());
  m_.push();
  if (!opt_.config_json.empty() && meta.count("config") && !meta.at("config").empty())
    JRT_CHECK(meta.at("config") == opt_.config_json,
              "{}: the checkpoint was written for another model configuration than this run's", path);
  JRT_CHECK(meta_int(meta, "num_batches", path) == train_.num_batches(),
            "{}: the checkpoint's data has {} batches per epoch, this run's {} (different data or batch size)", path,
            meta_int(meta, "num_batches", path), train_.num_batches());
  st_.step = meta_int(meta, "step", path);
  st_.epoch = meta_int(meta, "epoch", path);
  st_.batch = meta_int(meta, "batch", path);
  st_.tokens = meta_int(meta, "tokens", path);
  st_.done = meta_int(meta, "done", path) != 0;
  st_.last_accuracy = meta_double(meta, "last_accuracy", path);
  const std::string& r = meta.count("rng") ? meta.at("rng") : std::string();
  JRT_CHECK(r.size() == 64, "{}: checkpoint field 'rng' must be 64 hex digits", path);
  std::array<uint64_t, 4> s{};
  for (int i = 0; i < 4; ++i) s[size_t(i)] = std::stoull(r.substr(size_t(16 * i), 16), nullptr, 16);
  st_.rng.set_state(s);
}

TrainResult Trainer::run(std::FILE* log) {
  TrainResult res;
  const int64_t nb = train_.num_batches();
  const int64_t steps_per_epoch = (nb + opt_.accum - 1) / opt_.accum;
  const int64_t total_steps = steps_per_epoch * opt_.epochs;
  const bool bar = opt_.progress && isatty(fileno(stderr));
  const auto t_run = Clock::now();
  double train_s = 0;
  int64_t tokens_run = 0, steps_run = 0;
  bool out_of_time = false;
  auto last_draw = t_run;

  // Steps are pipelined one deep: step s + 1 is enqueued before step s is taken (TrainEngine::take_step), so the
  // host's work for the next step (batch, launches) overlaps the device's. The report of a step (log line,
  // progress, divergence check) therefore comes one step late; every checkpoint, evaluation and exit first takes
  // the step in flight. A step's time is the wall time between consecutive reports (from the enqueue of the first
  // step after a pause): their sum is the training wall time, and the numbers are unchanged.
  struct InFlight {
    int64_t step, k, tokens;
    double lr;
  };
  std::optional<InFlight> inflight;
  auto last_done = Clock::now();
  auto report = [&]() {
    const InFlight f = *inflight;
    inflight.reset();
    const StepResult r = m_.take_step();
    double loss = 0;
    for (const LossParts& lp : r.losses) loss += lp.loss / double(f.k);
    const double gnorm = r.grad_norm;
    const auto now = Clock::now();
    const double dt = std::chrono::duration<double>(now - last_done).count();
    last_done = now;
    train_s += dt;
    tokens_run += f.tokens;
    ++steps_run;
    JRT_CHECK(std::isfinite(loss), "training diverged: loss is {} at step {} (lower --lr?)", loss, f.step);
    if (log && opt_.log_every > 0 && f.step % opt_.log_every == 0) {
      if (bar) std::fprintf(stderr, "\r\033[K");
      std::fprintf(log, "step %lld | epoch %lld/%lld | loss %.4f | gnorm %.3f | lr %.2e | %.2f ms | %s tok/s\n",
                   (long long)f.step, (long long)st_.epoch + 1, (long long)opt_.epochs, loss, gnorm, f.lr, dt * 1e3,
                   rate(double(f.tokens) / dt).c_str());
      std::fflush(log);
    }
    if (bar && (seconds_since(last_draw) > 0.1 || st_.batch >= nb)) {  // redraw at most 10 times a second
      last_draw = Clock::now();
      const double frac = double(f.step) / double(std::max<int64_t>(1, total_steps));
      const double eta = steps_run ? train_s / double(steps_run) * double(total_steps - f.step) : 0;
      const int w = 24, filled = int(std::min(1.0, frac) * w);
      std::fprintf(stderr, "\r\033[K[%s%s] %3d%% step %lld/%lld epoch %lld/%lld loss %.4f %s tok/s ETA %s",
                   std::string(size_t(filled), '#').c_str(), std::string(size_t(w - filled), '.').c_str(),
                   int(frac * 100), (long long)f.step, (long long)total_steps, (long long)st_.epoch + 1,
                   (long long)opt_.epochs, loss, rate(double(tokens_run) / std::max(train_s, 1e-9)).c_str(),
                   hms(eta).c_str());
      std::fflush(stderr);
    }
  };

  while (!st_.done && st_.epoch < opt_.epochs) {
    const std::vector<int64_t> order = epoch_order(st_.epoch);
    const double lr_epoch = cosine_lr(st_.epoch, opt_.warmup, opt_.epochs, opt_.lr, opt_.min_lr);
    while (st_.batch < nb) {
      if (opt_.max_steps >= 0 && st_.step >= opt_.max_steps) {
        res.interrupted = true;
        break;
      }
      if (opt_.time_budget_s > 0 && seconds_since(t_run) > opt_.time_budget_s) {
        out_of_time = true;
        break;
      }
      if (!inflight) last_done = Clock::now();
      m_.zero_grad();
      const int64_t k = std::min(opt_.accum, nb - st_.batch);
      int64_t tokens = 0;
      for (int64_t j = 0; j < k; ++j) {
        const Batch b = train_.batch(order[size_t(st_.batch + j)]);
        m_.forward(b.ids, b.labels, b.B, b.L, opt_.objective);
        m_.backward(1.0 / double(k));
        tokens += b.B * b.L;
      }
      const double lr =
          opt_.per_epoch_schedule ? lr_epoch : cosine_lr(st_.step, opt_.warmup, total_steps, opt_.lr, opt_.min_lr);
      m_.step(lr, opt_.clip);
      st_.batch += k;
      st_.step += 1;
      st_.tokens += tokens;
      if (inflight) report();
      inflight = InFlight{st_.step, k, tokens, lr};
      if (!opt_.checkpoint.empty() && opt_.checkpoint_every > 0 && st_.step % opt_.checkpoint_every == 0) {
        report();
        save(opt_.checkpoint);
      }
    }
    if (inflight) report();
    if (res.interrupted) break;
    const bool epoch_done = st_.batch >= nb;
    if (epoch_done) {
      st_.epoch += 1;
      st_.batch = 0;
    }
    if (test_ && (epoch_done || out_of_time)) {
      EvalResult ev = evaluate(m_, *test_, opt_.objective);
      res.eval = ev;
      st_.last_accuracy = ev.accuracy;
      if (bar) std::fprintf(stderr, "\r\033[K");
      if (log) {
        std::string sl;
        for (const auto& [name, a] : ev.slices) sl += fmt::format(" {}:{:.3f}", name, a);
        std::fprintf(log, "epoch %lld/%lld | step %lld | valid loss %.4f | valid accuracy %.4f |%s\n",
                     (long long)st_.epoch, (long long)opt_.epochs, (long long)st_.step, ev.loss, ev.accuracy,
                     sl.c_str());
        std::fflush(log);
      }
      if (opt_.early_stop > 0 && ev.accuracy > opt_.early_stop) {
        st_.done = true;
        res.early_stopped = true;
      }
    }
    if (st_.epoch >= opt_.epochs) st_.done = true;
    if (!opt_.checkpoint.empty()) save(opt_.checkpoint);
    if (out_of_time) break;
  }
  if (res.interrupted && !opt_.checkpoint.empty()) save(opt_.checkpoint);
  if (bar) std::fprintf(stderr, "\r\033[K");
  res.steps = st_.step;
  res.epochs = st_.epoch;
  res.tokens = st_.tokens;
  res.train_seconds = train_s;
  res.tokens_per_s = train_s > 0 ? double(tokens_run) / train_s : 0;
  if (res.eval.examples == 0 && test_) res.eval = evaluate(m_, *test_, opt_.objective);
  return res;
}

}  // namespace jrt
