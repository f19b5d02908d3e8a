# Sourced by gpu_check.sh and gpu_probe.sh: the carried Ray/Optuna wheels installed, the data path,
# an $out folder for results, and `step SECONDS CMD...` (a capped step whose failure prints one
# JSON line instead of stopping the rest).
out=${OUT:-gpu-results}; mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export DISTNER_DATA=${DISTNER_DATA:-$PWD/.data/multiconer2} RAY_AUTH_MODE=disabled PYTHONUNBUFFERED=1
step() { local t=$1; shift; echo "== $*" >&2; timeout "$t" "$@" || echo "{\"failed\": \"$*\", \"rc\": $?}"; }
