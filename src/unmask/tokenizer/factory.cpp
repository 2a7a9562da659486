#include "unmask/tokenizer/tokenizer.h"

namespace unmask {

std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab, bool reference);  // bpe_tokenizer.cpp
std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab);                   // spm_tokenizer.cpp

std::unique_ptr<Tokenizer> make_tokenizer(Vocab vocab) {
  validate_vocab(vocab, "tokenizer");
  if (vocab.kind == VocabKind::kSpm) return make_spm_tokenizer(std::move(vocab));
  return make_bpe_tokenizer(std::move(vocab), false);
}

std::unique_ptr<Tokenizer> make_reference_bpe_tokenizer(Vocab vocab) {
  validate_vocab(vocab, "tokenizer");
  return make_bpe_tokenizer(std::move(vocab), true);
}

}  // namespace unmask
