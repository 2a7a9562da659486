// Supervised fine-tuning: the loss batch (prompt never masked, weights normalised by the answer length), the JSONL
// parser, the example shard and its malformed cases, and a tiny fine-tune through `unmask` that resumes bit for bit.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "../common/test_util.h"
#include "unmask/base/error.h"
#include "unmask/diffusion/noise.h"
#include "unmask/diffusion/objective.h"
#include "unmask/io/gguf.h"
#include "unmask/tokenizer/chat.h"
#include "unmask/tokenizer/tokenizer.h"
#include "unmask/tokenizer/train.h"
#include "unmask/train/sft_data.h"

namespace unmask {
namespace {

namespace fs = std::filesystem;
using test::Result;
using test::sh;

constexpr int32_t kMask = 99;

Objective sft_objective() {
  Objective o;
  o.kind = ObjectiveKind::kSFT;
  o.mask_token = kMask;
  return o;
}

// B examples of T tokens, token (b, i) = 10 b + i % 10 (never the mask id), with the given prompt lengths.
std::vector<int32_t> sequences(int B, int T) {
  std::vector<int32_t> s(size_t(B) * T);
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < T; ++i) s[size_t(b * T + i)] = 10 * b + i % 10;
  return s;
}

using test::error_of;

TEST(Sft, PromptIsNeverMaskedAndAnswerRowsAreTheMaskedOnes) {
  const int B = 3, T = 12;
  const std::vector<int32_t> P = {0, 5, 11};
  auto seqs = sequences(B, T);
  Objective o = sft_objective();
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Rng rng(seed);
    LossBatch lb = make_sft_loss_batch(o, seqs, P, B, T, rng);
    ASSERT_EQ(lb.batch.tokens.size(), size_t(B * T));
    std::vector<bool> is_row(size_t(B * T), false);
    for (size_t r = 0; r < lb.batch.rows.size(); ++r) {
      const int row = lb.batch.rows[r], b = row / T, i = row % T;
      is_row[size_t(row)] = true;
      ASSERT_GE(i, P[size_t(b)]) << "seed " << seed << ": prompt position " << i << " of example " << b << " carries a loss";
      EXPECT_EQ(lb.targets[r], seqs[size_t(row)]);
    }
    for (int row = 0; row < B * T; ++row) {
      const bool in_prompt = row % T < P[size_t(row / T)];
      // A position is masked exactly when it carries a loss; the prompt always keeps its clean tokens.
      EXPECT_EQ(lb.batch.tokens[size_t(row)] == kMask, bool(is_row[size_t(row)])) << "seed " << seed << " row " << row;
      if (in_prompt || !is_row[size_t(row)]) {
        EXPECT_EQ(lb.batch.tokens[size_t(row)], seqs[size_t(row)]);
      }
    }
    for (const KeySpan& s : lb.batch.spans) EXPECT_EQ(s.end0 - s.begin0, T);  // bidirectional: every key
  }
}

TEST(Sft, WeightsAreTheScheduleWeightOverAnswerLengthAndBatch) {
  const int B = 2, T = 8;
  const std::vector<int32_t> P = {3, 5};
  auto seqs = sequences(B, T);
  for (Schedule sched : {Schedule::kLinear, Schedule::kCosine}) {
    Objective o = sft_objective();
    o.schedule = sched;
    Rng rng(7), replay(7);
    LossBatch lb = make_sft_loss_batch(o, seqs, P, B, T, rng);
    const auto t = stratified_times(B, o.eps, replay);  // the first draws of the batch: one t per example
    ASSERT_FALSE(lb.weights.empty());
    for (size_t r = 0; r < lb.weights.size(); ++r) {
      const int b = lb.batch.rows[r] / T;
      // LLaDA: CE / p_mask / answer_length / B, with the answer = response + padding = T - prompt.
      const float want = float(schedule_weight(sched, t[size_t(b)], o.eps)) * (1.0f / (float(T - P[size_t(b)]) * B));
      EXPECT_FLOAT_EQ(lb.weights[r], want) << "row " << lb.batch.rows[r];
    }
  }
  // Linear: t = 0.5 by hand gives weight 2 / (answer · B); here the answer of example 1 is 3 tokens.
  EXPECT_FLOAT_EQ(float(schedule_weight(Schedule::kLinear, 0.5, 1e-3)) / (3.0f * 2.0f), 1.0f / 3.0f);
}

