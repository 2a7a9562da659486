// The text-level half of generation (sampling/text.h): defaults per architecture, which options each sampler reads,
// the sampler/model refusals, stops, canvases, and valid UTF-8 out of any bytes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../common/test_util.h"
#include "unmask/sampling/text.h"
#include "unmask/tokenizer/train.h"

namespace unmask {
namespace {

const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD

ModelConfig config(const char* arch, MaskKind mask, int block_size = 0) {
  ModelConfig c;
  c.arch = arch, c.mask = mask, c.block_size = block_size, c.ctx = 16;
  return c;
}

TEST(TextDefaults, TheSamplerFollowsTheModel) {
  EXPECT_EQ(default_sampler(config("llama", MaskKind::kCausal)), SamplerKind::kAr);
  EXPECT_EQ(default_sampler(config("qwen2", MaskKind::kCausal)), SamplerKind::kAr);
  EXPECT_EQ(default_sampler(config("llada", MaskKind::kBidirectional)), SamplerKind::kLlada);
  EXPECT_EQ(default_sampler(config("llada-moe", MaskKind::kBidirectional)), SamplerKind::kLlada);
  EXPECT_EQ(default_sampler(config("dream", MaskKind::kBidirectional)), SamplerKind::kDream);
  EXPECT_EQ(default_sampler(config("llada", MaskKind::kBlockCausal, 8)), SamplerKind::kBd3);
  ASSERT_NE(chat_defaults("dream"), nullptr);
  EXPECT_EQ(chat_defaults("dream")->top_p, 0.95);
  EXPECT_EQ(chat_defaults("llada")->block_length, 32);
  EXPECT_EQ(chat_defaults("gpt9"), nullptr);
}

TEST(TextOptions, EachSamplerReadsItsOwnFlags) {
  EXPECT_FALSE(sampler_reads(SamplerKind::kMdlm, "--threshold"));
  EXPECT_TRUE(sampler_reads(SamplerKind::kLlada, "--threshold"));
  EXPECT_TRUE(sampler_reads(SamplerKind::kBd3, "--threshold"));
  EXPECT_FALSE(sampler_reads(SamplerKind::kLlada, "--repeat-penalty"));
  EXPECT_TRUE(sampler_reads(SamplerKind::kAr, "--repeat-penalty"));
  EXPECT_FALSE(sampler_reads(SamplerKind::kLlada, "--alg"));
  EXPECT_FALSE(sampler_reads(SamplerKind::kAr, "--steps"));
  EXPECT_TRUE(sampler_reads(SamplerKind::kRemdm, "--eta"));
  EXPECT_FALSE(sampler_reads(SamplerKind::kMdlm, "--eta"));
  EXPECT_TRUE(sampler_reads(SamplerKind::kMdlm, "--temp")) << "an option every sampler reads";
  SamplerConfig c;
  c.kind = SamplerKind::kLlada, c.steps = 8;
  const std::vector<std::string> given = {"--steps", "--alg"};
  EXPECT_EQ(test::error_of([&] { check_given_options(c, given); }),
            "--alg does not apply to --sampler llada (that sampler never reads it)");
  c.kind = SamplerKind::kDream;
  EXPECT_EQ(test::error_of([&] { check_given_options(c, given); }), "");
  c.steps = -1;
  EXPECT_EQ(test::error_of([&] { check_given_options(c, given); }), "--steps -1: expected at least 1 denoising step")
      << "-1 means one step per position inside the library, but a user who types it made a mistake";
  EXPECT_EQ(test::error_of([&] { check_given_options(c, {}); }), "") << "not given: the library's default";
  const std::vector<std::string> threshold = {"--threshold"};
  c.kind = SamplerKind::kLlada;
  EXPECT_NE(test::error_of([&] { check_given_options(c, threshold); }).find("--threshold 0: expected"),
            std::string::npos);
  c.threshold = 1;
  EXPECT_EQ(test::error_of([&] { check_given_options(c, threshold); }), "");
  for (std::string_view o : sampler_specific_options()) EXPECT_TRUE(o.starts_with("--")) << o;
}

TEST(TextOptions, SamplersThatCannotRunOnAModelAreRefused) {
  const ModelConfig llama = config("llama", MaskKind::kCausal), llada = config("llada", MaskKind::kBidirectional);
  EXPECT_NE(test::error_of([&] { check_sampler_fits(SamplerKind::kLlada, llama, false); }).find("is causal"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { check_sampler_fits(SamplerKind::kAr, llada, false); }).find("needs a causal"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { check_sampler_fits(SamplerKind::kAr, llama, true); }).find("--infill"),
            std::string::npos);
  EXPECT_EQ(test::error_of([&] { check_sampler_fits(SamplerKind::kAr, llama, false); }), "");
  EXPECT_EQ(test::error_of([&] { check_sampler_fits(SamplerKind::kMdlm, llada, true); }), "");
}

TEST(TextCanvas, PromptLongerThanTheContextIsOneClearMessage) {
  const ModelConfig m = config("llada", MaskKind::kBidirectional);
  EXPECT_EQ(test::error_of([&] { check_prompt_fits(ids_canvas(std::vector<int32_t>(17, 1)), m); }),
            "the prompt is 17 tokens; the model's context is 16 positions");
  EXPECT_EQ(test::error_of([&] { check_prompt_fits(ids_canvas(std::vector<int32_t>(16, 1)), m); }), "");
  const Canvas c = infill_ids_canvas("1,M3,4", 9);
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{1, 9, 9, 9, 4}));
  EXPECT_EQ(c.prompt_length, 0);
}

