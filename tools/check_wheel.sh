#!/usr/bin/env bash
# The package as users get it: build the sdist and wheel, check the shipped files are inside, install the wheel
# into fresh venvs outside the checkout (base, then each extra) and run the README's commands there. After each
# install: `pip check` clean and exactly one OpenCV distribution. Needs ../shared/datasets/face-mask-voc.
# Usage: bash tools/check_wheel.sh [PYTHON]   (default .venv/bin/python, which has `build`)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${1:-.venv/bin/python}
DATA=$(cd ../shared/datasets/face-mask-voc && pwd)
WORK=$(mktemp -d /tmp/maskwatch-wheel-XXXXXX)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
step() { echo "== $* ($SECONDS s)"; }

step "build sdist and wheel"
rm -rf dist
"$PY" -m build --outdir dist . >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$ROOT"/dist/maskwatch-*.whl)
ls -l dist
"$PY" - "$WHEEL" "$ROOT"/dist/maskwatch-*.tar.gz <<'EOF'
import sys, tarfile, zipfile
wheel = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["maskwatch/weights/centerface.onnx", "maskwatch/weights/mask_head.onnx", "maskwatch/weights/mask_head.json",
        "maskwatch/weights/MODEL_CARD.md", "maskwatch/samples/crowd.jpg", "maskwatch/serve/static/index.html",
        "maskwatch/py.typed"]
missing = [n for n in need if n not in wheel]
assert not missing, f"not in the wheel: {missing}"
sdist = tarfile.open(sys.argv[2]).getnames()
assert any(n.endswith("src/maskwatch/weights/centerface.onnx") for n in sdist), "ONNX files not in the sdist"
print(f"wheel holds {len(wheel)} files, the shipped ONNX models and sample among them")
EOF

installed() {  # pip check clean and exactly one OpenCV, after each install
  "$VENV/bin/pip" check
  local cv; cv=$("$VENV/bin/pip" list --format=freeze 2>/dev/null | grep -ci '^opencv' || true)
  [ "$cv" = "1" ] || { echo "expected one OpenCV distribution, found $cv:"; "$VENV/bin/pip" list | grep -i opencv; exit 1; }
  "$VENV/bin/pip" list --format=freeze 2>/dev/null | grep -i '^opencv'
  du -sm "$VENV" | awk '{print "venv: " $1 " MB"}'
}

