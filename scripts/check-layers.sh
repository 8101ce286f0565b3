#!/usr/bin/env bash
# The CLI's modules import downwards only: `host` (files, users, processes, sockets) at the
# bottom, `runtime` above it, `commands` and `wrapper` on top; `args`, `output` and
# `settings` are leaves. Fails on an upward import or an import cycle between modules
# (a module is a file, or a folder such as runtime/bridge/, named crate::LAYER::NAME).
#
#   scripts/check-layers.sh [SRC_DIR]      (default uwsgi-docker-cli/src)
set -euo pipefail
src="${1:-$(dirname "$0")/../uwsgi-docker-cli/src}"
cd "$src"

# The module a file belongs to: host/hostfs/tests.rs -> host::hostfs, wrapper.rs -> wrapper.
module_of() {
    local p="${1%.rs}"
    p="${p%/mod}"
    IFS=/ read -r -a parts <<<"$p"
    case "${parts[0]}" in
        host | runtime | commands) echo "${parts[0]}::${parts[1]:-mod}" ;;
        *) echo "${parts[0]}" ;;
    esac
}
# The module a path in `crate::…` names, to the same depth.
target_of() {
    IFS=: read -r -a parts <<<"${1//::/:}"
    case "${parts[1]}" in
        host | runtime | commands) echo "${parts[1]}::${parts[2]:-mod}" ;;
        *) echo "${parts[1]}" ;;
    esac
}
rank() {
    case "$1" in
        args | output | settings) echo 0 ;;
        host::*) echo 1 ;;
        runtime::*) echo 2 ;;
        *) echo 3 ;;
    esac
}

edges="$(mktemp)"
trap 'rm -f "$edges"' EXIT
bad=0
while IFS= read -r file; do
    from="$(module_of "$file")"
    [[ "$from" == main || "$from" == launcher ]] && continue
    echo "$from $from" >>"$edges"
    # `use crate::{a, b::c}` groups are spelled out one path a line first.
    while IFS= read -r path; do
        to="$(target_of "$path")"
        [[ "$to" == "$from" ]] && continue
        echo "$from $to" >>"$edges"
        if (($(rank "$to") > $(rank "$from"))); then
            echo "upward import: $file ($from) uses $path ($to)" >&2
            bad=1
        fi
    done < <(tr '\n' ' ' <"$file" \
        | grep -oE 'crate::(\{[^}]*\}|[a-z_]+(::[a-z_]+)?)' \
        | sed -E 's/^crate::\{(.*)\}$/\1/; s/^crate:://' | tr ',' '\n' \
        | sed -E 's/[[:space:]]//g; s/::\{.*//; s/^/crate::/' | grep -E '^crate::[a-z_]+' || true)
done < <(find . -name '*.rs' | sed 's|^\./||' | sort)

if ! tsort "$edges" >/dev/null 2>"$edges.err"; then
    cat "$edges.err" >&2
    bad=1
fi
rm -f "$edges.err"
if ((bad)); then
    echo "check-layers: the CLI's modules import upwards or in a circle (see above)" >&2
    exit 1
fi
echo "check-layers: $(sort -u "$edges" | awk '$1 != $2' | wc -l) imports between $(awk '{print $1}' "$edges" | sort -u | wc -l) modules, all downwards, no cycle" >&2
