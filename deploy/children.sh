# Sourced (after `cd` to the repository root) by quickstart.sh and local-cluster.sh: the child
# processes they start, listed in `pids`, get SIGTERM and are waited for when the script exits,
# and Ctrl-C ends the script with status 130 after printing "<NAME>: <MESSAGE>".
# Usage: source deploy/children.sh NAME MESSAGE; then pids+=($!) after each start.
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
# shellcheck disable=SC2064  # expand the name and message now
trap "echo; echo '$1: $2'; exit 130" INT TERM