// Each answer token is masked with probability 1 − α(t): over many batches the count of masked answer tokens stays
// within 5 standard deviations of Σ n·p (variance Σ n·p·(1 − p), binomial).
TEST(Sft, AnswerTokensAreMaskedWithProbabilityOneMinusAlpha) {
  const int B = 4, T = 16;
  const std::vector<int32_t> P = {2, 8, 15, 0};
  auto seqs = sequences(B, T);
  Objective o = sft_objective();
  double masked = 0, mean = 0, var = 0;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    Rng rng(seed), replay(seed);
    masked += double(make_sft_loss_batch(o, seqs, P, B, T, rng).targets.size());
    auto t = stratified_times(B, o.eps, replay);
    for (int b = 0; b < B; ++b) {
      const double p = 1.0 - schedule_alpha(o.schedule, t[size_t(b)], o.eps), n = T - P[size_t(b)];
      mean += n * p, var += n * p * (1 - p);
    }
  }
  EXPECT_LE(std::abs(masked - mean), 5 * std::sqrt(var)) << "masked " << masked << ", expected " << mean;
}

TEST(Sft, BadBatchesAreRefused) {
  auto seqs = sequences(2, 8);
  Objective o = sft_objective();
  Rng rng(1);
  EXPECT_NE(error_of([&] { make_sft_loss_batch(o, seqs, std::vector<int32_t>{3, 8}, 2, 8, rng); }).find("prompt of 8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make_loss_batch(o, std::vector<int32_t>(18), 2, 8, rng); }).find("examples"),
            std::string::npos);
}

TEST(Sft, JsonlParsesBothForms) {
  const std::string text =
      "{\"prompt\": \"2+2=\", \"response\": \"4\"}\n"
      "\n"
      "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"hi\"},"
      " {\"role\": \"assistant\", \"content\": \"hello\"}]}\n";
  auto pairs = parse_sft_jsonl(text, "x.jsonl");
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].line, 1);
  ASSERT_EQ(pairs[0].prompt.size(), 1u);
  EXPECT_EQ(pairs[0].prompt[0].role, "user");
  EXPECT_EQ(pairs[0].prompt[0].content, "2+2=");
  EXPECT_EQ(pairs[0].response, "4");
  EXPECT_EQ(pairs[1].line, 3);
  ASSERT_EQ(pairs[1].prompt.size(), 2u);
  EXPECT_EQ(pairs[1].prompt[0].role, "system");
  EXPECT_EQ(pairs[1].prompt[1].content, "hi");
  EXPECT_EQ(pairs[1].response, "hello");
}

TEST(Sft, JsonlErrorsNameTheLine) {
  const std::string good = "{\"prompt\": \"a\", \"response\": \"b\"}\n";
  auto err = [](const std::string& text) { return error_of([&] { parse_sft_jsonl(text, "d.jsonl"); }); };
  EXPECT_NE(err(good + good + "{\"prompt\": \"a\", \n").find("d.jsonl:3: not valid JSON"), std::string::npos);
  EXPECT_NE(err(good + "{\"prompt\": \"a\"}\n").find("d.jsonl:2: missing field \"response\""), std::string::npos);
  EXPECT_NE(err("{\"prompt\": 3, \"response\": \"b\"}").find("d.jsonl:1: field \"prompt\" is a number"),
            std::string::npos);
  EXPECT_NE(err("{\"text\": \"a\"}").find("d.jsonl:1: neither"), std::string::npos);
  EXPECT_NE(err("[1, 2]").find("d.jsonl:1: a array"), std::string::npos);
  EXPECT_NE(err("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]}")
                .find("d.jsonl:1: the last message has role \"user\""),
            std::string::npos);
  EXPECT_NE(err("{\"messages\": [{\"role\": \"user\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}")
                .find("d.jsonl:1: message 0: missing field \"content\""),
            std::string::npos);
  EXPECT_NE(err("").find("d.jsonl: no examples"), std::string::npos);
  EXPECT_NE(err("\n  \n").find("d.jsonl: no examples"), std::string::npos);
}