VENV=$WORK/venv
step "fresh venv, pip install the wheel (no extras)"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet "$WHEEL"
installed
cd "$WORK"  # outside the checkout: only the installed package can be imported
MW="$VENV/bin/maskwatch"
SAMPLE=$("$VENV/bin/python" -c "import maskwatch.samples as s; print(s.CROWD)")
case "$SAMPLE" in "$VENV"/*) ;; *) echo "the sample comes from $SAMPLE, not the installed wheel"; exit 1;; esac

step "--version names the installed package"
version=$("$MW" --version)
[[ "$version" == "maskwatch $("$VENV/bin/python" -c 'import maskwatch; print(maskwatch.__version__)') ("* ]] \
  || { echo "--version said: $version"; exit 1; }

step "detect on the sample"
"$MW" detect "$SAMPLE" --out out/detect --json-out out/detect.jsonl
"$VENV/bin/python" -c "
import json; r = json.loads(open('out/detect.jsonl').read())
assert r['image'] == 'crowd.jpg' and len(r['detections']) >= 5, r"
test -s out/detect/crowd.jpg

step "watch on a short clip, then report"
"$VENV/bin/python" - "$SAMPLE" <<'EOF'
import sys, cv2
image = cv2.resize(cv2.imread(sys.argv[1]), None, fx=1.5, fy=1.5)
writer = cv2.VideoWriter("clip.avi", cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
for x in range(0, 200, 10):
    writer.write(image[60:300, x:x + 320].copy())
writer.release()
EOF
"$MW" watch clip.avi --out out/clip.mp4 --db out/events.sqlite
test -s out/clip.mp4 && test -s out/clip.tracks.csv
"$MW" report out/events.sqlite --chart out/compliance.png
test -s out/compliance.png

step "data, evaluate and convert on a few annotated images"
mkdir -p few/images few/annotations
for stem in maksssksksss0 maksssksksss1 maksssksksss5 maksssksksss94 maksssksksss139 maksssksksss657; do
  cp "$DATA/images/$stem.jpg" few/images/ && cp "$DATA/annotations/$stem.xml" few/annotations/
done
"$MW" data stats few --plot out/stats.png
"$MW" data split few --val 0.3
test -s out/split/val.txt
"$MW" detect few --list out/split/val.txt --no-images --json-out out/val.jsonl
"$MW" evaluate --gt few --split out/split/val.txt --pred out/val.jsonl --out out/eval
test -s out/eval/report.json
"$MW" convert few out/coco --to coco --val 0.3
test -s out/coco/instances_val.json

step "pip install the wheel with the serve and ray extras"
"$VENV/bin/pip" install --quiet "maskwatch[serve,ray] @ file://$WHEEL"
installed

step "serve answers /healthz and /v1/detect"
PORT=$("$VENV/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$MW" serve --port "$PORT" --data-dir out/serve >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 1; done
# Answers are read whole before grep looks: `curl | grep -q` under pipefail fails (curl exit 23, a write error)
# whenever grep has matched and gone before curl finished writing.
health=$(curl -sf "http://127.0.0.1:$PORT/healthz" || true)
grep -q '"model_loaded":true' <<<"$health" || { cat "$WORK/serve.log"; exit 1; }
curl -sf -F "file=@$SAMPLE" "http://127.0.0.1:$PORT/v1/detect" >out/api.json
"$VENV/bin/python" -c "
import json; r = json.load(open('out/api.json'))
assert r['width'] == 400 and sum(r['counts'].values()) >= 5, r"
page=$(curl -sf "http://127.0.0.1:$PORT/")
grep -qi "<html" <<<"$page"
kill "$SERVER" && wait "$SERVER" 2>/dev/null || true
SERVER=

step "batch, local and Ray"
"$MW" batch few --out out/batch
"$MW" batch few --out out/batch-ray --engine ray --actors 1 2>"$WORK/ray.err"
# Quiet: nothing but maskwatch's own progress bar (Ray's logs and C++ lines only with --verbose).
noise=$(tr '\r' '\n' <"$WORK/ray.err" | grep -v '^detecting (Ray)' | grep -v '^[[:space:]]*$' || true)
grep -q 'detecting (Ray): 100%' "$WORK/ray.err" || { echo "no progress bar from the Ray engine:"; cat "$WORK/ray.err"; exit 1; }
[ -z "$noise" ] || { echo "Ray was not quiet:"; echo "$noise"; exit 1; }
"$VENV/bin/python" -c "
import pyarrow.parquet as pq, glob
for out in ('out/batch', 'out/batch-ray'):
    rows = pq.ParquetDataset(sorted(glob.glob(out + '/*.parquet'))).read().num_rows
    assert rows == 6, (out, rows)"

step "pip install the wheel with the train extra (small CPU torch first), train --quick, detect with it"
"$VENV/bin/pip" install --quiet "${TORCH:-torch==2.13.0}"
"$VENV/bin/pip" install --quiet "maskwatch[train] @ file://$WHEEL"
installed
# The ImageNet weights where torch keeps its downloads (no internet here); an online machine downloads them.
export TORCH_HOME=$WORK/torch
mkdir -p "$TORCH_HOME/hub/checkpoints"
cp "$("$ROOT/.venv/bin/python" -c "from maskwatch.models.pretrained import imagenet_weights_path as p; print(p())")" \
   "$TORCH_HOME/hub/checkpoints/"
"$MW" train --data "$DATA" --val-split "$ROOT/splits/face-mask-voc/val.txt" --out out/run --quick
"$MW" detect "$SAMPLE" --model out/run --no-images --json-out out/trained.jsonl
test -s out/run/model/mask_head.onnx && test -s out/trained.jsonl
echo "wheel check passed in $SECONDS s"
