// The subcommands of `unmask`. Each file in tools/unmask/ adds one subcommand to the app; main.cpp calls them all.
#pragma once

#include <CLI/CLI.hpp>

namespace unmask::cli {

void add_info(CLI::App& app);
void add_init(CLI::App& app);
void add_forward(CLI::App& app);
void add_grad(CLI::App& app);
void add_data(CLI::App& app);
void add_train(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_detokenize(CLI::App& app);
void add_tokenizer(CLI::App& app);
void add_generate(CLI::App& app);
void add_demo(CLI::App& app);
void add_convert(CLI::App& app);
void add_quantize(CLI::App& app);
void add_export(CLI::App& app);
void add_compare(CLI::App& app, int argc, char** argv);  // records the command line in the report
void add_serve(CLI::App& app);
void add_eval(CLI::App& app);  // eval.cpp: `eval` and its likelihood commands; the others below add theirs to it

// The subcommands of `unmask eval`, one file each.
void add_eval_gen(CLI::App& eval);   // eval_gen.cpp
void add_eval_task(CLI::App& eval);  // eval_task.cpp

}  // namespace unmask::cli