TEST(TextStops, StopFilterHoldsBackWhatCouldStartAStopString) {
  const std::vector<std::string> stop = {"END", "\n\n"};
  StopFilter f(stop);
  EXPECT_EQ(f.push("Hello E"), "Hello ");  // "E" could open "END"
  EXPECT_EQ(f.push("x"), "Ex");
  EXPECT_EQ(f.push("ok\n"), "ok");
  EXPECT_EQ(f.push("EN"), "\n") << "\"EN\" could still become \"END\"";
  EXPECT_EQ(f.push("D and more"), "");
  EXPECT_TRUE(f.stopped());
  EXPECT_EQ(f.push("later"), "");
  EXPECT_EQ(f.finish(), "");
  EXPECT_EQ(cut_at_stop("Hello Ex ok\nEND and more", stop), "Hello Ex ok\n");
  EXPECT_TRUE(holds_stop("a\n\nb", stop));
  EXPECT_FALSE(holds_stop("a\nb", stop));
  StopFilter none(stop);
  EXPECT_EQ(none.push("tail E"), "tail ");
  EXPECT_EQ(none.finish(), "E") << "no stop string came: the held tail is text";
}

TEST(TextUtf8, InvalidBytesBecomeReplacementCharacters) {
  EXPECT_EQ(valid_utf8("caf\xC3\xA9 \xF0\x9F\x99\x82"), "caf\xC3\xA9 \xF0\x9F\x99\x82") << "valid text unchanged";
  EXPECT_EQ(valid_utf8("a\xC3"), "a" + kReplacement) << "cut mid-character";
  EXPECT_EQ(valid_utf8("\xFF\xFE"), kReplacement + kReplacement) << "bytes that never occur in UTF-8";
  EXPECT_EQ(valid_utf8("\xE2\x82z"), kReplacement + "z") << "a lead and its continuation: one U+FFFD";
  EXPECT_EQ(valid_utf8("\x80x"), kReplacement + "x") << "a stray continuation byte";
  EXPECT_EQ(valid_utf8("\xED\xA0\x80"), kReplacement) << "a surrogate";
}