TEST(Sft, RenderedExampleIsPromptThenResponseThenTerminator) {
  auto tok = make_tokenizer(byte_level_vocab());
  const ChatTemplate& chat = chat_template_by_name("llada");
  SftPair p{{{"user", "hi"}}, " yo ", 1};
  const int32_t term = sft_terminator(chat, *tok);
  EXPECT_EQ(term, tok->role(TokenRole::kEot));  // the byte vocabulary has no <|eot_id|>: its EOT stands in
  SftExample e = render_sft_example(p, chat, *tok, term);
  auto prompt = tok->encode(apply_chat_template(chat, p.prompt, true), false, true);
  ASSERT_EQ(e.prompt_len, int32_t(prompt.size()));
  EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), e.tokens.begin()));
  EXPECT_EQ(tok->decode(std::span(e.tokens).subspan(prompt.size(), 2)), "yo");  // llada trims content
  ASSERT_EQ(e.tokens.size(), prompt.size() + 3);
  EXPECT_EQ(e.tokens.back(), term);
}

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("unmask_sft_test_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(Sft, ShardRoundTripsAndPadsAndCuts) {
  fs::path dir = temp_dir("shard");
  const std::string path = (dir / "x.sft").string();
  std::vector<SftExample> ex = {{{1, 2, 3, 4, 5}, 2}, {{7, 8, 9}, 1}};
  write_sft_shard(path, ex, 20, 19);
  SftShard s(path);
  EXPECT_EQ(s.size(), 2);
  EXPECT_EQ(s.pad(), 19);
  EXPECT_EQ(s.max_prompt(), 2);
  std::vector<int32_t> out(6);
  EXPECT_EQ(s.read(1, 6, out.data()), 1);
  EXPECT_EQ(out, (std::vector<int32_t>{7, 8, 9, 19, 19, 19}));
  out.resize(4);
  EXPECT_EQ(s.read(0, 4, out.data()), 2);
  EXPECT_EQ(out, (std::vector<int32_t>{1, 2, 3, 4}));  // the response is cut, the prompt kept
  EXPECT_NE(error_of([&] { s.read(0, 2, out.data()); }).find("no room for its answer"), std::string::npos);
  fs::remove_all(dir);
}

// Writes bytes, opens them as a shard, returns the error.
std::string open_error(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  return error_of([&] { SftShard s(path.string()); });
}

TEST(Sft, MalformedShardsAreRefusedNamingTheFile) {
  fs::path dir = temp_dir("bad");
  const fs::path good = dir / "good.sft", bad = dir / "bad.sft";
  write_sft_shard(good.string(), std::vector<SftExample>{{{1, 2, 3}, 1}, {{4, 5}, 1}}, 10, 9);
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_EQ(bytes.size(), 48u + 2 * 8 + 5 * 4);
  auto patched = [&](size_t at, uint32_t v) {
    std::string b = bytes;
    std::memcpy(b.data() + at, &v, 4);
    return b;
  };
  auto expect = [&](const std::string& b, const std::string& what) {
    std::string e = open_error(bad, b);
    EXPECT_NE(e.find(bad.string()), std::string::npos) << e;
    EXPECT_NE(e.find(what), std::string::npos) << e;
  };
  expect(bytes.substr(0, 20), "too short");
  expect("XNMASKSF" + bytes.substr(8), "bad magic");
  expect(patched(8, 2), "version 2");
  expect(patched(24, 6), "header says 2 examples and 6 tokens");  // token count
  expect(bytes.substr(0, bytes.size() - 4), "header says");       // truncated
  expect(patched(16, 0), "no examples");
  expect(patched(32, 10), "pad token 10");
  expect(patched(48, 3), "example 0 claims 3 tokens with a prompt of 3");  // prompt_len == len
  expect(patched(52, 4), "example 1 claims 2 tokens");                     // lengths overrun the tokens
  expect(patched(48 + 16 + 8, 12), "token 12 at 2");
  fs::remove_all(dir);
}

// A JSONL file of additions, half in each form.
void write_pairs(const fs::path& path, int n) {
  std::ofstream f(path);
  for (int i = 0; i < n; ++i) {
    const int a = (i * 37) % 50, b = (i * 11) % 50;
    if (i % 2)
      f << "{\"prompt\": \"" << a << "+" << b << "=\", \"response\": \"" << a + b << "\"}\n";
    else
      f << "{\"messages\": [{\"role\": \"user\", \"content\": \"" << a << "+" << b
        << "=\"}, {\"role\": \"assistant\", \"content\": \"" << a + b << "\"}]}\n";
  }
}

