// The report of `unmask compare`, drawn from the figures of its phases alone (so that a resumed run writes the same
// report): OUT/report.md with a table per measurement and the plain statements of where each twin wins and loses,
// SVG plots beside it (loss against training tokens, the gen-ppl/entropy frontier, the speed/quality frontiers, the
// task bars), and OUT/results.json holding every figure with the settings, command, commit and machine.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>

namespace unmask {

// phases: name -> the phase's figures ("data", "train-ar", "likelihood", "gen", "task-reversal", ...).
void write_report(const std::filesystem::path& out, const nlohmann::json& settings,
                  const std::map<std::string, nlohmann::json>& phases, const std::string& command,
                  const std::string& machine);

}  // namespace unmask
