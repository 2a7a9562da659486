// The flag conventions every subcommand shares, written once (llama.cpp's names where it has one):
//   -m,--model FILE     a GGUF model file or a Hugging Face folder
//   -p,--prompt TEXT    text in;  -f,--file FILE  the text (or corpus) read from a file
//   -o,--out PATH       what the command writes; an existing file is refused unless --force (then it is replaced
//                       atomically: the old file stays whole until the new one is complete)
//   -s,--seed N         random seed; -1 draws one (and the command prints it)
//   -t,--threads N      threads (0: all cores);  -c,--ctx-size N  context length
//   --tokens 1,2,3      token ids: "1,2,3", "1 2 3" or "[1, 2, 3]" (what `unmask tokenize` prints)
// Numeric checks say what was wrong in one short line ("--steps: -1 is not a positive number").
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace unmask::cli {

// Thrown by a subcommand to end the program with this exit status (after its own message), e.g. 130 after SIGINT.
struct ExitStatus {
  int code;
};

// Number checks with short messages, for ->check(...).
CLI::Validator positive();      // > 0
CLI::Validator non_negative();  // >= 0
CLI::Validator in_range(int64_t lo, int64_t hi);
CLI::Validator in_range(double lo, double hi);

// Token ids from text: separated by commas and/or white space, optionally in brackets ("[1, 2, 3]"). Throws naming
// `what` (the flag) on anything that is not an integer, and on an empty list.
std::vector<int32_t> parse_token_list(std::string_view text, std::string_view what);

// A token-list option (name such as "--tokens"): one argument in any form parse_token_list reads.
CLI::Option* add_tokens_option(CLI::App* cmd, const std::string& name, std::vector<int32_t>& ids,
                               const std::string& help);

// -o,--out (required unless optional) and --force.
CLI::Option* add_out_option(CLI::App* cmd, std::string& out, bool& force, const std::string& help);
// Throws when path exists and force is false: "PATH already exists; pass --force to replace it".
void check_new_output(const std::string& path, bool force);

// The bytes of a text file; throws naming the path when it cannot be read or is a directory.
std::string read_text_file(const std::string& path);

// -s,--seed; -1 draws a random seed and prints it on stderr (so that the run can be repeated).
CLI::Option* add_seed_option(CLI::App* cmd, uint64_t& seed, const std::string& help);
// -t,--threads.
CLI::Option* add_threads_option(CLI::App* cmd, int& threads);

}  // namespace unmask::cli