TEST(TextUtf8, StreamedPiecesAreValidAndAddUpToTheWholeText) {
  const std::unique_ptr<Tokenizer> tok = make_tokenizer(byte_level_vocab());
  // "é" split over two byte tokens, a lone 0xFF, a lead byte cut by ASCII, and "é" again at the very end, cut.
  const std::vector<int32_t> ids = {'a', 0xC3, 0xA9, 0xFF, 'b', 0xC3, 'c', 0xC3};
  TextStream s(*tok);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string piece = s.push(id);
    EXPECT_EQ(valid_utf8(piece), piece) << "piece after id " << id;
    streamed += piece;
  }
  streamed += s.finish();
  EXPECT_EQ(streamed, "a\xC3\xA9" + kReplacement + "b" + kReplacement + "c" + kReplacement);
  EXPECT_EQ(streamed, decode_text(tok.get(), ids));
  EXPECT_EQ(decode_text(nullptr, ids), "97 195 169 255 98 195 99 195");
}

// A canvas as a diffusion sampler leaves it after each step: the prompt [P, P], then masks filled in any order.
std::vector<std::vector<int32_t>> filling(const std::vector<int32_t>& final, const std::vector<int>& order, int32_t mask) {
  std::vector<int32_t> c(final.size(), mask);
  c[0] = c[1] = 'P';
  std::vector<std::vector<int32_t>> steps;
  for (int p : order) {
    c[size_t(p)] = final[size_t(p)];
    steps.push_back(c);
  }
  return steps;
}

TEST(TextFinal, PiecesComeLeftToRightAndAddUpToTheFinishedText) {
  const std::unique_ptr<Tokenizer> tok = make_tokenizer(byte_level_vocab());
  const int32_t mask = 300, eos = 0;
  // "Hé!" then EOS then junk the reference pads with: "é" is two byte tokens filled in reverse order.
  const std::vector<int32_t> final = {'P', 'P', 'H', 0xC3, 0xA9, '!', eos, 'x', 'y'};
  FinalText t(tok.get(), mask, 2, {eos}, {});
  std::vector<std::string> pieces;
  for (const auto& canvas : filling(final, {4, 8, 2, 3, 5, 7, 6}, mask)) {
    pieces.push_back(t.update(canvas));
    EXPECT_EQ(valid_utf8(pieces.back()), pieces.back()) << "never half a character";
  }
  EXPECT_EQ(pieces, (std::vector<std::string>{"", "", "H", "\xC3\xA9", "!", "", ""}))
      << "a position's text waits until every position before it is final";
  EXPECT_TRUE(t.stopped()) << "EOS became final";
  EXPECT_EQ(t.finish(final), "");
  EXPECT_EQ(t.tokens(), 4);
}

TEST(TextFinal, StopStringsCutTheTextAndAnUnfinishedCanvasEndsAtItsFirstMask) {
  const std::unique_ptr<Tokenizer> tok = make_tokenizer(byte_level_vocab());
  const int32_t mask = 300;
  std::vector<int32_t> canvas = {'P', 'a', 'b', 'S', 'T', 'c'};
  FinalText cut(tok.get(), mask, 1, {}, {"ST"});
  EXPECT_EQ(cut.update(std::vector<int32_t>{'P', 'a', 'b', 'S', mask, 'c'}), "ab") << "'S' may start the stop string";
  EXPECT_FALSE(cut.stopped());
  EXPECT_EQ(cut.update(canvas), "");
  EXPECT_TRUE(cut.stopped());
  EXPECT_TRUE(cut.stopped_by_string());
  EXPECT_EQ(cut.finish(canvas), "");
  FinalText open(tok.get(), mask, 1, {}, {"ST"});
  EXPECT_EQ(open.finish(std::vector<int32_t>{'P', 'a', 'S', mask, 'c'}), "aS") << "a cancelled run: text up to the mask";
  EXPECT_FALSE(open.stopped());
  FinalText ids(nullptr, mask, 1, {7}, {});
  EXPECT_EQ(ids.finish(std::vector<int32_t>{1, 4, 5, 7, 9}), "4 5") << "without a tokenizer: ids";
}

}  // namespace
}  // namespace unmask
