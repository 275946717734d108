#!/usr/bin/env bash
# Writes the default training corpus, the King James Bible (public domain, ~4 MB), to
# data/kjv.txt from Debian's bible-kjv package. Idempotent: does nothing when the file exists.
#   deploy/fetch-corpus.sh [OUT]    (default OUT: data/kjv.txt in the repository)
#
# `bible` prints chapter headings ("Genesis 1"), verse numbers ("  1 In the beginning ...")
# and wraps lines at 80 columns. We keep only the text, one verse per line, with a blank line
# between chapters: verse numbers would cost the model capacity on counting and show up as
# noise in generated text, and the 80-column breaks are layout, not language (they would
# teach the model to break lines mid-sentence at random).
set -euo pipefail
out="${1:-$(dirname "$0")/../data/kjv.txt}"  # a relative OUT is relative to the caller's folder
[[ -s "$out" ]] && exit 0

if ! command -v bible >/dev/null; then
  echo "fetch-corpus: 'bible' not found; install Debian's bible-kjv (deploy/setup-deps.sh)" >&2
  exit 1
fi
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
bible 'gen1:1-rev22:21' | awk '
  # A heading is a line at column 0 right after a blank line; a verse starts with spaces and
  # its number; any other non-blank line continues the current verse.
  /^$/ { prev_blank = 1; next }
  prev_blank && !/^ / {
    if (verse != "") { print verse; verse = "" }
    if (chapters++ > 0) print ""
    prev_blank = 0; next
  }
  /^ +[0-9]+ / {
    if (verse != "") print verse
    sub(/^ +[0-9]+ /, ""); verse = $0; prev_blank = 0; next
  }
  { verse = verse " " $0; prev_blank = 0 }
  END { if (verse != "") print verse }
' >"$tmp"
lines=$(grep -c . "$tmp" || true)
if [[ "$lines" -lt 30000 ]]; then
  echo "fetch-corpus: expected ~31102 verses from bible-kjv, got $lines lines" >&2
  exit 1
fi
mv "$tmp" "$out"
trap - EXIT
echo "fetch-corpus: wrote $out ($(wc -c <"$out") bytes, $lines verses)" >&2
