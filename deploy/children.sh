# Sourced (after `cd` to the repository root) by quickstart.sh, local-cluster.sh and the bench
# scripts: the child processes they start, listed in `pids`, get SIGTERM and are waited for when
# the script exits, and Ctrl-C ends the script with status 130 after printing "<NAME>: <MESSAGE>".
# Usage: source deploy/children.sh NAME MESSAGE; then pids+=($!) after each start. A script
# with more to undo redefines cleanup() and calls stop_children from it.
pids=()
stop_children() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
cleanup() {
  trap - EXIT INT TERM
  stop_children
}
trap cleanup EXIT
# shellcheck disable=SC2064  # expand the name and message now
trap "echo; echo '$1: $2'; exit 130" INT TERM

# Waits for a run whose coordinator is pids[0] and whose workers follow it; a failed
# coordinator ends the script (status 1) with its log's last lines. Empties pids.
# Usage: wait_cluster NAME COORDINATOR_LOG WHAT  (WHAT: e.g. "at rate 20mbit")
wait_cluster() {
  if ! wait "${pids[0]}"; then
    echo "$1: coordinator failed $3; see $2" >&2
    tail -5 "$2" >&2
    exit 1
  fi
  local pid
  for pid in "${pids[@]:1}"; do wait "$pid" || true; done
  pids=()
}
