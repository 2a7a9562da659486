// What `train` and `compare` share: the model and optimisation flags of a training run, and the signals that stop
// one (SIGINT, SIGTERM) at the end of the step under way, so that it checkpoints and can resume.
#pragma once

#include <CLI/CLI.hpp>

#include "unmask/train/trainer.h"

namespace unmask::cli {

// --schedule, --config, --d-model, --layers, --heads, --ffn, --block-size, --steps, --batch, --seq-len, --accum, --lr,
// --min-lr, --warmup, --weight-decay, --beta2, --grad-clip, --eval-every, --eval-batches, --checkpoint-every, --bf16,
// --seed.
void add_train_options(CLI::App* cmd, TrainConfig& c);

// From now on the first SIGINT or SIGTERM is noted (with a line on stderr) rather than fatal; a second one has its
// default effect.
void catch_stop_signals();
int stop_signal();  // the signal noted, 0 for none

}  // namespace unmask::cli
