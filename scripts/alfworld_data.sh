#!/usr/bin/env bash
# Print the ALFWorld data folder to use, unpacking the development copy in ../shared/data when needed.
#
# Order: $ALFWORLD_DATA if it holds json_2.1.1/; else ~/.cache/alfworld (where `alfworld-download`
# writes); else, when this checkout has ../shared/data/alfworld beside it, that copy is unpacked
# into ~/.cache/alfworld. When no data is found it warns and prints the default folder anyway,
# so that prism-agents reports the missing split itself.
set -euo pipefail
cd "$(dirname "$0")/.."
default="${XDG_CACHE_HOME:-$HOME/.cache}/alfworld"
for candidate in "${ALFWORLD_DATA:-}" "$default"; do
  if [ -n "$candidate" ] && [ -d "$candidate/json_2.1.1" ]; then echo "$candidate"; exit 0; fi
done
if [ -x ../shared/data/alfworld/unpack.sh ] || [ -f ../shared/data/alfworld/unpack.sh ]; then
  echo "Unpacking ../shared/data/alfworld into $default" >&2
  bash ../shared/data/alfworld/unpack.sh "$default" >/dev/null
  echo "$default"
  exit 0
fi
echo "warning: no ALFWorld data found: run 'alfworld-download' (from the alfworld package) or set ALFWORLD_DATA" >&2
echo "$default"
