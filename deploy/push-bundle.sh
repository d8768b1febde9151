#!/bin/sh
# Push a bundle to a device running `edgeclf camera`, replacing the bundle it runs without stopping it.
#
#   deploy/push-bundle.sh BUNDLE_DIR [USER@HOST:]TARGET_DIR [--reload UNIT | --hup-pid PID]
#
# 1. rsync BUNDLE_DIR into a temporary folder beside TARGET_DIR (same file system, so nothing half-copied
#    is ever at TARGET_DIR);
# 2. swap it in: the running bundle moves to TARGET_DIR.previous (kept: push that one back to undo), the
#    new one is renamed to TARGET_DIR (under the lock the camera takes for its own renames);
# 3. `edgeclf camera TARGET_DIR --watch` sees the new folder by itself; without --watch, --reload UNIT
#    sends the service SIGHUP (`systemctl reload UNIT`) and --hup-pid PID signals a process directly.
# The camera then verifies the new bundle (sha256, load, self-test), swaps it in between two frames and
# rolls back to the previous one if it fails or answers "unknown" far more often (docs/updates.md). A
# refused bundle is renamed to TARGET_DIR.rejected and TARGET_DIR.previous back to TARGET_DIR, so a
# restart of the service runs the known-good bundle; its events say so (bundle_restored).
#
# A remote TARGET (host:/path) needs ssh and rsync on both ends; a local path needs rsync only.
set -eu

usage() {
    echo "usage: $0 BUNDLE_DIR [USER@HOST:]TARGET_DIR [--reload UNIT | --hup-pid PID]" >&2
    exit 2
}

[ $# -ge 2 ] || usage
src=${1%/}
dest=${2%/}
shift 2
unit=""
pid=""
while [ $# -gt 0 ]; do
    case "$1" in
        --reload) [ $# -ge 2 ] || usage; unit=$2; shift 2 ;;
        --hup-pid) [ $# -ge 2 ] || usage; pid=$2; shift 2 ;;
        *) usage ;;
    esac
done

for f in manifest.json model.tflite; do
    if [ ! -f "$src/$f" ]; then
        echo "error: $src: no $f; expected a bundle folder made by \`edgeclf convert\`" >&2
        exit 1
    fi
done
command -v rsync >/dev/null 2>&1 || { echo "error: rsync is not installed; install it (apt install rsync)" >&2; exit 1; }

case "$dest" in
    *:*) host=${dest%%:*}; path=${dest#*:} ;;
    *) host=""; path=$dest ;;
esac
case "$path" in
    */*) parent=${path%/*}; name=${path##*/} ;;
    *) parent=.; name=$path ;;
esac
[ -n "$parent" ] || parent=/
incoming="$parent/.$name.incoming"

# Runs a shell snippet where the target lives (here, or over ssh). Arguments are passed as $1, $2, ...
on_target() {
    script=$1
    shift
    if [ -n "$host" ]; then
        quoted=""
        for a in "$@"; do quoted="$quoted '$(printf %s "$a" | sed "s/'/'\\\\''/g")'"; done
        ssh "$host" "sh -c '$(printf %s "$script" | sed "s/'/'\\\\''/g")' sh$quoted"
    else
        sh -c "$script" sh "$@"
    fi
}

on_target 'mkdir -p "$1" && rm -rf "$2"' "$parent" "$incoming"
rsync -a --checksum --delete "$src/" "${host:+$host:}$incoming/"
# The swap: TARGET moves aside (kept as TARGET.previous), the complete copy takes its name. It holds
# .NAME.lock (flock, where installed), which the camera also takes while it writes TARGET.previous or
# puts a refused bundle aside (edgeclf/edge/rollback.py): the two never interleave their renames.
on_target 'set -e
if command -v flock >/dev/null 2>&1; then exec 9>"$3"; flock -w 300 9; fi
if [ -e "$1" ]; then rm -rf "$1.previous"; mv "$1" "$1.previous"; fi
mv "$2" "$1"' "$path" "$incoming" "$parent/.$name.lock"
echo "pushed $src -> $dest (the previous bundle is $path.previous)"

if [ -n "$unit" ]; then
    on_target 'systemctl reload "$1"' "$unit"
    echo "sent SIGHUP to $unit (systemctl reload)"
elif [ -n "$pid" ]; then
    on_target 'kill -HUP "$1"' "$pid"
    echo "sent SIGHUP to process $pid"
fi