TEST(Sft, TinyFineTuneRunsAndResumesBitForBit) {
  fs::path dir = temp_dir("e2e");
  write_pairs(dir / "pairs.jsonl", 60);
  Result r = sh("data prepare --format jsonl --chat-template chatml --input " + (dir / "pairs.jsonl").string() +
                " --out " + (dir / "data").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("54 train + 6 validation examples"), std::string::npos) << r.out;
  r = sh("init --arch llada --vocab 260 --d-model 32 --layers 1 --heads 2 --ffn 48 --ctx 96 --out " +
         (dir / "base.gguf").string());
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string args = "train --objective sft --data " + (dir / "data").string() + " --init " +
                           (dir / "base.gguf").string() + " --batch 3 --seq-len 64 --steps 150 --warmup 10 "
                           "--checkpoint-every 3 --eval-every 50 --eval-batches 2 -t 1";
  Result full = sh(args + " --out " + (dir / "a").string());
  ASSERT_EQ(full.code, 0) << full.out;
  EXPECT_NE(full.out.find("val "), std::string::npos) << full.out;
  // The template the data was prepared with travels into the checkpoint, where generate --chat finds it.
  const std::string tmpl = gguf::Reader((dir / "a" / "checkpoint.gguf").string()).get_string("tokenizer.chat_template");
  ASSERT_NE(detect_chat_template(tmpl, ""), nullptr) << tmpl;
  EXPECT_EQ(detect_chat_template(tmpl, "")->name, "chatml") << tmpl;
  const int64_t at = test::kill_after_first_checkpoint(args, dir / "b");
  ASSERT_LT(at, 150) << "the run finished before the kill; nothing was tested";
  Result resumed = sh("train --resume " + (dir / "b").string() + " -t 1");
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_TRUE(test::tensors(dir / "a" / "checkpoint.gguf") == test::tensors(dir / "b" / "checkpoint.gguf"))
      << "killed after step " << at << " and resumed, the final weights differ";
  fs::remove_all(dir);
}

TEST(Sft, CommandLineRefusesBadInput) {
  fs::path dir = temp_dir("cli");
  write_pairs(dir / "pairs.jsonl", 4);
  std::ofstream(dir / "pairs.jsonl", std::ios::app) << "{\"prompt\": \"1+1=\"\n";
  const std::string prep = "data prepare --format jsonl --chat-template chatml --out " + (dir / "data").string();
  Result r = sh(prep + " --input " + (dir / "pairs.jsonl").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("pairs.jsonl:5: not valid JSON"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir / "data" / "tokenizer.gguf")) << "a failed prepare left a tokenizer behind";
  write_pairs(dir / "pairs.jsonl", 4);
  r = sh(prep + " --input " + (dir / "pairs.jsonl").string() + " --seq-len 20");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("pairs.jsonl:1: the prompt renders to"), std::string::npos) << r.out;
  r = sh("data prepare --format jsonl --input " + (dir / "pairs.jsonl").string() + " --out " + (dir / "d2").string());
  EXPECT_EQ(r.code, 1) << r.out;  // the byte vocabulary has no chat template of its own
  EXPECT_NE(r.out.find("--chat-template"), std::string::npos) << r.out;
  ASSERT_EQ(sh(prep + " --input " + (dir / "pairs.jsonl").string()).code, 0);
  ASSERT_EQ(sh("init --arch llama --vocab 260 --d-model 32 --layers 1 --heads 2 --ffn 48 --out " +
               (dir / "ar.gguf").string()).code, 0);
  const std::string train = "train --objective sft --data " + (dir / "data").string() + " --steps 2 --batch 2 ";
  r = sh(train + "--seq-len 64 --init " + (dir / "ar.gguf").string() + " --out " + (dir / "run").string());
  EXPECT_EQ(r.code, 1) << r.out;  // a causal model cannot learn the bidirectional objective
  EXPECT_NE(r.out.find("attention is causal"), std::string::npos) << r.out;
  r = sh(train + "--seq-len 8 --config tiny --out " + (dir / "run2").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("train.sft: the longest prompt"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace unmask
