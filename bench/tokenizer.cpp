// Tokenizer throughput: encode a text (tinyshakespeare by default) with a byte-level BPE vocabulary (GPT-2 by
// default), the priority-queue merge against the plain quadratic reference, in the same run, on one core.
//
//   build/tok/bench/bench_tokenizer [VOCAB.gguf] [TEXT]     (run from the repository root)
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "unmask/base/error.h"
#include "unmask/base/timer.h"
#include "unmask/io/gguf.h"
#include "unmask/tokenizer/pretokenize.h"
#include "unmask/tokenizer/tokenizer.h"

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unmask::check(bool(in), "{}: cannot open for reading", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Best of `reps` timings of f(), in seconds.
template <typename F>
double best_of(int reps, F&& f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    unmask::Timer t;
    f();
    best = std::min(best, t.seconds());
  }
  return best;
}

void report(const char* name, double seconds, size_t bytes, size_t tokens) {
  fmt::print("{:<28} {:8.1f} ms  {:7.2f} MB/s  {:>10.0f} tokens/s\n", name, seconds * 1e3, bytes / seconds / 1e6,
             tokens / seconds);
}

int run(const std::string& vocab_path, const std::string& text_path) {
  const std::string text = slurp(text_path);
  unmask::gguf::Reader reader(vocab_path);
  auto fast = unmask::load_tokenizer(reader);
  auto naive = unmask::make_reference_bpe_tokenizer(unmask::vocab_from_gguf(reader));
  fmt::print("text {} ({} bytes), vocabulary {} ({} tokens, pre '{}'), 1 thread\n", text_path, text.size(),
             vocab_path, fast->n_vocab(), fast->vocab().pre);
  std::vector<int32_t> ids, ref_ids;
  std::vector<std::string_view> pieces;
  const auto pre = unmask::tok::Pretokenizer::by_name(fast->vocab().pre);
  const double t_pre = best_of(5, [&] { pieces.clear(); pre.split(text, pieces); });
  const double t_fast = best_of(5, [&] { ids = fast->encode(text); });
  const double t_naive = best_of(2, [&] { ref_ids = naive->encode(text); });
  const double t_dec = best_of(5, [&] { (void)fast->decode(ids); });
  report("pre-tokenize only", t_pre, text.size(), pieces.size());
  report("encode (priority queue)", t_fast, text.size(), ids.size());
  report("encode (naive reference)", t_naive, text.size(), ref_ids.size());
  report("decode", t_dec, text.size(), ids.size());
  fmt::print("speed-up over the reference: {:.2f}x; same ids: {}; round trip: {}\n", t_naive / t_fast,
             ids == ref_ids ? "yes" : "NO", fast->decode(ids) == text ? "yes" : "NO");
  // One long word (random letters, no spaces: minified code, base64, DNA): where the quadratic rescan hurts.
  std::string word;
  uint32_t state = 12345;
  for (int i = 0; i < 20000; ++i) word += char('a' + ((state = state * 1664525u + 1013904223u) >> 24) % 26);
  std::vector<int32_t> w_fast, w_naive;
  const double t_wf = best_of(3, [&] { w_fast = fast->encode(word); });
  const double t_wn = best_of(1, [&] { w_naive = naive->encode(word); });
  report("long word (priority queue)", t_wf, word.size(), w_fast.size());
  report("long word (naive reference)", t_wn, word.size(), w_naive.size());
  fmt::print("long word: speed-up {:.1f}x; same ids: {}\n", t_wn / t_wf, w_fast == w_naive ? "yes" : "NO");
  return ids == ref_ids && w_fast == w_naive ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string vocab = argc > 1 ? argv[1] : "../shared/fixtures/tokenizer/ggml-vocab-gpt-2.gguf";
  const std::string text = argc > 2 ? argv[2] : "../shared/data/tinyshakespeare.txt";
  try {
    return run(vocab, text);
  } catch (const unmask::Error& e) {
    std::fprintf(stderr, "bench_tokenizer: error: %s\n", e.what());
    return 1;
  }
}
