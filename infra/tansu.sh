#!/usr/bin/env bash
# Tansu, a Kafka-compatible broker from crates.io, for the multi-process end-to-end and fault
# tests (DESIGN.md §6). Built once into ~/.cache/dijkwacht-tools (10-15 minutes on 2 cores);
# the tests start and stop their own broker processes with it.
#
#   infra/tansu.sh install   build it if it is not there yet; prints its path
set -euo pipefail

root="${DIJKWACHT_TOOLS:-$HOME/.cache/dijkwacht-tools}"
bin="$root/bin/tansu"
version=0.6.0

case "${1:-install}" in
install)
    if [ ! -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q "$version"; then
        echo "building tansu $version into $root (once; 10-15 minutes)" >&2
        CARGO_TARGET_DIR="$root/target" cargo install tansu --version "$version" --locked --features libsql --root "$root" >&2
    fi
    echo "$bin"
    ;;
*)
    echo "usage: $0 install" >&2
    exit 2
    ;;
esac
