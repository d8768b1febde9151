#!/usr/bin/env bash
# The Pi's own software, here: Debian 12 "bookworm" userlands (what Raspberry Pi OS Bookworm is built on)
# for arm64 (64-bit Pi OS) and armhf (32-bit Pi OS), run under qemu-user-static through binfmt_misc.
#
#   scripts/pi-check.sh [arm64] [armhf]        (default: both)
#
# arm64: python3 -m venv, `pip install '.[edge,mqtt]'` (ai-edge-litert, numpy 2, opencv-python-headless, paho-mqtt).
# armhf: numpy and OpenCV from apt (python3-numpy, python3-opencv: PyPI has no armv7 wheels for them), a venv
#        with --system-site-packages, `pip install '.[tflite-runtime-system,mqtt]'` (tflite-runtime 2.14, paho-mqtt).
# Both: Debian's mosquitto from apt (the broker the --mqtt tests start on a free port; its service is not
# enabled here), and prometheus-client with pytest as a test tool (the /metrics test parses with it; a Pi
# serving /metrics needs no client library).
# In each: the edge suite (pytest tests/edge) on bundles made on this desktop, `edgeclf info --check`,
# `classify` and `camera --source clip.mp4` with answers compared to the desktop's, each bundle's manifest
# verdict for the userland's interpreter against a real load there; in arm64 also the systemd unit.
#
# Each userland is built once and cached in $EDGECLF_PI_CACHE (default /var/cache/edgeclf-pi/<arch>-<key>,
# key = hash of the suite, apt packages, pip extras and pyproject's dependencies, and this recipe's version);
# edgeclf itself is re-installed from this checkout (editable, no deps) on every run. Bundles: --bundles DIR,
# else $EDGECLF_TFL_FIXTURES if it holds them, else made now with .venv (tests/make_bundles.py).
# Needs root (debootstrap, chroot, mounts in a private namespace: nothing stays mounted on the host).
# Exit 0: everything passed; 77: cannot run on this machine (the reason is the last line on stderr);
# anything else: a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RECIPE=2   # bump to rebuild every cached userland
SUITE=bookworm
MIRROR=${EDGECLF_PI_MIRROR:-http://deb.debian.org/debian}
CACHE=${EDGECLF_PI_CACHE:-/var/cache/edgeclf-pi}
SHARED=${EDGECLF_SHARED_DATA:-$REPO/../shared/datasets/horse-or-human/train}
SKIP=77
# The host's CA bundle goes into the userland for pip (a TLS-inspecting proxy's CA is in it, if there is one).
HOST_CA=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}

skip() { echo "pi-check: cannot run here: $*" >&2; exit "$SKIP"; }
die() { echo "pi-check: FAILED: $*" >&2; exit 1; }
say() { echo "== pi-check: $*"; }

ARCHES=() BUNDLES=""
while [ $# -gt 0 ]; do
  case $1 in
    arm64|armhf) ARCHES+=("$1") ;;
    --bundles) BUNDLES=$2; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) die "unknown argument $1; expected arm64, armhf or --bundles DIR" ;;
  esac
  shift
