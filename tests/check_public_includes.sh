#!/bin/sh
# The programs use only the public API: every #include "..." of tools/cli/* and tools/common/*
# must be a public header (include/distrifuse/...), a file of tools/common/, or a file next to
# the including one (a program's own header); <mpi.h> is never included. CTest: public_includes.
# usage: check_public_includes.sh SOURCE_DIR
src=${1:?usage: check_public_includes.sh SOURCE_DIR}
bad=0
n=0
for f in "$src"/tools/cli/*.c "$src"/tools/cli/*.h "$src"/tools/common/*.c "$src"/tools/common/*.h; do
    [ -f "$f" ] || continue
    dir=$(dirname "$f")
    while IFS= read -r inc; do
        [ -n "$inc" ] || continue
        n=$((n + 1))
        if [ -f "$src/include/$inc" ] || [ -f "$src/tools/common/$inc" ] || [ -f "$dir/$inc" ]; then
            continue
        fi
        echo "public_includes: ${f#$src/} includes \"$inc\" (not in include/ or tools/common/)"
        bad=1
    done <<LIST
$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
LIST
    if grep -Eq '^[[:space:]]*#[[:space:]]*include[[:space:]]*<mpi\.h>' "$f"; then
        echo "public_includes: ${f#$src/} includes <mpi.h>"
        bad=1
    fi
done
if [ "$n" -eq 0 ]; then
    echo "public_includes: no #include found under $src/tools (wrong SOURCE_DIR?)"
    exit 1
fi
[ "$bad" -eq 0 ] && echo "public_includes: $n includes checked, all public"
exit $bad
