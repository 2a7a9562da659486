// unmask eval gen: (being written).
#include "commands.h"

namespace unmask::cli {

void add_eval_gen(CLI::App& eval) { (void)eval; }

}  // namespace unmask::cli