done
[ ${#ARCHES[@]} -gt 0 ] || ARCHES=(arm64 armhf)

declare -A QEMU=([arm64]=aarch64 [armhf]=arm)
declare -A APT=(
  [arm64]="python3,python3-venv,python3-pip,ca-certificates,openssl,mosquitto,systemd"
  [armhf]="python3,python3-venv,python3-pip,ca-certificates,openssl,mosquitto,python3-numpy,python3-opencv"
)
declare -A EXTRA=([arm64]=edge,mqtt [armhf]=tflite-runtime-system,mqtt)
# The CPU qemu emulates: a Pi 4's (Cortex-A72) and a Pi 2's (Cortex-A7), not qemu's default "max", whose
# extra features no Pi has (with them XNNPACK's int8 kernels gave wrong answers under qemu 7.2).
declare -A CPU=([arm64]=${EDGECLF_PI_CPU:-cortex-a72} [armhf]=${EDGECLF_PI_CPU:-cortex-a7})
declare -A VENV_FLAGS=([arm64]="" [armhf]="--system-site-packages")
# The interpreter each userland uses and the manifest's key for its verdict.
declare -A RUNTIME=([arm64]=ai-edge-litert [armhf]=tflite-runtime-2.14)
PIP_TOOLS="pytest>=8 prometheus-client>=0.20 setuptools>=77 wheel"

# ---- can this machine run foreign binaries? --------------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot, binfmt_misc); run it as root"
[ -d "$SHARED" ] || die "shared data set missing at $SHARED; set EDGECLF_SHARED_DATA to the horse-or-human train folder"
if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null \
    || ! command -v qemu-arm-static >/dev/null || ! command -v update-binfmts >/dev/null; then
  say "installing qemu-user-static binfmt-support debootstrap (apt)"
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    qemu-user-static binfmt-support debootstrap >/dev/null \
    || die "apt-get could not install qemu-user-static binfmt-support debootstrap"
fi
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/status" ]; then
  mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null \
    || skip "binfmt_misc is not mounted and cannot be (no CAP_SYS_ADMIN in this container?): no foreign binaries"
fi
for arch in "${ARCHES[@]}"; do
  q=qemu-${QEMU[$arch]}
  [ -e "$BINFMT/$q" ] || update-binfmts --enable "$q" >/dev/null 2>&1 || true
  [ -e "$BINFMT/$q" ] || skip "binfmt_misc refuses to register $q (no privilege over the host kernel?): no $arch binaries"
  grep -q '^enabled' "$BINFMT/$q" || skip "binfmt entry $q is disabled; run: update-binfmts --enable $q"
  # F (fix binary): the kernel opened the interpreter at registration, so it works inside a chroot.
  grep -q '^flags:.*F' "$BINFMT/$q" || skip "binfmt entry $q lacks the F flag; reinstall qemu-user-static"
done

# ---- run a command inside a userland, in a private mount namespace -------------------------------------
# in_root ROOT CMD...: /proc, /dev, resolv.conf, the host's CA bundle and the shared data set (read-only)
# are mounted in a namespace of their own, so they vanish with it; the cache never holds a live mount.
# /sys holds only the CPU list the interpreters' cpuinfo reads: the host's sysfs describes x86 CPUs (with it
# ai-edge-litert 2.3.0 crashed), and without one cpuinfo prints errors on every start. The root is bound
# onto itself first so that it is a mount point: tests that make a mount namespace of their own (a read-only
# tmpfs in test_save_recording) need `/` to be one, or unshare fails with EINVAL and the test skips.
in_root() {
  local root=$1 base; shift
  base=${root##*/}; base=${base#.build-}
  local -a env=(QEMU_CPU="${CPU[${base%%-*}]}" HOME=/root LANG=C.UTF-8 TERM=dumb PATH=/opt/edgeclf/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
                EDGECLF_SHARED_DATA=/root/shared PIP_DISABLE_PIP_VERSION_CHECK=1)
  [ -f "$HOST_CA" ] && env+=(PIP_CERT=/etc/ssl/host-ca.crt)
  local v; for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && env+=("$v=${!v}")
  done
  unshare --mount --propagation private -- /bin/bash -euc '
    r=$1 shared=$2 ca=$3; shift 3
    mount --bind "$r" "$r"
    mount -t proc proc "$r/proc"
    mount -t tmpfs -o size=1m sys "$r/sys"; mkdir -p "$r/sys/devices/system/cpu"
    echo "0-$(( $(nproc) - 1 ))" | tee "$r/sys/devices/system/cpu/possible" >"$r/sys/devices/system/cpu/present"
    mount --rbind /dev "$r/dev"
    touch "$r/etc/resolv.conf"; mount --bind /etc/resolv.conf "$r/etc/resolv.conf"
    if [ -f "$ca" ]; then touch "$r/etc/ssl/host-ca.crt"; mount --bind "$ca" "$r/etc/ssl/host-ca.crt"; fi
    mkdir -p "$r/root/shared"; mount --bind "$shared" "$r/root/shared"; mount -o remount,bind,ro "$r/root/shared"
    exec chroot "$r" /usr/bin/env -i "$@"
  ' _ "$root" "$SHARED" "$HOST_CA" "${env[@]}" "$@"
}

# The checkout as it is now (uncommitted edits too), without venvs, caches or run outputs.
copy_checkout() {
  rm -rf "$1"; mkdir -p "$1"
  tar -C "$REPO" -c --exclude=./.git --exclude='./.venv*' --exclude=./runs --exclude='./.pytest*' \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=./build --exclude=./dist . | tar -C "$1" -x
}

cache_key() {  # what goes into a userland, hashed
  local arch=$1
  {
    echo "recipe=$RECIPE suite=$SUITE arch=$arch apt=${APT[$arch]} venv=${VENV_FLAGS[$arch]} extra=${EXTRA[$arch]}"
    echo "tools=$PIP_TOOLS"
    python3 - "$REPO/pyproject.toml" <<'EOF'
import json, sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
print(json.dumps([p.get("requires-python"), p.get("dependencies"), p.get("optional-dependencies")], sort_keys=True))
EOF
  } | sha256sum | cut -c1-12
}

# ---- build (once) ------------------------------------------------------------------------------------
build() {
  local arch=$1 final=$2 tmp t0
  tmp="$CACHE/.build-${final##*/}"
  mkdir -p "$CACHE"
  t0=$(date +%s)
  if [ -f "$tmp/.debootstrap-done" ]; then
    say "$arch: reusing the debootstrap of an earlier build that stopped after it"
  else
    rm -rf "$CACHE"/.build-"$arch"-*   # builds cut short (never mounted: see in_root)
    say "$arch: debootstrap $SUITE (+ ${APT[$arch]}) -> $final"
    unshare --mount --propagation private -- debootstrap --arch="$arch" --variant=minbase \
      --include="${APT[$arch]}" "$SUITE" "$tmp" "$MIRROR" >"$CACHE/$arch-debootstrap.log" 2>&1 \
      || die "$arch: debootstrap failed; see $CACHE/$arch-debootstrap.log"
    touch "$tmp/.debootstrap-done"
    say "$arch: debootstrap took $(( $(date +%s) - t0 )) s"
  fi
  say "$arch: pip install '.[${EXTRA[$arch]}]'"
  copy_checkout "$tmp/root/edgeclf-build"
  in_root "$tmp" /bin/sh -ec "
    python3 -m venv ${VENV_FLAGS[$arch]} /opt/edgeclf
    /opt/edgeclf/bin/pip install --quiet --no-cache-dir --disable-pip-version-check \
      '/root/edgeclf-build[${EXTRA[$arch]}]' $(printf "'%s' " $PIP_TOOLS)
    /opt/edgeclf/bin/pip uninstall --quiet --yes edgeclf   # the checkout is installed per run
  " || die "$arch: pip install '.[${EXTRA[$arch]}]' in the userland failed"
  rm -rf "$tmp/root/edgeclf-build" "$tmp/var/cache/apt/archives/"*.deb "$tmp/.debootstrap-done"
  # mosquitto is for the tests, which start their own on free ports: its service would listen on the host's
  # port 1883 when systemd boots the arm64 userland (systemd-nspawn shares the host's network).
  rm -f "$tmp"/etc/systemd/system/multi-user.target.wants/mosquitto.service
  in_root "$tmp" /opt/edgeclf/bin/pip freeze --all >"$tmp/opt/edgeclf-freeze.txt"
  in_root "$tmp" dpkg-query -W -f '${Package} ${Version}\n' >"$tmp/opt/edgeclf-dpkg.txt"
  date -u +%FT%TZ >"$tmp/opt/edgeclf-built"
  echo "$(( $(date +%s) - t0 ))" >"$tmp/opt/edgeclf-build-seconds"
  rm -rf "$CACHE/$arch"-*          # userlands of older keys
  mv "$tmp" "$final"               # complete or absent, never half-built
  say "$arch: built in $(cat "$final/opt/edgeclf-build-seconds") s"
}

# ---- the desktop side: bundles, a clip, and the answers to expect ---------------------------------------
WORK=$(mktemp -d /tmp/pi-check.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
if [ -z "$BUNDLES" ] && [ -n "${EDGECLF_TFL_FIXTURES:-}" ] && [ -f "$EDGECLF_TFL_FIXTURES/index.json" ]; then
  BUNDLES=$EDGECLF_TFL_FIXTURES
fi
if [ -z "$BUNDLES" ]; then
  say "making test bundles with .venv (tests/make_bundles.py)"
  BUNDLES=$WORK/bundles
  .venv/bin/python -m tests.make_bundles "$BUNDLES" >/dev/null || die "tests/make_bundles.py failed"
fi
[ -f "$BUNDLES/index.json" ] || die "$BUNDLES has no index.json; make bundles with: .venv/bin/python -m tests.make_bundles DIR"
DESK=$WORK/desktop; mkdir -p "$DESK"
# A small real video (12 horse then 12 human frames, 320x240, mp4v), written with the desktop's OpenCV.
.venv/bin/python - "$SHARED" "$DESK/clip.mp4" <<'EOF'
import sys
from pathlib import Path
import cv2
shared, out = Path(sys.argv[1]), sys.argv[2]
w = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
assert w.isOpened(), "cv2.VideoWriter could not open " + out
for cls in ("horses", "humans"):
    for f in sorted((shared / cls).glob("*.png"))[:48:4]:
        w.write(cv2.resize(cv2.imread(str(f), cv2.IMREAD_COLOR), (320, 240), interpolation=cv2.INTER_AREA))
w.release()
EOF
# A 60 s clip (the same frames looped) for the service: long enough to be stopped mid-run.
.venv/bin/python - "$DESK/clip.mp4" "$WORK/long.mp4" <<'EOF'
import sys
import cv2
cap = cv2.VideoCapture(sys.argv[1])
frames = [f for ok, f in iter(cap.read, (False, None))]
w = cv2.VideoWriter(sys.argv[2], cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
for i in range(600):
    w.write(frames[i % len(frames)])
w.release()
EOF
# Every quantization kind edgeclf makes, of one small model, converted here: the armhf userland checks
# the op-version verdict (`loads on tflite-runtime 2.14`) of each against the real armv7 tflite-runtime,
# a dynamic-range model that it cannot load included.
if [[ " ${ARCHES[*]} " == *" armhf "* ]]; then
  TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python - "$WORK/variants" >"$WORK/variants.log" 2>&1 <<'EOF' \
    || die "converting the verdict variants failed: $(tail -1 "$WORK/variants.log")"
import sys
from pathlib import Path
import numpy as np
from edgeclf.convert.export import convert_keras
from edgeclf.convert.quantize import QuantizationKind as Q
from tests.runfixture import tiny_model
out = Path(sys.argv[1]); out.mkdir()
calib = np.random.default_rng(0).random((8, 1, 24, 24, 3), dtype=np.float32)
kinds = (Q.for_float32(), Q.for_float16(), Q.for_dynamic(), Q.for_int8("uint8", 8), Q.for_int8("int8", 8),
         Q.for_int8("float32", 8))
for kind, data in convert_keras(tiny_model(24, 2), 24, kinds, lambda: ([x] for x in calib)):
    (out / f"{kind.label}.tflite").write_bytes(data)
EOF
fi
CHECK_BUNDLES=$(cd "$BUNDLES" && ls -d */ | tr -d / | grep -v '^images$')
IMAGES=(horse02-0.png horse24-0.png human01-10.png human17-30.png photo.jpg wide.png)
desktop_answers() {  # the same commands on this machine, to compare with
  local b
  for b in $CHECK_BUNDLES; do
    (cd "$BUNDLES/images" && "$REPO/.venv/bin/edgeclf" -q classify "$BUNDLES/$b" "${IMAGES[@]}" --json) \
      >"$DESK/$b.classify.jsonl" 2>"$DESK/$b.err" || die "desktop classify $b: $(tail -1 "$DESK/$b.err")"
    "$REPO/.venv/bin/edgeclf" -q camera "$BUNDLES/$b" --source "$DESK/clip.mp4" --events "$DESK/$b.events.jsonl" \
      2>"$DESK/$b.err" || die "desktop camera $b: $(tail -1 "$DESK/$b.err")"
  done
}
EDGECLF_CACHE=$WORK/desk-cache desktop_answers

# ---- in a userland: the suite, the commands, the verdicts ----------------------------------------------
# Compares the userland's answers with the desktop's: same labels, probabilities within 0.02 (int8 kernels
# may round one step differently across CPUs); same frame count and label changes on the clip.
COMPARE=$(cat <<'EOF'
import json, sys
from pathlib import Path
desk, pi, bundles = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split()
bad = []
for b in bundles:
    d = [json.loads(l) for l in (desk / f"{b}.classify.jsonl").read_text().splitlines()]
    p = [json.loads(l) for l in (pi / f"{b}.classify.jsonl").read_text().splitlines()]
    if len(d) != len(p):
        bad.append(f"{b}: {len(p)} classify answers, desktop {len(d)}")
    for x, y in zip(d, p):
        dx, dy = dict(x["top"]), dict(y["top"])
        diff = max(abs(dx[k] - dy.get(k, -1)) for k in dx)
        if x["label"] != y["label"] or diff > 0.02:
            bad.append(f"{b} {x['path']}: {y['label']} {y['top']} here, desktop {x['label']} {x['top']}")
    de = [json.loads(l) for l in (desk / f"{b}.events.jsonl").read_text().splitlines()]
    pe = [json.loads(l) for l in (pi / f"{b}.events.jsonl").read_text().splitlines()]
    ch = lambda ev: [(e["frame"], e["label"]) for e in ev if e["event"] == "change"]
    fr = lambda ev: [e.get("frames") for e in ev if e["event"] == "summary"]
    if ch(de) != ch(pe) or fr(de) != fr(pe) or fr(pe) != [24]:
        bad.append(f"{b} camera: changes {ch(pe)} frames {fr(pe)} here, desktop {ch(de)} frames {fr(de)}")
print("\n".join(bad) if bad else f"answers agree with the desktop on {len(bundles)} bundles")
sys.exit(1 if bad else 0)
EOF
)

# Each bundle's manifest verdict for this interpreter against a real load + invoke, in a child process
# (a model the runtime cannot handle may crash it).
VERDICTS=$(cat <<'EOF'
import json, subprocess, sys
from pathlib import Path
key, root, bundles = sys.argv[1], Path(sys.argv[2]), sys.argv[3].split()
mod = {"ai-edge-litert": "ai_edge_litert.interpreter", "tflite-runtime-2.14": "tflite_runtime.interpreter"}[key]
load = ("import sys, numpy as np; from %s import Interpreter; i = Interpreter(model_path=sys.argv[1]); "
        "i.allocate_tensors(); d = i.get_input_details()[0]; i.set_tensor(d['index'], np.zeros(d['shape'], d['dtype'])); "
        "i.invoke()" % mod)
bad = 0
for b in bundles:
    verdict = json.loads((root / b / "manifest.json").read_text()).get("runtimes", {}).get(key)
    r = subprocess.run([sys.executable, "-c", load, str(root / b / "model.tflite")], capture_output=True, text=True)
    real = r.returncode == 0
    said = None if verdict is None else verdict.get("loads")
    ok = said == real
    bad += not ok
    why = "" if real else " (" + (r.stderr.strip().splitlines() or ["signal %d" % -r.returncode])[-1] + ")"
    print(f"{'agree' if ok else 'DISAGREE'}: {b}: manifest says loads={said}, real {key} load+invoke: {real}{why}")
sys.exit(1 if bad else 0)
EOF
)

# The unit in deploy/, started by systemd in the arm64 userland (systemd-nspawn --boot; systemd runs under
# qemu too). The container is volatile (a tmpfs over the cached userland) and checks itself: a oneshot unit
# starts edgeclf-camera.service as shipped (no camera here: it must fail and be restarted), then with a
# drop-in that reads a 60 s clip, stops it with systemctl, and writes what it saw to a bound folder.
check_systemd() {
  local root=$1 d=$WORK/systemd
  if ! command -v systemd-nspawn >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q systemd-container >/dev/null 2>&1 \
      || die "arm64: no systemd-nspawn here and apt-get could not install systemd-container"
  fi
  mkdir -p "$d/out"
  printf '[Service]\nExecStart=\nExecStart=%s\n' "/home/pi/edgeclf/.venv/bin/edgeclf -q camera /home/pi/bundles/150-int8 \
--source /home/pi/clip.mp4 --realtime --smooth 5 --events /var/log/edgeclf/events.jsonl" >"$d/clip.conf"
  printf '[Unit]\nAfter=multi-user.target\n[Service]\nType=oneshot\nExecStart=/bin/bash /pi-check/check.sh\n' \
    >"$d/edgeclf-check.service"
  cat >"$d/check.sh" <<'EOS'
exec >/pi-check/out/report.txt 2>&1
u=edgeclf-camera.service
show() { systemctl show $u -p ActiveState -p SubState -p Result -p NRestarts -p ExecMainStatus | sort | tr '\n' ' '; echo; }
echo "== as shipped (--source 0, no camera here)"
systemctl start $u
for i in $(seq 60); do [ "$(systemctl show $u -p NRestarts --value)" -ge 1 ] && break; sleep 2; done
show; journalctl -u $u -o cat --no-pager | grep -m1 'cameras here' | sed 's/^/journal: /'
systemctl stop $u
echo "== with a drop-in reading a clip (--realtime), stopped by systemctl"
mkdir -p /run/systemd/system/$u.d && cp /pi-check/clip.conf /run/systemd/system/$u.d/ && systemctl daemon-reload
rm -f /var/log/edgeclf/events.jsonl; systemctl reset-failed $u 2>/dev/null; systemctl start $u
for i in $(seq 90); do grep -q '"change"' /var/log/edgeclf/events.jsonl 2>/dev/null && break; sleep 2; done
sleep 3; echo "before stop: $(show)"; systemctl stop $u; echo "after stop: $(show)"
cp /var/log/edgeclf/events.jsonl /pi-check/out/ 2>/dev/null
stat -c 'events file owner: %U' /var/log/edgeclf/events.jsonl
journalctl -u $u -o cat --no-pager | grep -m1 'frames in' | sed 's/^/journal: /'
systemctl start --no-block poweroff.target
EOS
  mkdir -p "$root/srv/edgeclf/.venv" "$d/cpu"
  # The unit's User=pi, in the video group as on Pi OS (systemd-sysusers cannot set up its credentials here).
  in_root "$root" /bin/sh -c 'id pi >/dev/null 2>&1 || useradd --create-home --groups video pi'
  echo "0-$(( $(nproc) - 1 ))" | tee "$d/cpu/possible" >"$d/cpu/present"   # as in in_root
  timeout -k 10 600 systemd-nspawn -q -D "$root" --volatile=overlay --register=no --keep-unit --boot \
    --bind-ro="$root/srv/edgeclf:/home/pi/edgeclf" --bind-ro="$root/opt/edgeclf:/home/pi/edgeclf/.venv" \
    --bind-ro="$root/srv/bundles/b48-int8:/home/pi/bundles/150-int8" --bind-ro="$WORK/long.mp4:/home/pi/clip.mp4" \
    --bind-ro="$REPO/deploy/edgeclf-camera.service:/etc/systemd/system/edgeclf-camera.service" \
    --bind-ro="$d/edgeclf-check.service:/etc/systemd/system/edgeclf-check.service" \
    --bind-ro="$d/check.sh:/pi-check/check.sh" \
    --bind-ro="$d/clip.conf:/pi-check/clip.conf" --bind="$d/out:/pi-check/out" \
    --bind-ro="$d/cpu:/sys/devices/system/cpu" --setenv=QEMU_CPU="${CPU[arm64]}" \
    systemd.wants=edgeclf-check.service systemd.setenv=QEMU_CPU="${CPU[arm64]}" >"$d/boot.log" 2>&1 || true
  [ -s "$d/out/report.txt" ] || { tail -20 "$d/boot.log"; die "arm64: systemd in the userland did not run the check (boot log above)"; }
  sed 's/^/   /' "$d/out/report.txt"
  grep -q 'NRestarts=[1-9]' "$d/out/report.txt" || die "arm64: the unit without a camera was not restarted"
  grep -q '^journal: .*cameras here' "$d/out/report.txt" || die "arm64: the unit's failure did not reach the journal"
  grep -q '^before stop: ActiveState=active .*SubState=running' "$d/out/report.txt" \
    || die "arm64: the unit with a clip was not running"
  grep -q '^after stop: ActiveState=inactive ExecMainStatus=0 .*Result=success SubState=dead' "$d/out/report.txt" \
    || die "arm64: systemctl stop did not end the clip run cleanly (exit 0)"
  grep -q '"event": "summary"' "$d/out/events.jsonl" || die "arm64: the events file has no summary after stop"
  say "arm64: systemd: deploy/edgeclf-camera.service started, restarted without a camera, stopped cleanly on a clip"
}

# Each variant's op-version verdict (edgeclf.tflite_ops, what `edgeclf convert` writes into the manifest)
# against a real tflite-runtime load + invoke; at least one must be a "does not load".
VARIANT_VERDICTS=$(cat <<'EOF'
import subprocess, sys
from pathlib import Path
from edgeclf.tflite_ops import tflite_runtime_214_verdict
load = ("import sys, numpy as np; from tflite_runtime.interpreter import Interpreter; i = Interpreter(model_path=sys.argv[1]); "
        "i.allocate_tensors(); d = i.get_input_details()[0]; i.set_tensor(d['index'], np.zeros(d['shape'], d['dtype'])); "
        "i.invoke()")
bad, refused = 0, 0
for p in sorted(Path(sys.argv[1]).glob("*.tflite")):
    v = tflite_runtime_214_verdict(p.read_bytes())
    r = subprocess.run([sys.executable, "-c", load, str(p)], capture_output=True, text=True)
    real = r.returncode == 0
    refused += not real
    bad += v.loads != real
    lines = [ln for ln in r.stderr.splitlines() if "find op" in ln] or r.stderr.strip().splitlines()
    why = "" if real else " (" + (lines or ["signal %d" % -r.returncode])[-1][:120] + ")"
    print(f"{'agree' if v.loads == real else 'DISAGREE'}: {p.stem}: verdict loads={v.loads}, real tflite-runtime: {real}{why}")
if not refused:
    print("DISAGREE: no variant was refused, so the check proved nothing about the refusals")
sys.exit(1 if bad or not refused else 0)
EOF
)

check_arch() {
  local arch=$1 key root out t0 lock
  key=$(cache_key "$arch")
  root=$CACHE/$arch-$key
  mkdir -p "$CACHE"
  exec {lock}>"$CACHE/.lock-$arch"   # one run per userland at a time: a run writes into it
  flock -n "$lock" || { say "$arch: waiting for another pi-check run"; flock "$lock"; }
  if [ -f "$root/opt/edgeclf-built" ]; then
    say "$arch: cached userland $root (built $(cat "$root/opt/edgeclf-built"))"
  else
    build "$arch" "$root"
  fi
  t0=$(date +%s)
  out=$CACHE/last-run/$arch; rm -rf "$out"; mkdir -p "$out"   # kept after the run, for reading
  # This run's checkout, bundles and clip; edgeclf installed editable over the cached dependencies.
  copy_checkout "$root/srv/edgeclf"
  rm -rf "$root/srv/bundles" "$root/srv/run"; mkdir -p "$root/srv/run"
  cp -a "$BUNDLES" "$root/srv/bundles"; cp "$DESK/clip.mp4" "$root/srv/run/"
  rm -rf "$root/srv/variants"; if [ -d "$WORK/variants" ]; then cp -a "$WORK/variants" "$root/srv/variants"; fi
  in_root "$root" /opt/edgeclf/bin/pip install --quiet --no-deps --no-build-isolation --disable-pip-version-check \
    -e /srv/edgeclf >"$out/install.log" 2>&1 || die "$arch: pip install -e (no deps) failed: $(tail -1 "$out/install.log")"
  say "$arch: $(in_root "$root" sh -c '. /etc/os-release; echo "$PRETTY_NAME, $(uname -m), $(python3 --version)"')"
  say "$arch: pytest tests/edge (EDGECLF_TFL_FIXTURES=desktop bundles)"
  in_root "$root" /bin/sh -c 'cd /srv/edgeclf && EDGECLF_TFL_FIXTURES=/srv/bundles EDGECLF_CACHE=/srv/run/cache \
      python -m pytest -q -p no:cacheprovider -p no:xdist -m "not timing" tests/edge' >"$out/pytest.log" 2>&1 \
    || { tail -40 "$out/pytest.log"; die "$arch: the edge suite failed (above)"; }
  tail -3 "$out/pytest.log"
  say "$arch: edgeclf info --check, classify, camera --source clip.mp4 on: $(echo $CHECK_BUNDLES)"
  in_root "$root" /bin/sh -ec "export EDGECLF_CACHE=/srv/run/cache; cd /srv/bundles/images
    for b in $(echo $CHECK_BUNDLES); do
      edgeclf -q info /srv/bundles/\$b --check >/srv/run/\$b.info
      edgeclf -q classify /srv/bundles/\$b ${IMAGES[*]} --json >/srv/run/\$b.classify.jsonl
      edgeclf -q camera /srv/bundles/\$b --source /srv/run/clip.mp4 --events /srv/run/\$b.events.jsonl 2>/dev/null
    done" || die "$arch: an edgeclf command failed (above)"
  python3 -c "$COMPARE" "$DESK" "$root/srv/run" "$CHECK_BUNDLES" || die "$arch: answers differ from the desktop's"
  say "$arch: manifest verdicts for ${RUNTIME[$arch]} against a real load"
  in_root "$root" python -c "$VERDICTS" "${RUNTIME[$arch]}" /srv/bundles "$CHECK_BUNDLES" \
    || die "$arch: a manifest verdict disagrees with the real ${RUNTIME[$arch]}"
  if [ "$arch" = armhf ]; then
    say "armhf: op-version verdicts of every quantization kind against the real tflite-runtime 2.14"
    in_root "$root" python -c "$VARIANT_VERDICTS" /srv/variants || die "armhf: a tflite-runtime 2.14 verdict is wrong"
  fi
  if [ "$arch" = arm64 ]; then check_systemd "$root"; fi
  say "$arch: versions: $(grep -iE '^(numpy|opencv-python-headless|ai-edge-litert|tflite-runtime|paho-mqtt|prometheus[-_]client|pytest)==' \
    "$root/opt/edgeclf-freeze.txt" | tr '\n' ' ')$(grep -E '^(python3|python3-numpy|python3-opencv|mosquitto) ' \
    "$root/opt/edgeclf-dpkg.txt" | tr '\n' ' ')"
  say "$arch: passed in $(( $(date +%s) - t0 )) s"
  exec {lock}>&-
}

for arch in "${ARCHES[@]}"; do check_arch "$arch"; done
say "all passed: ${ARCHES[*]}"
