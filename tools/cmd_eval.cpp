// tools/cmd_eval.cpp — `jrt eval` (run the recall tasks, default and JRT-Prompt), with the nested
// `jrt eval collect` (results files -> paper-style table) and `jrt eval synth` (write the embedded
// synthetic task set as JSONL).
#include <cstdio>
#include <memory>

#include "core/error.h"
#include "core/threads.h"
#include "eval/collect.h"
#include "eval/harness.h"
#include "eval/synthetic.h"
#include "eval/tasks.h"
#include "tools/cli.h"

namespace {

struct EvalArgs {
  jrt::eval::EvalOptions opt;
  std::string tasks;
  int64_t context_length = 0;
  int threads = 0;
  bool no_progress = false, no_early_stop = false;
  // collect
  std::vector<std::string> files;
  std::string format = "both";
  // synth
  std::string synth_out;
};

jrt::cli::Runner setup(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* c = app.add_subcommand(
      "eval",
      "Evaluate a model on the JRT-Prompt recall tasks (contains metric). With no --tasks/--data it runs the "
      "embedded synthetic set. Subcommands: collect (table of results), synth (write the synthetic JSONL)");
  c->require_subcommand(0, 1);
  c->add_option("--model", a->opt.model_dir, "Model folder (config.json + model.safetensors or pytorch_model.bin)");
  c->add_option("--tasks", a->tasks,
                "Comma-separated tasks: based_{swde,fda,squad,triviaqa,drop,nq_512,nq_1024,nq_2048} and "
                "synth_{fda,swde}, each also _twice (JRT-Prompt); groups table1, table2, synth (default: synth)");
  c->add_option("--data", a->opt.data_dir,
                "Folder with one JSONL file per dataset, <dataset>.jsonl (e.g. based_fda.jsonl serves based_fda and "
                "based_fda_twice). Without it the synth_* tasks are generated in memory");
  auto* cl = c->add_option("--context-length", a->context_length,
                           "The reference's --context_length C (documents cut to C - 50 tokens). Default per task: "
                           "1000 (Table 1), 2000 for based_nq_512 / based_nq_2048 (Table 2)");
  c->add_option("--limit", a->opt.limit, "Use only the first N rows of each data file (-1 = all)")
      ->capture_default_str();
  c->add_option("--batch", a->opt.batch, "Prompts generated together (each keeps its own state)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--device", a->opt.device, "cpu or cuda")->capture_default_str();
  c->add_option("--output", a->opt.output, "Results JSON to write (lm-eval style)");
  c->add_option("--samples", a->opt.samples,
                "Per-example JSONL to write (default: the --output path with .json replaced by .samples.jsonl)");
  c->add_option("--threads", a->threads, "CPU threads (0 = all)")->capture_default_str();
  c->add_option("--seed", a->opt.synth_seed, "Seed of the synthetic task set")->capture_default_str();
  c->add_option("--synth-rows", a->opt.synth_rows, "Rows per synthetic dataset when generated in memory")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_flag("--no-progress", a->no_progress, "Do not print the progress bar and per-task lines");
  c->add_flag("--no-early-stop", a->no_early_stop,
              "Always generate all 48 tokens before cutting at the first newline (same predictions, slower)");

  auto* col = c->add_subcommand("collect",
                                "Print the paper-style table (model x task, default / JRT-Prompt, "
                                "contains x 100) of results files, as markdown and CSV");
  col->add_option("files", a->files, "Results JSON files written by jrt eval --output")->required();
  col->add_option("--format", a->format, "md, csv or both")
      ->capture_default_str()
      ->check(CLI::IsMember({"md", "csv", "both"}));

  auto* syn = c->add_subcommand("synth", "Write the synthetic task set (synth_fda.jsonl, synth_swde.jsonl)");
  syn->add_option("--out", a->synth_out, "Folder to write the JSONL files into")->required();
  syn->add_option("--seed", a->opt.synth_seed, "Generator seed")->capture_default_str();
  syn->add_option("--rows", a->opt.synth_rows, "Rows per dataset")->capture_default_str()->check(CLI::PositiveNumber);

  return [a, cl, col, syn] {
    if (col->parsed()) {
      auto t = jrt::eval::collect_results(a->files);
      for (const auto& w : t.warnings) std::fprintf(stderr, "jrt eval collect: warning: %s\n", w.c_str());
      std::string out;
      if (a->format != "csv") out += jrt::eval::to_markdown(t);
      if (a->format == "both") out += "\n";
      if (a->format != "md") out += jrt::eval::to_csv(t);
      std::fwrite(out.data(), 1, out.size(), stdout);
      return 0;
    }
    if (syn->parsed()) {
      for (const auto& p : jrt::eval::write_synth(a->synth_out, a->opt.synth_seed, a->opt.synth_rows))
        std::printf("%s\n", p.c_str());
      return 0;
    }
    JRT_CHECK(!a->opt.model_dir.empty(), "--model DIR is required (or use: jrt eval collect / jrt eval synth)");
    JRT_CHECK(!a->opt.output.empty(), "--output OUT.json is required");
    a->opt.tasks = jrt::eval::expand_task_list(a->tasks.empty() ? "synth" : a->tasks);
    if (cl->count()) a->opt.context_length = a->context_length;
    a->opt.progress = !a->no_progress;
    a->opt.early_stop = !a->no_early_stop;
    jrt::set_num_threads(a->threads);
    auto res = jrt::eval::run_eval(a->opt);
    // A short summary on stdout: task, contains x 100, n.
    for (const auto& [task, r] : res["results"].items())
      std::printf("%-22s contains %5.1f  (n=%lld, dropped %lld, C=%lld)\n", task.c_str(),
                  100.0 * r["contains,none"].get<double>(), (long long)r["samples"].get<int64_t>(),
                  (long long)r["dropped"].get<int64_t>(), (long long)r["context_length"].get<int64_t>());
    std::printf("wrote %s and %s (%.1f s per 100 examples)\n", a->opt.output.c_str(),
                res["samples_file"].get<std::string>().c_str(),
                res["timing"]["seconds_per_100_examples"].get<double>());
    return 0;
  };
}

JRT_REGISTER_COMMAND("eval", setup);

}  // namespace
