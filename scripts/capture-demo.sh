#!/usr/bin/env bash
# Draws docs/img/demo.svg: `unmask demo` run in a real terminal (tmux, 100 x 30), its screen captured with colours at
# the end (tmux capture-pane -e) and rendered by scripts/ansi_to_svg.py. Needs tmux (installed when missing).
#
#   bash scripts/capture-demo.sh [extra demo flags]      # e.g. -p "And God said" -s 3
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tmux >/dev/null || { [ "$(id -u)" -eq 0 ] || sudo=sudo; ${sudo:-} apt-get install -y -qq tmux >/dev/null; }
unmask=$(realpath build/release/unmask)
session=unmask-demo-$$
done_flag=$(mktemp)
rm -f "$done_flag"
args=$(printf ' %q' "$@")
tmux new-session -d -s "$session" -x 100 -y 30 \
  "$unmask demo$args ; touch $done_flag; sleep 600"
for _ in $(seq 1 600); do [ -e "$done_flag" ] && break; sleep 0.5; done
tmux capture-pane -e -p -t "$session" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' \
  | /usr/bin/python3 scripts/ansi_to_svg.py --title "$ unmask demo$args" > docs/img/demo.svg
tmux kill-session -t "$session"
rm -f "$done_flag"
echo "wrote docs/img/demo.svg"
